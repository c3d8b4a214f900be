//! One host's steps in a wave. Steps run in the plan's order, except that a run of
//! consecutive steps of one kind that touch different pods (creating them or taking them out
//! of their service, waiting for their health gates, stopping or removing them) runs at once,
//! as Kubernetes starts a ReplicaSet's pods and counts `minReadySeconds` for each pod on its
//! own: three pods of a batch on one host wait for one `min_ready`, not three.

use super::failure::{FailureKind, StepError, StepFailure, Waits};
use super::progress::{describe, Progress};
use super::step::{run_step, HostContext};
use crate::plan::Step;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::sync::Arc;
use std::time::Instant;

/// Which steps may run beside their neighbours of the same kind: each touches only its own
/// pod. A pod taken out of its service and a new pod being created go together too: a leave
/// only narrows what the service routes to, and a new pod serves nothing before its gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    CreateOrLeave,
    AwaitReady,
    Start,
    Stop,
    Remove,
}

/// The step's concurrent kind and the pod it touches (`None`: the step runs alone).
fn kind(step: &Step) -> Option<(Kind, &str)> {
    match step {
        Step::CreatePod { pod } => Some((Kind::CreateOrLeave, &pod.name)),
        Step::LeaveService { pod, .. } => Some((Kind::CreateOrLeave, pod)),
        Step::AwaitReady { pod, .. } => Some((Kind::AwaitReady, pod)),
        Step::StartPod { pod, .. } => Some((Kind::Start, pod)),
        Step::StopPod { pod, .. } => Some((Kind::Stop, pod)),
        Step::RemovePod { pod, .. } => Some((Kind::Remove, pod)),
        _ => None,
    }
}

/// The steps cut into runs that go at once: consecutive steps of one concurrent kind for
/// different pods; every other step alone.
pub(super) fn runs(steps: &[Step]) -> Vec<&[Step]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=steps.len() {
        let joins_run = steps.get(i).and_then(kind).is_some_and(|(k, pod)| {
            steps[start..i]
                .iter()
                .all(|s| kind(s).is_some_and(|(other, p)| other == k && p != pod))
        });
        if !joins_run {
            out.push(&steps[start..i]);
            start = i;
        }
    }
    out
}

/// Runs a host's steps; the first failure ends them. Returns it, with the time spent waiting.
pub(super) async fn run_host(
    ctx: Arc<HostContext>,
    steps: Vec<Step>,
    lane: Option<String>,
) -> (Option<StepFailure>, Waits) {
    let mut waited = Waits::default();
    for run in runs(&steps) {
        let (failure, run_waited) = run_together(&ctx, run, lane.as_deref()).await;
        waited += run_waited;
        if let Some(f) = failure {
            return (Some(f), waited);
        }
    }
    (None, waited)
}

/// Runs steps at once. A failed health gate ends the others' gates at once (the wave rolls
/// back); any other step is let finish, so that no request is left in flight to an engine
/// while the rollback runs.
async fn run_together(
    ctx: &HostContext,
    run: &[Step],
    lane: Option<&str>,
) -> (Option<StepFailure>, Waits) {
    let mut pending: FuturesUnordered<_> = run.iter().map(|s| run_one(ctx, s, lane)).collect();
    let mut failure = None;
    let mut longest = Waits::default();
    while let Some((result, waited)) = pending.next().await {
        longest = longest.longest(waited);
        if let (Err(f), None) = (result, &failure) {
            let gate = matches!(run.first(), Some(Step::AwaitReady { .. }));
            failure = Some(f);
            if gate {
                break;
            }
        }
    }
    (failure, longest)
}

/// One step: its drain first (a stop or remove of a pod that left its service), the edges
/// around it, and the time it waited.
async fn run_one(
    ctx: &HostContext,
    step: &Step,
    lane: Option<&str>,
) -> (Result<(), StepFailure>, Waits) {
    let mut waited = Waits::default();
    let what = describe(step);
    let progress: &dyn Progress = ctx.progress.as_ref();
    progress.step_started(&ctx.host, lane, &what);
    // No step without the lock (see `lock::fence`), nor on an engine that missed a deadline
    // (one wait per run on a frozen engine, not one per step).
    let refused = match ctx.engine.silent() {
        Some(said) => Err((format!("{said}; not asked to {what}"), FailureKind::Fault)),
        None => (ctx.fence.ready().await).map_err(|why| (why.0, FailureKind::Interrupted)),
    };
    if let Err((message, kind)) = refused {
        let failure = StepFailure {
            host: ctx.host.clone(),
            message,
            details: String::new(),
            kind,
        };
        return (Err(failure), waited);
    }
    if let Step::StopPod { containers, .. } | Step::RemovePod { containers, .. } = step {
        waited.strategy += ctx.drains.before_stop(&ctx.host, containers).await;
    }
    let started = Instant::now();
    let result = run_step(ctx, step).await;
    match step {
        Step::AwaitReady { .. }
        | Step::LeaveService { .. }
        | Step::Wait { .. }
        | Step::Analyze { .. } => waited.strategy += started.elapsed(),
        Step::StopPod { .. } | Step::RemovePod { .. } => waited.stopping += started.elapsed(),
        _ => {}
    }
    progress.step_done(&ctx.host, lane, &what);
    let result = result.map_err(
        |StepError {
             message,
             details,
             kind,
         }| {
            // A missed deadline in the middle of a step: say that, and what it was doing.
            match ctx.engine.silent() {
                Some(said) => StepFailure {
                    host: ctx.host.clone(),
                    kind: FailureKind::Fault,
                    message: format!("{said} (to {what})"),
                    details,
                },
                None => StepFailure {
                    host: ctx.host.clone(),
                    kind,
                    message,
                    details,
                },
            }
        },
    );
    (result, waited)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ServiceJoin;

    fn leave(pod: &str) -> Step {
        Step::LeaveService {
            pod: pod.into(),
            leave: ServiceJoin {
                network: "n".into(),
                container: format!("{pod}-app"),
                aliases: vec!["web".into()],
            },
            drain_ms: 0,
        }
    }

    fn wait() -> Step {
        Step::Wait {
            ms: 1,
            reason: "pause".into(),
        }
    }

    fn remove(pod: &str) -> Step {
        Step::RemovePod {
            pod: pod.into(),
            containers: vec![format!("{pod}-app")],
            stop_timeout_s: 10,
        }
    }

    fn gate(pod: &str) -> Step {
        Step::AwaitReady {
            pod: pod.into(),
            containers: vec![format!("{pod}-app")],
            min_ready_ms: 1000,
            timeout_ms: 60_000,
            join: None,
        }
    }

    fn lengths(steps: &[Step]) -> Vec<usize> {
        runs(steps).iter().map(|r| r.len()).collect()
    }

    #[test]
    fn steps_of_one_kind_in_a_row_go_together_and_others_alone() {
        let steps = vec![leave("a"), leave("b"), wait(), wait(), leave("c")];
        assert_eq!(lengths(&steps), vec![2, 1, 1, 1]);
        // A pod's second step of the kind waits for its first.
        let steps = vec![leave("a"), leave("b"), leave("a"), leave("c")];
        assert_eq!(lengths(&steps), vec![2, 2]);
        // A pod is removed only once the gates before it have passed.
        let steps = vec![gate("n1"), gate("n2"), remove("o1"), remove("o2")];
        assert_eq!(lengths(&steps), vec![2, 2]);
        assert_eq!(lengths(&[]), Vec::<usize>::new());
        assert_eq!(lengths(&[wait()]), vec![1]);
    }
}
