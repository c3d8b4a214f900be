//! Canary: each `weight` step replaces stable pods with canary pods one for one on the same
//! host (a canary joins the service once healthy; the stable pod leaves, drains and is
//! stopped, not removed, so an abort brings it back in seconds). `pause: {}` records the
//! rollout as paused and ends the plan; `berth promote` plans the rest. After the last step
//! the remaining stable pods are replaced and the stopped ones removed. Pure.

use super::super::progressive::*;
use super::*;
use crate::model;

/// Stable pods to replace with canaries in one wave, and how the plan names it.
pub(super) struct Batch<'a> {
    pods: &'a [ObservedPod],
    /// Each change's reason.
    reason: Reason,
    /// The wave's description.
    description: String,
}

/// Where a canary stands while its waves are planned.
pub(super) struct Pods {
    /// Pods of the new revision, planned or running.
    canary: Vec<Member>,
    /// Stable pods still serving, in the order they are replaced.
    serving: Vec<ObservedPod>,
    /// Stable pods stopped and kept for an abort.
    stopped: Vec<Member>,
}

pub(super) struct Canary;

impl Strategy for Canary {
    fn rollout(&self, cx: &Context, d: &Deployment) -> DeploymentPlan {
        plan_with(cx, d, canary)
    }

    fn restore(&self, shape: &Restore, back: &[ObservedPod], current: &[ObservedPod]) -> Vec<Wave> {
        shape.switch(back, current)
    }

    fn behind_during(&self, _: &Rollout, _: &str) -> Option<Option<Behind>> {
        None
    }

    fn new_set_waits(&self) -> bool {
        false
    }

    /// A paused canary keeps the weight it reached; a running one's waves route their own.
    fn routed_weight(&self, s: &Rollout) -> Option<u32> {
        (s.phase == Phase::Paused).then_some(s.weight)
    }
}

fn canary(r: &mut Flow, sets: Sets, current: Option<model::Rollout>, intent: Option<Intent>) {
    let parked: Vec<Member> = sets.parked.iter().map(Member::observed).collect();
    if matches!(intent, Some(Intent::Abort | Intent::Rollback)) {
        if !refuse_short_abort(r, &sets) {
            abort_canary(r, &sets, &parked);
        }
        return;
    }
    let intent = match intent {
        None => resumed_promote(r, &sets, &current),
        asked => asked,
    };
    let at = |s: &model::Rollout| format!("at step {} (weight {}%)", s.step + 1, s.weight);
    if r.waiting(&current, intent, at) {
        return;
    }
    let first = match (&current, intent) {
        (Some(s), Some(Intent::Promote)) if s.phase == model::Phase::Paused => s.step + 1,
        _ => 0,
    };
    let mut pods = reassemble_stable(r, &sets, parked.clone(), first);
    let total = (pods.canary.len() + pods.serving.len()) as u32;
    let d = r.d;
    if total != d.replicas {
        r.rollout_issue(format!(
                "the canary replaces the {total} pod(s) there are; the change to {} replica(s) follows once it is complete",
                d.replicas
            ),
        );
    }
    pods.serving = round_robin(std::mem::take(&mut pods.serving));
    let mut ordinal = r.cx.next_ordinals(d);
    let count = d.strategy.steps.len();
    for (i, step) in d.strategy.steps.iter().enumerate().skip(first) {
        let n = i + 1;
        match step {
            CanaryStep::Weight(w) => {
                let want = (total as u64 * *w as u64).div_ceil(100) as usize;
                let take = want
                    .saturating_sub(pods.canary.len())
                    .min(pods.serving.len());
                let batch: Vec<ObservedPod> = pods.serving.drain(..take).collect();
                // Through the edges the weight is a share of requests, whatever the pods.
                let effective = if d.ingress.is_some() {
                    f64::from(*w)
                } else {
                    (pods.canary.len() + take) as f64 * 100.0 / total.max(1) as f64
                };
                if d.ingress.is_some() {
                    let host = r.state_hosts.first().cloned().unwrap_or_default();
                    let route = Step::RouteWeight {
                        deployment: d.name.clone(),
                        revision: r.revision.clone(),
                        percent: *w,
                    };
                    let undo = r.canary_abort(&pods.canary, &pods.stopped);
                    r.wave(
                        format!("canary step {n}/{count}: route {w}% of requests to revision {} on the edges", r.revision),
                        HostSteps::from([(host, vec![route])]),
                        undo,
                    );
                }
                let description = format!(
                    "canary step {n}/{count}: weight {w}% → {} of {total} pods on revision {} (effective {effective:.0}%)",
                    pods.canary.len() + take,
                    r.revision
                );
                let reason = Reason::CanaryStep {
                    step: n,
                    weight: *w,
                    effective: effective.round_ties_even() as u32,
                };
                let batch = Batch {
                    pods: &batch,
                    reason,
                    description,
                };
                canary_batch(r, batch, &mut ordinal, &mut pods);
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
                let undo = r.canary_abort(&pods.canary, &pods.stopped);
                r.wave(
                    format!("canary step {n}/{count}: pause {}s", *ms as f64 / 1000.0),
                    steps,
                    undo,
                );
            }
            CanaryStep::Pause(None) => {
                // Through the edges, the weight last routed; otherwise the share of pods.
                let routed = d.strategy.steps[..i].iter().rev().find_map(|s| match s {
                    CanaryStep::Weight(w) => Some(*w),
                    _ => None,
                });
                let weight = match routed.filter(|_| d.ingress.is_some()) {
                    Some(w) => w,
                    None => (pods.canary.len() as u64 * 100 / total.max(1) as u64) as u32,
                };
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
                r.rollout_issue(note);
                return;
            }
            CanaryStep::EdgeAnalysis(check) => {
                let host = r.state_hosts.first().cloned().unwrap_or_default();
                let step = Step::EdgeAnalyze {
                    deployment: d.name.clone(),
                    revision: r.revision.clone(),
                    check: check.clone(),
                };
                let undo = r.canary_abort(&pods.canary, &pods.stopped);
                r.wave(
                    format!(
                        "canary step {n}/{count}: edge analysis, the edges count the canary's answers for {}s (at most {}% errors)",
                        check.duration_ms as f64 / 1000.0,
                        check.max_errors_percent
                    ),
                    HostSteps::from([(host, vec![step])]),
                    undo,
                );
            }
            CanaryStep::Analysis(a) => {
                let undo = r.canary_abort(&pods.canary, &pods.stopped);
                r.wave(
                    format!(
                        "canary step {n}/{count}: analysis, {} x GET :{}{} expecting {} per pod",
                        a.samples, a.port, a.path, a.status
                    ),
                    analysis_steps(r, &pods.canary, a),
                    undo,
                );
            }
        }
    }
    complete_canary(r, pods, &parked, &mut ordinal);
}

