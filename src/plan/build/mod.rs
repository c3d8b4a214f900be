//! Builds a plan from the desired and the observed state. Pure.

use super::types::*;
use crate::diff::{self, placement, Condition, ObservedPod, Unmanaged};
use crate::model::names::{container_name, network_name, pod_name, volume_name};
use crate::model::registry::registry_of;
use crate::model::*;
use std::collections::{BTreeMap, BTreeSet};

mod history;
mod jobs;
mod pods;
mod progressive;
mod prune;
mod repair;
mod restore;
mod routing;
mod steps;
mod strategy;
pub use progressive::Intent;
use steps::*;
use strategy::waves_for;

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

struct Builder<'a> {
    input: &'a PlanInput<'a>,
    changes: Vec<Change>,
    issues: Vec<Issue>,
    /// Per host: steps that prepare for creates (networks, volumes, images).
    prepare: BTreeMap<String, BTreeSet<PrepareStep>>,
    waves: Vec<Wave>,
    pods: Vec<ObservedPod>,
    unmanaged: Vec<Unmanaged>,
    /// Pods of deployments that left Git, kept (see `Plan::not_in_git`).
    not_in_git: BTreeMap<String, Vec<String>>,
    /// Per host: the host ports taken, for new ingress pods (`routing`).
    ports_in_use: BTreeMap<String, BTreeSet<u16>>,
    /// Where the pods the plan creates answer, for the edges.
    endpoints: BTreeMap<String, crate::model::ingress::Endpoint>,
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

/// A deployment's plan: pod work ordered by its strategy later, a rollout's own waves, or
/// the waves that bring back a kept revision (no job runs, no history is forgotten).
enum Planned {
    Work(Vec<Work>),
    Waves(Vec<Wave>),
    Restore(Vec<Wave>),
}

