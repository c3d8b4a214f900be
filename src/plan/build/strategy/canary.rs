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

impl Builder<'_> {
    pub(in crate::plan::build) fn canary(
        &mut self,
        r: &mut Flow,
        sets: Sets,
        current: Option<model::Rollout>,
        intent: Option<Intent>,
    ) {
        let parked: Vec<Member> = sets.parked.iter().map(Member::observed).collect();
        if matches!(intent, Some(Intent::Abort | Intent::Rollback)) {
            if !self.refuse_short_abort(r, &sets) {
                self.abort_canary(r, &sets, &parked);
            }
            return;
        }
        let intent = match intent {
            None => self.resumed_promote(r, &sets, &current),
            asked => asked,
        };
        if self.waiting(r, &current, intent) {
            return;
        }
        let first = match (&current, intent) {
            (Some(s), Some(Intent::Promote)) if s.phase == model::Phase::Paused => s.step + 1,
            _ => 0,
        };
        let mut pods = self.reassemble_stable(r, &sets, parked.clone(), first);
        let total = (pods.canary.len() + pods.serving.len()) as u32;
        let d = r.d;
        if total != d.replicas {
            self.rollout_issue(
                d,
                format!(
                    "the canary replaces the {total} pod(s) there are; the change to {} replica(s) follows once it is complete",
                    d.replicas
                ),
            );
        }
        pods.serving = round_robin(std::mem::take(&mut pods.serving));
        let mut ordinal = self.next_ordinals(d);
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
                    self.canary_batch(r, batch, &mut ordinal, &mut pods);
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
                    self.rollout_issue(d, note);
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
        self.complete_canary(r, pods, &parked, &mut ordinal);
    }

    /// An abort once the canary got past the point where its stable pods were removed (a
    /// promote stopped in its last wave) would leave the service short: refused, with why.
    fn refuse_short_abort(&mut self, r: &Flow, sets: &Sets) -> bool {
        let d = r.d;
        let stable_left = sets.stable.len() + sets.parked.len();
        if stable_left >= d.replicas as usize || sets.new.is_empty() {
            return false;
        }
        self.rollout_issue(
            d,
            format!(
                "the canary of revision {} cannot be aborted: only {stable_left} of {} stable pod(s) are left; `berth promote {}` completes it, or commit the previous revision to go back",
                r.revision, d.replicas, d.name
            ),
        );
        true
    }

    /// `berth abort`: the stopped stable pods come back, every canary pod goes.
    fn abort_canary(&mut self, r: &mut Flow, sets: &Sets, parked: &[Member]) {
        let d = r.d;
        for m in parked {
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
        let steps = r.canary_abort(&canary, parked);
        r.wave(
            format!("abort the canary of revision {}", r.revision),
            steps,
            HostSteps::new(),
        );
    }

    /// More canary pods than the recorded pause has: a `promote` was killed half-way through
    /// the next step. It goes on (it was asked for); the steps count what is there.
    fn resumed_promote(
        &mut self,
        r: &Flow,
        sets: &Sets,
        current: &Option<model::Rollout>,
    ) -> Option<Intent> {
        let s = current
            .as_ref()
            .filter(|s| s.phase == model::Phase::Paused)?;
        let stable_set = sets.stable.len() + sets.parked.len();
        let at_pause = (stable_set as u64 * s.weight as u64).div_ceil(100) as usize;
        if sets.new.len() <= at_pause {
            return None;
        }
        self.rollout_issue(
            r.d,
            format!(
                "a promote of revision {} stopped half-way past the pause at weight {}%: it goes on",
                s.revision, s.weight
            ),
        );
        Some(Intent::Promote)
    }

    /// Pods of other revisions go. A canary that starts (over) keeps one stopped stable pod
    /// per canary pod, as its own steps leave it: stopped pods beyond that come back; if an
    /// apply was killed between starting a canary pod and stopping the stable one it
    /// replaces, a stable pod leaves and stops now. So canary + serving is the stable set's
    /// size, and nothing is left over when the canary completes.
    fn reassemble_stable(
        &mut self,
        r: &mut Flow,
        sets: &Sets,
        parked: Vec<Member>,
        first: usize,
    ) -> Pods {
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
            self.member_change(d, m, Action::Remove, reason);
        }
        if first == 0 {
            let keep = pods.canary.len().min(sets.parked.len());
            pods.stopped = sets.parked[..keep].iter().map(Member::observed).collect();
            for p in &sets.parked[keep..] {
                let m = Member::observed(p);
                self.member_change(d, &m, Action::Start, Reason::StableCompleteFirst);
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
            self.member_change(d, m, Action::Switch, Reason::CanaryAlreadyReplaces);
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
        &mut self,
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
        self.canary_batch(r, batch, ordinal, &mut pods);
        let mut steps = HostSteps::new();
        // The stable pods stopped on the way stay as they are, kept for `berth rollback
        // --to`, unless the strategy keeps no history.
        if d.strategy.history_limit == 0 {
            for m in &pods.stopped {
                push(&mut steps, &m.host, [r.remove(m)]);
            }
            for m in parked {
                self.member_change(d, m, Action::Remove, Reason::CanaryStableNotNeeded);
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
        &mut self,
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
