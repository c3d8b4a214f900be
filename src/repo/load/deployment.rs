//! One deployment file and its containers: names, images, env (secrets by name), ports,
//! volumes, healthchecks and limits, each checked where it is written. Pure.

use super::*;

pub(super) fn load_deployment(
    l: &mut Loader,
    src: &SourceFile,
    raw: &DeploymentFile,
    default_strategy: &Strategy,
    default_restart: &str,
    default_max_per_host: Option<u32>,
) -> Deployment {
    l.name(src, &raw.name, "deployment");
    let labels = l.labels(src, &raw.labels);
    for k in raw.labels.keys().filter(|k| k.value.starts_with("berth.")) {
        l.report(
            src.error(
                k,
                format!("label {} is berth's own", k.value),
                "reserved prefix",
            )
            .with_help(
                "berth labels every container with berth.* keys; name yours without that prefix",
            ),
        );
    }
    let hosts = match &raw.placement.hosts {
        Some(s) => l.selector(src, s),
        None => Selector::everything(),
    };
    let max_per_host = raw
        .placement
        .max_per_host
        .as_ref()
        .map(|m| m.value)
        .or(default_max_per_host);
    if let Some(m) = &raw.placement.max_per_host {
        if m.value == 0 {
            l.report(src.error(m, "max_per_host must be at least 1", "zero"));
        }
    }
    let needs_secrets = l.needs_secrets.is_none_or(|s| s.matches(&labels));
    l.secret_user = SecretUser::Deployment {
        name: raw.name.value.clone(),
        labels: labels.clone(),
    };
    let mut containers: Vec<ContainerSpec> = Vec::new();
    if raw.pod.containers.value.is_empty() {
        l.report(src.error(
            &raw.pod.containers,
            "a pod needs at least one container",
            "empty",
        ));
    }
    for c in &raw.pod.containers.value {
        let spec = load_container(l, src, c, default_restart, needs_secrets);
        if containers.iter().any(|o| o.name == spec.name) {
            l.report(src.error(
                &c.name,
                format!("two containers in this pod are named {:?}", spec.name),
                "again here",
            ));
        }
        for port in spec.ports.iter().filter(|p| p.host.is_some()) {
            let taken = containers
                .iter()
                .flat_map(|o| o.ports.iter())
                .chain(spec.ports.iter().take_while(|p| !std::ptr::eq(*p, port)))
                .any(|o| o.host == port.host && o.protocol == port.protocol);
            if taken {
                let at = c
                    .ports
                    .iter()
                    .find(|p| units::port(&p.value).is_ok_and(|x| x.host == port.host))
                    .unwrap_or(&c.name);
                l.report(src.error(
                    at,
                    format!(
                        "host port {}/{} is published twice in this pod",
                        port.host.unwrap_or(0),
                        port.protocol
                    ),
                    "published already",
                ));
            }
        }
        containers.push(spec);
    }
    let service = raw.service.as_ref().map(|s| {
        l.name(src, &s.name, "service");
        Service {
            name: s.name.value.clone(),
            port: s.port,
        }
    });
    let ingress = raw
        .ingress
        .as_ref()
        .and_then(|i| super::ingress::load_ingress(l, src, raw, i, service.as_ref()));
    let strategy = l.strategy(src, raw.strategy.as_ref(), default_strategy);
    let edge_analysis =
        (strategy.steps.iter()).any(|s| matches!(s, crate::model::CanaryStep::EdgeAnalysis(_)));
    if edge_analysis && ingress.is_none() {
        let at = raw.strategy.as_ref().and_then(|s| s.kind.as_ref());
        let e = match at {
            Some(k) => src.error(k, "an edge_analysis step needs an ingress", "this strategy"),
            None => src.error(
                &raw.name,
                "an edge_analysis step needs an ingress",
                "this deployment",
            ),
        };
        l.report(e.with_help("the edges count a canary's answers only for a deployment with ingress:; use analysis: for HTTP checks"));
    }
    if strategy.kind.is_progressive() {
        let at = raw.strategy.as_ref().and_then(|s| s.kind.as_ref());
        let error = |message: String, label: &str| match at {
            Some(k) => src.error(k, message, label),
            None => src.error(&raw.name, message, label),
        };
        let kind = if strategy.kind == StrategyKind::Canary {
            "canary"
        } else {
            "blue-green"
        };
        if service.is_none() {
            l.report(
                error(format!("a {kind} rollout needs a service"), "this strategy")
                    .with_help("add service: {name: ..., port: ...}: the rollout moves traffic by moving the service name"),
            );
        }
        if let Some((port, _)) = containers
            .iter()
            .flat_map(|c| c.ports.iter())
            .find_map(|p| p.host.map(|h| (h, p)))
        {
            l.report(
                error(format!("a {kind} rollout runs two revisions at once, but host port {port} can be held by one container"), "this strategy")
                    .with_help("use rolling or recreate for a pod that publishes a host port"),
            );
        }
        if strategy.kind == StrategyKind::Canary && strategy.steps.is_empty() {
            l.report(
                error("a canary rollout needs steps".into(), "this strategy")
                    .with_help("steps: [{weight: 20}, {pause: 30s}, {weight: 50}, {pause: {}}]"),
            );
        }
    }
    let pod = PodSpec { containers };
    let jobs = super::jobs::load_jobs(l, src, raw, &pod, &hosts, needs_secrets);
    Deployment {
        name: raw.name.value.clone(),
        labels,
        replicas: raw.replicas.value,
        placement: Placement {
            hosts,
            max_per_host,
        },
        pod,
        service,
        ingress,
        strategy,
        jobs,
        file: src.path.clone(),
    }
}