pub fn build(input: &PlanInput) -> Plan {
    let mut b = Builder {
        input,
        changes: vec![],
        issues: vec![],
        prepare: BTreeMap::new(),
        waves: vec![],
        pods: vec![],
        unmanaged: vec![],
        not_in_git: BTreeMap::new(),
        ports_in_use: BTreeMap::new(),
        endpoints: BTreeMap::new(),
    };
    let mut hosts = BTreeMap::new();
    for h in &input.desired.hosts {
        match input.observed.get(&h.name) {
            Some(Ok(o)) => {
                hosts.insert(
                    h.name.clone(),
                    HostState {
                        connection: h.clone(),
                        reachable: true,
                        fingerprint: Some(o.fingerprint(&input.desired.project)),
                        error: None,
                    },
                );
                let (pods, unmanaged) = diff::group(&input.desired.project, o);
                b.pods.extend(pods);
                b.unmanaged.extend(unmanaged);
            }
            other => {
                let error = match other {
                    Some(Err(e)) => e.clone(),
                    _ => "not observed".to_string(),
                };
                b.issues.push(Issue {
                    kind: IssueKind::Unreachable,
                    host: Some(h.name.clone()),
                    deployment: None,
                    pod: None,
                    message: format!("{} is unreachable: {error}", h.name),
                });
                hosts.insert(
                    h.name.clone(),
                    HostState {
                        connection: h.clone(),
                        reachable: false,
                        fingerprint: None,
                        error: Some(error),
                    },
                );
            }
        }
    }
    let selected: Vec<&Deployment> = input
        .desired
        .deployments
        .iter()
        .filter(|d| input.selector.is_none_or(|s| s.matches(&d.labels)))
        .filter(|d| input.intents.is_empty() || input.intents.contains_key(&d.name))
        .collect();
    for name in input.intents.keys() {
        let message = match input.desired.deployments.iter().find(|d| &d.name == name) {
            None => format!("there is no deployment named {name}"),
            Some(d)
                if !d.strategy.kind.is_progressive()
                    && input.intents.get(name) != Some(&Intent::Rollback) =>
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
        b.issues.push(Issue {
            kind: IssueKind::Rollout,
            host: None,
            deployment: Some(name.clone()),
            pod: None,
            message,
        });
    }
    let mut all_work: Vec<(&Deployment, Option<Wave>, Planned)> = Vec::new();
    for d in &selected {
        let repairs = b.membership_repairs(d);
        if b.restores(d) {
            let to = input.rollback_to.get(&d.name).map(String::as_str);
            all_work.push((d, repairs, Planned::Restore(b.restore(d, &hosts, to))));
            continue;
        }
        if b.held_back(d) || b.failed_before(d) {
            all_work.push((d, repairs, Planned::Work(vec![])));
            continue;
        }
        let planned = if d.strategy.kind.is_progressive() {
            b.progressive(d, &hosts)
        } else {
            None
        };
        let work = match planned {
            Some(waves) => Planned::Waves(waves),
            None => Planned::Work(b.deployment(d, &hosts)),
        };
        all_work.push((d, repairs, work));
    }
    let mut prune_steps = b.orphans(&hosts);
    // Preparation first, in one parallel wave.
    if !b.prepare.is_empty() {
        let steps = b
            .prepare
            .iter()
            .map(|(h, s)| {
                let steps = s
                    .iter()
                    .map(|p| match p {
                        PrepareStep::Network(n) => Step::EnsureNetwork { name: n.clone() },
                        PrepareStep::Volume(n) => Step::EnsureVolume { name: n.clone() },
                        PrepareStep::Image(i) => Step::EnsureImage { image: i.clone() },
                    })
                    .collect();
                (h.clone(), steps)
            })
            .collect();
        b.waves.push(Wave {
            deployment: None,
            description: "prepare networks, volumes and images".into(),
            steps,
            on_failure: BTreeMap::new(),
        });
    }
    for (d, repairs, work) in all_work {
        let mut waves: Vec<Wave> = repairs.into_iter().collect();
        waves.extend(match work {
            Planned::Work(work) => {
                let waves = waves_for(d, work, &network_name(&input.desired.project));
                let waves = b.with_jobs(d, waves);
                b.remember_failure(d, waves)
            }
            Planned::Waves(waves) => b.with_jobs(d, waves),
            Planned::Restore(waves) => waves,
        });
        if !b.restores(d) {
            waves.extend(b.forget_old_revisions(d));
        }
        b.waves.extend(waves.into_iter().map(|w| Wave {
            deployment: Some(d.name.clone()),
            ..w
        }));
    }
    if input.prune_volumes {
        let removed = removed_containers(b.waves.iter().map(|w| &w.steps).chain([&prune_steps]));
        b.unused_volumes(&removed, &mut prune_steps);
    }
    if !prune_steps.is_empty() {
        b.waves.push(Wave {
            deployment: None,
            description: "prune what is no longer declared in Git".into(),
            steps: prune_steps,
            on_failure: BTreeMap::new(),
        });
    }

    // The edges route every ingress, planned or not (`-l`): their members are needed too.
    let routed: Vec<&Deployment> = (input.desired.deployments.iter())
        .filter(|d| d.ingress.is_some() || selected.iter().any(|s| s.name == d.name))
        .collect();
    let services = b.services(&routed);
    let routing = b.routing();
    if let Some(r) = &routing {
        b.edge_sync(r, &services);
    }
    let dead_locks: Vec<String> = input
        .observed
        .iter()
        .filter_map(|(h, o)| Some((h, o.as_ref().ok()?)))
        .filter(|(_, o)| o.lock_left_behind())
        .map(|(h, _)| h.clone())
        .collect();
    for h in &dead_locks {
        b.issues.push(Issue {
            kind: IssueKind::Notice,
            host: Some(h.clone()),
            deployment: None,
            pod: None,
            message: "an apply stopped without releasing its lock (its process ended or its lease ran out); the next apply clears it".into(),
        });
    }
    let mut plan = Plan {
        version: PLAN_VERSION,
        project: input.desired.project.clone(),
        environment: input.desired.environment.clone(),
        not_in_git: b.not_in_git,
        commit: input.desired.commit.clone(),
        signed_by: None,
        desired_hash: input.desired.hash(),
        selector: input.selector.map(|s| s.to_string()),
        prune: input.prune,
        hosts,
        changes: b.changes,
        issues: b.issues,
        waves: b.waves,
        services,
        dead_locks,
        registries: vec![],
        routing,
    };
    let pulled: BTreeSet<&str> = plan.images().iter().map(|i| registry_of(i)).collect();
    plan.registries = (input.desired.registries.iter())
        .filter(|r| pulled.contains(r.server.as_str()))
        .cloned()
        .collect();
    plan
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

impl Builder<'_> {
    /// Who is behind each service name now: what a deep observation saw, or else what the
    /// rollout state implies (a blue-green new set waits behind the preview name; after a
    /// promotion the old set is out of service).
    fn services(&self, selected: &[&Deployment]) -> super::membership::Membership {
        let mut out = super::membership::Membership::new();
        for d in selected {
            let Some(service) = &d.service else { continue };
            let preview = names::preview_alias(&service.name);
            let state = Rollout::of(self.input.observed, &d.name);
            for p in self.pods.iter().filter(|p| p.deployment == d.name) {
                if !p.is_running() {
                    continue;
                }
                let aliases: Vec<String> = match p.behind(&[&service.name, &preview]) {
                    Some(seen) => seen,
                    None => match state {
                        Some(s)
                            if s.phase == Phase::Paused
                                && s.strategy == StrategyKind::BlueGreen
                                && p.revision == s.revision =>
                        {
                            vec![preview.clone()]
                        }
                        Some(s) if s.phase == Phase::Promoted && p.revision == s.stable => vec![],
                        _ => vec![service.name.clone()],
                    },
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
}
