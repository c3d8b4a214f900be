//! Builds a plan from the desired and the observed state. Pure.
//!
//! `build` is a pipeline: a read-only `Context` (each host's state, the pods observed), then
//! each selected deployment planned on its own into a `DeploymentPlan` value (its service
//! names repaired, a kept revision brought back, or its strategy's rollout with its jobs and
//! the history it forgets), then the prune, folded together with the edges' routes. A
//! strategy is chosen in one place (`strategy::of`).

use super::types::*;
use crate::diff::{self, placement, Condition, ObservedPod, Unmanaged};
use crate::model::names::{container_name, network_name, pod_name, volume_name};
use crate::model::registry::registry_of;
use crate::model::*;
use std::collections::{BTreeMap, BTreeSet};

mod deployment_plan;
mod edges;
mod history;
mod jobs;
mod pods;
mod progressive;
mod prune;
mod repair;
mod restart;
mod restore;
mod routing;
mod steps;
mod strategy;
use crate::model::ingress::Endpoint;
use deployment_plan::DeploymentPlan;
pub use progressive::Intent;
use steps::*;

pub struct PlanInput<'a> {
    pub desired: &'a DesiredState,
    /// Per host in the inventory: what was observed, or why it could not be.
    pub observed: &'a BTreeMap<String, Result<ObservedHost, String>>,
    /// Only deployments whose labels match are planned (`-l`).
    pub selector: Option<&'a Selector>,
    pub prune: bool,
    /// Also remove berth's volumes that no deployment declares and no remaining container
    /// mounts (needs the volumes in the observation).
    pub prune_volumes: bool,
    /// Now, in Unix seconds (for rollout delays); the shell reads the clock.
    pub now: u64,
    /// What the user asked of rollouts in progress, by deployment.
    pub intents: BTreeMap<String, Intent>,
    /// Try again a revision whose rolling or recreate rollout failed (`--retry`).
    pub retry: bool,
    /// `berth rollback --to`: the kept revision (or a prefix of it), by deployment.
    pub rollback_to: BTreeMap<String, String>,
}

/// What every part of the plan reads: the input, each host's state and the pods observed.
/// Read-only while a deployment is planned; each deployment's plan is a value of its own
/// (`DeploymentPlan`) that `build` folds into the plan.
struct Context<'a> {
    input: &'a PlanInput<'a>,
    hosts: BTreeMap<String, HostState>,
    pods: Vec<ObservedPod>,
    unmanaged: Vec<Unmanaged>,
    /// Where the pods planned for earlier deployments answer (their host ports are taken).
    claimed: BTreeMap<String, Endpoint>,
}

impl<'a> Context<'a> {
    /// The hosts' states and pods, and an issue for each host that could not be observed.
    fn new(input: &'a PlanInput<'a>) -> (Self, Vec<Issue>) {
        let mut cx = Context {
            input,
            hosts: BTreeMap::new(),
            pods: vec![],
            unmanaged: vec![],
            claimed: BTreeMap::new(),
        };
        let mut issues = Vec::new();
        for h in &input.desired.hosts {
            let state = match input.observed.get(&h.name) {
                Some(Ok(o)) => {
                    let (pods, unmanaged) = diff::group(&input.desired.project, o);
                    cx.pods.extend(pods);
                    cx.unmanaged.extend(unmanaged);
                    HostState {
                        connection: h.clone(),
                        reachable: true,
                        fingerprint: Some(o.fingerprint(&input.desired.project)),
                        error: None,
                    }
                }
                other => {
                    let error = match other {
                        Some(Err(e)) => e.clone(),
                        _ => "not observed".to_string(),
                    };
                    issues.push(Issue {
                        kind: IssueKind::Unreachable,
                        host: Some(h.name.clone()),
                        deployment: None,
                        pod: None,
                        message: format!("{} is unreachable: {error}", h.name),
                    });
                    HostState {
                        connection: h.clone(),
                        reachable: false,
                        fingerprint: None,
                        error: Some(error),
                    }
                }
            };
            cx.hosts.insert(h.name.clone(), state);
        }
        (cx, issues)
    }

    fn reachable(&self, host: &str) -> bool {
        self.hosts.get(host).is_some_and(|s| s.reachable)
    }

    fn project(&self) -> &'a str {
        &self.input.desired.project
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PrepareStep {
    Network(String),
    Volume(String),
    Image(String),
}

/// One pod's change on one host, as the plan shows it.
struct PodChange<'a> {
    host: &'a str,
    action: Action,
    kind: ChangeKind,
    /// The pod there now (replace, start, remove).
    old: Option<&'a ObservedPod>,
    /// The pod that will be there (create, replace).
    new_pod: Option<String>,
    reason: Reason,
    fields: Vec<diff::FieldChange>,
}

impl<'a> PodChange<'a> {
    fn new(host: &'a str, action: Action, kind: ChangeKind, reason: Reason) -> Self {
        PodChange {
            host,
            action,
            kind,
            old: None,
            new_pod: None,
            reason,
            fields: vec![],
        }
    }

