//! The file formats as written by users: `berth.yaml`, the inventory and one file per
//! deployment. Values that can be wrong in ways YAML cannot catch are `Spanned`, so the
//! loader can point at them.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::HashMap;

pub type SpannedMap = HashMap<Spanned<String>, Spanned<String>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    pub project: Spanned<String>,
    #[serde(default)]
    pub inventory: Option<String>,
    #[serde(default)]
    pub defaults: Defaults,
    /// Logins for pulls from private registries.
    #[serde(default)]
    pub registries: Vec<RegistryFile>,
    /// Environments (`staging`, `production`): each its own inventory and overrides over the
    /// shared deployments, chosen with `-e`.
    #[serde(default)]
    pub environments: HashMap<Spanned<String>, EnvironmentFile>,
}

/// One environment: `{inventory: inventories/staging.yaml, deployments: {web: {replicas: 1}}}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentFile {
    /// Its hosts (default: the project's inventory).
    #[serde(default)]
    pub inventory: Option<String>,
    /// The project name on its hosts (default: `<project>-<environment>`), so that two
    /// environments on one host never touch each other's containers.
    #[serde(default)]
    pub project: Option<Spanned<String>>,
    /// Overrides by deployment name.
    #[serde(default)]
    pub deployments: HashMap<Spanned<String>, OverrideFile>,
}

/// What an environment changes in a deployment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideFile {
    #[serde(default)]
    pub replicas: Option<Spanned<u32>>,
    /// The placement's host selector.
    #[serde(default)]
    pub hosts: Option<Spanned<String>>,
    /// By container name: its image, and env values over its own.
    #[serde(default)]
    pub containers: HashMap<Spanned<String>, ContainerOverrideFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerOverrideFile {
    #[serde(default)]
    pub image: Option<Spanned<String>>,
    #[serde(default)]
    pub env: HashMap<Spanned<String>, Spanned<EnvEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    pub server: Spanned<String>,
    pub username: String,
    /// `{secret: NAME}`: a password in Git is refused.
    pub password: Spanned<PasswordFile>,
}

