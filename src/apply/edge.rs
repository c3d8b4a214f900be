//! The edges during an apply. Routes follow service membership, as Kubernetes endpoints do:
//! when a step puts a pod of an ingress deployment behind its service (or takes it out), every
//! edge host gets the new configuration before the step counts as done; a pod leaving is taken
//! off the edges before it leaves, so its drain starts with no new requests coming. Hosts push
//! in parallel; pushes to one edge host are one at a time, and a push carries the newest state,
//! so a burst of steps costs few reloads.

use super::executor::Engines;
use crate::model::haproxy;
use crate::model::ingress::{backends, Routing, EDGE_DEPLOYMENT};
use crate::plan::membership::{self, Membership};
use crate::plan::{Plan, PodPlan, Step};
use futures_util::future::join_all;
use std::collections::BTreeMap;
use std::sync::Mutex;

pub struct Edges {
    routing: Option<Routing>,
    state: Mutex<State>,
    /// Per edge host: the state version it was last given.
    pushed: BTreeMap<String, tokio::sync::Mutex<u64>>,
    engines: Engines,
}

struct State {
    members: Membership,
    weights: BTreeMap<String, (String, u32)>,
    version: u64,
}

impl Edges {
    pub fn new(plan: &Plan, engines: &Engines) -> Edges {
        let routing = plan.routing.clone();
        let hosts = routing
            .as_ref()
            .map(|r| r.edge_hosts.clone())
            .unwrap_or_default();
        Edges {
            state: Mutex::new(State {
                members: plan.services.clone(),
                weights: routing
                    .as_ref()
                    .map(|r| r.weights.clone())
                    .unwrap_or_default(),
                version: 0,
            }),
            routing,
            pushed: hosts
                .iter()
                .map(|h| (h.clone(), tokio::sync::Mutex::new(0)))
                .collect(),
            engines: engines
                .iter()
                .filter(|(h, _)| hosts.contains(h))
                .map(|(h, e)| (h.clone(), e.clone()))
                .collect(),
        }
    }

    /// The configuration the edge on `host` should run now, and its generation.
    fn config(&self, host: &str) -> Option<(String, String, u64)> {
        let routing = self.routing.as_ref()?;
        let state = self.state.lock().expect("edge state");
        let mut view = routing.clone();
        view.weights = state.weights.clone();
        let list = backends(&view, &state.members, host);
        let generation =
            crate::model::short_hash(haproxy::config(&list, routing.admin_port, "").as_bytes());
        let config = haproxy::config(&list, routing.admin_port, &generation);
        Some((config, generation, state.version))
    }

    /// Whether a step's pod is one the edges route to.
    fn routes(&self, step: &Step) -> bool {
        let pod = match step {
            Step::RouteWeight { .. } => return self.routing.is_some(),
            Step::AwaitReady {
                pod, join: Some(_), ..
            }
            | Step::JoinService { pod, .. }
            | Step::LeaveService { pod, .. }
            | Step::StopPod { pod, .. }
            | Step::RemovePod { pod, .. } => pod,
            _ => return false,
        };
        self.routing
            .as_ref()
            .is_some_and(|r| r.endpoints.contains_key(pod))
    }

    /// Applies a step's effect on membership and weights; whether anything changed.
    fn change(&self, host: &str, step: &Step) -> bool {
        let mut state = self.state.lock().expect("edge state");
        let before = (state.members.clone(), state.weights.clone());
        membership::apply(&mut state.members, host, std::slice::from_ref(step));
        if let Step::RouteWeight {
            deployment,
            revision,
            percent,
        } = step
        {
            let weight = (revision.clone(), *percent);
            state.weights.insert(deployment.clone(), weight);
        }
        let changed = (&state.members, &state.weights) != (&before.0, &before.1);
        if changed {
            state.version += 1;
        }
        changed
    }

    /// Before a step runs: a pod about to leave its service is taken off the edges.
    pub async fn before(&self, host: &str, step: &Step) -> Result<(), String> {
        if matches!(step, Step::LeaveService { .. }) && self.routes(step) && self.change(host, step)
        {
            return self.push_all().await;
        }
        Ok(())
    }

    /// After a step succeeded: a pod that joined (or went) is put on (or off) the edges.
    pub async fn after(&self, host: &str, step: &Step) -> Result<(), String> {
        if !matches!(step, Step::LeaveService { .. })
            && self.routes(step)
            && self.change(host, step)
        {
            return self.push_all().await;
        }
        Ok(())
    }

    /// Creates an edge pod with the configuration the host's edge should have now (no push
    /// to this host runs meanwhile, so none is lost).
    pub async fn create(&self, host: &str, pod: &PodPlan) -> Option<Result<(), String>> {
        if pod.deployment != EDGE_DEPLOYMENT {
            return None;
        }
        let engine = self.engines.get(host)?;
        let lock = self.pushed.get(host)?;
        let _held = lock.lock().await;
        let (config, _, _) = self.config(host)?;
        Some(
            engine
                .create_edge(pod, &config)
                .await
                .map_err(|e| e.to_string()),
        )
    }

    async fn push_all(&self) -> Result<(), String> {
        let results = join_all(self.engines.keys().map(|h| self.push(h))).await;
        let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    async fn push(&self, host: &str) -> Result<(), String> {
        let (Some(engine), Some(lock)) = (self.engines.get(host), self.pushed.get(host)) else {
            return Ok(());
        };
        let mut pushed = lock.lock().await;
        let Some((config, generation, version)) = self.config(host) else {
            return Ok(());
        };
        if *pushed >= version && version > 0 {
            return Ok(());
        }
        let admin_port = self.routing.as_ref().map_or(0, |r| r.admin_port);
        engine
            .edge_reload(&config, &generation, admin_port)
            .await
            .map_err(|e| format!("edge on {host}: {e}"))?;
        *pushed = version;
        Ok(())
    }
}