    fn of(mut self, old: &'a ObservedPod) -> Self {
        self.old = Some(old);
        self
    }

    fn to(mut self, new_pod: String) -> Self {
        self.new_pod = Some(new_pod);
        self
    }

    fn with_fields(mut self, fields: Vec<diff::FieldChange>) -> Self {
        self.fields = fields;
        self
    }
}

/// What berth will do about one pod of a deployment on one host.
enum Work {
    Start(ObservedPod),
    Create {
        new: PodPlan,
        host: String,
        replaces: Option<ObservedPod>,
        stop_first: bool,
    },
    Remove(ObservedPod),
    /// Out of its service and stopped, kept as an old revision (`history_limit`).
    Stop(ObservedPod),
}

/// The plan: the hosts observed, each selected deployment planned on its own (its strategy
/// chooses how), what is no longer declared pruned, the edges' routes, and notices.
pub fn build(input: &PlanInput) -> Plan {
    let (mut cx, mut issues) = Context::new(input);
    let selected = selected(input);
    issues.extend(intent_issues(input));
    let mut parts = Vec::new();
    for d in &selected {
        let part = plan_deployment(&cx, d);
        cx.claimed
            .extend(part.endpoints.iter().map(|(k, v)| (k.clone(), v.clone())));
        parts.push((d.name.clone(), part));
    }
    let pruned = prune::plan(&cx, parts.iter().map(|(_, p)| p));
    let mut plan = assemble(&cx, parts, pruned, issues);
    // The edges route every ingress, planned or not (`-l`): their members are needed too.
    let routed: Vec<&Deployment> = (input.desired.deployments.iter())
        .filter(|d| d.ingress.is_some() || selected.iter().any(|s| s.name == d.name))
        .collect();
    plan.services = services(&cx, &routed);
    plan.routing = routing::routing(&cx);
    if let Some(r) = &plan.routing {
        routing::edge_sync(&cx, r, &plan.services, &mut plan.changes, &mut plan.waves);
    }
    edges::place(&mut plan);
    plan.dead_locks = dead_locks(input);
    for h in &plan.dead_locks {
        plan.issues.push(Issue {
            kind: IssueKind::Notice,
            host: Some(h.clone()),
            deployment: None,
            pod: None,
            message: "an apply stopped without releasing its lock (its process ended or its lease ran out); the next apply clears it".into(),
        });
    }
    let pulled: BTreeSet<&str> = plan.images().iter().map(|i| registry_of(i)).collect();
    plan.registries = (input.desired.registries.iter())
        .filter(|r| pulled.contains(r.server.as_str()))
        .cloned()
        .collect();
    plan
}

/// The deployments this plan is for: those `-l` selects, and those a promote, abort or
/// rollback names.
fn selected<'a>(input: &PlanInput<'a>) -> Vec<&'a Deployment> {
    (input.desired.deployments.iter())
        .filter(|d| input.selector.is_none_or(|s| s.matches(&d.labels)))
        .filter(|d| input.intents.is_empty() || input.intents.contains_key(&d.name))
        .collect()
}

