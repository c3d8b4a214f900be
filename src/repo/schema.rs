//! The file formats as written by users: `berth.yaml`, the inventory and one file per
//! deployment. Values that can be wrong in ways YAML cannot catch are `Spanned`, so the
//! loader can point at them. The same types give `berth schema` its JSON Schemas (a
//! `Spanned` field is described as the value it wraps).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::HashMap;

pub use super::schema_strategy::*;

pub type SpannedMap = HashMap<Spanned<String>, Spanned<String>>;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    #[schemars(with = "String")]
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
    #[schemars(with = "HashMap<String, EnvironmentFile>")]
    pub environments: HashMap<Spanned<String>, EnvironmentFile>,
    /// The edge proxies that serve the deployments' `ingress:`.
    #[serde(default)]
    pub edge: Option<super::schema_ingress::EdgeFile>,
}

/// One environment: `{inventory: inventories/staging.yaml, deployments: {web: {replicas: 1}}}`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentFile {
    /// Its hosts (default: the project's inventory).
    #[serde(default)]
    pub inventory: Option<String>,
    /// The project name on its hosts (default: `<project>-<environment>`), so that two
    /// environments on one host never touch each other's containers.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub project: Option<Spanned<String>>,
    /// Overrides by deployment name.
    #[serde(default)]
    #[schemars(with = "HashMap<String, OverrideFile>")]
    pub deployments: HashMap<Spanned<String>, OverrideFile>,
}

/// What an environment changes in a deployment.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideFile {
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub replicas: Option<Spanned<u32>>,
    /// The placement's host selector.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub hosts: Option<Spanned<String>>,
    /// By container name: its image, and env values over its own.
    #[serde(default)]
    #[schemars(with = "HashMap<String, ContainerOverrideFile>")]
    pub containers: HashMap<Spanned<String>, ContainerOverrideFile>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerOverrideFile {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub image: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "HashMap<String, EnvEntry>")]
    pub env: HashMap<Spanned<String>, Spanned<EnvEntry>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    #[schemars(with = "String")]
    pub server: Spanned<String>,
    pub username: String,
    /// `{secret: NAME}`: a password in Git is refused.
    #[schemars(with = "SecretRef")]
    pub password: Spanned<PasswordFile>,
}

/// A registry password: only a secret reference is accepted.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PasswordFile {
    Secret(SecretRef),
    /// Anything else, refused with a message that says what to write.
    #[schemars(skip)]
    Other(serde_json::Value),
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default)]
    pub strategy: Option<StrategyFile>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub restart: Option<Spanned<String>>,
    #[serde(default)]
    pub max_per_host: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryFile {
    pub hosts: Vec<HostFile>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostFile {
    /// The host name used in plans and selectors.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Its address or DNS name.
    #[schemars(with = "String")]
    pub address: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub user: Option<Spanned<String>>,
    /// Labels that placements select on.
    #[serde(default)]
    #[schemars(with = "HashMap<String, String>")]
    pub labels: SpannedMap,
    #[serde(default)]
    pub docker_socket: Option<String>,
    /// A bastion: `user@host:port`, as ssh -J.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub proxy_jump: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentFile {
    /// The deployment name (a DNS label), part of every pod name.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Labels, for `-l` selectors.
    #[serde(default)]
    #[schemars(with = "HashMap<String, String>")]
    pub labels: SpannedMap,
    /// How many pods, over the matching hosts (default 1).
    #[serde(default = "one")]
    #[schemars(with = "u32")]
    pub replicas: Spanned<u32>,
    /// Which hosts, and how many pods per host.
    #[serde(default)]
    pub placement: PlacementFile,
    /// The pod: one or more containers sharing network and volumes.
    pub pod: PodFile,
    /// A service name the pods answer to on the project network, on each host.
    #[serde(default)]
    pub service: Option<ServiceFile>,
    /// Its public port on the project's edge proxies (routed to the service's pods).
    #[serde(default)]
    pub ingress: Option<super::schema_ingress::IngressFile>,
    /// How a new revision rolls out (over `defaults.strategy` in berth.yaml).
    #[serde(default)]
    pub strategy: Option<StrategyFile>,
    /// Run to completion before a new revision's pods start.
    #[serde(default)]
    pub jobs: Vec<JobFile>,
}

/// `jobs:` entry: `{name: migrate, command: [./migrate, up], hosts: "role=db"}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The pod container it runs as (default: the first).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub container: Option<Spanned<String>>,
    #[serde(default)]
    pub command: Option<Args>,
    #[serde(default)]
    #[schemars(with = "HashMap<String, EnvEntry>")]
    pub env: HashMap<Spanned<String>, Spanned<EnvEntry>>,
    /// A host label selector (default: the deployment's placement).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub hosts: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
}

