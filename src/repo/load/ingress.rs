//! `ingress:` on a deployment and the edge proxies berth makes for them (`edge:` in
//! berth.yaml): the edge becomes a deployment of its own, one pod per edge host, so it is
//! planned, rolled out and checked for drift like any other. Pure.

use super::*;
use crate::model::haproxy::edge_command;
use crate::model::ingress::{
    EdgeSettings, Ingress, Scope, DEFAULT_ADMIN_PORT, DEFAULT_EDGE_IMAGE, DEFAULT_POD_PORTS,
    EDGE_DEPLOYMENT, EDGE_DIR, EDGE_VOLUME,
};
use crate::model::{Amount, Mount, PodSpec, Service, StrategyKind};
use crate::repo::schema_ingress::{EdgeFile, IngressFile};

/// A deployment's ingress, checked where it is written.
pub(super) fn load_ingress(
    l: &mut Loader,
    src: &SourceFile,
    raw: &DeploymentFile,
    ingress: &IngressFile,
    service: Option<&Service>,
) -> Option<Ingress> {
    let Some(service) = service else {
        l.report(
            src.error(&raw.name, "an ingress needs a service", "this deployment")
                .with_help("add service: {name: ..., port: ...}: the edge routes to the pods behind the service"),
        );
        return None;
    };
    for h in &ingress.hostnames {
        let ok = !h.value.is_empty()
            && h.value.len() <= 253
            && h.value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !ok {
            l.report(src.error(
                h,
                format!("{:?} is not a host name", h.value),
                "letters, digits, '-' and '.' only",
            ));
        }
    }
    let health_path = match &ingress.health {
        Some(p) if !p.value.starts_with('/') || p.value.contains(char::is_whitespace) => {
            l.report(src.error(p, "a health path starts with / and has no spaces", "here"));
            "/".to_string()
        }
        Some(p) => p.value.clone(),
        None => "/".to_string(),
    };
    let scope = match ingress.scope.as_ref().map(|s| s.value.as_str()) {
        None | Some("fleet") => Scope::Fleet,
        Some("host") => Scope::Host,
        Some(other) => {
            let at = ingress.scope.as_ref().expect("set");
            l.report(src.error(at, format!("unknown scope {other:?}"), "fleet or host"));
            Scope::Fleet
        }
    };
    let tls = ingress.tls.as_ref().map(|t| {
        // Every edge carries every ingress: its certificate is needed whatever `-l` says.
        let name = &t.secret;
        let user = std::mem::replace(&mut l.secret_user, SecretUser::Edge);
        l.need_secret(&name.value, true, || {
            src.error(
                name,
                format!("secret {} has no value", name.value),
                "this certificate",
            )
        });
        l.secret_user = user;
        name.value.clone()
    });
    let Some(container_port) = ingress
        .container_port
        .as_ref()
        .map(|p| p.value)
        .or(service.port)
    else {
        l.report(
            src.error(
                &raw.name,
                "the ingress does not say which port the pods listen on",
                "this deployment",
            )
            .with_help("set ingress.container_port, or service.port"),
        );
        return None;
    };
    Some(Ingress {
        port: ingress.port.as_ref().map_or(80, |p| p.value),
        hostnames: ingress
            .hostnames
            .iter()
            .map(|h| h.value.to_ascii_lowercase())
            .collect(),
        container_port,
        health_path,
        scope,
        tls,
    })
}

