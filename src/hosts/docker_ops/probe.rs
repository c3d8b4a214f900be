//! What a health gate looks at: a container's state and health, and its last log lines.

use super::*;
use crate::model::Health;

/// The state of one container as a short inspect sees it.
pub struct Probe {
    pub running: bool,
    pub restarting: bool,
    pub health: Option<Health>,
    pub exit_code: Option<i64>,
    pub health_log: Vec<String>,
}

/// The engine's word for a container's health, as berth's (`none`: no healthcheck).
fn health_of(status: HealthStatusEnum) -> Option<Health> {
    match status {
        HealthStatusEnum::STARTING => Some(Health::Starting),
        HealthStatusEnum::HEALTHY => Some(Health::Healthy),
        HealthStatusEnum::UNHEALTHY => Some(Health::Unhealthy),
        HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => None,
    }
}

pub async fn probe(docker: &Docker, name: &str) -> Result<Probe, OpError> {
    let info = docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .map_err(doing(format!("inspecting {name}")))?;
    let state = info.state.unwrap_or_default();
    let health = state.health.clone();
    Ok(Probe {
        running: state.running.unwrap_or(false),
        restarting: state.restarting.unwrap_or(false),
        health: health.as_ref().and_then(|h| h.status).and_then(health_of),
        exit_code: state.exit_code,
        health_log: health
            .and_then(|h| h.log)
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                format!(
                    "exit {}: {}",
                    r.exit_code.unwrap_or(-1),
                    r.output.unwrap_or_default().trim()
                )
            })
            .collect(),
    })
}

/// The last lines of a container's output, for failure reports.
pub async fn last_logs(docker: &Docker, name: &str, lines: usize) -> String {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    let mut stream = docker.logs(name, Some(options));
    let mut out = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&chunk.to_string());
    }
    out
}
