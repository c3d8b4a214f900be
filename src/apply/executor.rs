//! The executor: a dumb interpreter of plan waves. Hosts run in parallel within a wave; waves
//! run in order. A failed wave runs its on-failure steps and ends the apply.

use super::drain::Drains;
use super::edge::Edges;
pub use super::failure::{FailureKind, StepFailure, Waits};
use super::host_steps::run_host;
use super::step::HostContext;
use crate::hosts::docker_ops::PodInputs;
pub use crate::hosts::engine::Engines;
use crate::hosts::Fleet;
use crate::plan::{Plan, Step, Wave};
use futures_util::future::join_all;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

#[derive(Debug)]
pub enum Outcome {
    /// Done, with the time spent waiting.
    Applied { waits: Waits },
    /// Waves failed (one per deployment at most); their on-failure steps ran.
    RolledBack(Vec<FailedWave>),
    /// A second SIGINT or SIGTERM came during a rollback: the rollback was left where it was.
    Abandoned { signal: &'static str },
    /// The apply lock stopped being this apply's (another took it over, or its lease could
    /// not be renewed): the apply stopped before its next step, without a rollback (the
    /// hosts are the lock holder's now). Why.
    LockLost { why: String },
}

/// A wave that failed, why, and whether its rollback went cleanly.
#[derive(Debug)]
pub struct FailedWave {
    pub wave: String,
    pub failures: Vec<StepFailure>,
    pub rollback_errors: Vec<String>,
}

pub use super::lock::Fence;

pub use super::progress::{describe, Progress};
pub use crate::hosts::Logins;

/// Why a plan could not be run at all (a step that fails is an `Outcome`, not this).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The plan has steps for a host berth holds no connection to.
    #[error("host {host} is not connected")]
    NotConnected { host: String },
}

/// Runs the plan on the fleet's Docker engines.
pub async fn execute(
    plan: &Plan,
    fleet: &Fleet,
    inputs: PodInputs,
    logins: Arc<Logins>,
    progress: Arc<dyn Progress>,
    fence: Fence,
) -> Result<Outcome, ExecError> {
    let engines = crate::hosts::docker_ops::engines(fleet, &plan.project, inputs, logins);
    execute_on(plan, &engines, progress, fence).await
}

/// Runs the plan on the given engines (Docker on the hosts, or one in memory in tests);
/// `fence` is asked before each wave and step whether the apply lock is still this apply's.
pub async fn execute_on(
    plan: &Plan,
    engines: &Engines,
    progress: Arc<dyn Progress>,
    fence: Fence,
) -> Result<Outcome, ExecError> {
    let outcome = run_waves(plan, engines, &progress, fence).await;
    progress.finish();
    outcome
}

/// Runs the plan: a wave without a deployment (preparation, pruning) runs alone; each run of
/// deployment waves is split into one lane per deployment, and the lanes run at once (as
/// Kubernetes rolls out its deployments independently), each lane's waves in order. A failed
/// lane rolls back its wave and stops; the others finish theirs; nothing after runs.
async fn run_waves(
    plan: &Plan,
    engines: &Engines,
    progress: &Arc<dyn Progress>,
    fence: Fence,
) -> Result<Outcome, ExecError> {
    let mut waits = Waits::default();
    let drains = Arc::new(Drains::default());
    let edges = Arc::new(Edges::new(plan, engines));
    let shared = Shared {
        drains,
        edges,
        fence,
    };
    let waves: Vec<(usize, &Wave)> = plan.waves.iter().enumerate().collect();
    for segment in waves.chunk_by(|(_, a), (_, b)| a.deployment.is_some() && b.deployment.is_some())
    {
        let mut lanes: Vec<(Option<&str>, Lane)> = Vec::new();
        for (i, w) in segment {
            let key = w.deployment.as_deref();
            match lanes.iter_mut().find(|(k, _)| *k == key) {
                Some((_, lane)) => lane.push((*i, w)),
                None => lanes.push((key, vec![(*i, w)])),
            }
        }
        let results = join_all(
            lanes
                .iter()
                .map(|(_, lane)| run_lane(lane, plan, engines, &shared, progress)),
        )
        .await;
        let mut failed = Vec::new();
        let mut longest = Waits::default();
        let mut abandoned = None;
        let mut lost = None;
        for r in results {
            match r? {
                LaneResult::Done(waited) => longest = longest.longest(waited),
                LaneResult::Failed(f) => failed.push(f),
                LaneResult::Abandoned(signal) => abandoned = Some(signal),
                LaneResult::LockLost(why) => lost = Some(why),
            }
        }
        if let Some(why) = lost {
            return Ok(Outcome::LockLost { why });
        }
        if let Some(signal) = abandoned {
            return Ok(Outcome::Abandoned { signal });
        }
        waits += longest;
        if !failed.is_empty() {
            return Ok(Outcome::RolledBack(failed));
        }
    }
    Ok(Outcome::Applied { waits })
}

/// What every host's steps share during an apply.
struct Shared {
    drains: Arc<Drains>,
    edges: Arc<Edges>,
    fence: Fence,
}

/// One deployment's waves, with their places in the plan.
type Lane<'a> = Vec<(usize, &'a Wave)>;

