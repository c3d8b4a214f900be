//! The `ingress:` key of a deployment and the `edge:` key of berth.yaml, as users write them.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// `ingress: {port: 80, hostnames: [shop.example.com], health: /healthz}`: the deployment's
/// public port on the edge proxy of every edge host.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IngressFile {
    /// The public port on each edge host (default 80).
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub port: Option<Spanned<u16>>,
    /// The `Host` header values routed to this deployment (default: any).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub hostnames: Vec<Spanned<String>>,
    /// The port the pods listen on (default: the service's port).
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub container_port: Option<Spanned<u16>>,
    /// The path the edge asks each pod for to decide it is up (default `/`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub health: Option<Spanned<String>>,
    /// `fleet` (default): the pods on every host; `host`: the edge's own host's pods only.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub scope: Option<Spanned<String>>,
    /// HTTPS on `port`: `{secret: NAME}`, a secret holding the certificate chain and its key
    /// (PEM, one file), from SOPS in Git or the environment.
    #[serde(default)]
    pub tls: Option<TlsFile>,
}

/// `tls: {secret: SHOP_TLS}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    #[schemars(with = "String")]
    pub secret: Spanned<String>,
}

/// `edge: {image: haproxy:2.6, hosts: role=web}`: the edge proxies of the project.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeFile {
    /// The HAProxy image (2.6 or later; default `haproxy:2.6`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub image: Option<Spanned<String>>,
    /// Which hosts run an edge (a label selector; default: the hosts the ingress deployments
    /// are placed on).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub hosts: Option<Spanned<String>>,
    /// The loopback port where an edge reports which configuration it runs (default 8405).
    #[serde(default)]
    pub admin_port: Option<u16>,
    /// The host ports berth gives ingress pods, `first-last` (default `30000-32767`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub pod_ports: Option<Spanned<String>>,
}

/// `edge_analysis: {duration: 30s, max_errors: 1%, max_latency: 300ms, min_requests: 20}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeAnalysisFile {
    /// How long the edges count the canary's answers (default 30s).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub duration: Option<Spanned<String>>,
    /// The share of errors (5xx, or no answer) tolerated, like `1%` (default 0%).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub max_errors: Option<Spanned<String>>,
    /// The highest average response time of a canary pod, like `300ms`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub max_latency: Option<Spanned<String>>,
    /// Fewer requests to the canary than this in the window fails it (default 1).
    #[serde(default)]
    pub min_requests: Option<u64>,
}
