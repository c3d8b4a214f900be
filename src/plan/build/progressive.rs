//! Canary and blue-green: rollouts that run two revisions at once, move the service name
//! between them, and remember between runs where they stand (`model::rollout`). Pure.
//!
//! Canary: each `weight` step replaces stable pods with canary pods one for one on the same
//! host (a canary joins the service once healthy; the stable pod leaves, drains and is
//! stopped, not removed, so an abort brings it back in seconds). `pause: {}` records the
//! rollout as paused and ends the plan; `berth promote` plans the rest. After the last step
//! the remaining stable pods are replaced and the stopped ones removed.
//!
//! Blue-green: the complete new set starts behind `<service>-preview`; promotion moves the
//! service name to it on every host at once, and the old set stays out of service for
//! `scale_down_delay` so that `berth rollback` can switch back.

use super::*;
use crate::model::{self, rollout::rfc3339};

/// What the user asked of a rollout in progress (`berth promote|abort|rollback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Promote,
    Abort,
    Rollback,
}

/// A running pod that is or will be behind a service name.
#[derive(Debug, Clone)]
struct Member {
    host: String,
    pod: String,
    /// The container that owns the pod's network (where aliases live).
    container: String,
    containers: Vec<String>,
}

impl Member {
    fn observed(p: &ObservedPod) -> Member {
        Member {
            host: p.host.clone(),
            pod: p.name.clone(),
            container: network_owner(p),
            containers: container_names(p),
        }
    }

    fn planned(host: &str, p: &PodPlan) -> Member {
        Member {
            host: host.to_string(),
            pod: p.name.clone(),
            container: p.containers[0].name.clone(),
            containers: new_container_names(p),
        }
    }
}

/// The pods of a deployment in a rollout, by role.
struct Sets {
    /// Running pods of the desired revision.
    new: Vec<Member>,
    /// Running pods of the stable revision.
    stable: Vec<ObservedPod>,
    /// Stopped pods of the stable revision, kept for an abort.
    parked: Vec<ObservedPod>,
    /// Everything else (other revisions, broken new pods): removed.
    other: Vec<ObservedPod>,
}

/// The steps of one wave, per host, in order.
type HostSteps = BTreeMap<String, Vec<Step>>;

fn push(map: &mut HostSteps, host: &str, steps: impl IntoIterator<Item = Step>) {
    map.entry(host.to_string()).or_default().extend(steps);
}

/// Everything the waves of one rollout need to know.
struct Flow<'d> {
    d: &'d Deployment,
    revision: String,
    stable_revision: String,
    network: String,
    service: String,
    /// The reachable hosts the deployment may run on.
    eligible: Vec<String>,
    /// Hosts that carry the rollout state: every host with a pod or a place for one.
    state_hosts: Vec<String>,
    waves: Vec<Wave>,
}

