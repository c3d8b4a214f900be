//! What canary and blue-green share: rollouts that run two revisions at once, move the
//! service name between them, and remember between runs where they stand
//! (`model::rollout`). This file reads the rollout state and the pods by role, and answers
//! promote/abort/rollback; the strategies' own waves are in `strategy::canary` and
//! `strategy::blue_green`. Pure.

use super::*;
use crate::model::{self, rollout::rfc3339};

/// What the user asked of a deployment by name: of a rollout in progress (`berth
/// promote|abort|rollback`), or a restart of its settled pods (`berth restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Promote,
    Abort,
    Rollback,
    Restart,
}

/// A running pod that is or will be behind a service name.
#[derive(Debug, Clone)]
pub(super) struct Member {
    pub(super) host: String,
    pub(super) pod: String,
    /// The container that owns the pod's network (where aliases live).
    pub(super) container: String,
    pub(super) containers: Vec<String>,
}

impl Member {
    pub(super) fn observed(p: &ObservedPod) -> Member {
        Member {
            host: p.host.clone(),
            pod: p.name.clone(),
            container: network_owner(p),
            containers: container_names(p),
        }
    }

    pub(super) fn planned(host: &str, p: &PodPlan) -> Member {
        Member {
            host: host.to_string(),
            pod: p.name.clone(),
            container: p.containers[0].name.clone(),
            containers: new_container_names(p),
        }
    }
}

/// The pods of a deployment in a rollout, by role.
pub(super) struct Sets {
    /// Running pods of the desired revision.
    pub(super) new: Vec<Member>,
    /// Running pods of the stable revision.
    pub(super) stable: Vec<ObservedPod>,
    /// Stopped pods of the stable revision, kept for an abort.
    pub(super) parked: Vec<ObservedPod>,
    /// Everything else (other revisions, broken new pods): removed.
    pub(super) other: Vec<ObservedPod>,
}

/// The steps of one wave, per host, in order.
pub(super) type HostSteps = BTreeMap<String, Vec<Step>>;

pub(super) fn push(map: &mut HostSteps, host: &str, steps: impl IntoIterator<Item = Step>) {
    map.entry(host.to_string()).or_default().extend(steps);
}

/// Everything the waves of one rollout need to know, and the plan they make.
pub(super) struct Flow<'d> {
    pub(super) cx: &'d Context<'d>,
    pub(super) d: &'d Deployment,
    pub(super) revision: String,
    pub(super) stable_revision: String,
    pub(super) network: String,
    pub(super) service: String,
    /// The reachable hosts the deployment may run on.
    pub(super) eligible: Vec<String>,
    /// Hosts that carry the rollout state: every host with a pod or a place for one.
    pub(super) state_hosts: Vec<String>,
    pub(super) out: DeploymentPlan,
}

