//! Checks across deployments: replicas that cannot be placed, host ports two pods would
//! publish on one host, services and preview names that collide. Pure.

use super::*;

/// Static placement checks: replicas that cannot be placed, and host ports that two pods
/// would publish on one host.
pub(super) fn check_placement(
    l: &mut Loader,
    state: &DesiredState,
    ds: &[(Deployment, SourceFile, DeploymentFile)],
) {
    for (d, src, raw) in ds {
        let eligible = state.eligible_hosts(d);
        let ports = d.pod.host_ports();
        let per_host = d.pods_per_host();
        let capacity = (eligible.len() as u64) * per_host as u64;
        if (d.replicas as u64) > capacity {
            let why = if eligible.is_empty() {
                "no host in the inventory matches the placement selector".to_string()
            } else if !ports.is_empty() {
                format!(
                    "{} host(s) match and a pod that publishes host port {} fits once per host",
                    eligible.len(),
                    ports[0].0
                )
            } else {
                format!(
                    "{} host(s) match, at most {} pod(s) per host",
                    eligible.len(),
                    per_host
                )
            };
            let replicas_at = if raw.replicas.referenced.line() == 0 {
                &raw.name.referenced
            } else {
                &raw.replicas.referenced
            };
            l.report(src.error_at(
                src.span_of(replicas_at),
                format!("{} replicas of {} cannot be placed", d.replicas, d.name),
                why,
            ));
        }
        if let Some(m) = raw
            .placement
            .max_per_host
            .as_ref()
            .filter(|m| m.value > 1 && !ports.is_empty())
        {
            l.report(
                src.error(
                    m,
                    "a pod that publishes a host port fits once per host",
                    "more than one per host",
                )
                .with_help(format!(
                    "host port {} can be bound by one container per host; set max_per_host: 1",
                    ports[0].0
                )),
            );
        }
    }
    // Two deployments publishing one host port on a host both may run on.
    for (i, (a, _, _)) in ds.iter().enumerate() {
        for (b, src_b, raw_b) in &ds[i + 1..] {
            let hosts_a: Vec<&str> = state
                .eligible_hosts(a)
                .iter()
                .map(|h| h.name.as_str())
                .collect();
            let shared: Vec<&str> = state
                .eligible_hosts(b)
                .iter()
                .map(|h| h.name.as_str())
                .filter(|h| hosts_a.contains(h))
                .collect();
            if shared.is_empty() {
                continue;
            }
            for port in a.pod.host_ports() {
                if !b.pod.host_ports().contains(&port) {
                    continue;
                }
                let at = raw_b
                    .pod
                    .containers
                    .value
                    .iter()
                    .flat_map(|c| c.ports.iter())
                    .find(|p| {
                        units::port(&p.value)
                            .is_ok_and(|x| x.host == Some(port.0) && x.protocol == port.1)
                    })
                    .unwrap_or(&raw_b.name);
                l.report(
                    src_b
                        .error(
                            at,
                            format!(
                                "host port {}/{} is published by two deployments",
                                port.0, port.1
                            ),
                            format!("also published by {}", a.name),
                        )
                        .with_help(format!(
                            "{} and {} can both be placed on {}",
                            a.name,
                            b.name,
                            shared.join(", ")
                        )),
                );
            }
        }
    }
}

pub(super) fn check_services(l: &mut Loader, ds: &[(Deployment, SourceFile, DeploymentFile)]) {
    for (a, _, _) in ds {
        let Some(sa) = &a.service else { continue };
        let preview = names::preview_alias(&sa.name);
        for (b, src_b, raw_b) in ds.iter().filter(|(b, _, _)| b.name != a.name) {
            if b.service.as_ref().is_some_and(|sb| sb.name == preview) {
                let name = &raw_b.service.as_ref().expect("has a service").name;
                l.report(
                    src_b
                        .error(
                            name,
                            format!("service {preview:?} is the preview name of {}'s service", a.name),
                            "taken",
                        )
                        .with_help(format!(
                            "a blue-green rollout of {} puts its new pods behind {preview}; choose another name",
                            a.name
                        )),
                );
            }
        }
    }
    for (i, (a, _, _)) in ds.iter().enumerate() {
        let Some(sa) = &a.service else { continue };
        for (b, src_b, raw_b) in &ds[i + 1..] {
            if b.service.as_ref().is_some_and(|sb| sb.name == sa.name) {
                let name = &raw_b.service.as_ref().expect("has a service").name;
                l.report(src_b.error(
                    name,
                    format!(
                        "service {:?} is already used by deployment {}",
                        sa.name, a.name
                    ),
                    "used twice",
                ));
            }
        }
    }
}