/// The edge deployment, when any deployment has an ingress; with the edge's settings.
pub(super) fn edge_deployment(
    l: &mut Loader,
    project_src: &SourceFile,
    edge: Option<&EdgeFile>,
    hosts: &[crate::model::Host],
    ds: &[(Deployment, SourceFile, DeploymentFile)],
    default_strategy: &Strategy,
) -> Option<(Deployment, EdgeSettings)> {
    let with_ingress: Vec<&(Deployment, SourceFile, DeploymentFile)> =
        ds.iter().filter(|(d, _, _)| d.ingress.is_some()).collect();
    if let Some((_, src, raw)) = ds.iter().find(|(d, _, _)| d.name == EDGE_DEPLOYMENT) {
        l.report(src.error(
            &raw.name,
            format!("{EDGE_DEPLOYMENT} is the name of berth's edge proxies"),
            "reserved",
        ));
    }
    check_public_ports(l, &with_ingress, ds);
    if with_ingress.is_empty() {
        return None;
    }
    let empty = EdgeFile::default();
    let edge = edge.unwrap_or(&empty);
    // By default the edges run where the ingress deployments may run.
    let selector = match &edge.hosts {
        Some(s) => l.selector(project_src, s),
        None => {
            let first = &with_ingress[0].0.placement.hosts;
            if with_ingress
                .iter()
                .all(|(d, _, _)| d.placement.hosts.to_string() == first.to_string())
            {
                first.clone()
            } else {
                Selector::everything()
            }
        }
    };
    let pod_ports =
        match &edge.pod_ports {
            None => DEFAULT_POD_PORTS,
            Some(text) => match text.value.split_once('-').and_then(|(a, b)| {
                Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
            }) {
                Some((a, b)) if a > 0 && a <= b => (a, b),
                _ => {
                    l.report(src_error(project_src, text));
                    DEFAULT_POD_PORTS
                }
            },
        };
    let image = edge
        .image
        .as_ref()
        .map_or(DEFAULT_EDGE_IMAGE.to_string(), |i| {
            normalise_image(&i.value)
        });
    // The edge runs as root on the host's network: the policy must allow both.
    let (_, first_src, first_raw) = with_ingress[0];
    l.check_policy(first_src, &first_raw.name, |p| {
        p.check_host_network("the edge proxies that serve this deployment's ingress")
    });
    match &edge.image {
        Some(at) => l.check_policy(project_src, at, |p| p.check_edge_image(&image)),
        None => l.check_policy(first_src, &first_raw.name, |p| p.check_edge_image(&image)),
    }
    let settings = EdgeSettings {
        image: image.clone(),
        admin_port: edge.admin_port.unwrap_or(DEFAULT_ADMIN_PORT),
        pod_ports,
    };
    let count = hosts.iter().filter(|h| selector.matches(&h.labels)).count() as u32;
    let container = ContainerSpec {
        name: "haproxy".into(),
        image,
        command: Some(edge_command()),
        volumes: vec![Mount {
            source: EDGE_VOLUME.into(),
            target: EDGE_DIR.into(),
            read_only: false,
        }],
        restart: "unless-stopped".into(),
        // `docker stop` asks for a soft stop: the listeners go to the replacement, the
        // requests in flight finish.
        stop_signal: Some("SIGUSR1".into()),
        network_mode: Some("host".into()),
        // The official image runs as an unprivileged user, who may not bind ports below 1024.
        user: Some("root".into()),
        ..ContainerSpec::default()
    };
    let strategy = Strategy {
        kind: StrategyKind::Rolling,
        max_surge: Amount::Count(1),
        max_unavailable: Amount::Count(0),
        min_ready_ms: default_strategy.min_ready_ms.max(1000),
        stop_timeout_s: 30,
        history_limit: 0,
        ..default_strategy.clone()
    };
    let deployment = Deployment {
        name: EDGE_DEPLOYMENT.into(),
        labels: Labels::from([("berth.edge".to_string(), "true".to_string())]),
        replicas: count,
        placement: crate::model::Placement {
            hosts: selector,
            max_per_host: Some(1),
        },
        pod: PodSpec {
            containers: vec![container],
        },
        service: None,
        ingress: None,
        strategy,
        jobs: vec![],
        file: project_src.path.clone(),
    };
    Some((deployment, settings))
}

fn src_error(
    src: &SourceFile,
    text: &serde_saphyr::Spanned<String>,
) -> super::super::diag::SpecError {
    src.error(text, "pod_ports is a range like 30000-32767", "not a range")
}

/// Two ingresses on one public port must tell their requests apart by host name, and no pod
/// may publish a port an edge listens on.
fn check_public_ports(
    l: &mut Loader,
    with_ingress: &[&(Deployment, SourceFile, DeploymentFile)],
    all: &[(Deployment, SourceFile, DeploymentFile)],
) {
    for (i, (a, _, _)) in with_ingress.iter().enumerate() {
        let ia = a.ingress.as_ref().expect("filtered");
        for (b, src_b, raw_b) in &with_ingress[i + 1..] {
            let ib = b.ingress.as_ref().expect("filtered");
            if ia.port != ib.port {
                continue;
            }
            if ia.tls.is_some() != ib.tls.is_some() {
                l.report(
                    src_b
                        .error(
                            &raw_b.name,
                            format!(
                                "port {} is HTTPS for one ingress and HTTP for {}",
                                ia.port, a.name
                            ),
                            "a second ingress",
                        )
                        .with_help("give both a tls certificate, or put them on different ports"),
                );
            }
            let both_default = ia.hostnames.is_empty() && ib.hostnames.is_empty();
            let shared = ia.hostnames.iter().find(|h| ib.hostnames.contains(h));
            if both_default || shared.is_some() {
                let what = shared.map_or("any host name".to_string(), |h| format!("host {h}"));
                l.report(
                    src_b
                        .error(
                            &raw_b.name,
                            format!(
                                "port {} for {what} is routed to {} already",
                                ia.port, a.name
                            ),
                            "a second ingress",
                        )
                        .with_help("give the ingresses on one port different hostnames"),
                );
            }
        }
        for (b, src_b, raw_b) in all {
            if b.pod.host_ports().iter().any(|(p, _)| *p == ia.port) {
                l.report(
                    src_b
                        .error(&raw_b.name, format!("host port {} is the edge's (the ingress of {})", ia.port, a.name), "publishes it")
                        .with_help("give this deployment an ingress on another hostname instead of a host port"),
                );
            }
        }
    }
}