impl Flow<'_> {
    fn join(&self, m: &Member, aliases: &[String]) -> Step {
        Step::JoinService {
            pod: m.pod.clone(),
            join: ServiceJoin {
                container: m.container.clone(),
                network: self.network.clone(),
                aliases: aliases.to_vec(),
            },
        }
    }

    /// Members leave the service together; the last one waits for the drain.
    fn leave(&self, members: &[&Member]) -> Vec<Step> {
        let pods: Vec<(&str, ServiceJoin)> = members
            .iter()
            .map(|m| {
                let leave = ServiceJoin {
                    container: m.container.clone(),
                    network: self.network.clone(),
                    aliases: vec![self.service.clone()],
                };
                (m.pod.as_str(), leave)
            })
            .collect();
        leave_steps(&pods, self.d.strategy.drain_ms)
    }

    fn remove(&self, m: &Member) -> Step {
        Step::RemovePod {
            pod: m.pod.clone(),
            containers: m.containers.clone(),
            stop_timeout_s: self.d.strategy.stop_timeout_s,
        }
    }

    fn record(&self, state: Option<model::Rollout>) -> HostSteps {
        self.state_hosts
            .iter()
            .map(|h| {
                (
                    h.clone(),
                    vec![Step::RecordRollout {
                        deployment: self.d.name.clone(),
                        state: state.clone(),
                    }],
                )
            })
            .collect()
    }

    fn state(&self, phase: model::Phase, step: usize, weight: u32) -> model::Rollout {
        model::Rollout {
            deployment: self.d.name.clone(),
            strategy: self.d.strategy.kind,
            revision: self.revision.clone(),
            stable: self.stable_revision.clone(),
            phase,
            step,
            weight,
            since: 0,
            attempt: Some(self.d.attempt()),
        }
    }

    fn wave(&mut self, description: String, steps: HostSteps, on_failure: HostSteps) {
        if steps.values().all(|s| s.is_empty()) {
            return;
        }
        self.waves.push(Wave {
            deployment: None,
            description: format!("{}: {description}", self.d.name),
            steps,
            on_failure,
        });
    }

    /// Takes members out of the service and removes them (the other revisions, a failed set).
    fn retire(&self, members: &[Member], steps: &mut HostSteps) {
        let mut by_host: BTreeMap<&str, Vec<&Member>> = BTreeMap::new();
        for m in members {
            by_host.entry(m.host.as_str()).or_default().push(m);
        }
        for (host, ms) in by_host {
            push(steps, host, self.leave(&ms));
            push(steps, host, ms.iter().map(|m| self.remove(m)));
        }
    }

    /// A stopped stable pod starts again and rejoins the service once healthy.
    fn bring_back(&self, m: &Member) -> [Step; 2] {
        [
            Step::StartPod {
                pod: m.pod.clone(),
                containers: m.containers.clone(),
            },
            Step::AwaitReady {
                pod: m.pod.clone(),
                containers: m.containers.clone(),
                min_ready_ms: self.d.strategy.min_ready_ms,
                timeout_ms: self.d.strategy.health_timeout_ms,
                join: Some(ServiceJoin {
                    container: m.container.clone(),
                    network: self.network.clone(),
                    aliases: vec![self.service.clone()],
                }),
            },
        ]
    }

    /// Blue-green after promotion: the old set (and any stray pods) go and the state is
    /// cleared.
    fn scale_down(&mut self, gone: &[Member]) {
        let mut steps = HostSteps::new();
        self.retire(gone, &mut steps);
        for (h, s) in self.record(None) {
            push(&mut steps, &h, s);
        }
        let description = format!("remove the old set (revision {})", self.stable_revision);
        self.wave(description, steps, HostSteps::new());
    }

    /// Canary abort: stopped stable pods start and rejoin the service, canary pods leave and
    /// go, and the revision is recorded as aborted.
    fn canary_abort(&self, canary: &[Member], parked: &[Member]) -> HostSteps {
        let mut phased = Phased::default();
        for m in parked {
            phased.add(&m.host, self.bring_back(m));
        }
        let mut steps = phased.into_steps();
        self.retire(canary, &mut steps);
        let state = self.state(model::Phase::Aborted, 0, 0);
        for (host, s) in self.record(Some(state)) {
            push(&mut steps, &host, s);
        }
        steps
    }
}

fn role_label(pod: &mut PodPlan, role: Role) {
    for c in &mut pod.containers {
        c.labels
            .insert(label::ROLE.to_string(), role.as_str().to_string());
    }
}

/// Pods taken round robin over hosts (the host with the most left first), so each step
/// spreads over the fleet.
fn round_robin(mut pods: Vec<ObservedPod>) -> Vec<ObservedPod> {
    pods.sort_by(|a, b| (&a.host, a.ordinal).cmp(&(&b.host, b.ordinal)));
    let mut queues: BTreeMap<String, std::collections::VecDeque<ObservedPod>> = BTreeMap::new();
    for p in pods {
        queues.entry(p.host.clone()).or_default().push_back(p);
    }
    let mut out = Vec::new();
    while let Some(host) = queues
        .iter()
        .filter(|(_, q)| !q.is_empty())
        .max_by_key(|(h, q)| (q.len(), std::cmp::Reverse((*h).clone())))
        .map(|(h, _)| h.clone())
    {
        out.extend(queues.get_mut(&host).and_then(|q| q.pop_front()));
    }
    out
}