fn one() -> Spanned<u32> {
    Spanned::new(
        1,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementFile {
    /// A host label selector (`role=web,zone in (a,b)`); default every host.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub hosts: Option<Spanned<String>>,
    /// At most this many pods on one host.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub max_per_host: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodFile {
    #[schemars(with = "Vec<ContainerFile>")]
    pub containers: Spanned<Vec<ContainerFile>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    #[serde(default)]
    pub port: Option<u16>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerFile {
    /// The container name within the pod.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The image; a tag is resolved to a digest unless `pull` says otherwise.
    #[schemars(with = "String")]
    pub image: Spanned<String>,
    /// A list (exec form) or a string (run by /bin/sh -c).
    #[serde(default)]
    pub command: Option<Args>,
    #[serde(default)]
    pub entrypoint: Option<Args>,
    /// Values, or `{secret: NAME}`.
    #[serde(default)]
    #[schemars(with = "HashMap<String, EnvEntry>")]
    pub env: HashMap<Spanned<String>, Spanned<EnvEntry>>,
    /// `8080`, `80:8080` (host:container, one pod per host), `/udp` for UDP.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub ports: Vec<Spanned<String>>,
    /// `name:/path` (a named volume), `/host/path:/path`, `:ro` for read-only.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub volumes: Vec<Spanned<String>>,
    /// The check that gates a rollout.
    #[serde(default)]
    pub healthcheck: Option<HealthFile>,
    /// no, always, unless-stopped (default) or on-failure.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub restart: Option<Spanned<String>>,
    /// A memory limit: 64m, 1g.
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub memory: Option<Spanned<Scalar>>,
    /// A CPU limit: 0.5, 2.
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub cpus: Option<Spanned<Scalar>>,
    /// Run Docker's init as PID 1, which passes signals on to the container's process.
    #[serde(default)]
    pub init: Option<bool>,
    /// `always`, `missing` or `never`; unset: resolve the tag to a digest.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub pull: Option<Spanned<String>>,
    /// Files from the repository placed in the container before it starts.
    #[serde(default)]
    #[schemars(with = "Vec<FileEntry>")]
    pub files: Vec<Spanned<FileEntry>>,
    /// Env files: a path in the repository or `{secret: NAME}`, one or a list.
    #[serde(default)]
    #[schemars(with = "Option<EnvFiles>")]
    pub env_file: Option<Spanned<EnvFiles>>,
}

/// `files:` entry: `{source: config/nginx.conf, target: /etc/nginx/nginx.conf, mode: 0644}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    #[schemars(with = "String")]
    pub source: Spanned<String>,
    #[schemars(with = "String")]
    pub target: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub mode: Option<Spanned<Scalar>>,
    /// Fill `${{ secrets.NAME }}` in the file when the container is created.
    #[serde(default)]
    pub template: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
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

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvFileRef {
    Path(String),
    Secret(SecretRef),
}

/// A command as a list (exec form) or a string (run by `/bin/sh -c`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Args {
    List(Vec<String>),
    Shell(String),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
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

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvEntry {
    Secret(SecretRef),
    Value(Scalar),
    /// Anything else (null, a list, a mapping that is not a secret reference): refused with
    /// a message that says what an env value can be.
    #[schemars(skip)]
    Other(serde_json::Value),
}

/// `{secret: NAME}`, and only that mapping: a derived `Deserialize` would also take a
/// one-element list (`[NAME]`) for it, which in an untagged value means something else.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(deny_unknown_fields)]
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

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthFile {
    #[schemars(with = "Args")]
    pub test: Spanned<Args>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub start_period: Option<Spanned<String>>,
}
