//! What the edges route (`Plan::routing`): every ingress, where each of its pods answers (the
//! running ones, and those the plan creates, each given a free host port), and the canary
//! weights in force. Pure.

use super::*;
use crate::model::ingress::{RoutedIngress, Routing, EDGE_DEPLOYMENT, INGRESS_PORT_LABEL};

impl Context<'_> {
    pub(super) fn host_address(&self, host: &str) -> String {
        let hosts = &self.input.desired.hosts;
        hosts
            .iter()
            .find(|h| h.name == host)
            .map_or_else(|| host.to_string(), |h| h.address.clone())
    }

    /// The host ports the containers on `host` publish (berth's and unmanaged ones).
    pub(super) fn ports_held<'s>(&'s self, host: &'s str) -> impl Iterator<Item = u16> + 's {
        (self.pods.iter().filter(move |p| p.host == host))
            .flat_map(|p| p.containers.iter())
            .flat_map(|c| c.host_ports.iter().map(|(p, _)| *p))
            .chain(
                (self.unmanaged.iter().filter(move |u| u.host == host))
                    .flat_map(|u| u.host_ports.iter().map(|(p, _)| *p)),
            )
    }
}

/// The routing of the plan, when the project has edges.
pub(super) fn routing(cx: &Context) -> Option<Routing> {
    let desired = cx.input.desired;
    let settings = desired.edge.as_ref()?;
    let edge = desired
        .deployments
        .iter()
        .find(|d| d.name == EDGE_DEPLOYMENT)?;
    let mut ingresses = BTreeMap::new();
    for d in &desired.deployments {
        let (Some(ingress), Some(service)) = (&d.ingress, &d.service) else {
            continue;
        };
        let routed = RoutedIngress {
            service: service.name.clone(),
            ingress: ingress.clone(),
        };
        ingresses.insert(d.name.clone(), routed);
    }
    let mut endpoints = cx.claimed.clone();
    for p in cx
        .pods
        .iter()
        .filter(|p| ingresses.contains_key(&p.deployment))
    {
        let port = p
            .containers
            .iter()
            .find_map(|c| c.label(INGRESS_PORT_LABEL)?.parse::<u16>().ok());
        if let Some(port) = port {
            let endpoint = Endpoint {
                host: p.host.clone(),
                address: cx.host_address(&p.host),
                port,
                revision: p.revision.clone(),
            };
            endpoints.entry(p.name.clone()).or_insert(endpoint);
        }
    }
    let weights = ingresses
        .keys()
        .filter_map(|name| {
            let s = Rollout::of(cx.input.observed, name)?;
            let weight = strategy::of(s.strategy).routed_weight(s)?;
            Some((name.clone(), (s.revision.clone(), weight)))
        })
        .collect();
    Some(Routing {
        ingresses,
        endpoints,
        edge_hosts: desired
            .hosts
            .iter()
            .filter(|h| edge.placement.hosts.matches(&h.labels))
            .map(|h| h.name.clone())
            .collect(),
        admin_port: settings.admin_port,
        weights,
    })
}

/// A first wave that gives each edge whose configuration is not the one its routes call
/// for now (an ingress changed in Git, a file changed by hand, a certificate rotated) the
/// right one. Edges that did not answer are left to their health.
pub(super) fn edge_sync(
    cx: &Context,
    routing: &Routing,
    services: &super::super::Membership,
    changes: &mut Vec<Change>,
    waves: &mut Vec<Wave>,
) {
    let secrets = &cx.input.desired.secrets;
    let lookup = |name: &str| secrets.get(name).map(str::to_string);
    let mut steps = BTreeMap::new();
    for host in &routing.edge_hosts {
        let Some(Ok(observed)) = cx.input.observed.get(host) else {
            continue;
        };
        let Some(running) = &observed.edge_generation else {
            continue;
        };
        let list = crate::model::ingress::backends(routing, services, host);
        let (config, files) = crate::model::haproxy::edge_files(&list, routing.admin_port);
        let Ok(bytes) = crate::model::haproxy::file_bytes(&files, &lookup) else {
            continue;
        };
        if crate::model::haproxy::generation(&config, &bytes) == *running {
            continue;
        }
        changes.push(Change::plain(
            EDGE_DEPLOYMENT,
            host,
            Action::Route,
            ChangeKind::Pending,
            None,
            Reason::EdgeRoutes,
        ));
        steps.insert(host.clone(), vec![Step::SyncEdge]);
    }
    if steps.is_empty() {
        return;
    }
    let at = usize::from(waves.first().is_some_and(|w| w.deployment.is_none()));
    let wave = Wave {
        description: "give the edges the routes their ingresses call for".into(),
        deployment: None,
        steps,
        on_failure: BTreeMap::new(),
    };
    waves.insert(at, wave);
}