pub(super) fn load_container(
    l: &mut Loader,
    src: &SourceFile,
    c: &ContainerFile,
    default_restart: &str,
    needs_secrets: bool,
) -> ContainerSpec {
    l.name(src, &c.name, "container");
    if c.image.value.trim().is_empty() || c.image.value.contains(char::is_whitespace) {
        l.report(src.error(
            &c.image,
            "invalid image reference",
            "an image like registry/name:tag is needed",
        ));
    }
    l.check_policy(src, &c.image, |p| p.check_image(&c.image.value));
    let mut env = super::env::load_env(l, src, &c.env, needs_secrets);
    let env_secret_files = super::files::load_env_files(l, src, c, needs_secrets, &mut env);
    let files = super::files::load_files(l, src, c, needs_secrets);
    let mut ports = Vec::new();
    for p in &c.ports {
        match units::port(&p.value) {
            Ok(port) => ports.push(port),
            Err(why) => l.report(src.error(p, "invalid port", why)),
        }
    }
    ports.sort();
    let mut volumes = Vec::new();
    for v in &c.volumes {
        match units::mount(&v.value) {
            Ok(m) => {
                if m.is_named_volume() {
                    if let Err(why) = check_object_name(&m.source) {
                        l.report(src.error(v, "invalid volume name", why));
                    }
                } else {
                    l.check_policy(src, v, |p| p.check_bind_mount(&m.source));
                }
                volumes.push(m)
            }
            Err(why) => l.report(src.error(v, "invalid volume", why)),
        }
    }
    for (i, m) in volumes.iter().enumerate() {
        if let Some(first) = volumes[..i].iter().find(|o| o.target == m.target) {
            let at = c
                .volumes
                .iter()
                .filter(|v| units::mount(&v.value).is_ok_and(|x| x.target == m.target))
                .nth(1)
                .unwrap_or(&c.name);
            l.report(
                src.error(
                    at,
                    format!("two volumes are mounted on {}", m.target),
                    "again here",
                )
                .with_help(format!("{} is mounted there already", first.source)),
            );
        }
    }
    let healthcheck = c.healthcheck.as_ref().map(|h| {
        let empty = match &h.test.value {
            Args::List(v) => v.iter().all(|a| a == "CMD" || a == "CMD-SHELL" || a.trim().is_empty()),
            Args::Shell(s) => s.trim().is_empty(),
        };
        if empty {
            l.report(
                src.error(&h.test, "an empty healthcheck test", "no command")
                    .with_help("test: [CMD, wget, -q, -O, /dev/null, http://127.0.0.1:8080/health], or leave healthcheck out"),
            );
        }
        let test = match &h.test.value {
            Args::List(v) if v.first().is_some_and(|f| f == "CMD" || f == "CMD-SHELL") => v.clone(),
            Args::List(v) => std::iter::once("CMD".to_string())
                .chain(v.iter().cloned())
                .collect(),
            Args::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
        };
        HealthCheck {
            test,
            interval_ms: l.duration(src, &h.interval, 2_000),
            timeout_ms: l.duration(src, &h.timeout, 2_000),
            retries: h.retries.unwrap_or(3),
            start_period_ms: l.duration(src, &h.start_period, 0),
        }
    });
    let restart = match &c.restart {
        Some(r) => check_restart(l, src, r),
        None => default_restart.to_string(),
    };
    let memory = c.memory.as_ref().and_then(|m| {
        units::memory_bytes(&m.value.to_string())
            .map_err(|why| l.report(src.error(m, "invalid memory limit", why)))
            .ok()
    });
    let millicpus = c.cpus.as_ref().and_then(|m| {
        units::millicpus(&m.value.to_string())
            .map_err(|why| l.report(src.error(m, "invalid CPU limit", why)))
            .ok()
    });
    let pull = match c.pull.as_ref().map(|p| p.value.as_str()) {
        None | Some("digest") => PullPolicy::Digest,
        Some("always") => PullPolicy::Always,
        Some("missing") => PullPolicy::Missing,
        Some("never") => PullPolicy::Never,
        Some(other) => {
            let p = c.pull.as_ref().expect("a value");
            l.report(
                src.error(p, format!("unknown pull policy {other:?}"), "not a pull policy")
                    .with_help("use always, missing or never (unset: the tag is resolved to a digest and pulled when it moves)"),
            );
            PullPolicy::Digest
        }
    };
    ContainerSpec {
        name: c.name.value.clone(),
        image: normalise_image(&c.image.value),
        command: c.command.as_ref().map(args),
        entrypoint: c.entrypoint.as_ref().map(args),
        env,
        ports,
        volumes,
        healthcheck,
        restart,
        memory,
        millicpus,
        init: c.init.unwrap_or(false),
        pull,
        digest: None,
        files,
        env_secret_files,
        network_mode: None,
        stop_signal: None,
        user: None,
    }
}
