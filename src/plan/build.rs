//! Builds a plan from the desired and the observed state. Pure.

use super::types::*;
use crate::diff::{self, placement, Condition, ObservedPod, Unmanaged};
use crate::model::names::{container_name, network_name, pod_name, volume_name};
use crate::model::*;
use std::collections::{BTreeMap, BTreeSet};

mod progressive;
mod repair;
pub use progressive::Intent;

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
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PrepareStep {
    Network(String),
    Volume(String),
    Image(String),
}

fn container_names(pod: &ObservedPod) -> Vec<String> {
    let mut names: Vec<String> = pod.containers.iter().map(|c| c.name.clone()).collect();
    names.sort();
    names
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
}

/// A deployment's plan: pod work ordered by its strategy later, or a rollout's own waves.
enum Planned {
    Work(Vec<Work>),
    Waves(Vec<Wave>),
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
            Some(d) if !d.strategy.kind.is_progressive() => format!(
                "{name} rolls out with the {} strategy; promote, abort and rollback are for canary and blue-green",
                serde_json::to_value(d.strategy.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
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
        if b.failed_before(d) {
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
                b.remember_failure(d, waves)
            }
            Planned::Waves(waves) => waves,
        });
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

    let services = b.services(&selected);
    let dead_locks: Vec<String> = input
        .observed
        .iter()
        .filter_map(|(h, o)| Some((h, o.as_ref().ok()?)))
        .filter(|(_, o)| o.lock_left_behind(input.now))
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
    Plan {
        version: PLAN_VERSION,
        project: input.desired.project.clone(),
        commit: input.desired.commit.clone(),
        desired_hash: input.desired.hash(),
        selector: input.selector.map(|s| s.to_string()),
        prune: input.prune,
        hosts,
        changes: b.changes,
        issues: b.issues,
        waves: b.waves,
        services,
        dead_locks,
    }
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

