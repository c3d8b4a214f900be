//! What the executor tells whoever watches an apply: the `Progress` trait it reports to,
//! and each step as a short phrase.

use crate::plan::Step;

/// Where the executor reports what it does (a terminal's bars, CI log lines, nothing).
pub trait Progress: Send + Sync {
    fn wave(&self, index: usize, total: usize, description: &str);
    /// A step starts on a host, for a deployment's lane (`None`: preparation, pruning).
    fn step_started(&self, host: &str, lane: Option<&str>, step: &str);
    fn step_done(&self, host: &str, lane: Option<&str>, step: &str);
    fn failed(&self, host: &str, message: &str);
    fn rolling_back(&self, wave: &str);
    /// A line of a job's output, as it runs on a host.
    fn output(&self, host: &str, job: &str, line: &str);
    fn finish(&self);
}

/// A step as a short phrase for progress output.
pub fn describe(step: &Step) -> String {
    match step {
        Step::EnsureNetwork { name } => format!("network {name}"),
        Step::EnsureVolume { name } => format!("volume {name}"),
        Step::EnsureImage { image } => format!("image {image}"),
        Step::CreatePod { pod } => format!("create {}", pod.name),
        Step::AwaitReady {
            pod,
            min_ready_ms,
            join,
            ..
        } => {
            let behind = join
                .as_ref()
                .map(|j| format!(", behind {}", j.aliases.join(", ")))
                .unwrap_or_default();
            format!(
                "wait for {pod} to be ready for {}s{behind}",
                *min_ready_ms as f64 / 1000.0
            )
        }
        Step::StartPod { pod, .. } => format!("start {pod}"),
        Step::StopPod { pod, .. } => format!("stop {pod}"),
        Step::RemovePod { pod, .. } => format!("remove {pod}"),
        Step::RemoveVolume { name } => format!("remove volume {name}"),
        Step::JoinService { pod, join } => format!("put {pod} behind {}", join.aliases.join(", ")),
        Step::LeaveService {
            pod,
            leave,
            drain_ms,
        } => format!(
            "take {pod} out of {} (it drains {}s before it stops)",
            leave.aliases.join(", "),
            *drain_ms as f64 / 1000.0
        ),
        Step::RecordRollout { state: None, .. } => "clear the rollout state".into(),
        Step::RecordRollout { state: Some(s), .. } => {
            format!("record the rollout as {:?} at step {}", s.phase, s.step + 1).to_lowercase()
        }
        Step::RunJob { job } => format!(
            "run job {} ({})",
            job.job,
            job.container
                .spec
                .command
                .as_ref()
                .map_or("the image's command".to_string(), |c| c.join(" "))
        ),
        Step::RecordJob { record } => {
            format!("record job {} as done for {}", record.job, record.revision)
        }
        Step::RouteWeight {
            revision, percent, ..
        } => format!("route {percent}% of requests to revision {revision} on the edges"),
        Step::RouteEdges { add, remove } => format!(
            "edges: {}",
            crate::plan::membership::describe_edge_step(add, remove)
        ),
        Step::SyncEdge => "give the edge its routes".to_string(),
        Step::EdgeAnalyze {
            revision, check, ..
        } => format!(
            "count the answers of revision {revision} on the edges for {}s",
            check.duration_ms as f64 / 1000.0
        ),
        Step::Wait { ms, reason } => format!("{reason}: wait {}s", *ms as f64 / 1000.0),
        Step::Analyze { pods, check } => format!(
            "analyse {} pod(s): {} x GET :{}{}",
            pods.len(),
            check.samples,
            check.port,
            check.path
        ),
    }
}
