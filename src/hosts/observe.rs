//! Observing a host: one container list, turned into plain values.

use crate::model::{Health, ObservedContainer, ObservedHost};
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;

/// Reads the health from the status text (`Up 3 seconds (healthy)`), which the list call
/// returns, so no inspect per container is needed.
pub fn health_from_status(status: &str) -> Option<Health> {
    if status.contains("(healthy)") {
        Some(Health::Healthy)
    } else if status.contains("(unhealthy)") {
        Some(Health::Unhealthy)
    } else if status.contains("(health: starting)") {
        Some(Health::Starting)
    } else {
        None
    }
}

/// Lists every container of the host (managed or not: unmanaged ones matter for name and
/// port clashes) in one request.
pub async fn observe(host: &str, docker: &Docker) -> Result<ObservedHost, String> {
    let options = ListContainersOptionsBuilder::default().all(true).build();
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| format!("listing containers: {e}"))?;
    let containers = list
        .into_iter()
        .map(|c| {
            let mut host_ports: Vec<(u16, String)> = c
                .ports
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| {
                    let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
                    p.public_port.map(|pp| (pp, proto))
                })
                .collect();
            host_ports.sort();
            host_ports.dedup();
            ObservedContainer {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .unwrap_or_default()
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                health: c.status.as_deref().and_then(health_from_status),
                labels: c.labels.unwrap_or_default().into_iter().collect(),
                host_ports,
            }
        })
        .collect();
    Ok(ObservedHost {
        host: host.to_string(),
        containers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_read_from_the_status_text() {
        assert_eq!(
            health_from_status("Up 3 seconds (healthy)"),
            Some(Health::Healthy)
        );
        assert_eq!(
            health_from_status("Up 1 second (health: starting)"),
            Some(Health::Starting)
        );
        assert_eq!(
            health_from_status("Up 9 minutes (unhealthy)"),
            Some(Health::Unhealthy)
        );
        assert_eq!(health_from_status("Exited (0) 2 minutes ago"), None);
    }
}