/// An abort once the canary got past the point where its stable pods were removed (a
/// promote stopped in its last wave) would leave the service short: refused, with why.
fn refuse_short_abort(r: &mut Flow, sets: &Sets) -> bool {
    let d = r.d;
    let stable_left = sets.stable.len() + sets.parked.len();
    if stable_left >= d.replicas as usize || sets.new.is_empty() {
        return false;
    }
    r.rollout_issue(format!(
            "the canary of revision {} cannot be aborted: only {stable_left} of {} stable pod(s) are left; `berth promote {}` completes it, or commit the previous revision to go back",
            r.revision, d.replicas, d.name
        ),
    );
    true
}

/// `berth abort`: the stopped stable pods come back, every canary pod goes.
fn abort_canary(r: &mut Flow, sets: &Sets, parked: &[Member]) {
    for m in parked {
        r.member_change(m, Action::Start, Reason::CanaryAbortedStableBack);
    }
    // Canary pods of an older revision (Git moved on since) go too; the revision
    // recorded as aborted is the one whose canary ran.
    let mut canary = sets.new.clone();
    canary.extend(sets.other.iter().map(Member::observed));
    for m in &canary {
        r.member_change(m, Action::Remove, Reason::CanaryAborted);
    }
    if sets.new.is_empty() {
        if let Some(p) = sets.other.first() {
            r.revision = p.revision.clone();
        }
    }
    let steps = r.canary_abort(&canary, parked);
    r.wave(
        format!("abort the canary of revision {}", r.revision),
        steps,
        HostSteps::new(),
    );
}

/// More canary pods than the recorded pause has: a `promote` was killed half-way through
/// the next step. It goes on (it was asked for); the steps count what is there.
fn resumed_promote(r: &mut Flow, sets: &Sets, current: &Option<model::Rollout>) -> Option<Intent> {
    let s = current
        .as_ref()
        .filter(|s| s.phase == model::Phase::Paused)?;
    let stable_set = sets.stable.len() + sets.parked.len();
    let at_pause = (stable_set as u64 * s.weight as u64).div_ceil(100) as usize;
    if sets.new.len() <= at_pause {
        return None;
    }
    r.rollout_issue(format!(
        "a promote of revision {} stopped half-way past the pause at weight {}%: it goes on",
        s.revision, s.weight
    ));
    Some(Intent::Promote)
}

