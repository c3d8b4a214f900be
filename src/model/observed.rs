//! The observed state of a host: what one container list returned, as plain values.

use super::labels::Labels;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Label names berth puts on everything it creates.
pub mod label {
    pub const PROJECT: &str = "berth.project";
    pub const DEPLOYMENT: &str = "berth.deployment";
    pub const POD: &str = "berth.pod";
    pub const CONTAINER: &str = "berth.container";
    pub const REVISION: &str = "berth.revision";
    pub const SPEC: &str = "berth.spec";
    pub const COMMIT: &str = "berth.commit";
    pub const ROLE: &str = "berth.role";
    pub const ORDINAL: &str = "berth.ordinal";
    /// The container's place in its pod (0 owns the network), so a pod can be recreated.
    pub const INDEX: &str = "berth.index";
    /// The deployment's own labels, JSON, so `-l` works on pods whose deployment left Git.
    pub const LABELS: &str = "berth.labels";
    /// On a job's container: the job's name (such a container is not part of a pod).
    pub const JOB: &str = "berth.job";
    /// On a job's record volume: the [`JobRecord`](super::JobRecord), JSON.
    pub const JOB_RECORD: &str = "berth.job-record";
}

/// A job that ran to completion (exit 0) for a revision, as recorded on its host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct JobRecord {
    pub deployment: String,
    pub job: String,
    pub revision: String,
}

/// Which set a pod belongs to in a rollout (the `berth.role` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Stable,
    Canary,
    Blue,
    Green,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stable => "stable",
            Role::Canary => "canary",
            Role::Blue => "blue",
            Role::Green => "green",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [Role::Stable, Role::Canary, Role::Blue, Role::Green]
            .into_iter()
            .find(|r| r.as_str() == text)
    }

    /// The colour a blue-green's new set takes beside a set of this role.
    pub fn next_colour(self) -> Role {
        match self {
            Role::Blue => Role::Green,
            _ => Role::Blue,
        }
    }
}

/// Docker's state of a container. Kept as Docker's word in JSON; a word this version does not
/// know is kept as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(from = "String", into = "String")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Other(String),
}

impl ContainerState {
    pub fn as_str(&self) -> &str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Restarting => "restarting",
            ContainerState::Removing => "removing",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
            ContainerState::Other(s) => s,
        }
    }
}

impl From<&str> for ContainerState {
    fn from(word: &str) -> Self {
        match word {
            "created" => ContainerState::Created,
            "running" => ContainerState::Running,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "removing" => ContainerState::Removing,
            "exited" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            other => ContainerState::Other(other.to_string()),
        }
    }
}

impl From<String> for ContainerState {
    fn from(word: String) -> Self {
        ContainerState::from(word.as_str())
    }
}

impl From<ContainerState> for String {
    fn from(state: ContainerState) -> String {
        state.as_str().to_string()
    }
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    pub health: Option<Health>,
    pub labels: Labels,
    /// Published host ports as (port, protocol).
    #[serde(default)]
    pub host_ports: Vec<(u16, String)>,
    /// Names of the named volumes it mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// Resource settings as the engine has them now; only read by a deep observation
    /// (an inspect per managed container), since the container list does not carry them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// When it was created (Unix seconds): the age of the revision a kept pod holds.
    #[serde(default)]
    pub created: i64,
}

/// What `docker update` can change behind berth's back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Resources {
    /// Bytes; 0 for no limit.
    pub memory: u64,
    /// Milli-CPUs; 0 for no limit.
    pub millicpus: u64,
    pub restart: String,
    /// Its network aliases on the project's network (service membership).
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// A named volume with its labels.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ObservedVolume {
    pub name: String,
    pub labels: Labels,
    /// When its engine created it: Unix seconds by the engine's clock (the lock's leases
    /// are judged by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
}

impl ObservedContainer {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    pub fn is_running(&self) -> bool {
        self.state == ContainerState::Running
    }