enum LaneResult {
    /// All waves done; the time spent waiting.
    Done(Waits),
    Failed(FailedWave),
    /// Its rollback was cut short by a second signal.
    Abandoned(&'static str),
    /// The apply lock was lost: stopped where it was.
    LockLost(String),
}

/// One deployment's waves, in order. An interrupt (Ctrl-C, or SIGTERM from cron or CI) stops
/// the wave's steps where they are and rolls the wave back like a failure, so the lock is
/// released and the old pods serve; the earlier waves stay done. A lost lock stops the lane
/// where it is: no step runs without the lock, a rollback's neither.
async fn run_lane(
    lane: &[(usize, &Wave)],
    plan: &Plan,
    engines: &Engines,
    shared: &Shared,
    progress: &Arc<dyn Progress>,
) -> Result<LaneResult, ExecError> {
    let mut waits = Waits::default();
    let halted = halted(shared.fence.clone());
    tokio::pin!(halted);
    for (i, wave) in lane {
        let lane_name = wave.deployment.as_deref();
        // The lock's generation, proved on the engines before each wave.
        if let Err(why) = shared.fence.confirm().await {
            return Ok(LaneResult::LockLost(why.0));
        }
        progress.wave(i + 1, plan.waves.len(), &wave.description);
        let (failures, waited) = tokio::select! {
            done = run_hosts(&wave.steps, lane_name, engines, shared, progress) => done?,
            halt = &mut halted => match halt {
                Halt::LockLost(why) => return Ok(LaneResult::LockLost(why)),
                Halt::Signal(signal) => (
                    vec![StepFailure {
                        host: "-".into(),
                        message: format!("interrupted by {signal}"),
                        details: String::new(),
                        kind: FailureKind::Interrupted,
                    }],
                    Waits::default(),
                ),
            },
        };
        waits += waited;
        if failures.is_empty() {
            continue;
        }
        if let Some(why) = shared.fence.lost_why() {
            return Ok(LaneResult::LockLost(why));
        }
        for f in &failures {
            progress.failed(&f.host, &f.message);
        }
        // A rollback is steps too: not without the lock.
        if let Err(why) = shared.fence.ready().await {
            return Ok(LaneResult::LockLost(why.0));
        }
        if !wave.on_failure.is_empty() {
            progress.rolling_back(&wave.description);
        }
        // Only a verdict on the new pods marks the revision failed (so `sync` does not retry
        // it); an interrupt, a host or a network fault is rolled back and tried again.
        let on_failure = if !failures.iter().any(|f| f.kind == FailureKind::Verdict) {
            without_failure_records(&wave.on_failure)
        } else {
            wave.on_failure.clone()
        };
        let rollback = run_hosts(&on_failure, lane_name, engines, shared, progress);
        let rolled_back = tokio::select! {
            done = rollback => done?,
            signal = crate::here::interrupt() => return Ok(LaneResult::Abandoned(signal)),
        };
        if let Some(why) = shared.fence.lost_why() {
            return Ok(LaneResult::LockLost(why));
        }
        let rollback_errors = rolled_back
            .0
            .into_iter()
            .map(|f| format!("{}: {}", f.host, f.message))
            .collect();
        return Ok(LaneResult::Failed(FailedWave {
            wave: wave.description.clone(),
            failures,
            rollback_errors,
        }));
    }
    Ok(LaneResult::Done(waits))
}

/// The steps without those that record a revision as failed.
fn without_failure_records(
    steps: &std::collections::BTreeMap<String, Vec<Step>>,
) -> std::collections::BTreeMap<String, Vec<Step>> {
    steps
        .iter()
        .map(|(h, list)| {
            let kept = list
                .iter()
                .filter(|s| {
                    !matches!(s, Step::RecordRollout { state: Some(r), .. } if r.phase == crate::model::Phase::Failed)
                })
                .cloned()
                .collect();
            (h.clone(), kept)
        })
        .collect()
}

async fn run_hosts(
    steps: &BTreeMap<String, Vec<Step>>,
    lane: Option<&str>,
    engines: &Engines,
    shared: &Shared,
    progress: &Arc<dyn Progress>,
) -> Result<(Vec<StepFailure>, Waits), ExecError> {
    let mut tasks = Vec::new();
    // Failed analysis requests of this wave, over all hosts (the limit is fleet-wide).
    let analysis_failures = Arc::new(AtomicU32::new(0));
    for (host, list) in steps {
        let Some(engine) = engines.get(host) else {
            return Err(ExecError::NotConnected { host: host.clone() });
        };
        let ctx = HostContext {
            engine: engine.clone(),
            analysis_failures: analysis_failures.clone(),
            drains: shared.drains.clone(),
            edges: shared.edges.clone(),
            fence: shared.fence.clone(),
            host: host.clone(),
            progress: progress.clone(),
        };
        tasks.push(tokio::spawn(run_host(
            Arc::new(ctx),
            list.clone(),
            lane.map(str::to_string),
        )));
    }
    // Dropped before the tasks finish (an interrupt), the guard aborts them.
    let mut guard = AbortOnDrop(tasks.iter().map(|t| t.abort_handle()).collect());
    let mut failures = Vec::new();
    let mut longest_wait = Waits::default();
    for t in tasks {
        match t.await {
            Ok((failure, waited)) => {
                longest_wait = longest_wait.longest(waited);
                failures.extend(failure);
            }
            Err(e) => failures.push(StepFailure {
                host: "?".into(),
                message: format!("internal error: {e}"),
                details: String::new(),
                kind: FailureKind::Fault,
            }),
        }
    }
    guard.0.clear();
    Ok((failures, longest_wait))
}

struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Why an apply must stop before its end.
enum Halt {
    /// SIGINT or SIGTERM: roll the wave back.
    Signal(&'static str),
    /// The lock is not this apply's any more: stop where it is.
    LockLost(String),
}

/// Resolves with why the apply must stop: a signal (SIGINT, SIGTERM), or the lock lost.
async fn halted(fence: Fence) -> Halt {
    let mut lost = fence.lost();
    let lost = async move {
        loop {
            if let Some(why) = lost.borrow_and_update().clone() {
                return why;
            }
            if lost.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        signal = crate::here::interrupt() => Halt::Signal(signal),
        why = lost => Halt::LockLost(why),
    }
}
