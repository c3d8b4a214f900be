//! Ingress: a deployment's public port (and host names) on the edge proxy berth runs on each
//! edge host. The edge routes to the pods behind the deployment's service on every host (or on
//! its own, `scope: host`), at the host ports berth gives them; routes follow service
//! membership, so a pod gets requests once it joined its service and none once it left.
//! Canary weights are exact request shares on the edge. Pure: the routes an edge should have
//! are a function of the membership, the pods' addresses and the canary weights.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The deployment berth makes for the edge proxies (one pod per edge host).
pub const EDGE_DEPLOYMENT: &str = "berth-edge";
/// Where the edge keeps its configuration and its admin socket: a named volume (per host,
/// kept across reboots) that an edge's replacement mounts too, to take over its listeners.
pub const EDGE_DIR: &str = "/run/berth-edge";
/// The volume behind `EDGE_DIR` (prefixed with the project, as every named volume).
pub const EDGE_VOLUME: &str = "berth-edge";
/// The edge configuration file, in `EDGE_DIR`.
pub const EDGE_CONFIG: &str = "haproxy.cfg";
/// The label on an ingress pod's first container that holds the host port berth gave it.
pub const INGRESS_PORT_LABEL: &str = "berth.ingress-port";
/// The edge image when berth.yaml names none.
pub const DEFAULT_EDGE_IMAGE: &str = "haproxy:2.6";
/// The loopback port where an edge says which configuration it runs (`generation ...`).
pub const DEFAULT_ADMIN_PORT: u16 = 8405;
/// The host ports berth gives ingress pods, unless berth.yaml says otherwise.
pub const DEFAULT_POD_PORTS: (u16, u16) = (30000, 32767);
/// The largest weight HAProxy takes for a server.
const MAX_WEIGHT: u64 = 256;
/// A pod's weight when all pods weigh the same.
const EVEN_WEIGHT: u32 = 100;

/// Which pods an edge routes to.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The pods on every host (a request to h1 may be answered on h2).
    #[default]
    Fleet,
    /// The pods on the edge's own host only.
    Host,
}

/// A deployment's ingress, normalised.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Ingress {
    /// The public port on every edge host.
    pub port: u16,
    /// The `Host` header values routed here (any, when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// The port the pods listen on.
    pub container_port: u16,
    /// What the edge asks each pod to decide it is up.
    pub health_path: String,
    #[serde(default)]
    pub scope: Scope,
    /// HTTPS with the certificate (chain and key, PEM) in this secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
}

/// The edge proxies: where they run and with what.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct EdgeSettings {
    pub image: String,
    /// The loopback port an edge reports its configuration on.
    pub admin_port: u16,
    /// The host ports given to ingress pods (first, last).
    pub pod_ports: (u16, u16),
}

/// Where a pod answers, for the edges.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Endpoint {
    pub host: String,
    pub address: String,
    pub port: u16,
    pub revision: String,
}

/// What the edges of a plan route: the ingresses, where each pod answers, and the edge hosts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Routing {
    /// Ingress by deployment (with the service whose members get its requests).
    pub ingresses: BTreeMap<String, RoutedIngress>,
    /// Pod name → where it answers.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// The hosts that run an edge.
    pub edge_hosts: Vec<String>,
    pub admin_port: u16,
    /// Canary weights in force when the plan was made: deployment → (revision, percent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, (String, u32)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct RoutedIngress {
    pub service: String,
    pub ingress: Ingress,
}

/// One server of an edge backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub pod: String,
    pub address: String,
    pub port: u16,
    pub weight: u32,
}

/// One deployment's backend on one edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub deployment: String,
    pub ingress: Ingress,
    pub servers: Vec<Server>,
}

