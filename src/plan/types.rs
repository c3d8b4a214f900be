//! The plan: a versioned, serialisable value. Apply interprets its waves step by step.

use crate::diff::FieldChange;
use crate::model::{Analysis, ContainerSpec, Labels, Reason, Rollout};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Service name → host → pods behind it (see `membership` for how waves change it).
pub type Membership = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Bumped on any incompatible change of the JSON form (documented in docs/plan-format.md).
pub const PLAN_VERSION: u32 = 3;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Plan {
    pub version: u32,
    pub project: String,
    /// The environment the plan is for (`-e`), when berth.yaml declares environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Deployments that left Git whose pods are kept (no `--prune`): by deployment, the
    /// pods as `host/pod`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub not_in_git: BTreeMap<String, Vec<String>>,
    pub commit: Option<String>,
    /// Who signed the commit, when the operator's policy asks for signed commits: the
    /// principals of the allowed_signers line and the key's fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    pub desired_hash: String,
    /// The `-l` selector the plan was made with, if any.
    pub selector: Option<String>,
    pub prune: bool,
    /// Per host: the fingerprint of what was observed, or why it could not be.
    pub hosts: BTreeMap<String, HostState>,
    pub changes: Vec<Change>,
    pub issues: Vec<Issue>,
    pub waves: Vec<Wave>,
    /// Service name → host → the pods behind it when the plan was made (see
    /// `membership::timeline` for how each wave changes it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: Membership,
    /// Hosts where an apply died holding the lock (see `lock::left_behind`): the next apply takes
    /// the lock over, and one with nothing else to do just clears it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_locks: Vec<String>,
    /// The logins (names and secret names, never values) for the registries the plan's
    /// images are pulled from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<crate::model::registry::RegistryLogin>,
    /// What the edge proxies route (see `model::ingress`), when a deployment has an ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<crate::model::ingress::Routing>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct HostState {
    /// How to reach the host, so a saved plan applies without the repository.
    pub connection: crate::model::Host,
    pub reachable: bool,
    pub fingerprint: Option<String>,
    pub error: Option<String>,
}

#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Git changed.
    Pending,
    /// The host was changed by hand.
    Drift,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Replace,
    Start,
    Remove,
    /// The service name moves between sets of pods (blue-green promotion or rollback).
    Switch,
    /// The pod stops and stays, kept for `berth rollback --to` (`history_limit`).
    Stop,
    /// An edge is given the configuration its routes call for.
    Route,
}

/// One pod-level change, with its reason and the fields that differ.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Change {
    pub deployment: String,
    pub host: String,
    pub action: Action,
    pub kind: ChangeKind,
    /// The pod that is there now (replace, start, remove).
    pub pod: Option<String>,
    /// The pod that will be there (create, replace).
    pub new_pod: Option<String>,
    /// The volume a change is about (volume pruning), instead of a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    pub reason: Reason,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    /// Old and new container specs by container name, for text diffs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_spec: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_spec: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IssueKind {
    /// A pod of the current revision is unhealthy or restarting.
    Health,
    /// An unmanaged container holds a name or host port berth needs.
    Conflict,
    /// A host could not be observed.
    Unreachable,
    /// A container with this project's labels that no deployment owns (made by hand); it is
    /// drift, removed only with --prune.
    Extra,
    /// Something berth will not do without being asked (e.g. prune).
    Notice,
    /// A canary or blue-green rollout in progress or ended by an abort.
    Rollout,
    /// `berth rollback --to` brought back a kept revision while Git declares another: drift.
    #[serde(rename = "rolled-back")]
    RolledBack,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Issue {
    pub kind: IssueKind,
    pub host: Option<String>,
    pub deployment: Option<String>,
    pub pod: Option<String>,
    pub message: String,
}