/// Promote, abort or rollback of a deployment that has none to do (or a restart of one that
/// is not in Git).
fn intent_issues(input: &PlanInput) -> Vec<Issue> {
    let mut issues = Vec::new();
    for name in input.intents.keys() {
        let message = match input.desired.deployments.iter().find(|d| &d.name == name) {
            None => format!("there is no deployment named {name}"),
            Some(d)
                if !d.strategy.kind.is_progressive()
                    && !matches!(
                        input.intents.get(name),
                        Some(Intent::Rollback | Intent::Restart)
                    ) =>
            {
                format!(
                "{name} rolls out with the {} strategy; promote, abort and rollback are for canary and blue-green",
                serde_json::to_value(d.strategy.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
                )
            }
            Some(_) => continue,
        };
        issues.push(Issue {
            kind: IssueKind::Rollout,
            host: None,
            deployment: Some(name.clone()),
            pod: None,
            message,
        });
    }
    issues
}

/// One deployment's plan: its service names repaired, then a kept revision brought back
/// (`berth rollback`), or its pods restarted (`berth restart`), or nothing while it is held back or its revision failed, or its
/// strategy's rollout with the jobs it waits for; and the history past its limit forgotten.
fn plan_deployment(cx: &Context, d: &Deployment) -> DeploymentPlan {
    let mut out = DeploymentPlan::default();
    let repairs = repair::membership_repairs(cx, d, &mut out);
    let body = if cx.restores(d) {
        let to = cx.input.rollback_to.get(&d.name).map(String::as_str);
        history::restore(cx, d, to, &mut out)
    } else if cx.input.intents.get(&d.name) == Some(&Intent::Restart) {
        restart::waves(cx, d, &mut out)
    } else {
        let mut waves =
            if history::held_back(cx, d, &mut out) || repair::failed_before(cx, d, &mut out) {
                vec![]
            } else {
                let mut rollout = strategy::of(d.strategy.kind).rollout(cx, d);
                let waves = std::mem::take(&mut rollout.waves);
                out.extend(rollout);
                let waves = jobs::with_jobs(cx, d, waves, &mut out);
                repair::remember_failure(cx, d, waves)
            };
        waves.extend(history::forget_old_revisions(cx, d, &mut out));
        waves
    };
    out.waves = repairs.into_iter().chain(body).collect();
    for w in &mut out.waves {
        w.deployment = Some(d.name.clone());
    }
    out
}

/// Folds the deployments' plans together: what they prepare first, in one parallel wave,
/// then each deployment's waves, then the prune.
fn assemble(
    cx: &Context,
    parts: Vec<(String, DeploymentPlan)>,
    pruned: prune::Pruned,
    mut issues: Vec<Issue>,
) -> Plan {
    let input = cx.input;
    let mut prepare: BTreeMap<String, BTreeSet<PrepareStep>> = BTreeMap::new();
    let mut changes = Vec::new();
    let mut waves = Vec::new();
    for (_, part) in &parts {
        for (host, steps) in &part.prepare {
            prepare
                .entry(host.clone())
                .or_default()
                .extend(steps.iter().cloned());
        }
    }
    if !prepare.is_empty() {
        let steps = (prepare.into_iter())
            .map(|(h, s)| (h, s.into_iter().map(PrepareStep::step).collect()))
            .collect();
        waves.push(Wave {
            deployment: None,
            description: "prepare networks, volumes and images".into(),
            steps,
            on_failure: BTreeMap::new(),
        });
    }
    for (_, part) in parts {
        changes.extend(part.changes);
        issues.extend(part.issues);
        waves.extend(part.waves);
    }
    changes.extend(pruned.changes);
    issues.extend(pruned.issues);
    if !pruned.steps.is_empty() {
        waves.push(Wave {
            deployment: None,
            description: "prune what is no longer declared in Git".into(),
            steps: pruned.steps,
            on_failure: BTreeMap::new(),
        });
    }
    Plan {
        version: PLAN_VERSION,
        project: input.desired.project.clone(),
        environment: input.desired.environment.clone(),
        not_in_git: pruned.not_in_git,
        commit: input.desired.commit.clone(),
        signed_by: None,
        desired_hash: input.desired.hash(),
        selector: input.selector.map(|s| s.to_string()),
        prune: input.prune,
        hosts: cx.hosts.clone(),
        changes,
        issues,
        waves,
        services: Default::default(),
        dead_locks: vec![],
        registries: vec![],
        routing: None,
    }
}

impl PrepareStep {
    fn step(self) -> Step {
        match self {
            PrepareStep::Network(name) => Step::EnsureNetwork { name },
            PrepareStep::Volume(name) => Step::EnsureVolume { name },
            PrepareStep::Image(image) => Step::EnsureImage { image },
        }
    }
}

/// Hosts whose lock an apply left behind.
fn dead_locks(input: &PlanInput) -> Vec<String> {
    (input.observed.iter())
        .filter_map(|(h, o)| Some((h, o.as_ref().ok()?)))
        .filter(|(_, o)| o.lock_left_behind())
        .map(|(h, _)| h.clone())
        .collect()
}

fn spec_map(specs: &[ContainerSpec]) -> BTreeMap<String, serde_json::Value> {
    specs
        .iter()
        .map(|c| (c.name.clone(), diff::spec_value(c)))
        .collect()
}

fn observed_spec_map(pod: &ObservedPod) -> BTreeMap<String, serde_json::Value> {
    pod.containers
        .iter()
        .map(|c| {
            (
                c.label(label::CONTAINER).unwrap_or(&c.name).to_string(),
                diff::observed_spec(c).unwrap_or_default(),
            )
        })
        .collect()
}

/// Who is behind each service name now: what a deep observation saw, or else what the
/// rollout state implies (a blue-green new set waits behind the preview name; after a
/// promotion the old set is out of service).
fn services(cx: &Context, selected: &[&Deployment]) -> super::membership::Membership {
    let mut out = super::membership::Membership::new();
    for d in selected {
        let Some(service) = &d.service else { continue };
        let preview = names::preview_alias(&service.name);
        let state = Rollout::of(cx.input.observed, &d.name);
        for p in cx.pods.iter().filter(|p| p.deployment == d.name) {
            if !p.is_running() {
                continue;
            }
            let aliases: Vec<String> = match p.behind(&[&service.name, &preview]) {
                Some(seen) => seen,
                None => {
                    let decided =
                        state.and_then(|s| strategy::of(s.strategy).behind_during(s, &p.revision));
                    let behind = match (decided, state) {
                        (Some(Some(b)), _) => b,
                        (_, Some(s)) if s.phase == Phase::Promoted && p.revision == s.stable => {
                            repair::Behind::Nothing
                        }
                        _ => repair::Behind::Service,
                    };
                    behind.names(&service.name, &preview)
                }
            };
            for a in aliases {
                out.entry(a)
                    .or_default()
                    .entry(p.host.clone())
                    .or_default()
                    .insert(p.name.clone());
            }
        }
    }
    out
}
