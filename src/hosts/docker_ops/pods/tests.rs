//! The container create body as a value: what each kind of container in a pod is given.
use super::*;
use serde_json::json;

/// A pod of an app and a sidecar as a plan has it: the app publishes 8080 on host port
/// 8000, mounts a named volume read-only and a host path, and has a healthcheck.
fn pod() -> PodPlan {
    let app = json!({
        "name": "app", "image": "web:1", "restart": "always",
        "digest": "sha256:abc",
        "ports": [{"host": 8000, "container": 8080, "protocol": "tcp"}],
        "volumes": [
            {"source": "data", "target": "/data", "read_only": true},
            {"source": "/etc/ssl", "target": "/ssl"}
        ],
        "healthcheck": {"test": ["CMD", "true"], "interval_ms": 1000, "timeout_ms": 500,
                        "retries": 2, "start_period_ms": 0},
        "memory": 268435456, "millicpus": 500, "init": true,
    });
    let side = json!({
        "name": "side", "image": "proxy:2", "restart": "no",
        "ports": [{"container": 9090, "protocol": "udp"}],
    });
    serde_json::from_value(json!({
        "name": "web-abc-0", "deployment": "web", "network": "berth-shop",
        "aliases": ["web"],
        "containers": [
            {"name": "web-abc-0-app", "spec": app, "labels": {"berth.project": "shop"}},
            {"name": "web-abc-0-side", "spec": side, "labels": {"berth.project": "shop"}},
        ],
        "ingress": {"container_port": 8080, "host_port": 32001},
    }))
    .expect("a pod plan")
}

#[test]
fn the_first_container_owns_the_network_and_publishes_every_port_of_the_pod() {
    let body = create_body(&pod(), 0, "shop", vec!["A=1".into()]);
    let host = body.host_config.clone().unwrap();
    assert_eq!(host.network_mode.as_deref(), Some("berth-shop"));
    let ports = host.port_bindings.unwrap();
    let bound = |key: &str| {
        (ports.get(key).cloned().flatten().unwrap_or_default().iter())
            .map(|b| b.host_port.clone().unwrap())
            .collect::<Vec<_>>()
    };
    // Its own port with its host port and the ingress port on the edge's, the sidecar's
    // exposed without a host port.
    assert_eq!(bound("8080/tcp"), ["8000", "32001"]);
    assert_eq!(bound("9090/udp"), Vec::<String>::new());
    // Once each, though the ingress port is the app's own.
    assert_eq!(body.exposed_ports.unwrap(), ["8080/tcp", "9090/udp"]);
    assert_eq!(body.hostname.as_deref(), Some("web-abc-0"));
    // Created outside every service name: it joins once its health gate passed.
    let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
    assert_eq!(endpoints["berth-shop"].aliases, None);
    // What was resolved is what runs.
    assert_eq!(body.image.as_deref(), Some("web:1@sha256:abc"));
    assert_eq!(body.env, Some(vec!["A=1".to_string()]));
}

#[test]
fn volumes_limits_restart_and_healthcheck_become_the_engine_s_words() {
    let body = create_body(&pod(), 0, "shop", vec![]);
    let host = body.host_config.unwrap();
    assert_eq!(
        host.binds.unwrap(),
        [
            format!(
                "{}:/data:ro",
                crate::model::names::volume_name("shop", "data")
            ),
            "/etc/ssl:/ssl".to_string()
        ]
    );
    assert_eq!(host.memory, Some(268435456));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.init, Some(true));
    let restart = host.restart_policy.unwrap().name;
    assert_eq!(restart, Some(RestartPolicyNameEnum::ALWAYS));
    let health = body.healthcheck.unwrap();
    assert_eq!(health.interval, Some(1_000_000_000));
    assert_eq!(health.timeout, Some(500_000_000));
    assert_eq!(health.retries, Some(2));
}

#[test]
fn a_sidecar_shares_the_first_container_s_network_and_publishes_nothing() {
    let body = create_body(&pod(), 1, "shop", vec![]);
    let host = body.host_config.unwrap();
    assert_eq!(
        host.network_mode.as_deref(),
        Some("container:web-abc-0-app")
    );
    assert_eq!(host.port_bindings, None);
    assert_eq!(body.hostname, None);
    assert!(body.networking_config.is_none());
    assert_eq!(
        host.restart_policy.unwrap().name,
        Some(RestartPolicyNameEnum::NO)
    );
    assert_eq!(body.image.as_deref(), Some("proxy:2"));
}

#[test]
fn an_edge_in_the_host_network_joins_no_network_and_keeps_the_host_s_name() {
    let mut edge = pod();
    edge.containers.truncate(1);
    edge.containers[0].spec.network_mode = Some("host".into());
    let body = create_body(&edge, 0, "shop", vec![]);
    assert_eq!(
        body.host_config.unwrap().network_mode.as_deref(),
        Some("host")
    );
    assert!(body.networking_config.is_none());
    assert_eq!(body.hostname, None);
}