/// A registry password: only a secret reference is accepted.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PasswordFile {
    Secret(SecretRef),
    /// Anything else, refused with a message that says what to write.
    Other(serde_json::Value),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default)]
    pub strategy: Option<StrategyFile>,
    #[serde(default)]
    pub restart: Option<Spanned<String>>,
    #[serde(default)]
    pub max_per_host: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryFile {
    pub hosts: Vec<HostFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFile {
    pub name: Spanned<String>,
    pub address: Spanned<String>,
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    pub user: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: SpannedMap,
    #[serde(default)]
    pub docker_socket: Option<String>,
    #[serde(default)]
    pub proxy_jump: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentFile {
    pub name: Spanned<String>,
    #[serde(default)]
    pub labels: SpannedMap,
    #[serde(default = "one")]
    pub replicas: Spanned<u32>,
    #[serde(default)]
    pub placement: PlacementFile,
    pub pod: PodFile,
    #[serde(default)]
    pub service: Option<ServiceFile>,
    #[serde(default)]
    pub strategy: Option<StrategyFile>,
    /// Run to completion before a new revision's pods start.
    #[serde(default)]
    pub jobs: Vec<JobFile>,
}

/// `jobs:` entry: `{name: migrate, command: [./migrate, up], hosts: "role=db"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    pub name: Spanned<String>,
    /// The pod container it runs as (default: the first).
    #[serde(default)]
    pub container: Option<Spanned<String>>,
    #[serde(default)]
    pub command: Option<Args>,
    #[serde(default)]
    pub env: HashMap<Spanned<String>, Spanned<EnvEntry>>,
    /// A host label selector (default: the deployment's placement).
    #[serde(default)]
    pub hosts: Option<Spanned<String>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
}

fn one() -> Spanned<u32> {
    Spanned::new(
        1,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementFile {
    #[serde(default)]
    pub hosts: Option<Spanned<String>>,
    #[serde(default)]
    pub max_per_host: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodFile {
    pub containers: Spanned<Vec<ContainerFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    pub name: Spanned<String>,
    #[serde(default)]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyFile {
    #[serde(rename = "type", default)]
    pub kind: Option<Spanned<String>>,
    #[serde(default)]
    pub min_ready: Option<Spanned<String>>,
    /// How long a new pod may take to be ready: the rollout's progress deadline.
    #[serde(default, alias = "progress_deadline")]
    pub health_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub stop_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub max_surge: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub max_unavailable: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub drain: Option<Spanned<String>>,
    #[serde(default)]
    pub steps: Option<Spanned<Vec<Spanned<CanaryStepFile>>>>,
    #[serde(default)]
    pub auto_promote: Option<bool>,
    #[serde(default)]
    pub scale_down_delay: Option<Spanned<String>>,
    /// Old revisions kept stopped for `berth rollback --to`.
    #[serde(default)]
    pub history_limit: Option<u32>,
}

/// One canary step: exactly one of its keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryStepFile {
    #[serde(default)]
    pub weight: Option<Spanned<u32>>,
    /// A duration, or `{}` to wait for `berth promote`. Read as any value (an untagged
    /// enum would buffer the input and lose the locations of what follows).
    #[serde(default)]
    pub pause: Option<Spanned<serde_json::Value>>,
    #[serde(default)]
    pub analysis: Option<Spanned<AnalysisFile>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisFile {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub samples: Option<u32>,
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub failure_limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerFile {
    pub name: Spanned<String>,
    pub image: Spanned<String>,
    #[serde(default)]
    pub command: Option<Args>,
    #[serde(default)]
    pub entrypoint: Option<Args>,
    #[serde(default)]
    pub env: HashMap<Spanned<String>, Spanned<EnvEntry>>,
    #[serde(default)]
    pub ports: Vec<Spanned<String>>,
    #[serde(default)]
    pub volumes: Vec<Spanned<String>>,
    #[serde(default)]
    pub healthcheck: Option<HealthFile>,
    #[serde(default)]
    pub restart: Option<Spanned<String>>,
    #[serde(default)]
    pub memory: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub cpus: Option<Spanned<Scalar>>,
    /// Run Docker's init as PID 1, which passes signals on to the container's process.
    #[serde(default)]
    pub init: Option<bool>,
    /// `always`, `missing` or `never`; unset: resolve the tag to a digest.
    #[serde(default)]
    pub pull: Option<Spanned<String>>,
    /// Files from the repository placed in the container before it starts.
    #[serde(default)]
    pub files: Vec<Spanned<FileEntry>>,
    /// Env files: a path in the repository or `{secret: NAME}`, one or a list.
    #[serde(default)]
    pub env_file: Option<Spanned<EnvFiles>>,
}

/// `files:` entry: `{source: config/nginx.conf, target: /etc/nginx/nginx.conf, mode: 0644}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub source: Spanned<String>,
    pub target: Spanned<String>,
    #[serde(default)]
    pub mode: Option<Spanned<Scalar>>,
    /// Fill `${{ secrets.NAME }}` in the file when the container is created.
    #[serde(default)]
    pub template: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EnvFiles {
    Many(Vec<EnvFileRef>),
    One(EnvFileRef),
}

impl EnvFiles {
    pub fn entries(&self) -> Vec<&EnvFileRef> {
        match self {
            EnvFiles::One(e) => vec![e],
            EnvFiles::Many(v) => v.iter().collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EnvFileRef {
    Path(String),
    Secret(SecretRef),
}

/// A command as a list (exec form) or a string (run by `/bin/sh -c`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Args {
    List(Vec<String>),
    Shell(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Text(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EnvEntry {
    Secret(SecretRef),
    Value(Scalar),
    /// Anything else (null, a list, a mapping that is not a secret reference): refused with
    /// a message that says what an env value can be.
    Other(serde_json::Value),
}

/// `{secret: NAME}`, and only that mapping: a derived `Deserialize` would also take a
/// one-element list (`[NAME]`) for it, which in an untagged value means something else.
#[derive(Debug, Clone)]
pub struct SecretRef {
    pub secret: String,
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SecretRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("{secret: NAME}")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SecretRef, A::Error> {
                let mut secret = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "secret" || secret.is_some() {
                        return Err(serde::de::Error::unknown_field(&key, &["secret"]));
                    }
                    secret = Some(map.next_value::<String>()?);
                }
                secret
                    .map(|secret| SecretRef { secret })
                    .ok_or_else(|| serde::de::Error::missing_field("secret"))
            }
        }
        d.deserialize_map(Visitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthFile {
    pub test: Spanned<Args>,
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub start_period: Option<Spanned<String>>,
}
