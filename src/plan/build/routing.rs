//! What the edges route (`Plan::routing`): every ingress, where each of its pods answers (the
//! running ones, and those the plan creates, each given a free host port), and the canary
//! weights in force. Pure.

use super::*;
use crate::model::ingress::{
    free_port, Endpoint, RoutedIngress, Routing, EDGE_DEPLOYMENT, INGRESS_PORT_LABEL,
};

impl Builder<'_> {
    fn host_address(&self, host: &str) -> String {
        let hosts = &self.input.desired.hosts;
        hosts
            .iter()
            .find(|h| h.name == host)
            .map_or_else(|| host.to_string(), |h| h.address.clone())
    }

    /// The host port a new pod of `d` on `host` publishes its ingress port on: the first free
    /// one of the range (not held by a container there, nor given earlier in this plan).
    pub(super) fn ingress_binding(
        &mut self,
        d: &Deployment,
        host: &str,
        pod: &str,
        revision: &str,
    ) -> Option<IngressBinding> {
        let ingress = d.ingress.as_ref()?;
        let range = self.input.desired.edge.as_ref()?.pod_ports;
        if !self.ports_in_use.contains_key(host) {
            let used: BTreeSet<u16> = (self.pods.iter().filter(|p| p.host == host))
                .flat_map(|p| p.containers.iter())
                .flat_map(|c| c.host_ports.iter().map(|(p, _)| *p))
                .chain(
                    (self.unmanaged.iter().filter(|u| u.host == host))
                        .flat_map(|u| u.host_ports.iter().map(|(p, _)| *p)),
                )
                .collect();
            self.ports_in_use.insert(host.to_string(), used);
        }
        let used = self.ports_in_use.get_mut(host).expect("filled above");
        let Some(port) = free_port(range, used, pod) else {
            let message = format!(
                "no free host port left in {}-{} for pod {pod}",
                range.0, range.1
            );
            self.pod_issue(IssueKind::Conflict, host, &d.name, pod, message);
            return None;
        };
        used.insert(port);
        let endpoint = Endpoint {
            host: host.to_string(),
            address: self.host_address(host),
            port,
            revision: revision.to_string(),
        };
        self.endpoints.insert(pod.to_string(), endpoint);
        Some(IngressBinding {
            container_port: ingress.container_port,
            host_port: port,
        })
    }

    /// The routing of the plan, when the project has edges.
    pub(super) fn routing(&mut self) -> Option<Routing> {
        let desired = self.input.desired;
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
        let mut endpoints = std::mem::take(&mut self.endpoints);
        for p in self
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
                    address: self.host_address(&p.host),
                    port,
                    revision: p.revision.clone(),
                };
                endpoints.entry(p.name.clone()).or_insert(endpoint);
            }
        }
        let weights = ingresses
            .keys()
            .filter_map(|name| {
                let s = Rollout::of(self.input.observed, name)?;
                let live = s.strategy == StrategyKind::Canary && matches!(s.phase, Phase::Paused);
                live.then(|| (name.clone(), (s.revision.clone(), s.weight)))
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
}

impl Builder<'_> {
    /// A first wave that gives each edge whose configuration is not the one its routes call
    /// for now (an ingress changed in Git, a file changed by hand, a certificate rotated) the
    /// right one. Edges that did not answer are left to their health.
    pub(super) fn edge_sync(&mut self, routing: &Routing, services: &super::super::Membership) {
        let secrets = &self.input.desired.secrets;
        let lookup = |name: &str| secrets.get(name).map(str::to_string);
        let mut steps = BTreeMap::new();
        for host in &routing.edge_hosts {
            let Some(Ok(observed)) = self.input.observed.get(host) else {
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
            self.changes.push(Change::plain(
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
        let at = usize::from(self.waves.first().is_some_and(|w| w.deployment.is_none()));
        let wave = Wave {
            description: "give the edges the routes their ingresses call for".into(),
            deployment: None,
            steps,
            on_failure: BTreeMap::new(),
        };
        self.waves.insert(at, wave);
    }
}
