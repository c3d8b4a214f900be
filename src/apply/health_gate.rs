//! The health gate: a new pod must run, pass its healthcheck and stay so for `min_ready`,
//! joining its service the moment it is first healthy; a pod that exits, restarts or turns
//! unhealthy fails it at once, with its last log lines and health check output.

use super::failure::{StepError, StepResult};
use crate::hosts::engine::Engine;
use crate::model::Health;
use crate::plan::ServiceJoin;
use futures_util::future::join_all;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(200);

/// Waits until every container runs and passes its healthcheck, then stays so for
/// `min_ready_ms`. Fails at once when a container exits, restarts or turns unhealthy, and at
/// the deadline otherwise.
pub(super) async fn await_ready(
    engine: &dyn Engine,
    pod: &str,
    containers: &[String],
    min_ready_ms: u64,
    timeout_ms: u64,
    join: Option<&ServiceJoin>,
) -> StepResult {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(timeout_ms);
    let min_ready = Duration::from_millis(min_ready_ms);
    let mut ready_since: Option<Instant> = None;
    let mut joined = false;
    loop {
        let probes = join_all(containers.iter().map(|name| engine.probe(name))).await;
        let mut all_ready = true;
        for (name, p) in containers.iter().zip(probes) {
            let p = p?;
            if let Some(problem) = problem_of(name, &p) {
                return Err(StepError::verdict(
                    format!("pod {pod} failed its health gate: {problem}"),
                    failure_details(engine, containers).await,
                ));
            }
            if p.health == Some(Health::Starting) {
                all_ready = false;
            }
        }
        if all_ready {
            let since = *ready_since.get_or_insert_with(Instant::now);
            if let (Some(j), false) = (join, joined) {
                if let Err(e) = engine.join(j).await {
                    // A container that ended between the probe and the join (it crashed on
                    // start) fails the gate for that reason, not for the join.
                    let probes = join_all(containers.iter().map(|name| engine.probe(name))).await;
                    for (name, p) in containers.iter().zip(probes) {
                        if let Some(problem) = p.ok().and_then(|p| problem_of(name, &p)) {
                            return Err(StepError::verdict(
                                format!("pod {pod} failed its health gate: {problem}"),
                                failure_details(engine, containers).await,
                            ));
                        }
                    }
                    return Err(e.into());
                }
                joined = true;
            }
            if since.elapsed() >= min_ready {
                return Ok(());
            }
        } else {
            ready_since = None;
        }
        if Instant::now() >= deadline {
            return Err(StepError::verdict(
                format!(
                    "pod {pod} was not ready within {:?}",
                    Duration::from_millis(timeout_ms)
                ),
                failure_details(engine, containers).await,
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What keeps a container from passing its health gate, if anything.
fn problem_of(name: &str, p: &crate::hosts::engine::Probe) -> Option<String> {
    if p.restarting {
        Some(format!(
            "{name} is restarting (exit code {})",
            p.exit_code.unwrap_or(-1)
        ))
    } else if !p.running {
        Some(format!(
            "{name} exited with code {}",
            p.exit_code.unwrap_or(-1)
        ))
    } else if p.health == Some(Health::Unhealthy) {
        Some(format!("{name} is unhealthy"))
    } else {
        None
    }
}

async fn failure_details(engine: &dyn Engine, containers: &[String]) -> String {
    let mut out = String::new();
    for name in containers {
        out.push_str(&format!("--- {name}: last log lines\n"));
        let logs = engine.last_logs(name, 20).await;
        out.push_str(if logs.trim().is_empty() {
            "(no output)\n"
        } else {
            &logs
        });
        if !out.ends_with('\n') {
            out.push('\n');
        }
        if let Ok(p) = engine.probe(name).await {
            if !p.health_log.is_empty() {
                out.push_str(&format!("--- {name}: health check output\n"));
                for l in p.health_log.iter().rev().take(3).rev() {
                    out.push_str(&format!("{l}\n"));
                }
            }
        }
    }
    out
}