impl Flow<'_> {
    pub(super) fn join(&self, m: &Member, aliases: &[String]) -> Step {
        Step::JoinService {
            pod: m.pod.clone(),
            join: ServiceJoin {
                container: m.container.clone(),
                network: self.network.clone(),
                aliases: aliases.to_vec(),
            },
        }
    }

    /// Members leave the service; each drains before it is stopped.
    pub(super) fn leave(&self, members: &[&Member]) -> Vec<Step> {
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

    pub(super) fn remove(&self, m: &Member) -> Step {
        Step::RemovePod {
            pod: m.pod.clone(),
            containers: m.containers.clone(),
            stop_timeout_s: self.d.strategy.stop_timeout_s,
        }
    }

    pub(super) fn record(&self, state: Option<model::Rollout>) -> HostSteps {
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

    pub(super) fn state(&self, phase: model::Phase, step: usize, weight: u32) -> model::Rollout {
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

    pub(super) fn wave(&mut self, description: String, steps: HostSteps, on_failure: HostSteps) {
        if steps.values().all(|s| s.is_empty()) {
            return;
        }
        self.out.waves.push(Wave {
            deployment: None,
            description: format!("{}: {description}", self.d.name),
            steps,
            on_failure,
        });
    }

    /// Takes members out of the service and removes them (the other revisions, a failed set).
    pub(super) fn retire(&self, members: &[Member], steps: &mut HostSteps) {
        self.take_out(members, steps, |m| self.remove(m));
    }

    /// Takes members out of the service and stops them: an old set kept for `berth rollback
    /// --to` (`history_limit`), or removed when the strategy keeps none.
    pub(super) fn retire_keeping(&self, members: &[Member], steps: &mut HostSteps) {
        if self.d.strategy.history_limit == 0 {
            return self.retire(members, steps);
        }
        self.take_out(members, steps, |m| Step::StopPod {
            pod: m.pod.clone(),
            containers: m.containers.clone(),
            stop_timeout_s: self.d.strategy.stop_timeout_s,
        });
    }

    fn take_out(&self, members: &[Member], steps: &mut HostSteps, last: impl Fn(&Member) -> Step) {
        let mut by_host: BTreeMap<&str, Vec<&Member>> = BTreeMap::new();
        for m in members {
            by_host.entry(m.host.as_str()).or_default().push(m);
        }
        for (host, ms) in by_host {
            push(steps, host, self.leave(&ms));
            push(steps, host, ms.iter().map(|m| last(m)));
        }
    }

    /// A stopped stable pod starts again and rejoins the service once healthy.
    pub(super) fn bring_back(&self, m: &Member) -> [Step; 2] {
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

    /// Blue-green after promotion: the old set stops (kept for `berth rollback --to`, or
    /// removed past `history_limit`), any stray pods go, and the state is cleared.
    pub(super) fn scale_down(&mut self, gone: &[Member], old_set: &[Member]) {
        let mut steps = HostSteps::new();
        self.retire(gone, &mut steps);
        self.retire_keeping(old_set, &mut steps);
        for (h, s) in self.record(None) {
            push(&mut steps, &h, s);
        }
        let description = format!("remove the old set (revision {})", self.stable_revision);
        self.wave(description, steps, HostSteps::new());
    }

    /// Canary abort: stopped stable pods start and rejoin the service, canary pods leave and
    /// go, and the revision is recorded as aborted.
    pub(super) fn canary_abort(&self, canary: &[Member], parked: &[Member]) -> HostSteps {
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

pub(super) fn role_label(pod: &mut PodPlan, role: Role) {
    for c in &mut pod.containers {
        c.labels
            .insert(label::ROLE.to_string(), role.as_str().to_string());
    }
}

/// Pods taken round robin over hosts (the host with the most left first), so each step
/// spreads over the fleet.
pub(super) fn round_robin(mut pods: Vec<ObservedPod>) -> Vec<ObservedPod> {
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

/// Plans a canary or blue-green deployment: `strategy` plans the waves of a rollout to do
/// or in progress; without one, the deployment is planned like a rolling one (scaling and
/// repairs use rolling batches).
pub(super) fn plan_with(
    cx: &Context,
    d: &Deployment,
    strategy: impl FnOnce(&mut Flow, Sets, Option<model::Rollout>, Option<Intent>),
) -> DeploymentPlan {
    let mut out = DeploymentPlan::default();
    let project = cx.project();
    let revision = d.revision(project);
    let mine = cx.pods_of(d);
    let state = model::Rollout::of(cx.input.observed, &d.name).cloned();
    let intent = cx.input.intents.get(&d.name).copied();
    let outdated = mine.iter().any(|p| p.revision != revision);
    let service = d.service.as_ref().map(|s| s.name.clone());
    let (true, Some(service)) = (outdated, service) else {
        if !outdated {
            if intent.is_some() {
                out.rollout_issue(d, format!("{} has no rollout in progress", d.name));
            }
            if forget_complete(cx, d, &revision, state.as_ref(), &mut out) {
                return out;
            }
        }
        let rolling = super::strategy::rolling_without_rollout(cx, d);
        out.extend(rolling);
        return out;
    };
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
    let mut eligible: Vec<String> = (cx.input.desired.eligible_hosts(d).into_iter())
        .map(|h| h.name.clone())
        .filter(|h| cx.reachable(h))
        .collect();
    eligible.sort();
    let mut state_hosts: Vec<String> = mine.iter().map(|p| p.host.clone()).collect();
    state_hosts.retain(|h| cx.reachable(h));
    state_hosts.extend(eligible.iter().cloned());
    state_hosts.sort();
    state_hosts.dedup();
    let mut r = Flow {
        cx,
        d,
        network: network_name(project),
        revision: revision.clone(),
        stable_revision,
        service,
        eligible,
        state_hosts,
        out,
    };
    // The state of this revision's rollout, if it has one; an abort of an earlier attempt
    // (another strategy) does not hold for this one.
    let attempt = d.attempt();
    let current = state.filter(|s| {
        s.revision == revision
            && s.phase != model::Phase::Failed
            && (s.phase != model::Phase::Aborted || s.stops(&revision, &attempt))
    });
    strategy(&mut r, sets, current, intent);
    r.out
}

/// Every pod is on the revision, but its rollout's state was not cleared (an apply stopped
/// just before): a wave forgets it, so nothing says the rollout is still going.
fn forget_complete(
    cx: &Context,
    d: &Deployment,
    revision: &str,
    state: Option<&model::Rollout>,
    out: &mut DeploymentPlan,
) -> bool {
    let Some(s) = state.filter(|s| {
        s.revision == revision && matches!(s.phase, model::Phase::Paused | model::Phase::Promoted)
    }) else {
        return false;
    };
    let record = Step::RecordRollout {
        deployment: d.name.clone(),
        state: None,
    };
    out.rollout_issue(
        d,
        format!(
            "every pod of {} runs revision {}: its rollout is complete",
            d.name, s.revision
        ),
    );
    out.waves.push(Wave {
        deployment: Some(d.name.clone()),
        description: format!("the rollout of {} is complete: forget its state", d.name),
        steps: (cx.state_carriers(d).into_iter())
            .map(|h| (h, vec![record.clone()]))
            .collect(),
        on_failure: BTreeMap::new(),
    });
    true
}

impl Flow<'_> {
    /// Notes a paused or aborted rollout; `true` when nothing more is to be planned.
    /// `paused_at` says where a paused rollout of this strategy waits.
    pub(super) fn waiting(
        &mut self,
        current: &Option<model::Rollout>,
        intent: Option<Intent>,
        paused_at: impl Fn(&model::Rollout) -> String,
    ) -> bool {
        let Some(s) = current else { return false };
        let d = self.d;
        let message = match (s.phase, intent) {
            (model::Phase::Aborted, Some(Intent::Promote)) => return false,
            (model::Phase::Aborted, _) => format!(
                "the rollout of revision {} was aborted (since {}); push a new revision, or run `berth promote {}` to try it again",
                s.revision,
                rfc3339(s.since),
                d.name
            ),
            (model::Phase::Paused, None) => format!(
                "revision {} is paused {} since {}; `berth promote {}` goes on, `berth abort {}` rolls back",
                s.revision,
                paused_at(s),
                rfc3339(s.since),
                d.name,
                d.name
            ),
            _ => return false,
        };
        self.out.rollout_issue(d, message);
        true
    }

    pub(super) fn member_change(&mut self, m: &Member, action: Action, reason: Reason) {
        (self.out).pod_named_change(self.d, &m.host, &m.pod, action, reason);
    }

    /// A service name moves between sets of pods on a host.
    pub(super) fn switch_change(&mut self, host: &str, reason: Reason) {
        self.out.switch_change(self.d, host, reason);
    }

    pub(super) fn rollout_issue(&mut self, message: String) {
        self.out.rollout_issue(self.d, message);
    }
}

/// The revision most of the running outdated pods have: the stable set a rollout replaces.
pub(super) fn most_common_revision(pods: &[ObservedPod], desired: &str) -> String {
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
