//! The edges during an apply. What they route changes only at the plan's edge steps
//! (`Step::RouteEdges`, `Step::RouteWeight`, `Step::SyncEdge`), placed by the plan where pods
//! join and leave (`plan::build::edges`); each change gives every edge host the newest state.
//! Hosts push in parallel; pushes to one edge host are one at a time, and a push carries the
//! newest state, so steps that run at once cost few reloads.

use crate::hosts::engine::{Engines, OpError, OpResult};
use crate::model::edge_stats::{self, EdgeAnalysis};
use crate::model::haproxy::{self, EdgeFile};
use crate::model::ingress::{backends, Routing, EDGE_DEPLOYMENT};
use crate::plan::membership::{route_edges, Membership};
use crate::plan::{EdgeMember, Plan, PodPlan};
use futures_util::future::join_all;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// An edge that did not take its configuration, and what its engine said.
#[derive(Debug, thiserror::Error)]
#[error("edge on {host}: {error}")]
pub struct EdgeError {
    pub host: String,
    pub error: OpError,
}

/// The edges that did not take a change (each pushed in parallel).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct EdgeErrors(pub Vec<EdgeError>);

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

    /// The configuration the edge on `host` should run now (its generation still to fill in)
    /// with the files it names, and the state version it is made from.
    fn config(&self, host: &str) -> Option<(String, Vec<EdgeFile>, u64)> {
        let routing = self.routing.as_ref()?;
        let state = self.state.lock().expect("edge state");
        let mut view = routing.clone();
        view.weights = state.weights.clone();
        let list = backends(&view, &state.members, host);
        let (config, files) = haproxy::edge_files(&list, routing.admin_port);
        Some((config, files, state.version))
    }

    /// Changes the state; the edges get it when it changed.
    async fn change(&self, change: impl FnOnce(&mut State) -> bool) -> Result<(), EdgeErrors> {
        let changed = {
            let mut state = self.state.lock().expect("edge state");
            let changed = change(&mut state);
            if changed {
                state.version += 1;
            }
            changed
        };
        if changed {
            self.push_all().await?;
        }
        Ok(())
    }

    /// `Step::RouteEdges`: pods on and off every edge.
    pub async fn route(&self, add: &[EdgeMember], remove: &[EdgeMember]) -> Result<(), EdgeErrors> {
        self.change(|s| route_edges(&mut s.members, add, remove))
            .await
    }

    /// `Step::RouteWeight`: a canary's share of the requests on every edge.
    pub async fn weigh(
        &self,
        deployment: &str,
        revision: &str,
        percent: u32,
    ) -> Result<(), EdgeErrors> {
        let weight = (revision.to_string(), percent);
        self.change(|s| s.weights.insert(deployment.to_string(), weight.clone()) != Some(weight))
            .await
    }

    /// `Step::SyncEdge`: this host's edge gets the configuration, whatever it was given.
    pub async fn sync(&self, host: &str) -> Result<(), EdgeError> {
        self.push(host, true).await
    }

    /// Creates an edge pod with the configuration the host's edge should have now (no push
    /// to this host runs meanwhile, so none is lost).
    pub async fn create(&self, host: &str, pod: &PodPlan) -> Option<OpResult> {
        if pod.deployment != EDGE_DEPLOYMENT {
            return None;
        }
        let engine = self.engines.get(host)?;
        let lock = self.pushed.get(host)?;
        let _held = lock.lock().await;
        let (config, files, _) = self.config(host)?;
        Some(engine.create_edge(pod, &config, &files).await)
    }

    /// Reads every edge's counts of `revision`'s pods before and after the window; the
    /// verdict on the difference.
    pub async fn analyze(
        &self,
        deployment: &str,
        revision: &str,
        check: &EdgeAnalysis,
    ) -> Result<String, super::failure::StepError> {
        use super::failure::StepError;
        let fault = |e: String| StepError::new(e, String::new());
        let routing =
            (self.routing.as_ref()).ok_or_else(|| fault("the plan routes nothing".into()))?;
        let backend = haproxy::backend_name(deployment);
        let read = || async {
            let all = join_all(self.engines.iter().map(|(host, engine)| async move {
                let csv = engine.edge_stats(routing.admin_port).await;
                (host.clone(), csv)
            }))
            .await;
            let mut out = BTreeMap::new();
            for (host, csv) in all {
                let csv = csv.map_err(|e| format!("edge on {host}: {e}"))?;
                for (server, counts) in edge_stats::parse(&csv, &backend) {
                    let of_revision = routing
                        .endpoints
                        .get(&server)
                        .is_some_and(|e| e.revision == revision);
                    if of_revision {
                        out.insert((host.clone(), server), counts);
                    }
                }
            }
            Ok::<_, String>(out)
        };
        let before = read().await.map_err(fault)?;
        tokio::time::sleep(std::time::Duration::from_millis(check.duration_ms)).await;
        let after = read().await.map_err(fault)?;
        let counts: Vec<edge_stats::Counts> = after
            .iter()
            .map(|(k, a)| edge_stats::between(before.get(k).copied().unwrap_or_default(), *a))
            .collect();
        edge_stats::verdict(check, &counts).map_err(|why| StepError::verdict(why, String::new()))
    }

    async fn push_all(&self) -> Result<(), EdgeErrors> {
        let results = join_all(self.engines.keys().map(|h| self.push(h, false))).await;
        let errors: Vec<EdgeError> = results.into_iter().filter_map(Result::err).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(EdgeErrors(errors))
        }
    }

    /// Gives `host`'s edge the newest state, unless it has it (or `force`).
    async fn push(&self, host: &str, force: bool) -> Result<(), EdgeError> {
        let (Some(engine), Some(lock)) = (self.engines.get(host), self.pushed.get(host)) else {
            return Ok(());
        };
        let mut pushed = lock.lock().await;
        let Some((config, files, version)) = self.config(host) else {
            return Ok(());
        };
        if *pushed >= version && version > 0 && !force {
            return Ok(());
        }
        let admin_port = self.routing.as_ref().map_or(0, |r| r.admin_port);
        engine
            .edge_reload(&config, &files, admin_port)
            .await
            .map_err(|error| EdgeError {
                host: host.to_string(),
                error,
            })?;
        *pushed = version;
        Ok(())
    }
}
