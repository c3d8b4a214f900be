//! The edges during an apply. Routes follow service membership, as Kubernetes endpoints do:
//! when a step puts a pod of an ingress deployment behind its service (or takes it out), every
//! edge host gets the new configuration before the step counts as done; a pod leaving is taken
//! off the edges before it leaves, so its drain starts with no new requests coming. Hosts push
//! in parallel; pushes to one edge host are one at a time, and a push carries the newest state,
//! so a burst of steps costs few reloads.

use super::executor::Engines;
use crate::model::edge_stats::{self, EdgeAnalysis};
use crate::model::haproxy::{self, EdgeFile};
use crate::model::ingress::{backends, Routing, EDGE_DEPLOYMENT};
use crate::plan::membership::{self, Membership};
use crate::plan::{Plan, PodPlan, Step};
use futures_util::future::join_all;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub struct Edges {
    routing: Option<Routing>,
    /// The switch under way in each lane (see `begin_wave`).
    switches: Mutex<BTreeMap<Option<String>, Switch>>,
    state: Mutex<State>,
    /// Per edge host: the state version it was last given.
    pushed: BTreeMap<String, tokio::sync::Mutex<u64>>,
    engines: Engines,
}

struct Switch {
    /// Joins still to come.
    joins: usize,
    /// The leaves the switch takes off the edges.
    leaves: Vec<(String, Step)>,
    done: Arc<tokio::sync::watch::Sender<Switched>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Switched {
    Waiting,
    Done,
    Failed(String),
}

fn describe_pod(step: &Step) -> String {
    match step {
        Step::JoinService { pod, .. } => format!("putting {pod} behind its service"),
        _ => "a step".into(),
    }
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
            switches: Mutex::new(BTreeMap::new()),
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

    /// Before a wave's steps run. A wave that moves a service between sets of pods (a
    /// blue-green promotion or rollback, a restore) moves the edges once, at a point between
    /// its joins and its leaves: when every pod that joins has joined, one push puts them on
    /// and takes the leaving ones off every edge, and only then do the leaving pods leave.
    /// So every edge switches at once, and no pod is reconnected to its network (which
    /// briefly unpublishes its port) while an edge sends it requests.
    pub fn begin_wave(&self, lane: Option<&str>, steps: &BTreeMap<String, Vec<Step>>) {
        let routed = |s: &&Step| self.routes(s);
        let joins = steps
            .values()
            .flatten()
            .filter(routed)
            .filter(|s| matches!(s, Step::JoinService { .. }))
            .count();
        let mut switches = self.switches.lock().expect("switches");
        switches.remove(&lane.map(str::to_string));
        // A host that leaves before it joins would wait on itself: no switch then, the
        // edges follow step by step.
        let leave_first = steps.values().any(|list| {
            let routed: Vec<&Step> = list.iter().filter(|s| self.routes(s)).collect();
            let first_leave = routed
                .iter()
                .position(|s| matches!(s, Step::LeaveService { .. }));
            let last_join = routed
                .iter()
                .rposition(|s| matches!(s, Step::JoinService { .. }));
            matches!((first_leave, last_join), (Some(l), Some(j)) if l < j)
        });
        if joins == 0 || leave_first {
            return;
        }
        let leaves = steps
            .iter()
            .flat_map(|(h, list)| list.iter().map(move |s| (h.clone(), s.clone())))
            .filter(|(_, s)| matches!(s, Step::LeaveService { .. }) && self.routes(s))
            .collect();
        let (done, _) = tokio::sync::watch::channel(Switched::Waiting);
        let switch = Switch {
            joins,
            leaves,
            done: Arc::new(done),
        };
        switches.insert(lane.map(str::to_string), switch);
    }

    fn switch_of(&self, lane: Option<&str>) -> Option<Arc<tokio::sync::watch::Sender<Switched>>> {
        let switches = self.switches.lock().expect("switches");
        switches
            .get(&lane.map(str::to_string))
            .map(|s| s.done.clone())
    }

    /// Before a step runs: a pod about to leave its service is taken off the edges (in a
    /// switch, once the switch is done).
    pub async fn before(&self, lane: Option<&str>, host: &str, step: &Step) -> Result<(), String> {
        if !(matches!(step, Step::LeaveService { .. }) && self.routes(step)) {
            return Ok(());
        }
        if let Some(done) = self.switch_of(lane) {
            let mut seen = done.subscribe();
            let outcome = seen
                .wait_for(|s| *s != Switched::Waiting)
                .await
                .map(|s| s.clone());
            return match outcome {
                Ok(Switched::Done) => Ok(()),
                Ok(Switched::Failed(why)) => Err(format!("the edges did not switch: {why}")),
                _ => Err("the edges did not switch".into()),
            };
        }
        if self.change(host, step) {
            return self.push_all().await;
        }
        Ok(())
    }

    /// After a step succeeded: a pod that joined (or went) is put on (or off) the edges; in
    /// a switch, the last join switches the edges.
    pub async fn after(&self, lane: Option<&str>, host: &str, step: &Step) -> Result<(), String> {
        if matches!(step, Step::SyncEdge) {
            return self.push(host, true).await;
        }
        if matches!(step, Step::LeaveService { .. }) || !self.routes(step) {
            return Ok(());
        }
        if matches!(step, Step::JoinService { .. }) {
            if let Some(leaves) = self.joined(lane, host, step) {
                let Some(done) = self.switch_of(lane) else {
                    return Ok(());
                };
                for (h, leave) in &leaves {
                    self.change(h, leave);
                }
                let pushed = self.push_all().await;
                let outcome = match &pushed {
                    Ok(()) => Switched::Done,
                    Err(e) => Switched::Failed(e.clone()),
                };
                done.send_replace(outcome);
                return pushed;
            }
            if self.switch_of(lane).is_some() {
                return Ok(());
            }
        }
        if self.change(host, step) {
            return self.push_all().await;
        }
        Ok(())
    }

    /// Counts a join of a switch; the leaves to apply when it was the last one.
    fn joined(&self, lane: Option<&str>, host: &str, step: &Step) -> Option<Vec<(String, Step)>> {
        let mut switches = self.switches.lock().expect("switches");
        let switch = switches.get_mut(&lane.map(str::to_string))?;
        self.change(host, step);
        switch.joins = switch.joins.saturating_sub(1);
        (switch.joins == 0).then(|| std::mem::take(&mut switch.leaves))
    }

    /// A step failed: a switch waiting for it will not happen.
    pub fn failed(&self, lane: Option<&str>, step: &Step) {
        if matches!(step, Step::JoinService { .. }) {
            if let Some(done) = self.switch_of(lane) {
                done.send_replace(Switched::Failed(format!("{} failed", describe_pod(step))));
            }
        }
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
        let (config, files, _) = self.config(host)?;
        let created = engine.create_edge(pod, &config, &files).await;
        Some(created.map_err(|e| e.to_string()))
    }

    /// Reads every edge's counts of `revision`'s pods before and after the window; the
    /// verdict on the difference.
    pub async fn analyze(
        &self,
        deployment: &str,
        revision: &str,
        check: &EdgeAnalysis,
    ) -> Result<String, super::step::StepError> {
        use super::step::StepError;
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

    async fn push_all(&self) -> Result<(), String> {
        let results = join_all(self.engines.keys().map(|h| self.push(h, false))).await;
        let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Gives `host`'s edge the newest state, unless it has it (or `force`).
    async fn push(&self, host: &str, force: bool) -> Result<(), String> {
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
            .map_err(|e| format!("edge on {host}: {e}"))?;
        *pushed = version;
        Ok(())
    }
}