impl Builder<'_> {
    /// Plans a canary or blue-green deployment that has a rollout to do or in progress.
    /// `None` when there is none: the deployment is planned like any other (scaling and
    /// repairs use rolling batches).
    pub(super) fn progressive(
        &mut self,
        d: &Deployment,
        hosts: &BTreeMap<String, HostState>,
    ) -> Option<Vec<Wave>> {
        let project = self.input.desired.project.clone();
        let revision = d.revision(&project);
        let mine = self.pods_of(d);
        let state = model::Rollout::of(self.input.observed, &d.name).cloned();
        let intent = self.input.intents.get(&d.name).copied();
        let outdated = mine.iter().any(|p| p.revision != revision);
        if !outdated {
            if intent.is_some() {
                self.rollout_issue(d, format!("{} has no rollout in progress", d.name));
            }
            // Every pod is on the revision, but its rollout's state was not cleared (an apply
            // stopped just before): forget it, so nothing says the rollout is still going.
            if let Some(s) = state.filter(|s| {
                s.revision == revision
                    && matches!(s.phase, model::Phase::Paused | model::Phase::Promoted)
            }) {
                let carriers = self.state_carriers(d);
                let record = Step::RecordRollout {
                    deployment: d.name.clone(),
                    state: None,
                };
                self.rollout_issue(
                    d,
                    format!(
                        "every pod of {} runs revision {}: its rollout is complete",
                        d.name, s.revision
                    ),
                );
                return Some(vec![Wave {
                    deployment: Some(d.name.clone()),
                    description: format!("the rollout of {} is complete: forget its state", d.name),
                    steps: carriers
                        .into_iter()
                        .map(|h| (h, vec![record.clone()]))
                        .collect(),
                    on_failure: BTreeMap::new(),
                }]);
            }
            return None;
        }
        let service = d.service.as_ref()?.name.clone();
        // The revision that serves: a promoted blue-green's new set, otherwise the stable set
        // of the last rollout, otherwise the one most running pods have.
        let serving_revision = state.as_ref().map(|s| match s.phase {
            model::Phase::Promoted => s.revision.clone(),
            _ => s.stable.clone(),
        });
        let stable_revision = serving_revision
            .filter(|r| *r != revision && mine.iter().any(|p| &p.revision == r))
            .unwrap_or_else(|| most_common_revision(&mine, &revision));
        let mut sets = Sets {
            new: vec![],
            stable: vec![],
            parked: vec![],
            other: vec![],
        };
        for p in mine.iter().cloned() {
            if p.revision == revision && p.is_running() {
                sets.new.push(Member::observed(&p));
            } else if p.revision == stable_revision && p.is_running() {
                sets.stable.push(p);
            } else if p.revision == stable_revision && p.is_stopped() {
                sets.parked.push(p);
            } else {
                sets.other.push(p);
            }
        }
        let reachable = |h: &String| hosts.get(h).is_some_and(|s| s.reachable);
        let mut eligible: Vec<String> = self
            .input
            .desired
            .eligible_hosts(d)
            .into_iter()
            .map(|h| h.name.clone())
            .filter(reachable)
            .collect();
        eligible.sort();
        let mut state_hosts: Vec<String> = mine.iter().map(|p| p.host.clone()).collect();
        state_hosts.retain(reachable);
        state_hosts.extend(eligible.iter().cloned());
        state_hosts.sort();
        state_hosts.dedup();
        let mut r = Flow {
            d,
            network: network_name(&project),
            revision: revision.clone(),
            stable_revision,
            service,
            eligible,
            state_hosts,
            waves: vec![],
        };
        // The state of this revision's rollout, if it has one; an abort of an earlier attempt
        // (another strategy) does not hold for this one.
        let attempt = d.attempt();
        let current = state.filter(|s| {
            s.revision == revision
                && s.phase != model::Phase::Failed
                && (s.phase != model::Phase::Aborted || s.stops(&revision, &attempt))
        });
        match d.strategy.kind {
            StrategyKind::Canary => self.canary(&mut r, sets, current, intent),
            _ => self.blue_green(&mut r, sets, current, intent),
        }
        Some(r.waves)
    }

    fn rollout_issue(&mut self, d: &Deployment, message: String) {
        self.issues.push(Issue {
            kind: IssueKind::Rollout,
            host: None,
            deployment: Some(d.name.clone()),
            pod: None,
            message,
        });
    }

    /// Notes a paused or aborted rollout; `true` when nothing more is to be planned.
    fn waiting(
        &mut self,
        r: &Flow,
        current: &Option<model::Rollout>,
        intent: Option<Intent>,
    ) -> bool {
        let Some(s) = current else { return false };
        let d = r.d;
        match (s.phase, intent) {
            (model::Phase::Aborted, Some(Intent::Promote)) => false,
            (model::Phase::Aborted, _) => {
                self.rollout_issue(
                    d,
                    format!(
                        "the rollout of revision {} was aborted (since {}); push a new revision, or run `berth promote {}` to try it again",
                        s.revision,
                        rfc3339(s.since),
                        d.name
                    ),
                );
                true
            }
            (model::Phase::Paused, None) => {
                let at = if d.strategy.kind == StrategyKind::Canary {
                    format!("at step {} (weight {}%)", s.step + 1, s.weight)
                } else {
                    format!(
                        "with the new set behind {}",
                        names::preview_alias(&r.service)
                    )
                };
                self.rollout_issue(
                    d,
                    format!(
                        "revision {} is paused {at} since {}; `berth promote {}` goes on, `berth abort {}` rolls back",
                        s.revision,
                        rfc3339(s.since),
                        d.name,
                        d.name
                    ),
                );
                true
            }
            _ => false,
        }
    }

    fn blue_green(
        &mut self,
        r: &mut Flow,
        sets: Sets,
        current: Option<model::Rollout>,
        intent: Option<Intent>,
    ) {
        let d = r.d;
        if self.waiting(r, &current, intent) {
            return;
        }
        let phase = current.as_ref().map(|s| s.phase);
        let old: Vec<Member> = sets.stable.iter().map(Member::observed).collect();
        let mut gone: Vec<Member> = sets
            .other
            .iter()
            .chain(&sets.parked)
            .map(Member::observed)
            .collect();
        let service = vec![r.service.clone()];
        match (phase, intent) {
            (Some(model::Phase::Promoted), Some(Intent::Rollback | Intent::Abort))
                if old.len() < d.replicas as usize =>
            {
                // The old set's scale-down had begun (an apply stopped in it): switching back
                // would leave the service short.
                self.rollout_issue(
                    d,
                    format!(
                        "cannot roll back to revision {}: only {} of {} pod(s) of the old set are left; commit the previous revision to go back",
                        r.stable_revision,
                        old.len(),
                        d.replicas
                    ),
                );
            }
            (Some(model::Phase::Promoted), Some(Intent::Rollback | Intent::Abort)) => {
                let mut steps = HostSteps::new();
                for m in &old {
                    push(&mut steps, &m.host, [r.join(m, &service)]);
                    self.switch_change(
                        d,
                        &m.host,
                        format!("roll back: {} answers as {} again", m.pod, r.service),
                    );
                }
                let mut by_host: BTreeMap<String, Vec<&Member>> = BTreeMap::new();
                for m in &sets.new {
                    by_host.entry(m.host.clone()).or_default().push(m);
                }
                for (host, ms) in by_host {
                    push(&mut steps, &host, r.leave(&ms));
                    push(&mut steps, &host, ms.iter().map(|m| r.remove(m)));
                    for m in ms {
                        self.member_change(d, m, Action::Remove, "rolled back".into());
                    }
                }
                let desc = format!(
                    "roll back to revision {}: the service moves back to the old set",
                    r.stable_revision
                );
                r.wave(desc, steps, HostSteps::new());
                let aborted = r.state(model::Phase::Aborted, 0, 0);
                let record = r.record(Some(aborted));
                r.wave("record the rollback".into(), record, HostSteps::new());
            }
            (Some(model::Phase::Promoted), _) => {
                let s = current.as_ref().expect("promoted");
                let until = s.since + d.strategy.scale_down_delay_ms.div_ceil(1000);
                if self.input.now < until {
                    self.rollout_issue(
                        d,
                        format!(
                            "revision {} is promoted; the old set (revision {}) stays out of service until {} for `berth rollback {}`",
                            r.revision,
                            r.stable_revision,
                            rfc3339(until),
                            d.name
                        ),
                    );
                    return;
                }
                gone.extend(old);
                for m in &gone {
                    self.member_change(
                        d,
                        m,
                        Action::Remove,
                        format!(
                            "old set after promotion (scale_down_delay {}s passed)",
                            d.strategy.scale_down_delay_ms / 1000
                        ),
                    );
                }
                r.scale_down(&gone);
            }
            (Some(model::Phase::Paused), Some(Intent::Abort | Intent::Rollback)) => {
                gone.extend(sets.new.iter().cloned());
                let mut steps = HostSteps::new();
                for m in &gone {
                    self.member_change(
                        d,
                        m,
                        Action::Remove,
                        "blue-green aborted before promotion".into(),
                    );
                }
                r.retire(&gone, &mut steps);
                for (h, s) in r.record(Some(r.state(model::Phase::Aborted, 0, 0))) {
                    push(&mut steps, &h, s);
                }
                r.wave(
                    format!("abort revision {}: remove the new set", r.revision),
                    steps,
                    HostSteps::new(),
                );
            }
            (Some(model::Phase::Paused), Some(Intent::Promote)) => {
                self.promote(r, &sets.new, &old);
            }
            _ => self.start_new_set(r, &sets, &gone, &old),
        }
    }

    /// Blue-green: removes pods of other revisions, starts (or completes) the new set beside
    /// the old one behind the preview name, then promotes it or waits for `berth promote`.
    fn start_new_set(&mut self, r: &mut Flow, sets: &Sets, gone: &[Member], old: &[Member]) {
        let d = r.d;
        let mut cleanup = HostSteps::new();
        for m in gone {
            let reason = format!("neither revision {} nor {}", r.revision, r.stable_revision);
            self.member_change(d, m, Action::Remove, reason);
        }
        r.retire(gone, &mut cleanup);
        r.wave(
            "remove pods of other revisions".into(),
            cleanup,
            HostSteps::new(),
        );
        let preview = names::preview_alias(&r.service);
        let role = sets
            .stable
            .first()
            .and_then(|p| p.containers[0].role())
            .unwrap_or(Role::Stable)
            .next_colour();
        let mut current_count: BTreeMap<String, u32> = BTreeMap::new();
        for p in &sets.stable {
            *current_count.entry(p.host.clone()).or_default() += 1;
        }
        let (target, _) =
            placement::place(d.replicas, &r.eligible, &current_count, d.pods_per_host());
        let mut ordinal = self.next_ordinals(d);
        let mut start = Phased::default();
        let mut undo = HostSteps::new();
        let mut members = sets.new.clone();
        // Pods of this revision that are already there (an earlier run, a revert to a kept
        // old set) wait behind the preview name too.
        for m in &sets.new {
            // One already behind the service (a promotion was cut short) is left there until
            // the promotion moves the rest: taking it off could leave a host with no pod
            // behind the service.
            let serving = self
                .pods
                .iter()
                .find(|p| p.name == m.pod && p.host == m.host)
                .and_then(|p| p.behind(&[&r.service]))
                .is_some_and(|b| !b.is_empty());
            if !serving {
                start.add(&m.host, [r.join(m, std::slice::from_ref(&preview))]);
            }
        }
        let reason = format!(
            "blue-green: new set (revision {}) beside revision {}, behind {preview}",
            r.revision, r.stable_revision
        );
        for (host, want) in &target {
            let have = sets.new.iter().filter(|m| &m.host == host).count() as u32;
            for _ in have..*want {
                let mut pod = self.pod_plan(d, &r.revision, ordinal(), host);
                pod.aliases = vec![preview.clone()];
                role_label(&mut pod, role);
                let name = Some(pod.name.clone());
                let (kind, why) = (ChangeKind::Pending, reason.clone());
                self.change(d, host, Action::Create, kind, None, name, why, vec![]);
                members.push(Member::planned(host, &pod));
                start.add(host, create_and_await(d, pod));
            }
        }
        for m in &members {
            push(&mut undo, &m.host, [r.remove(m)]);
        }
        for (h, s) in r.record(Some(r.state(model::Phase::Aborted, 0, 0))) {
            push(&mut undo, &h, s);
        }
        let desc = format!(
            "start the new set (revision {}) behind {preview}",
            r.revision
        );
        r.wave(desc, start.into_steps(), undo);
        if d.strategy.auto_promote {
            self.promote(r, &members, old);
        } else {
            let record = r.record(Some(r.state(model::Phase::Paused, 0, 100)));
            r.wave(
                format!("wait behind {preview} for `berth promote {}`", d.name),
                record,
                HostSteps::new(),
            );
            let note = format!(
                "the new set will wait behind {preview}; `berth promote {}` moves {} to it",
                d.name, r.service
            );
            self.rollout_issue(d, note);
        }
    }

    /// Blue-green promotion: the new set joins the service and the old set leaves it, on
    /// every host in the same wave; the old set stays for `scale_down_delay`.
    fn promote(&mut self, r: &mut Flow, new: &[Member], old: &[Member]) {
        let d = r.d;
        let service = vec![r.service.clone()];
        let mut steps = HostSteps::new();
        let mut undo = HostSteps::new();
        let mut hosts: BTreeSet<&str> = BTreeSet::new();
        for m in new {
            push(&mut steps, &m.host, [r.join(m, &service)]);
            hosts.insert(&m.host);
        }
        let mut by_host: BTreeMap<String, Vec<&Member>> = BTreeMap::new();
        for m in old {
            by_host.entry(m.host.clone()).or_default().push(m);
            hosts.insert(&m.host);
            push(&mut undo, &m.host, [r.join(m, &service)]);
        }
        for (host, ms) in &by_host {
            push(&mut steps, host, r.leave(ms));
        }
        for host in hosts {
            self.switch_change(
                d,
                host,
                format!("promote: {} moves to revision {}", r.service, r.revision),
            );
        }
        let delay = d.strategy.scale_down_delay_ms;
        let promoted = r.state(model::Phase::Promoted, 0, 100);
        for (h, s) in r.record(Some(promoted)) {
            push(&mut steps, &h, s);
        }
        r.wave(
            format!(
                "promote revision {}: {} moves to the new set on every host",
                r.revision, r.service
            ),
            steps,
            undo,
        );
        if delay == 0 {
            for m in old {
                self.member_change(d, m, Action::Remove, "old set after promotion".into());
            }
            r.scale_down(old);
        } else {
            let note = format!(
                "after promotion the old set stays out of service for {}s, for `berth rollback {}`",
                delay / 1000,
                d.name
            );
            self.rollout_issue(d, note);
        }
    }

    fn canary(
        &mut self,
        r: &mut Flow,
        sets: Sets,
        current: Option<model::Rollout>,
        intent: Option<Intent>,
    ) {
        let d = r.d;
        let parked: Vec<Member> = sets.parked.iter().map(Member::observed).collect();
        let stable_left = sets.stable.len() + sets.parked.len();
        if matches!(intent, Some(Intent::Abort | Intent::Rollback))
            && stable_left < d.replicas as usize
            && !sets.new.is_empty()
        {
            // The canary got past the point where its stable pods were removed (a promote
            // stopped in its last wave): an abort would leave the service short.
            self.rollout_issue(
                d,
                format!(
                    "the canary of revision {} cannot be aborted: only {stable_left} of {} stable pod(s) are left; `berth promote {}` completes it, or commit the previous revision to go back",
                    r.revision, d.replicas, d.name
                ),
            );
            return;
        }
        if matches!(intent, Some(Intent::Abort | Intent::Rollback)) {
            for m in &parked {
                self.member_change(
                    d,
                    m,
                    Action::Start,
                    "canary aborted: the stable pod comes back".into(),
                );
            }
            // Canary pods of an older revision (Git moved on since) go too; the revision
            // recorded as aborted is the one whose canary ran.
            let mut canary = sets.new.clone();
            canary.extend(sets.other.iter().map(Member::observed));
            for m in &canary {
                self.member_change(d, m, Action::Remove, "canary aborted".into());
            }
            if sets.new.is_empty() {
                if let Some(p) = sets.other.first() {
                    r.revision = p.revision.clone();
                }
            }
            let steps = r.canary_abort(&canary, &parked);
            r.wave(
                format!("abort the canary of revision {}", r.revision),
                steps,
                HostSteps::new(),
            );
            return;
        }
        // More canary pods than the recorded pause has: a `promote` was killed half-way
        // through the next step. It goes on (it was asked for); the steps below count what
        // is there.
        let mut intent = intent;
        if let Some(s) = current.as_ref().filter(|s| s.phase == model::Phase::Paused) {
            let stable_set = sets.stable.len() + sets.parked.len();
            let at_pause = (stable_set as u64 * s.weight as u64).div_ceil(100) as usize;
            if intent.is_none() && sets.new.len() > at_pause {
                self.rollout_issue(
                    d,
                    format!(
                        "a promote of revision {} stopped half-way past the pause at weight {}%: it goes on",
                        s.revision, s.weight
                    ),
                );
                intent = Some(Intent::Promote);
            }
        }
        if self.waiting(r, &current, intent) {
            return;
        }
        let first = match (&current, intent) {
            (Some(s), Some(Intent::Promote)) if s.phase == model::Phase::Paused => s.step + 1,
            _ => 0,
        };
        // Pods of other revisions go; a canary started over brings its stopped pods back.
        let mut canary = sets.new.clone();
        let mut serving = sets.stable.clone();
        let mut stopped: Vec<Member> = parked.clone();
        let mut cleanup = Phased::default();
        let gone: Vec<Member> = sets.other.iter().map(Member::observed).collect();
        for m in &gone {
            self.member_change(
                d,
                m,
                Action::Remove,
                format!("neither revision {} nor {}", r.revision, r.stable_revision),
            );
        }
        // A canary that starts (over) keeps one stopped stable pod per canary pod, as its own
        // steps leave it: stopped pods beyond that come back; if an apply was killed between
        // starting a canary pod and stopping the stable one it replaces, a stable pod leaves
        // and stops now. So canary + serving is the stable set's size, and nothing is left
        // over when the canary completes.
        let mut parking: Vec<Member> = Vec::new();
        if first == 0 {
            let keep = canary.len().min(sets.parked.len());
            stopped = sets.parked[..keep].iter().map(Member::observed).collect();
            for p in &sets.parked[keep..] {
                let m = Member::observed(p);
                self.member_change(
                    d,
                    &m,
                    Action::Start,
                    "the stable set is complete again before the canary starts".into(),
                );
                cleanup.add(&m.host, r.bring_back(&m));
                serving.push(p.clone());
            }
        }
        {
            let extra = canary.len().saturating_sub(stopped.len());
            serving = round_robin(serving);
            for p in serving.drain(..extra.min(serving.len())) {
                let m = Member::observed(&p);
                self.member_change(
                    d,
                    &m,
                    Action::Switch,
                    "a canary pod already replaces it (an apply stopped half-way): it leaves and stops".into(),
                );
                parking.push(m);
            }
        }
        let mut cleanup = cleanup.into_steps();
        for m in &parking {
            push(&mut cleanup, &m.host, r.leave(&[m]));
            push(
                &mut cleanup,
                &m.host,
                [Step::StopPod {
                    pod: m.pod.clone(),
                    containers: m.containers.clone(),
                    stop_timeout_s: d.strategy.stop_timeout_s,
                }],
            );
        }
        stopped.extend(parking);
        r.retire(&gone, &mut cleanup);
        r.wave(
            "put the stable set back together".into(),
            cleanup,
            HostSteps::new(),
        );
        let total = (canary.len() + serving.len()) as u32;
        if total != d.replicas {
            self.rollout_issue(
                d,
                format!(
                    "the canary replaces the {total} pod(s) there are; the change to {} replica(s) follows once it is complete",
                    d.replicas
                ),
            );
        }
        let mut serving = round_robin(serving);
        let mut ordinal = self.next_ordinals(d);
        let steps = d.strategy.steps.clone();
        let count = steps.len();
        for (i, step) in steps.iter().enumerate().skip(first) {
            let n = i + 1;
            match step {
                CanaryStep::Weight(w) => {
                    let want = (total as u64 * *w as u64).div_ceil(100) as usize;
                    let take = want.saturating_sub(canary.len()).min(serving.len());
                    let batch: Vec<ObservedPod> = serving.drain(..take).collect();
                    let effective = (canary.len() + take) as f64 * 100.0 / total.max(1) as f64;
                    let desc = format!(
                        "canary step {n}/{count}: weight {w}% → {} of {total} pods on revision {} (effective {effective:.0}%)",
                        canary.len() + take,
                        r.revision
                    );
                    let reason =
                        format!("canary step {n}: weight {w}% (effective {effective:.0}%)");
                    self.canary_batch(
                        r,
                        &batch,
                        &mut ordinal,
                        &mut canary,
                        &mut stopped,
                        reason,
                        desc,
                    );
                }
                CanaryStep::Pause(Some(ms)) => {
                    let host = r.state_hosts.first().cloned().unwrap_or_default();
                    let steps = HostSteps::from([(
                        host,
                        vec![Step::Wait {
                            ms: *ms,
                            reason: format!("canary step {n}/{count}"),
                        }],
                    )]);
                    // An interrupted pause aborts the canary like a failed step.
                    let undo = r.canary_abort(&canary, &stopped);
                    r.wave(
                        format!("canary step {n}/{count}: pause {}s", *ms as f64 / 1000.0),
                        steps,
                        undo,
                    );
                }
                CanaryStep::Pause(None) => {
                    let weight = (canary.len() as u64 * 100 / total.max(1) as u64) as u32;
                    let record = r.record(Some(r.state(model::Phase::Paused, i, weight)));
                    r.wave(
                        format!(
                            "canary step {n}/{count}: pause until `berth promote {}`",
                            d.name
                        ),
                        record,
                        HostSteps::new(),
                    );
                    let note = format!(
                        "the canary will pause at step {n} (weight {weight}%) until `berth promote {}`",
                        d.name
                    );
                    self.rollout_issue(d, note);
                    return;
                }
                CanaryStep::Analysis(a) => {
                    let mut steps = HostSteps::new();
                    let mut by_host: BTreeMap<String, Vec<ServiceJoin>> = BTreeMap::new();
                    for m in &canary {
                        by_host
                            .entry(m.host.clone())
                            .or_default()
                            .push(ServiceJoin {
                                container: m.container.clone(),
                                network: r.network.clone(),
                                aliases: vec![],
                            });
                    }
                    for (host, pods) in by_host {
                        steps.insert(
                            host,
                            vec![Step::Analyze {
                                pods,
                                check: a.clone(),
                            }],
                        );
                    }
                    let undo = r.canary_abort(&canary, &stopped);
                    r.wave(
                        format!(
                            "canary step {n}/{count}: analysis, {} x GET {}:{} expecting {} per pod",
                            a.samples, a.path, a.port, a.status
                        ),
                        steps,
                        undo,
                    );
                }
            }
        }
        // Past the last step: the rest of the stable pods are replaced, the stopped ones go.
        let batch: Vec<ObservedPod> = std::mem::take(&mut serving);
        let desc = format!(
            "canary complete: the last {} pod(s) move to revision {}",
            batch.len(),
            r.revision
        );
        self.canary_batch(
            r,
            &batch,
            &mut ordinal,
            &mut canary,
            &mut stopped,
            "canary complete".into(),
            desc,
        );
        let mut steps = HostSteps::new();
        for m in &stopped {
            push(&mut steps, &m.host, [r.remove(m)]);
        }
        for m in &parked {
            self.member_change(
                d,
                m,
                Action::Remove,
                "canary complete: stable pod no longer needed".into(),
            );
        }
        for (h, s) in r.record(None) {
            push(&mut steps, &h, s);
        }
        r.wave(
            format!("remove the stopped pods of revision {}", r.stable_revision),
            steps,
            HostSteps::new(),
        );
    }

    /// Replaces stable pods with canary pods on the same hosts: the canaries start and join
    /// the service once healthy, then the stable pods leave, drain and stop (kept for an
    /// abort). A failure aborts the whole canary.
    #[allow(clippy::too_many_arguments)]
    fn canary_batch(
        &mut self,
        r: &mut Flow,
        batch: &[ObservedPod],
        ordinal: &mut impl FnMut() -> u32,
        canary: &mut Vec<Member>,
        stopped: &mut Vec<Member>,
        reason: String,
        description: String,
    ) {
        let d = r.d;
        let mut start = Phased::default();
        let mut leaving: BTreeMap<String, Vec<Member>> = BTreeMap::new();
        for old in batch {
            let mut pod = self.pod_plan(d, &r.revision, ordinal(), &old.host);
            role_label(&mut pod, Role::Canary);
            self.change(
                d,
                &old.host,
                Action::Replace,
                ChangeKind::Pending,
                Some(old),
                Some(pod.name.clone()),
                reason.clone(),
                vec![],
            );
            canary.push(Member::planned(&old.host, &pod));
            start.add(&old.host, create_and_await(d, pod));
            leaving
                .entry(old.host.clone())
                .or_default()
                .push(Member::observed(old));
        }
        let mut steps = start.into_steps();
        for (host, ms) in &leaving {
            let refs: Vec<&Member> = ms.iter().collect();
            push(&mut steps, host, r.leave(&refs));
            push(
                &mut steps,
                host,
                ms.iter().map(|m| Step::StopPod {
                    pod: m.pod.clone(),
                    containers: m.containers.clone(),
                    stop_timeout_s: d.strategy.stop_timeout_s,
                }),
            );
            stopped.extend(ms.iter().cloned());
        }
        let undo = r.canary_abort(canary, stopped);
        r.wave(description, steps, undo);
    }

    fn member_change(&mut self, d: &Deployment, m: &Member, action: Action, reason: String) {
        self.changes.push(Change::plain(
            &d.name,
            &m.host,
            action,
            ChangeKind::Pending,
            Some(m.pod.clone()),
            reason,
        ));
    }

    /// A service name moves between sets of pods on a host.
    fn switch_change(&mut self, d: &Deployment, host: &str, reason: String) {
        self.changes.push(Change::plain(
            &d.name,
            host,
            Action::Switch,
            ChangeKind::Pending,
            None,
            reason,
        ));
    }
}

/// The revision most of the running outdated pods have: the stable set a rollout replaces.
fn most_common_revision(pods: &[ObservedPod], desired: &str) -> String {
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for p in pods.iter().filter(|p| p.revision != desired) {
        let e = counts.entry(&p.revision).or_default();
        if p.is_running() {
            e.0 += 1;
        }
        e.1 += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(_, c)| *c)
        .map(|(r, _)| r.to_string())
        .unwrap_or_default()
}
