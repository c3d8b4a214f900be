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

impl Builder<'_> {
    pub(in crate::plan::build) fn canary(
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
                self.member_change(d, m, Action::Start, Reason::CanaryAbortedStableBack);
            }
            // Canary pods of an older revision (Git moved on since) go too; the revision
            // recorded as aborted is the one whose canary ran.
            let mut canary = sets.new.clone();
            canary.extend(sets.other.iter().map(Member::observed));
            for m in &canary {
                self.member_change(d, m, Action::Remove, Reason::CanaryAborted);
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
                Reason::NeitherRevision {
                    revision: r.revision.clone(),
                    stable: r.stable_revision.clone(),
                },
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
                self.member_change(d, &m, Action::Start, Reason::StableCompleteFirst);
                cleanup.add(&m.host, r.bring_back(&m));
                serving.push(p.clone());
            }
        }
        {
            let extra = canary.len().saturating_sub(stopped.len());
            serving = round_robin(serving);
            for p in serving.drain(..extra.min(serving.len())) {
                let m = Member::observed(&p);
                self.member_change(d, &m, Action::Switch, Reason::CanaryAlreadyReplaces);
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
                    let reason = Reason::CanaryStep {
                        step: n,
                        weight: *w,
                        effective: effective.round_ties_even() as u32,
                    };
                    let batch = Batch {
                        pods: &batch,
                        reason,
                        description: desc,
                    };
                    self.canary_batch(r, batch, &mut ordinal, &mut canary, &mut stopped);
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
                            "canary step {n}/{count}: analysis, {} x GET :{}{} expecting {} per pod",
                            a.samples, a.port, a.path, a.status
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
        let batch = Batch {
            pods: &batch,
            reason: Reason::CanaryComplete,
            description: desc,
        };
        self.canary_batch(r, batch, &mut ordinal, &mut canary, &mut stopped);
        let mut steps = HostSteps::new();
        for m in &stopped {
            push(&mut steps, &m.host, [r.remove(m)]);
        }
        for m in &parked {
            self.member_change(d, m, Action::Remove, Reason::CanaryStableNotNeeded);
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
        &mut self,
        r: &mut Flow,
        batch: Batch,
        ordinal: &mut impl FnMut() -> u32,
        canary: &mut Vec<Member>,
        stopped: &mut Vec<Member>,
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
            let mut pod = self.pod_plan(d, &r.revision, ordinal(), &old.host);
            role_label(&mut pod, Role::Canary);
            self.change(
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
}
