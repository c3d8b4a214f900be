//! The desired state: what Git says should run, after defaults and normalisation.
//!
//! [`ContainerSpec`] is the unit of comparison: berth stores it, serialised canonically, in the
//! `berth.spec` label of every container it creates, so a plan compares specs without an
//! inspect per container. Secret values never enter it, only their names.

use super::labels::Labels;
use super::selector::Selector;
use super::strategy::Strategy;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DesiredState {
    pub project: String,
    /// The environment it was loaded for (`-e`), when berth.yaml declares environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The Git commit the state was read at; `None` for a plain directory.
    pub commit: Option<String>,
    pub hosts: Vec<Host>,
    pub deployments: Vec<Deployment>,
    /// Logins for pulls from private registries (`registries:` in berth.yaml).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<super::registry::RegistryLogin>,
    /// The values of the secrets the deployments name (only those that were asked for and
    /// set); never serialised.
    #[serde(skip)]
    pub secrets: super::secret::SecretValues,
    /// The contents of the files the containers are given, by hash; never serialised.
    #[serde(skip)]
    pub files: super::files::FileContents,
    /// The edge proxies, when a deployment has an ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<super::ingress::EdgeSettings>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub labels: Labels,
    pub docker_socket: String,
    /// Bastions to reach the host through, as OpenSSH's ProxyJump: `[user@]host[:port]`,
    /// comma-separated, in order (`none`: direct, whatever the SSH config says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_jump: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Deployment {
    pub name: String,
    pub labels: Labels,
    pub replicas: u32,
    pub placement: Placement,
    pub pod: PodSpec,
    pub service: Option<Service>,
    /// Its public port on the edge proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<super::ingress::Ingress>,
    pub strategy: Strategy,
    /// Run to completion before the pods of a new revision start (migrations).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<Job>,
    /// The file it was declared in, relative to the repository root.
    pub file: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Placement {
    #[schemars(with = "String")]
    pub hosts: Selector,
    pub max_per_host: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct PodSpec {
    pub containers: Vec<ContainerSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Service {
    pub name: String,
    pub port: Option<u16>,
}

/// One container of a pod, normalised: env as a sorted map, ports as `host:container/proto`,
/// memory in bytes, CPUs in milli-CPUs, durations in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthCheck>,
    pub restart: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub millicpus: Option<u64>,
    /// Docker's init as PID 1: it passes SIGTERM on to the process (a shell as PID 1 ignores
    /// it, and then each stop waits out the stop timeout). Left out of the spec when off, so
    /// revisions made before it existed stay the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// When the image is pulled and whether its tag is resolved to a digest.
    #[serde(default, skip_serializing_if = "PullPolicy::is_default")]
    pub pull: PullPolicy,
    /// The digest the image's tag named when the plan was made (resolved through a host's
    /// engine, `plan::digests`); part of the revision, so a tag that moved is a rollout.
    /// Not in Git: the repository names tags (or pins `image@sha256:…` itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Files from the repository placed in the container before it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<super::files::FileSpec>,
    /// `host` for the edge proxy (it owns the host's public ports); pods join the project
    /// network otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// The signal `docker stop` sends (SIGTERM when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// The user it runs as (the image's when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Secrets whose values are whole env files (`env_file: {secret: NAME}`), in order; their
    /// keys fill what `env` (and the repository's env files, merged into it) leave unset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_secret_files: Vec<String>,
}

/// When a container's image is pulled.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// The tag is resolved to a digest at plan time (where a registry knows the image); a
    /// host without that digest pulls it. A registry that cannot be asked keeps the digest
    /// the pods run.
    #[default]
    Digest,
    /// As `Digest`, but a registry that cannot be asked stops the plan.
    Always,
    /// No resolution: a host pulls the tag only when it does not have it.
    Missing,
    /// Never pulled: the image must be on the host.
    Never,
}

impl PullPolicy {
    pub fn is_default(&self) -> bool {
        *self == PullPolicy::Digest
    }

    /// Whether the tag is resolved to a digest at plan time.
    pub fn resolves(&self) -> bool {
        matches!(self, PullPolicy::Digest | PullPolicy::Always)
    }
}

impl ContainerSpec {
    /// Every secret the container is given, by name, once each: env values, env files that
    /// are secrets, and the secrets its templates fill in.
    pub fn secret_names(&self) -> Vec<&str> {
        let env = self.env.values().filter_map(|v| match v {
            EnvValue::Secret { secret } => Some(secret.as_str()),
            EnvValue::Plain(_) => None,
        });
        let files = self.files.iter().flat_map(|f| f.secrets.iter());
        let mut names: Vec<&str> = Vec::new();
        for n in env
            .chain(self.env_secret_files.iter().map(String::as_str))
            .chain(files.map(String::as_str))
        {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        names
    }

    /// Whether the image's tag is resolved to a digest when planning (a tag, not a pinned
    /// digest, whose pull policy resolves).
    pub fn resolves_tag(&self) -> bool {
        self.pull.resolves() && !self.pinned()
    }

    /// Whether Git pins the image by digest itself (`name@sha256:…`).
    pub fn pinned(&self) -> bool {
        self.image.contains('@')
    }

    /// The reference a host pulls and creates the container from: with the resolved digest
    /// when there is one (`name:tag@sha256:…`: the engine goes by the digest, so what was
    /// planned is what runs, and shows the tag), else the image.
    pub fn pull_ref(&self) -> String {
        match &self.digest {
            Some(digest) if !self.pinned() => format!("{}@{digest}", self.image),
            _ => self.image.clone(),
        }
    }
}

/// An image reference without its tag: `registry:5000/app/web:2` → `registry:5000/app/web`.
pub fn image_name(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        // A `:` after the last `/` starts the tag; one before it is a registry's port.
        Some(colon) if !image[colon..].contains('/') => &image[..colon],
        _ => image,
    }
}

/// An environment value: plain text, or a secret known only by its name (its value is in
/// [`DesiredState::secrets`], and a container records a salted HMAC of it, see
/// `model::secret`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum EnvValue {
    Plain(String),
    Secret { secret: String },
}