/// Steps run host by host in parallel (each host's list in order); a deployment's waves run
/// one after another, beside other deployments' waves. If a wave fails, its `on_failure`
/// steps run and the apply stops.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Wave {
    pub description: String,
    /// The deployment the wave belongs to; the waves of different deployments run at once.
    /// `None` for waves that run alone (preparation, pruning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    pub steps: BTreeMap<String, Vec<Step>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub on_failure: BTreeMap<String, Vec<Step>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    EnsureNetwork {
        name: String,
    },
    EnsureVolume {
        name: String,
    },
    EnsureImage {
        image: String,
    },
    CreatePod {
        pod: PodPlan,
    },
    /// Wait until every container runs (and passes its healthcheck), then stays so for
    /// `min_ready_ms`. With `join`, the pod is put behind its service name the moment it is
    /// first healthy (as a Kubernetes endpoint is), while `min_ready` goes on counting.
    AwaitReady {
        pod: String,
        containers: Vec<String>,
        min_ready_ms: u64,
        timeout_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        join: Option<ServiceJoin>,
    },
    StartPod {
        pod: String,
        containers: Vec<String>,
    },
    /// Stop (SIGTERM, then SIGKILL after `stop_timeout_s`).
    StopPod {
        pod: String,
        containers: Vec<String>,
        #[serde(default = "default_stop_timeout")]
        stop_timeout_s: u32,
    },
    RemovePod {
        pod: String,
        containers: Vec<String>,
        #[serde(default = "default_stop_timeout")]
        stop_timeout_s: u32,
    },
    RemoveVolume {
        name: String,
    },
    /// Put a running pod behind its service names (a rollback, a promotion).
    JoinService {
        pod: String,
        join: ServiceJoin,
    },
    /// Take a pod out from behind its service names and give the connections it serves
    /// `drain_ms` to finish, before it is stopped.
    LeaveService {
        pod: String,
        leave: ServiceJoin,
        drain_ms: u64,
    },
    /// Write a deployment's rollout state on this host (`None` clears it); the executor
    /// stamps the time.
    RecordRollout {
        deployment: String,
        state: Option<Rollout>,
    },
    /// Run a job's container to completion (its output goes to the apply's output); an exit
    /// other than 0, or no exit within its timeout, fails the step. The container is removed
    /// once it has finished.
    RunJob {
        job: Box<JobPlan>,
    },
    /// Record on this host that a job ran for a revision, so it does not run again.
    RecordJob {
        record: crate::model::JobRecord,
    },
    /// Give a canary revision this share of the requests on every edge (an ingress
    /// deployment's canary weight step); the edges apply it at once.
    RouteWeight {
        deployment: String,
        revision: String,
        percent: u32,
    },
    /// Change what the edges route: each pod in `add` starts, each in `remove` stops getting
    /// its service's requests through the edges, and every edge has the new configuration
    /// before the step is done. The plan puts a pod's removal before it leaves its service
    /// or stops (its drain starts with no new requests) and its addition after it joins; a
    /// wave that moves a service between sets of pods moves the edges in one such step,
    /// between its joins and its leaves.
    RouteEdges {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        add: Vec<EdgeMember>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        remove: Vec<EdgeMember>,
    },
    /// Give this host's edge the configuration its routes call for now.
    SyncEdge,
    /// Judge a canary revision by every edge's counts of its answers over a window.
    EdgeAnalyze {
        deployment: String,
        revision: String,
        check: crate::model::edge_stats::EdgeAnalysis,
    },
    /// Wait, as a canary's timed pause asks.
    Wait {
        ms: u64,
        reason: String,
    },
    /// A canary analysis: HTTP requests to each pod's address on this host, made through the
    /// SSH connection; more failures than the limit fail the step.
    Analyze {
        pods: Vec<ServiceJoin>,
        check: Analysis,
    },
}

/// A pod behind a service, as the edges route it.
#[derive(
    Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, schemars::JsonSchema,
)]
pub struct EdgeMember {
    pub service: String,
    pub host: String,
    pub pod: String,
}

/// Service membership: network aliases on the pod's first container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ServiceJoin {
    pub container: String,
    pub network: String,
    pub aliases: Vec<String>,
}

pub use crate::model::DEFAULT_STOP_TIMEOUT_S;

fn default_stop_timeout() -> u32 {
    DEFAULT_STOP_TIMEOUT_S
}

/// Everything needed to create one pod, resolved (secrets only by name and hash).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct PodPlan {
    pub name: String,
    pub deployment: String,
    pub network: String,
    /// The service names the pod answers to once it is ready (network aliases; a new pod is
    /// created without them and joins after its health gate).
    pub aliases: Vec<String>,
    pub containers: Vec<ContainerPlan>,
    /// The host port its ingress port is published on (for the edges), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressBinding>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct IngressBinding {
    pub container_port: u16,
    pub host_port: u16,
}

/// Everything needed to run one job (secrets only by name).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct JobPlan {
    pub deployment: String,
    pub job: String,
    pub revision: String,
    /// The project's network, so the job reaches the services (a database) by name.
    pub network: String,
    pub container: ContainerPlan,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ContainerPlan {
    /// The Docker container name.
    pub name: String,
    pub spec: ContainerSpec,
    pub labels: Labels,
}

impl Plan {
    /// The images the plan makes sure each host has.
    pub fn images(&self) -> BTreeSet<&str> {
        self.waves
            .iter()
            .flat_map(|w| w.steps.values().flatten())
            .filter_map(|s| match s {
                Step::EnsureImage { image } => Some(image.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Which hosts a plan saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    All,
    Some {
        observed: usize,
        hosts: usize,
        unseen: Vec<String>,
    },
    None {
        hosts: usize,
    },
}

impl Change {
    /// A change without field details or specs (removals, starts, service switches).
    pub fn plain(
        deployment: &str,
        host: &str,
        action: Action,
        kind: ChangeKind,
        pod: Option<String>,
        reason: Reason,
    ) -> Change {
        Change {
            deployment: deployment.to_string(),
            host: host.to_string(),
            action,
            kind,
            pod,
            new_pod: None,
            volume: None,
            reason,
            fields: vec![],
            old_spec: None,
            new_spec: None,
        }
    }
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }

    pub fn conflicts(&self) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(|i| i.kind == IssueKind::Conflict)
    }

    pub fn unreachable(&self) -> impl Iterator<Item = &Issue> {
        self.issues
            .iter()
            .filter(|i| i.kind == IssueKind::Unreachable)
    }

    /// The hosts that were not observed, by name: nothing is known of what they run.
    pub fn unobserved_hosts(&self) -> Vec<&str> {
        (self.hosts.iter())
            .filter(|(_, h)| !h.reachable)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// How a plan without changes may be described: "the live state matches Git" only when
    /// every host was observed; otherwise what was and was not seen, never a green verdict
    /// about hosts nobody looked at.
    pub fn observed_scope(&self) -> Observation {
        let unseen = self.unobserved_hosts();
        match (unseen.len(), self.hosts.len()) {
            (0, _) => Observation::All,
            (u, n) if u == n => Observation::None { hosts: n },
            (_, n) => Observation::Some {
                observed: n - unseen.len(),
                hosts: n,
                unseen: unseen.iter().map(|h| h.to_string()).collect(),
            },
        }
    }
}