/// Per-server weights that give the pods of `canary` exactly `percent` of the requests
/// (as near as HAProxy's integer weights allow), whatever the count of each. Without a canary,
/// or when only one side has pods, every pod weighs the same.
pub fn weights(pods: &[(&str, &str)], canary: Option<(&str, u32)>) -> BTreeMap<String, u32> {
    let is_canary = |rev: &str| canary.is_some_and(|(r, _)| r == rev);
    let n_canary = pods.iter().filter(|(_, rev)| is_canary(rev)).count() as u64;
    let n_stable = pods.len() as u64 - n_canary;
    let even = || {
        pods.iter()
            .map(|(p, _)| (p.to_string(), EVEN_WEIGHT))
            .collect()
    };
    let Some((_, percent)) = canary else {
        return even();
    };
    if n_canary == 0 || n_stable == 0 {
        return even();
    }
    let percent = u64::from(percent.min(100));
    // n_canary * wc : n_stable * ws = percent : 100 - percent
    let (mut wc, mut ws) = (percent * n_stable, (100 - percent) * n_canary);
    let g = gcd(wc, ws).max(1);
    (wc, ws) = (wc / g, ws / g);
    let top = wc.max(ws);
    if top > MAX_WEIGHT {
        let scale = |w: u64| {
            if w == 0 {
                0
            } else {
                (w * MAX_WEIGHT).div_ceil(top).max(1)
            }
        };
        (wc, ws) = (scale(wc), scale(ws));
    }
    pods.iter()
        .map(|(p, rev)| {
            let w = if is_canary(rev) { wc } else { ws };
            (p.to_string(), w as u32)
        })
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The share of requests each revision gets from a backend, in percent (for plans).
pub fn shares(backend: &Backend, endpoints: &BTreeMap<String, Endpoint>) -> BTreeMap<String, f64> {
    let total: u64 = backend.servers.iter().map(|s| u64::from(s.weight)).sum();
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for s in &backend.servers {
        let rev = endpoints
            .get(&s.pod)
            .map(|e| e.revision.clone())
            .unwrap_or_default();
        *out.entry(rev).or_default() += if total == 0 {
            0.0
        } else {
            f64::from(s.weight) * 100.0 / total as f64
        };
    }
    out
}

/// Service name → host → pods behind it (as `plan::Membership`).
pub type Members = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The backends the edge on `edge_host` should have, given who is behind each service now.
pub fn backends(routing: &Routing, members: &Members, edge_host: &str) -> Vec<Backend> {
    routing
        .ingresses
        .iter()
        .map(|(deployment, routed)| {
            let pods: Vec<(&str, &Endpoint)> = members
                .get(&routed.service)
                .into_iter()
                .flat_map(|hosts| hosts.iter())
                .filter(|(h, _)| routed.ingress.scope == Scope::Fleet || *h == edge_host)
                .flat_map(|(_, pods)| pods.iter())
                .filter_map(|p| routing.endpoints.get(p).map(|e| (p.as_str(), e)))
                .collect();
            let canary = routing
                .weights
                .get(deployment)
                .map(|(rev, pct)| (rev.as_str(), *pct));
            let revs: Vec<(&str, &str)> = pods
                .iter()
                .map(|(p, e)| (*p, e.revision.as_str()))
                .collect();
            let w = weights(&revs, canary);
            Backend {
                deployment: deployment.clone(),
                ingress: routed.ingress.clone(),
                servers: pods
                    .iter()
                    .map(|(p, e)| Server {
                        pod: p.to_string(),
                        address: e.address.clone(),
                        port: e.port,
                        weight: w[*p],
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The first free port of `range` on a host, starting at a point that depends on the pod's
/// name (so two plans of one pod pick alike); `None` when the range is full.
pub fn free_port(range: (u16, u16), used: &BTreeSet<u16>, pod: &str) -> Option<u16> {
    let (first, last) = range;
    let size = u32::from(last.checked_sub(first)?) + 1;
    let start = pod
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % size;
    (0..size)
        .map(|i| first + ((start + i) % size) as u16)
        .find(|p| !used.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(w: &BTreeMap<String, u32>, canary: &[&str]) -> f64 {
        let total: u32 = w.values().sum();
        let c: u32 = canary.iter().map(|p| w[*p]).sum();
        f64::from(c) * 100.0 / f64::from(total)
    }

    #[test]
    fn a_canary_gets_its_exact_share_whatever_the_pod_counts() {
        for (stable, canary, pct) in [(3, 1, 25), (2, 1, 25), (5, 2, 20), (1, 3, 10), (40, 1, 33)] {
            let mut pods = Vec::new();
            let names: Vec<String> = (0..stable + canary).map(|i| format!("p{i}")).collect();
            for (i, n) in names.iter().enumerate() {
                pods.push((n.as_str(), if i < stable { "old" } else { "new" }));
            }
            let w = weights(&pods, Some(("new", pct)));
            assert!(w.values().all(|w| (1..=256).contains(w)), "{w:?}");
            let got = share(
                &w,
                &names[stable..]
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>(),
            );
            assert!(
                (got - f64::from(pct)).abs() < 1.0,
                "{stable}+{canary} at {pct}%: {got}"
            );
        }
    }

    #[test]
    fn without_a_canary_or_with_one_side_empty_pods_weigh_the_same() {
        let pods = [("a", "old"), ("b", "old")];
        assert_eq!(weights(&pods, None), weights(&pods, Some(("new", 30))));
        assert!(weights(&pods, None).values().all(|w| *w == EVEN_WEIGHT));
    }

    #[test]
    fn weight_zero_and_a_hundred_send_nothing_to_the_other_side() {
        let pods = [("a", "old"), ("b", "new")];
        assert_eq!(weights(&pods, Some(("new", 0)))["b"], 0);
        assert_eq!(weights(&pods, Some(("new", 100)))["a"], 0);
    }

    fn routing(scope: Scope) -> (Routing, Members) {
        let endpoint = |host: &str, port: u16, revision: &str| Endpoint {
            host: host.into(),
            address: format!("addr-{host}"),
            port,
            revision: revision.into(),
        };
        let ingress = Ingress {
            port: 80,
            hostnames: vec![],
            container_port: 8080,
            health_path: "/".into(),
            scope,
            tls: None,
        };
        let routing = Routing {
            ingresses: BTreeMap::from([(
                "web".to_string(),
                RoutedIngress {
                    service: "web".into(),
                    ingress,
                },
            )]),
            endpoints: BTreeMap::from([
                ("web-a-0".to_string(), endpoint("h1", 30001, "a")),
                ("web-a-1".to_string(), endpoint("h2", 30002, "a")),
                ("web-b-2".to_string(), endpoint("h2", 30003, "b")),
            ]),
            edge_hosts: vec!["h1".into(), "h2".into()],
            admin_port: 8405,
            weights: BTreeMap::from([("web".to_string(), ("b".to_string(), 10))]),
        };
        let members: Members = BTreeMap::from([(
            "web".to_string(),
            BTreeMap::from([
                ("h1".to_string(), BTreeSet::from(["web-a-0".to_string()])),
                (
                    "h2".to_string(),
                    BTreeSet::from(["web-a-1".to_string(), "web-b-2".to_string()]),
                ),
            ]),
        )]);
        (routing, members)
    }

    #[test]
    fn an_edge_routes_to_every_hosts_pods_or_with_scope_host_its_own() {
        let (fleet, members) = routing(Scope::Fleet);
        let on_h1 = backends(&fleet, &members, "h1");
        let servers: Vec<(&str, &str, u16)> = on_h1[0]
            .servers
            .iter()
            .map(|s| (s.pod.as_str(), s.address.as_str(), s.port))
            .collect();
        assert_eq!(
            servers,
            [
                ("web-a-0", "addr-h1", 30001),
                ("web-a-1", "addr-h2", 30002),
                ("web-b-2", "addr-h2", 30003)
            ]
        );
        let share = shares(&on_h1[0], &fleet.endpoints);
        assert!((share["b"] - 10.0).abs() < 1.0, "{share:?}");
        let (own, members) = routing(Scope::Host);
        let on_h1 = backends(&own, &members, "h1");
        assert_eq!(on_h1[0].servers.len(), 1, "h1's own pod only");
        assert_eq!(backends(&own, &members, "h2")[0].servers.len(), 2);
    }

    #[test]
    fn free_ports_skip_used_ones_and_stay_in_range() {
        let used: BTreeSet<u16> = (30000..30010).collect();
        let p = free_port((30000, 30010), &used, "web-abc-1").expect("one left");
        assert_eq!(p, 30010);
        assert_eq!(free_port((30000, 30009), &used, "x"), None);
        assert_eq!(
            free_port((30000, 32767), &BTreeSet::new(), "web-abc-1"),
            free_port((30000, 32767), &BTreeSet::new(), "web-abc-1")
        );
    }
}
