//! A job's step: its output passed on as it comes, its exit judged, its last lines kept for
//! the failure report.

use super::failure::{StepError, StepResult};
use super::progress::Progress;
use crate::hosts::engine::Engine;

/// How many of a failed job's last output lines its failure report shows.
const JOB_TAIL_LINES: usize = 20;

/// Runs a job, its output passed on as it comes; an exit other than 0 fails the step, with
/// the output's last lines.
pub(super) async fn run_job(
    engine: &dyn Engine,
    progress: &dyn Progress,
    host: &str,
    job: &crate::plan::JobPlan,
) -> StepResult {
    let tail = std::sync::Mutex::new(std::collections::VecDeque::new());
    let output = |line: &str| {
        progress.output(host, &job.job, line);
        let mut tail = tail.lock().expect("not poisoned");
        if tail.len() == JOB_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_string());
    };
    let code = match engine.run_job(job, &output).await {
        Ok(code) => code,
        // The revision's own code ran out of time: a verdict, like an exit other than 0.
        Err(e @ crate::hosts::engine::OpError::JobTimedOut { .. }) => {
            let details: Vec<String> = tail.lock().expect("not poisoned").drain(..).collect();
            return Err(StepError::verdict(e.to_string(), details.join("\n")));
        }
        Err(e) => return Err(e.into()),
    };
    if code == 0 {
        return Ok(());
    }
    let details: Vec<String> = tail.lock().expect("not poisoned").drain(..).collect();
    Err(StepError::verdict(
        format!(
            "job {} exited with code {code}; the new pods of {} were not started",
            job.job, job.deployment
        ),
        details.join("\n"),
    ))
}