#[derive(
    Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, schemars::JsonSchema,
)]
pub struct Port {
    pub host: Option<u16>,
    pub container: u16,
    pub protocol: String,
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host {
            Some(h) => write!(f, "{h}:{}/{}", self.container, self.protocol),
            None => write!(f, "{}/{}", self.container, self.protocol),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Mount {
    /// A named volume (created by berth as `<project>-<name>`) or an absolute host path.
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

impl Mount {
    pub fn is_named_volume(&self) -> bool {
        !self.source.starts_with('/')
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct HealthCheck {
    /// Docker's form: `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub start_period_ms: u64,
}

impl ContainerSpec {
    /// The canonical JSON stored in the `berth.spec` label.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("a container spec always serialises")
    }

    pub fn host_ports(&self) -> impl Iterator<Item = (u16, &str)> {
        self.ports
            .iter()
            .filter_map(|p| p.host.map(|h| (h, p.protocol.as_str())))
    }
}

impl PodSpec {
    pub fn host_ports(&self) -> Vec<(u16, String)> {
        let mut ports: Vec<_> = self
            .containers
            .iter()
            .flat_map(|c| c.host_ports().map(|(p, proto)| (p, proto.to_string())))
            .collect();
        ports.sort();
        ports
    }
}

impl Deployment {
    /// The revision: a short hash of everything that forces a new pod when it changes. The
    /// project and deployment names are part of it, so that pod names (which contain the
    /// revision) never collide between projects on a shared host.
    pub fn revision(&self, project: &str) -> String {
        #[derive(Serialize, schemars::JsonSchema)]
        struct Template<'a> {
            project: &'a str,
            deployment: &'a str,
            pod: &'a PodSpec,
            service: &'a Option<Service>,
            /// A job changed is a new revision (it runs once per revision).
            #[serde(skip_serializing_if = "<[Job]>::is_empty")]
            jobs: &'a [Job],
            /// The port an ingress reaches the pods on is published when they are created.
            #[serde(skip_serializing_if = "Option::is_none")]
            ingress_port: Option<u16>,
        }
        let template = Template {
            project,
            deployment: &self.name,
            pod: &self.pod,
            service: &self.service,
            jobs: &self.jobs,
            ingress_port: self.ingress.as_ref().map(|i| i.container_port),
        };
        let json = serde_json::to_string(&template).expect("a pod template always serialises");
        short_hash(json.as_bytes())
    }

    /// A short hash of the strategy: an attempt at a revision (see `Rollout::attempt`).
    pub fn attempt(&self) -> String {
        let json = serde_json::to_string(&self.strategy).expect("a strategy serialises");
        short_hash(json.as_bytes())
    }

    pub fn max_per_host(&self) -> u32 {
        self.placement.max_per_host.unwrap_or(u32::MAX)
    }

    /// How many pods fit on one host: `max_per_host`, and 1 when the pod publishes a host
    /// port (only one container per host can bind it).
    pub fn pods_per_host(&self) -> u32 {
        if self.pod.host_ports().is_empty() {
            self.max_per_host()
        } else {
            self.max_per_host().min(1)
        }
    }
}

/// Hex SHA-256, full length.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The first 10 hex digits of SHA-256: short enough for container names, long enough to
/// never collide among the revisions of one deployment.
pub fn short_hash(bytes: &[u8]) -> String {
    sha256_hex(bytes)[..10].to_string()
}

impl DesiredState {
    /// A hash of the desired state, recorded in plans.
    pub fn hash(&self) -> String {
        let json = serde_json::to_string(&(&self.project, &self.hosts, &self.deployments))
            .expect("the desired state always serialises");
        sha256_hex(json.as_bytes())
    }

    /// The hosts a deployment may be placed on, in name order.
    pub fn eligible_hosts(&self, d: &Deployment) -> Vec<&Host> {
        let mut hosts: Vec<&Host> = self
            .hosts
            .iter()
            .filter(|h| d.placement.hosts.matches(&h.labels))
            .collect();
        hosts.sort_by(|a, b| a.name.cmp(&b.name));
        hosts
    }
}

/// A container run to completion on one host before a revision's first new pod starts, once
/// per revision (Argo CD's PreSync hook, Kamal's pre-deploy): a database migration.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Job {
    pub name: String,
    /// The pod container whose image, env, env files, files and volumes it runs with.
    pub container: String,
    /// Its own command (else the container's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Env over the container's.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    /// The hosts it may run on (the first reachable one by name is chosen).
    #[schemars(with = "String")]
    pub hosts: Selector,
    /// How long it may run before it is killed and the rollout stopped.
    pub timeout_ms: u64,
}

impl Job {
    /// What the job's container is created from: the pod container's spec (as planned, with
    /// its digest), the job's command and env, no published port (the pods hold those), no
    /// healthcheck and no restart.
    pub fn spec(&self, pod: &PodSpec) -> Option<ContainerSpec> {
        let mut spec = pod
            .containers
            .iter()
            .find(|c| c.name == self.container)?
            .clone();
        spec.name = self.name.clone();
        if self.command.is_some() {
            spec.command = self.command.clone();
        }
        spec.env.extend(self.env.clone());
        spec.ports.clear();
        spec.healthcheck = None;
        spec.restart = "no".into();
        Some(spec)
    }
}