    /// Its `berth.role`, when it has one this version knows.
    pub fn role(&self) -> Option<Role> {
        self.label(label::ROLE).and_then(Role::parse)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default, schemars::JsonSchema)]
pub struct ObservedHost {
    pub host: String,
    /// Every container on the host, managed or not.
    pub containers: Vec<ObservedContainer>,
    /// Volumes labelled by berth; only listed when volumes are to be pruned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<ObservedVolume>,
    /// This project's rollout states found on the host (canary, blue-green).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollouts: Vec<super::Rollout>,
    /// The apply lock's lease volumes found on the host (see `model::lock`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leases: Vec<ObservedVolume>,
    /// The project's apply lock on the host, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<ObservedLock>,
    /// The images asked about that the host has, by reference, with the registry digests
    /// the engine knows them by (none: built or loaded on the host, from no registry).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, Vec<String>>,
    /// The jobs recorded as done on the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<JobRecord>,
    /// The configuration the project's edge on the host runs (see `model::haproxy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_generation: Option<String>,
}

/// The apply lock found on a host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ObservedLock {
    pub labels: Labels,
    /// Its holder ran on the machine that observed it, and that process has ended.
    #[serde(default)]
    pub holder_gone: bool,
    /// When the engine created the lock, Unix seconds by its clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// The engine's time when the lock was observed: its leases are judged by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_now: Option<u64>,
}

impl ObservedHost {
    /// Whether the host keeps the lock or leases of an apply that is gone (see
    /// `lock::left_behind`): the next apply takes them over and clears them.
    pub fn lock_left_behind(&self) -> bool {
        let leases: Vec<super::lock::Record> = self
            .leases
            .iter()
            .map(|v| super::lock::Record {
                labels: v.labels.clone(),
                created: v.created,
            })
            .collect();
        let lock = self.lock.as_ref().map(|l| {
            let record = super::lock::Record {
                labels: l.labels.clone(),
                created: l.created,
            };
            (record, l.holder_gone, l.engine_now)
        });
        super::lock::left_behind(
            lock.as_ref().map(|(r, _, _)| r),
            lock.as_ref().is_some_and(|(_, gone, _)| *gone),
            &leases,
            lock.as_ref().and_then(|(_, _, now)| *now),
        )
    }
}

impl ObservedHost {
    /// A fingerprint of this project's containers on the host (name, id, state, spec).
    /// Health is left out (it changes on its own), and so are other projects' containers, so
    /// that their activity does not make a saved plan stale.
    pub fn fingerprint(&self, project: &str) -> String {
        let mut lines: Vec<String> = self
            .containers
            .iter()
            .filter(|c| c.label(label::PROJECT) == Some(project))
            .map(|c| {
                format!(
                    "{} {} {} {}",
                    c.name,
                    c.id,
                    c.state,
                    c.label(label::SPEC).unwrap_or("")
                )
            })
            .collect();
        // A promotion or abort since the plan was made makes it stale too.
        lines.extend(
            self.rollouts
                .iter()
                .map(|r| serde_json::to_string(r).expect("rollout serialises")),
        );
        lines.sort();
        super::desired::sha256_hex(lines.join("\n").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_states_keep_dockers_and_berths_words() {
        for r in [Role::Stable, Role::Canary, Role::Blue, Role::Green] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("purple"), None);
        assert_eq!(Role::Blue.next_colour(), Role::Green);
        assert_eq!(Role::Green.next_colour(), Role::Blue);
        assert_eq!(Role::Stable.next_colour(), Role::Blue);
        for word in [
            "created",
            "running",
            "paused",
            "restarting",
            "removing",
            "exited",
            "dead",
        ] {
            let s = ContainerState::from(word);
            assert!(!matches!(s, ContainerState::Other(_)), "{word}");
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{word}\""));
        }
        let odd: ContainerState = serde_json::from_str("\"hibernating\"").unwrap();
        assert_eq!(odd, ContainerState::Other("hibernating".into()));
        assert_eq!(odd.to_string(), "hibernating");
    }
}