    fn deployment(&mut self, d: &Deployment, hosts: &BTreeMap<String, HostState>) -> Vec<Work> {
        let desired = self.input.desired;
        let revision = d.revision(&desired.project);
        let eligible: Vec<String> = desired
            .eligible_hosts(d)
            .into_iter()
            .filter(|h| hosts.get(&h.name).is_some_and(|s| s.reachable))
            .map(|h| h.name.clone())
            .collect();
        let mine = self.pods_of(d);
        let mut current: BTreeMap<String, u32> = BTreeMap::new();
        for p in &mine {
            *current.entry(p.host.clone()).or_default() += 1;
        }
        let (target, unplaced) =
            placement::place(d.replicas, &eligible, &current, d.pods_per_host());
        if unplaced > 0 {
            self.issues.push(Issue {
                kind: IssueKind::Notice,
                host: None,
                deployment: Some(d.name.clone()),
                pod: None,
                message: format!(
                    "{unplaced} replica(s) of {} cannot be placed on the reachable hosts",
                    d.name
                ),
            });
        }
        // Did the last apply use today's replica count? Then a missing or extra pod is drift.
        let same_count = mine
            .iter()
            .any(|p| p.replicas == Some(d.replicas) && p.revision == revision);
        let mut next_ordinal = self.next_ordinals(d);
        let mut work = Vec::new();
        let mut all_hosts: Vec<String> = mine.iter().map(|p| p.host.clone()).collect();
        all_hosts.extend(eligible.iter().cloned());
        all_hosts.sort();
        all_hosts.dedup();
        for host in all_hosts {
            if !hosts.get(&host).is_some_and(|s| s.reachable) {
                continue;
            }
            let want = target.get(&host).copied().unwrap_or(0);
            let mut pods: Vec<ObservedPod> =
                mine.iter().filter(|p| p.host == host).cloned().collect();
            pods.sort_by_key(|p| p.ordinal);
            // Pods to keep, with the containers that need a start (empty: none).
            let mut keep: Vec<(ObservedPod, Vec<String>)> = Vec::new();
            let mut replaceable: Vec<(ObservedPod, ChangeKind, String, Vec<diff::FieldChange>)> =
                Vec::new();
            for p in pods {
                match diff::judge(&p, d, &revision, &desired.secrets) {
                    Condition::Current { health } => {
                        let problem = match health {
                            Some(Health::Unhealthy) => Some("unhealthy"),
                            Some(Health::Starting) => Some("still starting"),
                            _ => None,
                        };
                        if let Some(problem) = problem {
                            self.pod_issue(
                                IssueKind::Health,
                                &host,
                                &d.name,
                                &p.name,
                                format!("{} is {problem}", p.name),
                            );
                        }
                        if p.containers
                            .iter()
                            .any(|c| c.state == ContainerState::Restarting)
                        {
                            self.pod_issue(
                                IssueKind::Health,
                                &host,
                                &d.name,
                                &p.name,
                                format!("{} is restarting", p.name),
                            );
                        }
                        keep.push((p, vec![]));
                    }
                    Condition::Stopped { containers } => keep.push((p, containers)),
                    Condition::Broken { why, fields } => {
                        replaceable.push((p, ChangeKind::Drift, why, fields))
                    }
                    Condition::SecretsChanged { secrets } => {
                        let why = secrets
                            .iter()
                            .map(|s| format!("secret {s} changed"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        replaceable.push((p, ChangeKind::Pending, why, vec![]))
                    }
                    Condition::Outdated { fields } => {
                        let why = format!("revision {} → {}", p.revision, revision);
                        replaceable.push((p, ChangeKind::Pending, why, fields))
                    }
                }
            }
            // Too many good pods here: remove the surplus, stopped ones and high ordinals first.
            keep.sort_by_key(|(p, stopped)| (!stopped.is_empty(), p.ordinal));
            while keep.len() as u32 > want {
                let (p, _) = keep.pop().expect("non-empty");
                let (kind, reason) = if !eligible.contains(&host) {
                    (
                        ChangeKind::Pending,
                        format!("{host} no longer matches the placement of {}", d.name),
                    )
                } else if same_count {
                    (
                        ChangeKind::Drift,
                        "extra pod, not created by berth for this replica count".to_string(),
                    )
                } else {
                    (
                        ChangeKind::Pending,
                        format!("scale down to {} replica(s)", d.replicas),
                    )
                };
                self.change(
                    d,
                    &host,
                    Action::Remove,
                    kind,
                    Some(&p),
                    None,
                    reason,
                    vec![],
                );
                work.push(Work::Remove(p));
            }
            for (p, stopped) in &keep {
                if !stopped.is_empty() {
                    let reason = format!("stopped: {}", stopped.join(", "));
                    self.change(
                        d,
                        &host,
                        Action::Start,
                        ChangeKind::Drift,
                        Some(p),
                        None,
                        reason,
                        vec![],
                    );
                    work.push(Work::Start(p.clone()));
                }
            }
            let missing = want.saturating_sub(keep.len() as u32);
            let mut replaceable = replaceable.into_iter();
            for _ in 0..missing {
                let ordinal = next_ordinal();
                let new = self.pod_plan(d, &revision, ordinal, &host);
                match replaceable.next() {
                    Some((old, kind, why, fields)) => {
                        let host_ports = d.pod.host_ports();
                        let stop_first = !host_ports.is_empty();
                        let mut reason = why;
                        if stop_first {
                            reason.push_str(&format!(
                                "; host port {} can be held by one container, so the old pod stops first",
                                host_ports[0].0
                            ));
                        }
                        let new_name = new.name.clone();
                        self.change(
                            d,
                            &host,
                            Action::Replace,
                            kind,
                            Some(&old),
                            Some(new_name),
                            reason,
                            fields,
                        );
                        work.push(Work::Create {
                            new,
                            host: host.clone(),
                            replaces: Some(old),
                            stop_first,
                        });
                    }
                    None => {
                        let (kind, reason) = if mine.is_empty() {
                            (ChangeKind::Pending, format!("new deployment {}", d.name))
                        } else if same_count && eligible.contains(&host) {
                            (ChangeKind::Drift, "pod removed by hand".to_string())
                        } else {
                            (
                                ChangeKind::Pending,
                                format!("scale to {} replica(s)", d.replicas),
                            )
                        };
                        let new_name = new.name.clone();
                        self.change(
                            d,
                            &host,
                            Action::Create,
                            kind,
                            None,
                            Some(new_name),
                            reason,
                            vec![],
                        );
                        work.push(Work::Create {
                            new,
                            host: host.clone(),
                            replaces: None,
                            stop_first: false,
                        });
                    }
                }
            }
            for (old, kind, why, fields) in replaceable {
                let reason = format!("{why}; not needed at {} replica(s) here", want);
                self.change(
                    d,
                    &host,
                    Action::Remove,
                    kind,
                    Some(&old),
                    None,
                    reason,
                    fields,
                );
                work.push(Work::Remove(old));
            }
        }
        work
    }

    fn pods_of(&self, d: &Deployment) -> Vec<ObservedPod> {
        self.pods
            .iter()
            .filter(|p| p.deployment == d.name)
            .cloned()
            .collect()
    }

    /// Hands out the ordinals no pod of the deployment uses, lowest first.
    fn next_ordinals(&self, d: &Deployment) -> impl FnMut() -> u32 + use<> {
        let mut used: BTreeSet<u32> = self
            .pods
            .iter()
            .filter(|p| p.deployment == d.name)
            .map(|p| p.ordinal)
            .collect();
        move || {
            let o = (0..)
                .find(|o| !used.contains(o))
                .expect("an unused ordinal exists");
            used.insert(o);
            o
        }
    }

    fn pod_issue(
        &mut self,
        kind: IssueKind,
        host: &str,
        deployment: &str,
        pod: &str,
        message: String,
    ) {
        self.issues.push(Issue {
            kind,
            host: Some(host.to_string()),
            deployment: Some(deployment.to_string()),
            pod: Some(pod.to_string()),
            message,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn change(
        &mut self,
        d: &Deployment,
        host: &str,
        action: Action,
        kind: ChangeKind,
        old: Option<&ObservedPod>,
        new_pod: Option<String>,
        reason: String,
        fields: Vec<diff::FieldChange>,
    ) {
        let with_specs = matches!(action, Action::Replace | Action::Create);
        self.changes.push(Change {
            deployment: d.name.clone(),
            host: host.to_string(),
            action,
            kind,
            pod: old.map(|p| p.name.clone()),
            new_pod,
            volume: None,
            reason,
            fields,
            old_spec: old.filter(|_| with_specs).map(observed_spec_map),
            new_spec: with_specs.then(|| spec_map(&d.pod.containers)),
        });
    }

    fn pod_plan(&mut self, d: &Deployment, revision: &str, ordinal: u32, host: &str) -> PodPlan {
        let desired = self.input.desired;
        let project = &desired.project;
        let name = pod_name(&d.name, revision, ordinal);
        let network = network_name(project);
        let prep = self.prepare.entry(host.to_string()).or_default();
        prep.insert(PrepareStep::Network(network.clone()));
        let labels_json = serde_json::to_string(&d.labels).expect("labels serialise");
        let containers = d
            .pod
            .containers
            .iter()
            .enumerate()
            .map(|(index, c)| {
                prep.insert(PrepareStep::Image(c.image.clone()));
                for v in c.volumes.iter().filter(|v| v.is_named_volume()) {
                    prep.insert(PrepareStep::Volume(volume_name(project, &v.source)));
                }
                let mut labels = d.labels.clone();
                for (k, v) in [
                    (label::PROJECT, project.clone()),
                    (label::DEPLOYMENT, d.name.clone()),
                    (label::POD, name.clone()),
                    (label::CONTAINER, c.name.clone()),
                    (label::REVISION, revision.to_string()),
                    (label::ORDINAL, ordinal.to_string()),
                    (label::INDEX, index.to_string()),
                    (label::SPEC, c.canonical_json()),
                    (label::ROLE, Role::Stable.as_str().to_string()),
                    (label::LABELS, labels_json.clone()),
                    (diff::REPLICAS_LABEL, d.replicas.to_string()),
                ] {
                    labels.insert(k.to_string(), v);
                }
                if let Some(commit) = &desired.commit {
                    labels.insert(label::COMMIT.to_string(), commit.clone());
                }
                ContainerPlan {
                    name: container_name(&name, &c.name),
                    spec: c.clone(),
                    labels,
                }
            })
            .collect::<Vec<_>>();
        let aliases = d.service.iter().map(|s| s.name.clone()).collect();
        let plan = PodPlan {
            name,
            deployment: d.name.clone(),
            network,
            aliases,
            containers,
        };
        self.check_conflicts(d, host, &plan);
        plan
    }

    fn check_conflicts(&mut self, d: &Deployment, host: &str, pod: &PodPlan) {
        let ports = d.pod.host_ports();
        let clashes: Vec<String> = self
            .unmanaged
            .iter()
            .filter(|u| u.host == host)
            .filter_map(|u| {
                let what = if pod.containers.iter().any(|c| c.name == u.name) {
                    format!("has the name berth needs for pod {}", pod.name)
                } else {
                    let (port, proto) = u.host_ports.iter().find(|p| ports.contains(p))?;
                    format!("holds host port {port}/{proto} that {} publishes", d.name)
                };
                Some(format!(
                    "unmanaged container {} {what}; berth will not remove it",
                    u.name
                ))
            })
            .collect();
        for message in clashes {
            self.pod_issue(IssueKind::Conflict, host, &d.name, &pod.name, message);
        }
    }

    /// Pods of deployments that are not in Git (or deleted from it).
    /// Steps that remove pods of deployments not in Git (with --prune); notices otherwise.
    fn orphans(&mut self, hosts: &BTreeMap<String, HostState>) -> BTreeMap<String, Vec<Step>> {
        let declared: BTreeSet<&str> = self
            .input
            .desired
            .deployments
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        let orphans: Vec<ObservedPod> = self
            .pods
            .iter()
            .filter(|p| !declared.contains(p.deployment.as_str()))
            .filter(|p| self.input.selector.is_none_or(|s| s.matches(&p.labels)))
            .filter(|p| hosts.get(&p.host).is_some_and(|h| h.reachable))
            .cloned()
            .collect();
        let mut steps: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for p in &orphans {
            let (kind, reason) = if p.deployment.is_empty() {
                (
                    ChangeKind::Drift,
                    "container with berth labels that no deployment owns".to_string(),
                )
            } else {
                (
                    ChangeKind::Pending,
                    format!("deployment {} is not in Git", p.deployment),
                )
            };
            if self.input.prune {
                self.changes.push(Change::plain(
                    &p.deployment,
                    &p.host,
                    Action::Remove,
                    kind,
                    Some(p.name.clone()),
                    reason,
                ));
                steps
                    .entry(p.host.clone())
                    .or_default()
                    .push(remove_step(p, DEFAULT_STOP_TIMEOUT_S));
            } else {
                self.issues.push(Issue {
                    kind: if kind == ChangeKind::Drift {
                        IssueKind::Extra
                    } else {
                        IssueKind::Notice
                    },
                    host: Some(p.host.clone()),
                    deployment: Some(p.deployment.clone()),
                    pod: Some(p.name.clone()),
                    message: format!("{}: {reason}; kept (use --prune to remove it)", p.name),
                });
            }
        }
        steps
    }

    /// Volumes of this project that no deployment declares and no container keeps using.
    /// `removed` holds the (host, container) pairs the plan removes.
    fn unused_volumes(
        &mut self,
        removed: &BTreeSet<(String, String)>,
        steps: &mut BTreeMap<String, Vec<Step>>,
    ) {
        let project = &self.input.desired.project;
        let declared: BTreeSet<String> = self
            .input
            .desired
            .deployments
            .iter()
            .flat_map(|d| d.pod.containers.iter().flat_map(|c| c.volumes.iter()))
            .filter(|m| m.is_named_volume())
            .map(|m| volume_name(project, &m.source))
            .collect();
        for (host, observed) in self.input.observed {
            let Ok(observed) = observed else { continue };
            for v in &observed.volumes {
                if v.labels.get(label::PROJECT) != Some(project) || declared.contains(&v.name) {
                    continue;
                }
                let users: Vec<&str> = observed
                    .containers
                    .iter()
                    .filter(|c| {
                        c.volumes.contains(&v.name)
                            && !removed.contains(&(host.clone(), c.name.clone()))
                    })
                    .map(|c| c.name.as_str())
                    .collect();
                if !users.is_empty() {
                    self.issues.push(Issue {
                        kind: IssueKind::Notice,
                        host: Some(host.clone()),
                        deployment: None,
                        pod: None,
                        message: format!(
                            "volume {} is not declared in Git but {} still mount(s) it; kept",
                            v.name,
                            users.join(", ")
                        ),
                    });
                    continue;
                }
                self.changes.push(Change {
                    volume: Some(v.name.clone()),
                    ..Change::plain(
                        "",
                        host,
                        Action::Remove,
                        ChangeKind::Pending,
                        None,
                        format!("volume {} is not declared by any deployment", v.name),
                    )
                });
                steps
                    .entry(host.clone())
                    .or_default()
                    .push(Step::RemoveVolume {
                        name: v.name.clone(),
                    });
            }
        }
    }
}

/// The (host, container) pairs that these steps remove.
fn removed_containers<'a>(
    maps: impl Iterator<Item = &'a BTreeMap<String, Vec<Step>>>,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (host, steps) in maps.flatten() {
        for step in steps {
            if let Step::RemovePod { containers, .. } = step {
                out.extend(containers.iter().map(|c| (host.clone(), c.clone())));
            }
        }
    }
    out
}

fn remove_step(p: &ObservedPod, stop_timeout_s: u32) -> Step {
    Step::RemovePod {
        pod: p.name.clone(),
        containers: container_names(p),
        stop_timeout_s,
    }
}

fn await_step(d: &Deployment, pod: &str, containers: Vec<String>) -> Step {
    Step::AwaitReady {
        pod: pod.to_string(),
        containers,
        min_ready_ms: d.strategy.min_ready_ms,
        timeout_ms: d.strategy.health_timeout_ms,
        join: None,
    }
}

fn new_container_names(pod: &PodPlan) -> Vec<String> {
    pod.containers.iter().map(|c| c.name.clone()).collect()
}

/// Create a pod and wait for its health gate; with a service it joins once healthy.
fn create_and_await(d: &Deployment, pod: PodPlan) -> Vec<Step> {
    let join = (!pod.aliases.is_empty()).then(|| ServiceJoin {
        container: pod.containers[0].name.clone(),
        network: pod.network.clone(),
        aliases: pod.aliases.clone(),
    });
    let wait = Step::AwaitReady {
        pod: pod.name.clone(),
        containers: new_container_names(&pod),
        min_ready_ms: d.strategy.min_ready_ms,
        timeout_ms: d.strategy.health_timeout_ms,
        join,
    };
    vec![Step::CreatePod { pod }, wait]
}

fn remove_new(pod: &PodPlan, stop_timeout_s: u32) -> Step {
    Step::RemovePod {
        pod: pod.name.clone(),
        containers: new_container_names(pod),
        stop_timeout_s,
    }
}

fn stop_step(p: &ObservedPod, stop_timeout_s: u32) -> Step {
    Step::StopPod {
        pod: p.name.clone(),
        containers: container_names(p),
        stop_timeout_s,
    }
}

/// The container of an observed pod that owns its network (index 0).
fn network_owner(p: &ObservedPod) -> String {
    p.network_owner()
        .map(|c| c.name.clone())
        .unwrap_or_else(|| container_names(p)[0].clone())
}

/// An observed pod's service membership, as the new pods of its deployment have it.
fn membership(p: &ObservedPod, like: &PodPlan) -> Option<ServiceJoin> {
    (!like.aliases.is_empty()).then(|| ServiceJoin {
        container: network_owner(p),
        network: like.network.clone(),
        aliases: like.aliases.clone(),
    })
}

/// Takes pods out of their service, the last one waiting for the drain (they drain together).
fn leave_steps<P: AsRef<str>>(pods: &[(P, ServiceJoin)], drain_ms: u64) -> Vec<Step> {
    pods.iter()
        .enumerate()
        .map(|(i, (pod, leave))| Step::LeaveService {
            pod: pod.as_ref().to_string(),
            leave: leave.clone(),
            drain_ms: if i + 1 == pods.len() { drain_ms } else { 0 },
        })
        .collect()
}

fn join_step(p: &ObservedPod, join: ServiceJoin) -> Step {
    Step::JoinService {
        pod: p.name.clone(),
        join,
    }
}

fn start_step(p: &ObservedPod) -> Step {
    Step::StartPod {
        pod: p.name.clone(),
        containers: container_names(p),
    }
}

/// Steps per host in phases: every pod's first step, then every pod's second step, and so
/// on (create all, then await all, then join all), so that the pods of one wave on one host
/// come up together rather than one after another.
#[derive(Default)]
struct Phased {
    phases: Vec<BTreeMap<String, Vec<Step>>>,
}

impl Phased {
    fn add(&mut self, host: &str, steps: impl IntoIterator<Item = Step>) {
        for (i, step) in steps.into_iter().enumerate() {
            if self.phases.len() <= i {
                self.phases.push(BTreeMap::new());
            }
            self.phases[i]
                .entry(host.to_string())
                .or_default()
                .push(step);
        }
    }

    fn is_empty(&self) -> bool {
        self.phases.is_empty()
    }

    fn into_steps(self) -> BTreeMap<String, Vec<Step>> {
        let mut steps: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for phase in self.phases {
            for (host, s) in phase {
                steps.entry(host).or_default().extend(s);
            }
        }
        steps
    }
}

/// One old pod to be replaced by a new one on a host.
struct Replacement {
    host: String,
    new: PodPlan,
    old: ObservedPod,
    /// The pod publishes a host port, so the old pod must stop before the new one starts.
    stop_first: bool,
}

/// Rebuilds the plan of an observed pod from its labels (`berth.spec`, `berth.index`), so a
/// rollback can bring it back after it was removed. `None` for pods without those labels.
fn restore_plan(old: &ObservedPod, like: &PodPlan) -> Option<PodPlan> {
    let mut containers = Vec::new();
    for c in &old.containers {
        let index: usize = c.label(label::INDEX)?.parse().ok()?;
        let spec: ContainerSpec = serde_json::from_str(c.label(label::SPEC)?).ok()?;
        containers.push((
            index,
            ContainerPlan {
                name: c.name.clone(),
                spec,
                // Secrets are sealed again (new salts) when the pod is created; no record of
                // them goes into a plan.
                labels: c
                    .labels
                    .iter()
                    .filter(|(k, _)| k.as_str() != crate::model::secret::SECRETS_LABEL)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
        ));
    }
    containers.sort_by_key(|(i, _)| *i);
    Some(PodPlan {
        name: old.name.clone(),
        deployment: old.deployment.clone(),
        network: like.network.clone(),
        aliases: like.aliases.clone(),
        containers: containers.into_iter().map(|(_, c)| c).collect(),
    })
}

/// Rolling update in batches of `max_surge + max_unavailable` pods, taken round robin across
/// hosts. In each batch the first `max_unavailable` old pods (and any that hold a host port)
/// stop first; then the new pods start, pass their health gate, and the old pods go. If a
/// batch fails, its new pods are removed, its stopped pods start again, and the pods replaced
/// by earlier batches are recreated before their replacements go: the old replica set is back
/// at full count.
fn rolling_waves(d: &Deployment, replacements: Vec<Replacement>) -> Vec<Wave> {
    let (surge, unavailable) = d.strategy.rolling_budget(d.replicas);
    let batch = (surge + unavailable).max(1) as usize;
    let mut queues: BTreeMap<String, std::collections::VecDeque<Replacement>> = BTreeMap::new();
    for r in replacements {
        queues.entry(r.host.clone()).or_default().push_back(r);
    }
    let mut order = Vec::new();
    while queues.values().any(|q| !q.is_empty()) {
        for q in queues.values_mut() {
            order.extend(q.pop_front());
        }
    }
    let batches: Vec<&[Replacement]> = order.chunks(batch).collect();
    let mut waves = Vec::new();
    let mut done: Vec<&Replacement> = Vec::new();
    // The old pods of a batch are removed at the start of the next one, where they run
    // beside the next batch's work on other hosts instead of holding up the rollout.
    let mut leftover: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    let mut leftover_removes: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    let drain = d.strategy.drain_ms;
    for (n, chunk) in batches.iter().enumerate() {
        let mut stops: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        let mut starts = Phased::default();
        let mut removes: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        let mut undo: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        // Old pods leave their service before they stop: those that stop first right away,
        // the others once their replacements are ready.
        let mut leave_first: BTreeMap<String, Vec<(&str, ServiceJoin)>> = BTreeMap::new();
        let mut leave_after: BTreeMap<String, Vec<(&str, ServiceJoin)>> = BTreeMap::new();
        let mut rejoin: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for (j, r) in chunk.iter().enumerate() {
            let stop_first = r.stop_first || j < unavailable as usize;
            undo.entry(r.host.clone())
                .or_default()
                .push(remove_new(&r.new, d.strategy.stop_timeout_s));
            let service = membership(&r.old, &r.new);
            if let Some(s) = &service {
                let leaving = if stop_first {
                    &mut leave_first
                } else {
                    &mut leave_after
                };
                leaving
                    .entry(r.host.clone())
                    .or_default()
                    .push((r.old.name.as_str(), s.clone()));
            }
            if stop_first {
                stops
                    .entry(r.host.clone())
                    .or_default()
                    .push(stop_step(&r.old, d.strategy.stop_timeout_s));
                undo.entry(r.host.clone())
                    .or_default()
                    .push(start_step(&r.old));
            }
            if let Some(s) = service {
                rejoin
                    .entry(r.host.clone())
                    .or_default()
                    .push(join_step(&r.old, s));
            }
            starts.add(&r.host, create_and_await(d, r.new.clone()));
            removes
                .entry(r.host.clone())
                .or_default()
                .push(remove_step(&r.old, d.strategy.stop_timeout_s));
        }
        for (host, steps) in rejoin {
            undo.entry(host).or_default().extend(steps);
        }
        for (host, pods) in &leave_first {
            let mut s = leave_steps(pods, drain);
            s.extend(stops.remove(host).unwrap_or_default());
            stops.insert(host.clone(), s);
        }
        // Creates go in the batch's first wave, beside the previous batch's old pods leaving
        // and draining (terminating pods do not count against the surge, as in Kubernetes),
        // so Docker's container start overlaps a wait the strategy needs anyway. The health
        // gates form the second wave.
        let mut phases = starts.phases;
        let creates = if phases.is_empty() {
            BTreeMap::new()
        } else {
            phases.remove(0)
        };
        let gates = Phased { phases }.into_steps();
        // This batch's old pods leave and drain in the next batch's first wave and are
        // removed in its second, beside the next pods' gates (off the critical path).
        let mut next: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for (host, pods) in &leave_after {
            next.entry(host.clone())
                .or_default()
                .extend(leave_steps(pods, drain));
        }
        let mut restore = Phased::default();
        let mut retire: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for r in &done {
            if let Some(old) = restore_plan(&r.old, &r.new) {
                restore.add(&r.host, create_and_await(d, old));
                retire
                    .entry(r.host.clone())
                    .or_default()
                    .push(remove_new(&r.new, d.strategy.stop_timeout_s));
            }
        }
        for (host, steps) in restore.into_steps().into_iter().chain(retire) {
            undo.entry(host).or_default().extend(steps);
        }
        let mut steps = std::mem::replace(&mut leftover, next);
        for (host, s) in stops.into_iter().chain(creates) {
            steps.entry(host).or_default().extend(s);
        }
        let mut gate_steps = std::mem::replace(&mut leftover_removes, removes);
        for (host, s) in gates {
            gate_steps.entry(host).or_default().extend(s);
        }
        let olds: Vec<&str> = chunk.iter().map(|r| r.old.name.as_str()).collect();
        let news: Vec<&str> = chunk.iter().map(|r| r.new.name.as_str()).collect();
        let batch = format!("{}: rolling batch {}/{}", d.name, n + 1, batches.len());
        waves.push(Wave {
            deployment: None,
            description: format!(
                "{batch} (surge {surge}, unavailable {unavailable}): replace {} with {}",
                olds.join(", "),
                news.join(", ")
            ),
            steps,
            on_failure: undo.clone(),
        });
        waves.push(Wave {
            deployment: None,
            description: format!("{batch}: health gate of {}", news.join(", ")),
            steps: gate_steps,
            on_failure: undo,
        });
        done.extend(chunk.iter());
    }
    for (host, s) in leftover_removes {
        leftover.entry(host).or_default().extend(s);
    }
    if !leftover.is_empty() {
        waves.push(Wave {
            deployment: None,
            description: format!("{}: retire the last replaced pods", d.name),
            steps: leftover,
            on_failure: BTreeMap::new(),
        });
    }
    waves
}

/// Orders one deployment's work into waves according to its strategy.
fn waves_for(d: &Deployment, work: Vec<Work>, network: &str) -> Vec<Wave> {
    let aliases: Vec<String> = d.service.iter().map(|s| s.name.clone()).collect();
    let mut waves = Vec::new();
    let mut starts = Phased::default();
    let mut fresh = Phased::default();
    let mut fresh_undo: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    let mut replacements = Vec::new();
    let mut removals: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    for w in work {
        match w {
            Work::Start(p) => {
                // A stopped pod may never have joined its service (an apply stopped between
                // creating and gating it): it joins once ready, whatever it had before.
                let mut gate = await_step(d, &p.name, container_names(&p));
                if let (Step::AwaitReady { join, .. }, false) = (&mut gate, aliases.is_empty()) {
                    *join = Some(ServiceJoin {
                        container: network_owner(&p),
                        network: network.to_string(),
                        aliases: aliases.clone(),
                    });
                }
                starts.add(&p.host, [start_step(&p), gate]);
            }
            Work::Create {
                new,
                host,
                replaces: None,
                ..
            } => {
                fresh_undo
                    .entry(host.clone())
                    .or_default()
                    .push(remove_new(&new, d.strategy.stop_timeout_s));
                fresh.add(&host, create_and_await(d, new));
            }
            Work::Create {
                new,
                host,
                replaces: Some(old),
                stop_first,
            } => replacements.push(Replacement {
                host,
                new,
                old,
                stop_first,
            }),
            Work::Remove(p) => {
                let steps = removals.entry(p.host.clone()).or_default();
                if !aliases.is_empty() {
                    let leave = ServiceJoin {
                        container: network_owner(&p),
                        network: network.to_string(),
                        aliases: aliases.clone(),
                    };
                    steps.extend(leave_steps(&[(&p.name, leave)], d.strategy.drain_ms));
                }
                steps.push(remove_step(&p, d.strategy.stop_timeout_s));
            }
        }
    }
    if !starts.is_empty() {
        waves.push(Wave {
            deployment: None,
            description: format!("{}: start stopped pods", d.name),
            steps: starts.into_steps(),
            on_failure: BTreeMap::new(),
        });
    }
    if !fresh.is_empty() {
        waves.push(Wave {
            deployment: None,
            description: format!("{}: create new pods", d.name),
            steps: fresh.into_steps(),
            on_failure: fresh_undo,
        });
    }
    match d.strategy.kind {
        StrategyKind::Rolling => waves.extend(rolling_waves(d, replacements)),
        StrategyKind::Recreate if !replacements.is_empty() => {
            let mut stop: BTreeMap<String, Vec<Step>> = BTreeMap::new();
            let mut create = Phased::default();
            let mut undo: BTreeMap<String, Vec<Step>> = BTreeMap::new();
            let mut remove: BTreeMap<String, Vec<Step>> = BTreeMap::new();
            for Replacement { host, new, old, .. } in replacements {
                stop.entry(host.clone())
                    .or_default()
                    .push(stop_step(&old, d.strategy.stop_timeout_s));
                let u = undo.entry(host.clone()).or_default();
                u.push(remove_new(&new, d.strategy.stop_timeout_s));
                u.push(start_step(&old));
                create.add(&host, create_and_await(d, new));
                remove
                    .entry(host)
                    .or_default()
                    .push(remove_step(&old, d.strategy.stop_timeout_s));
            }
            waves.push(Wave {
                deployment: None,
                description: format!("{}: stop the old pods (recreate)", d.name),
                steps: stop,
                on_failure: BTreeMap::new(),
            });
            waves.push(Wave {
                deployment: None,
                description: format!("{}: start the new pods", d.name),
                steps: create.into_steps(),
                on_failure: undo,
            });
            waves.push(Wave {
                deployment: None,
                description: format!("{}: remove the old pods", d.name),
                steps: remove,
                on_failure: BTreeMap::new(),
            });
        }
        StrategyKind::Recreate => {}
        StrategyKind::Canary | StrategyKind::BlueGreen => {
            waves.extend(rolling_waves(d, replacements))
        }
    }
    if !removals.is_empty() {
        waves.push(Wave {
            deployment: None,
            description: format!("{}: remove surplus pods", d.name),
            steps: removals,
            on_failure: BTreeMap::new(),
        });
    }
    waves
}