/// Pods of other revisions go. A canary that starts (over) keeps one stopped stable pod
/// per canary pod, as its own steps leave it: stopped pods beyond that come back; if an
/// apply was killed between starting a canary pod and stopping the stable one it
/// replaces, a stable pod leaves and stops now. So canary + serving is the stable set's
/// size, and nothing is left over when the canary completes.
fn reassemble_stable(r: &mut Flow, sets: &Sets, parked: Vec<Member>, first: usize) -> Pods {
    let d = r.d;
    let mut pods = Pods {
        canary: sets.new.clone(),
        serving: sets.stable.clone(),
        stopped: parked,
    };
    let mut cleanup = Phased::default();
    let gone: Vec<Member> = sets.other.iter().map(Member::observed).collect();
    for m in &gone {
        let reason = Reason::NeitherRevision {
            revision: r.revision.clone(),
            stable: r.stable_revision.clone(),
        };
        r.member_change(m, Action::Remove, reason);
    }
    if first == 0 {
        let keep = pods.canary.len().min(sets.parked.len());
        pods.stopped = sets.parked[..keep].iter().map(Member::observed).collect();
        for p in &sets.parked[keep..] {
            let m = Member::observed(p);
            r.member_change(&m, Action::Start, Reason::StableCompleteFirst);
            cleanup.add(&m.host, r.bring_back(&m));
            pods.serving.push(p.clone());
        }
    }
    let extra = pods.canary.len().saturating_sub(pods.stopped.len());
    let mut serving = round_robin(std::mem::take(&mut pods.serving));
    let parking: Vec<Member> = serving
        .drain(..extra.min(serving.len()))
        .map(|p| Member::observed(&p))
        .collect();
    pods.serving = serving;
    let mut cleanup = cleanup.into_steps();
    for m in &parking {
        r.member_change(m, Action::Switch, Reason::CanaryAlreadyReplaces);
        push(&mut cleanup, &m.host, r.leave(&[m]));
        push(&mut cleanup, &m.host, [stop(d, m)]);
    }
    pods.stopped.extend(parking);
    r.retire(&gone, &mut cleanup);
    r.wave(
        "put the stable set back together".into(),
        cleanup,
        HostSteps::new(),
    );
    pods
}

/// Past the last step: the rest of the stable pods are replaced, the stopped ones go.
fn complete_canary(
    r: &mut Flow,
    mut pods: Pods,
    parked: &[Member],
    ordinal: &mut impl FnMut() -> u32,
) {
    let d = r.d;
    let batch: Vec<ObservedPod> = std::mem::take(&mut pods.serving);
    let description = format!(
        "canary complete: the last {} pod(s) move to revision {}",
        batch.len(),
        r.revision
    );
    let batch = Batch {
        pods: &batch,
        reason: Reason::CanaryComplete,
        description,
    };
    canary_batch(r, batch, ordinal, &mut pods);
    let mut steps = HostSteps::new();
    // The stable pods stopped on the way stay as they are, kept for `berth rollback
    // --to`, unless the strategy keeps no history.
    if d.strategy.history_limit == 0 {
        for m in &pods.stopped {
            push(&mut steps, &m.host, [r.remove(m)]);
        }
        for m in parked {
            r.member_change(m, Action::Remove, Reason::CanaryStableNotNeeded);
        }
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
pub(super) fn canary_batch(
    r: &mut Flow,
    batch: Batch,
    ordinal: &mut impl FnMut() -> u32,
    pods: &mut Pods,
) {
    let Batch {
        pods: batch,
        reason,
        description,
    } = batch;
    let d = r.d;
    let mut start = Phased::default();
    let mut leaving: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    for old in batch {
        let mut pod = r.out.pod_plan(r.cx, d, &r.revision, ordinal(), &old.host);
        role_label(&mut pod, Role::Canary);
        r.out.change(
            d,
            PodChange::new(
                &old.host,
                Action::Replace,
                ChangeKind::Pending,
                reason.clone(),
            )
            .of(old)
            .to(pod.name.clone()),
        );
        pods.canary.push(Member::planned(&old.host, &pod));
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
        push(&mut steps, host, ms.iter().map(|m| stop(d, m)));
        pods.stopped.extend(ms.iter().cloned());
    }
    let undo = r.canary_abort(&pods.canary, &pods.stopped);
    r.wave(description, steps, undo);
}

/// Stops a stable pod, kept for an abort.
fn stop(d: &Deployment, m: &Member) -> Step {
    Step::StopPod {
        pod: m.pod.clone(),
        containers: m.containers.clone(),
        stop_timeout_s: d.strategy.stop_timeout_s,
    }
}

/// An analysis step on each host with canary pods, checking each of them.
fn analysis_steps(r: &Flow, canary: &[Member], check: &Analysis) -> HostSteps {
    let mut by_host: BTreeMap<String, Vec<ServiceJoin>> = BTreeMap::new();
    for m in canary {
        by_host
            .entry(m.host.clone())
            .or_default()
            .push(ServiceJoin {
                container: m.container.clone(),
                network: r.network.clone(),
                aliases: vec![],
            });
    }
    by_host
        .into_iter()
        .map(|(host, pods)| {
            let step = Step::Analyze {
                pods,
                check: check.clone(),
            };
            (host, vec![step])
        })
        .collect()
}
