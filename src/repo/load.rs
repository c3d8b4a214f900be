//! From repository files to a validated [`DesiredState`]. Pure: the files, the commit and the
//! secret values come in as plain values. Every problem becomes a diagnostic pointing at its
//! file, line and column, and all of them are reported together.

use super::diag::{Diagnostics, SourceFile};
use super::schema::*;
use super::units;
use crate::model::labels::{check_key, check_object_name, check_value};
use crate::model::names;
use crate::model::secret::SecretValues;
use crate::model::*;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, HashMap};

pub const PROJECT_FILE: &str = "berth.yaml";
pub const DEFAULT_INVENTORY: &str = "inventory.yaml";
pub const DEPLOYMENTS_DIR: &str = "deployments/";

/// The files of a repository at one commit (path relative to the root → text).
#[derive(Debug, Clone, Default)]
pub struct RepoFiles {
    pub commit: Option<String>,
    pub files: BTreeMap<String, String>,
}

/// Looks up a secret's value by name; the shell reads them from the environment.
pub type SecretLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

const DEFAULT_MIN_READY_MS: u64 = 2_000;
const DEFAULT_HEALTH_TIMEOUT_MS: u64 = 60_000;

struct Loader<'a> {
    diags: Diagnostics,
    /// `None`: secret values are not needed (render, validate).
    secrets: Option<SecretLookup<'a>>,
    /// Only deployments this selector matches need their secrets set (`-l`).
    needs_secrets: Option<&'a Selector>,
    values: SecretValues,
}

impl Loader<'_> {
    fn parse<T: serde::de::DeserializeOwned>(&mut self, file: &SourceFile) -> Option<T> {
        match serde_saphyr::from_str::<T>(&file.text) {
            Ok(v) => Some(v),
            Err(e) => {
                // Our own diagnostic, so the report names the file (serde-saphyr's says <input>).
                let span = e
                    .location()
                    .map(|l| file.span_of(&l))
                    .unwrap_or_else(|| (0, 0).into());
                let text = e.to_string();
                let first = text.lines().next().unwrap_or("invalid YAML");
                // Drop the "error: line L column C: " prefix; the report shows the position.
                let message = match first.strip_prefix("error: line ") {
                    Some(rest) => rest.split_once(": ").map_or(rest, |(_, m)| m).to_string(),
                    None => first.to_string(),
                };
                let (message, help) =
                    super::messages::humanize(&message, &file.text, span.offset());
                let error = file.error_at(span, message, "here");
                self.diags.push(miette::Report::new(match help {
                    Some(h) => error.with_help(h),
                    None => error,
                }));
                None
            }
        }
    }

    fn report(&mut self, e: super::diag::SpecError) {
        self.diags.push(miette::Report::new(e));
    }

    fn name(&mut self, file: &SourceFile, name: &Spanned<String>, what: &str) {
        if let Err(why) = check_object_name(&name.value) {
            self.report(file.error(name, format!("invalid {what} name"), why));
        }
    }

    fn labels(&mut self, file: &SourceFile, map: &SpannedMap) -> Labels {
        let mut out = Labels::new();
        for (k, v) in map {
            if let Err((at, why)) = check_key(&k.value) {
                let start = file.content_start(&k.referenced) + at;
                self.report(file.error_at((start, 1).into(), "invalid label key", why));
            }
            if let Err((at, why)) = check_value(&v.value) {
                let start = file.content_start(&v.referenced) + at;
                self.report(file.error_at((start, 1).into(), "invalid label value", why));
            }
            out.insert(k.value.clone(), v.value.clone());
        }
        out
    }

    fn selector(&mut self, file: &SourceFile, text: &Spanned<String>) -> Selector {
        match Selector::parse(&text.value) {
            Ok(s) => s,
            Err(e) => {
                let start = file.content_start(&text.referenced) + e.offset;
                self.report(file.error_at((start, 1).into(), "invalid label selector", e.message));
                Selector::everything()
            }
        }
    }

    fn duration(
        &mut self,
        file: &SourceFile,
        value: &Option<Spanned<String>>,
        default: u64,
    ) -> u64 {
        let Some(v) = value else { return default };
        units::duration_ms(&v.value).unwrap_or_else(|why| {
            self.report(file.error(v, "invalid duration", why));
            default
        })
    }

    fn strategy(
        &mut self,
        file: &SourceFile,
        s: Option<&StrategyFile>,
        fallback: &Strategy,
    ) -> Strategy {
        let Some(s) = s else { return fallback.clone() };
        let kind = match &s.kind {
            None => fallback.kind,
            Some(k) => match k.value.as_str() {
                "rolling" => StrategyKind::Rolling,
                "recreate" => StrategyKind::Recreate,
                "canary" => StrategyKind::Canary,
                "blue-green" => StrategyKind::BlueGreen,
                other => {
                    self.report(
                        file.error(k, format!("unknown strategy {other:?}"), "not a strategy")
                            .with_help("use rolling (the default), recreate, canary or blue-green"),
                    );
                    fallback.kind
                }
            },
        };
        let max_surge = self.amount(file, &s.max_surge, fallback.max_surge);
        let max_unavailable = self.amount(file, &s.max_unavailable, fallback.max_unavailable);
        let given = s.max_surge.as_ref().or(s.max_unavailable.as_ref());
        if let (Some(at), true) = (
            given,
            max_surge == Amount::Count(0) && max_unavailable == Amount::Count(0),
        ) {
            self.report(
                file.error(at, "max_surge and max_unavailable are both 0", "the rollout could never move")
                    .with_help("allow at least one extra pod (max_surge: 1) or one missing pod (max_unavailable: 1)"),
            );
        }
        Strategy {
            kind,
            min_ready_ms: self.duration(file, &s.min_ready, fallback.min_ready_ms),
            health_timeout_ms: self.duration(file, &s.health_timeout, fallback.health_timeout_ms),
            stop_timeout_s: self
                .duration(file, &s.stop_timeout, fallback.stop_timeout_s as u64 * 1000)
                .div_ceil(1000) as u32,
            max_surge,
            max_unavailable,
            drain_ms: self.duration(file, &s.drain, fallback.drain_ms),
            steps: match &s.steps {
                Some(steps) => self.canary_steps(file, steps),
                None => fallback.steps.clone(),
            },
            auto_promote: s.auto_promote.unwrap_or(fallback.auto_promote),
            scale_down_delay_ms: self.duration(
                file,
                &s.scale_down_delay,
                fallback.scale_down_delay_ms,
            ),
        }
    }

    fn canary_steps(
        &mut self,
        file: &SourceFile,
        steps: &Spanned<Vec<Spanned<CanaryStepFile>>>,
    ) -> Vec<CanaryStep> {
        let mut out = Vec::new();
        for spanned in &steps.value {
            let step = &spanned.value;
            let given = [
                step.weight.is_some(),
                step.pause.is_some(),
                step.analysis.is_some(),
            ];
            if given.iter().filter(|g| **g).count() != 1 {
                self.report(
                    file.error(spanned, "a canary step has exactly one of weight, pause, analysis", "this step")
                        .with_help("write each step as its own list item: - weight: 20, - pause: 30s, - analysis: {...}"),
                );
                continue;
            }
            if let Some(w) = &step.weight {
                if w.value > 100 {
                    self.report(file.error(w, "a weight is a percentage", "more than 100"));
                }
                out.push(CanaryStep::Weight(w.value.min(100)));
            } else if let Some(p) = &step.pause {
                out.push(CanaryStep::Pause(match &p.value {
                    serde_json::Value::String(d) => {
                        Some(units::duration_ms(d).unwrap_or_else(|why| {
                            self.report(file.error(p, "invalid pause", why));
                            0
                        }))
                    }
                    serde_json::Value::Object(m) if m.is_empty() => None,
                    _ => {
                        self.report(file.error(
                            p,
                            "invalid pause",
                            "a duration like 30s, or {} to wait for berth promote",
                        ));
                        None
                    }
                }));
            } else if let Some(at) = &step.analysis {
                let a = &at.value;
                let Some(port) = &a.port else {
                    self.report(
                        file.error(at, "an analysis needs the port to check", "no port")
                            .with_help(
                                "analysis: {port: 8080, path: /health, status: 200, samples: 5}",
                            ),
                    );
                    continue;
                };
                out.push(CanaryStep::Analysis(Analysis {
                    path: a.path.clone().unwrap_or_else(|| "/".into()),
                    port: port.value,
                    status: a.status.unwrap_or(200),
                    samples: a.samples.unwrap_or(5).max(1),
                    interval_ms: self.duration(file, &a.interval, 1000),
                    failure_limit: a.failure_limit.unwrap_or(0),
                }));
            }
        }
        out
    }

    fn amount(
        &mut self,
        file: &SourceFile,
        value: &Option<Spanned<Scalar>>,
        default: Amount,
    ) -> Amount {
        let Some(v) = value else { return default };
        Amount::parse(&v.value.to_string()).unwrap_or_else(|why| {
            self.report(file.error(v, "invalid amount", why));
            default
        })
    }
}

fn source(files: &RepoFiles, path: &str) -> Option<SourceFile> {
    files.files.get(path).map(|text| SourceFile {
        path: path.to_string(),
        text: text.clone(),
    })
}

fn args(a: &Args) -> Vec<String> {
    match a {
        Args::List(v) => v.clone(),
        Args::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
    }
}

/// Loads and validates a repository. On any error nothing is returned but the diagnostics.
pub fn load(files: &RepoFiles, secrets: SecretLookup) -> Result<DesiredState, Diagnostics> {
    load_with(files, Some(secrets), None)
}

/// Loads the repository; `secrets` looks up the values of the secrets that the deployments
/// `needs_secrets` selects name (all of them when `None`); without `secrets`, no value is read
/// and none is needed.
pub fn load_with<'a>(
    files: &RepoFiles,
    secrets: Option<SecretLookup<'a>>,
    needs_secrets: Option<&'a Selector>,
) -> Result<DesiredState, Diagnostics> {
    let mut l = Loader {
        diags: Diagnostics::default(),
        secrets,
        needs_secrets,
        values: SecretValues::default(),
    };
    let Some(project_src) = source(files, PROJECT_FILE) else {
        l.diags.push(miette::miette!(
            help = "a berth repository has berth.yaml at its root (see docs/repository.md)",
            "no {PROJECT_FILE} in the repository"
        ));
        return Err(l.diags);
    };
    let project: Option<ProjectFile> = l.parse(&project_src);
    if let Some(p) = &project {
        l.name(&project_src, &p.project, "project");
    }
    let defaults = project.as_ref().map(|p| &p.defaults);
    let base_strategy = Strategy {
        stop_timeout_s: crate::model::DEFAULT_STOP_TIMEOUT_S,
        max_surge: Amount::Count(1),
        max_unavailable: Amount::Count(0),
        kind: StrategyKind::Rolling,
        min_ready_ms: DEFAULT_MIN_READY_MS,
        health_timeout_ms: DEFAULT_HEALTH_TIMEOUT_MS,
        drain_ms: 1000,
        steps: vec![],
        auto_promote: false,
        scale_down_delay_ms: 30_000,
    };
    let default_strategy = l.strategy(
        &project_src,
        defaults.and_then(|d| d.strategy.as_ref()),
        &base_strategy,
    );
    let default_restart = match defaults.and_then(|d| d.restart.as_ref()) {
        Some(r) => check_restart(&mut l, &project_src, r),
        None => "unless-stopped".to_string(),
    };
    let default_max_per_host = defaults.and_then(|d| d.max_per_host);

    let inventory_path = project
        .as_ref()
        .and_then(|p| p.inventory.clone())
        .unwrap_or_else(|| DEFAULT_INVENTORY.to_string());
    let before_inventory = l.diags.reports.len();
    let hosts = match source(files, &inventory_path) {
        Some(src) => load_hosts(&mut l, &src),
        None => {
            l.diags.push(miette::miette!(
                "inventory file {inventory_path} not found in the repository"
            ));
            vec![]
        }
    };
    let inventory_failed = hosts.is_empty() && l.diags.reports.len() > before_inventory;

    let mut deployments: Vec<(Deployment, SourceFile, DeploymentFile)> = Vec::new();
    for path in files.files.keys() {
        let is_yaml = path.ends_with(".yaml") || path.ends_with(".yml");
        if !path.starts_with(DEPLOYMENTS_DIR) || !is_yaml {
            continue;
        }
        let src = source(files, path).expect("listed file exists");
        let Some(raw) = l.parse::<DeploymentFile>(&src) else {
            continue;
        };
        let d = load_deployment(
            &mut l,
            &src,
            &raw,
            &default_strategy,
            &default_restart,
            default_max_per_host,
        );
        if let Some((_, first_src, first)) = deployments.iter().find(|(d0, _, _)| d0.name == d.name)
        {
            let e = src
                .error(
                    &raw.name,
                    format!("two deployments are named {:?}", d.name),
                    "declared again here",
                )
                .with_help(format!(
                    "first declared in {} line {}",
                    first_src.path,
                    first.name.referenced.line()
                ));
            l.report(e);
            continue;
        }
        deployments.push((d, src, raw));
    }

    let state = DesiredState {
        project: project.map(|p| p.project.value).unwrap_or_default(),
        commit: files.commit.clone(),
        hosts,
        deployments: deployments.iter().map(|(d, _, _)| d.clone()).collect(),
        secrets: std::mem::take(&mut l.values),
    };
    // Without a readable inventory every placement would fail too: say the cause only.
    if !inventory_failed {
        check_placement(&mut l, &state, &deployments);
    }
    check_services(&mut l, &deployments);
    if l.diags.is_empty() {
        Ok(state)
    } else {
        Err(l.diags)
    }
}

fn check_restart(l: &mut Loader, src: &SourceFile, r: &Spanned<String>) -> String {
    const POLICIES: [&str; 4] = ["no", "always", "unless-stopped", "on-failure"];
    if !POLICIES.contains(&r.value.as_str()) {
        l.report(
            src.error(
                r,
                format!("unknown restart policy {:?}", r.value),
                "not a restart policy",
            )
            .with_help("use no, always, unless-stopped or on-failure"),
        );
    }
    r.value.clone()
}

fn load_hosts(l: &mut Loader, src: &SourceFile) -> Vec<Host> {
    let Some(inv) = l.parse::<InventoryFile>(src) else {
        return vec![];
    };
    let mut hosts: Vec<Host> = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut addresses: HashMap<(String, u16), (String, u64)> = HashMap::new();
    for h in &inv.hosts {
        l.name(src, &h.name, "host");
        if let Some(line) = seen.insert(h.name.value.clone(), h.name.referenced.line()) {
            l.report(
                src.error(
                    &h.name,
                    format!("two hosts are named {:?}", h.name.value),
                    "declared again here",
                )
                .with_help(format!("first declared on line {line}")),
            );
        }
        if h.address.value.trim().is_empty() {
            l.report(src.error(
                &h.address,
                "empty host address",
                "an address or DNS name is needed",
            ));
        }
        if let Some(p) = h.port.as_ref().filter(|p| p.value == 0) {
            l.report(src.error(p, "an SSH port is 1 to 65535", "port 0"));
        }
        if let Some(u) = h.user.as_ref().filter(|u| u.value.trim().is_empty()) {
            l.report(
                src.error(u, "empty SSH user", "no user name")
                    .with_help("leave `user` out for root, or name the user"),
            );
        }
        let port = h.port.as_ref().map_or(22, |p| p.value);
        let endpoint = (h.address.value.trim().to_ascii_lowercase(), port);
        if let Some((other, line)) = addresses.get(&endpoint) {
            l.report(
                src.error(
                    &h.address,
                    format!(
                        "hosts {other} and {} have the same address and port",
                        h.name.value
                    ),
                    "same as another host",
                )
                .with_help(format!(
                    "{other} (line {line}) is {}:{port} too; one machine is one host",
                    h.address.value
                )),
            );
        } else {
            addresses.insert(
                endpoint,
                (h.name.value.clone(), h.address.referenced.line()),
            );
        }
        hosts.push(Host {
            name: h.name.value.clone(),
            address: h.address.value.clone(),
            port,
            user: h
                .user
                .as_ref()
                .map_or_else(|| "root".into(), |u| u.value.clone()),
            labels: l.labels(src, &h.labels),
            docker_socket: h
                .docker_socket
                .clone()
                .unwrap_or_else(|| "/var/run/docker.sock".into()),
        });
    }
    hosts
}

fn load_deployment(
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
    let strategy = l.strategy(src, raw.strategy.as_ref(), default_strategy);
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
    Deployment {
        name: raw.name.value.clone(),
        labels,
        replicas: raw.replicas.value,
        placement: Placement {
            hosts,
            max_per_host,
        },
        pod: PodSpec { containers },
        service,
        strategy,
        file: src.path.clone(),
    }
}

fn load_container(
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
    let mut env = std::collections::BTreeMap::new();
    for (k, v) in &c.env {
        if k.value.is_empty() || k.value.contains('=') || k.value.contains('\0') {
            l.report(
                src.error(
                    k,
                    format!("invalid env name {:?}", k.value),
                    "not a variable name",
                )
                .with_help("an env name is not empty and has no `=` in it"),
            );
        }
        let value = match &v.value {
            EnvFile::Value(s) => EnvValue::Plain(s.to_string()),
            EnvFile::Other(other) => {
                let why = match other {
                    serde_json::Value::Null => {
                        "it has no value; write \"\" for an empty one".to_string()
                    }
                    serde_json::Value::Object(m) => format!(
                        "a secret reference is {{secret: NAME}} and nothing else; found {}",
                        m.keys()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    _ => "an env value is a string, a number, true or false, or {secret: NAME}"
                        .to_string(),
                };
                l.report(src.error(v, format!("invalid value for env {}", k.value), why));
                EnvValue::Plain(String::new())
            }
            EnvFile::Secret(SecretRef { secret }) => {
                let lookup = l.secrets.filter(|_| needs_secrets);
                match lookup.map(|find| find(secret)) {
                    Some(Some(value)) => l.values.insert(secret, value),
                    Some(None) => l.report(
                        src.error(
                            v,
                            format!("secret {secret:?} has no value"),
                            "secret not set",
                        )
                        .with_help(format!(
                            "set the environment variable {}",
                            secret_env_var(secret)
                        )),
                    ),
                    None => {}
                }
                EnvValue::Secret {
                    secret: secret.clone(),
                }
            }
        };
        env.insert(k.value.clone(), value);
    }
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
    }
}

/// The environment variable a secret's value is read from: `BERTH_SECRET_<NAME>`, upper case,
/// with `-` and `.` as `_`.
pub fn secret_env_var(name: &str) -> String {
    format!(
        "BERTH_SECRET_{}",
        name.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}

/// `nginx` and `nginx:latest` are the same image; so are `docker.io/library/nginx` and `nginx`.
pub fn normalise_image(image: &str) -> String {
    let mut s = image.trim().to_string();
    for prefix in [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.to_string();
        }
    }
    let last = s.rsplit('/').next().unwrap_or(&s);
    if !last.contains(':') && !s.contains('@') {
        s.push_str(":latest");
    }
    s
}

/// Static placement checks: replicas that cannot be placed, and host ports that two pods
/// would publish on one host.
fn check_placement(
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

fn check_services(l: &mut Loader, ds: &[(Deployment, SourceFile, DeploymentFile)]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const INVENTORY: &str = "hosts:\n  - {name: a, address: 198.18.1.1, labels: {role: web}}\n  - {name: b, address: 198.18.1.2, labels: {role: web}}\n";

    fn files(deployments: &[(&str, &str)]) -> RepoFiles {
        let mut f = RepoFiles::default();
        f.files.insert(PROJECT_FILE.into(), "project: p\n".into());
        f.files.insert(DEFAULT_INVENTORY.into(), INVENTORY.into());
        for (name, text) in deployments {
            f.files
                .insert(format!("deployments/{name}"), text.to_string());
        }
        f
    }

    /// Each diagnostic as "file:line:col message", via miette's own span data.
    fn errors(f: &RepoFiles) -> Vec<String> {
        let diags = load(f, &|_| None).expect_err("the repository is invalid");
        diags
            .reports
            .iter()
            .map(|r| {
                let label = r.labels().and_then(|mut l| l.next());
                let at = match (r.source_code(), label) {
                    (Some(src), Some(label)) => {
                        let c = src.read_span(label.inner(), 0, 0).expect("span in source");
                        format!(
                            "{}:{}:{}",
                            c.name().unwrap_or("?"),
                            c.line() + 1,
                            c.column() + 1
                        )
                    }
                    _ => "-".into(),
                };
                format!("{at} {r}")
            })
            .collect()
    }

    /// Each expected (place, message) is among the errors, and there are no others.
    fn expect_exactly(errors: &[String], expect: &[(&str, &str)]) {
        for (at, message) in expect {
            assert!(
                errors
                    .iter()
                    .any(|e| e.starts_with(at) && e.contains(message)),
                "no {message:?} at {at} in:\n{}",
                errors.join("\n")
            );
        }
        assert_eq!(errors.len(), expect.len(), "{}", errors.join("\n"));
    }

    fn web(extra: &str) -> String {
        format!("name: web\npod:\n  containers:\n    - name: app\n      image: x:1\n{extra}")
    }

    #[test]
    fn a_valid_repository_loads_with_defaults() {
        let state = load(&files(&[("web.yaml", &web(""))]), &|_| None).unwrap();
        let d = &state.deployments[0];
        assert_eq!((d.replicas, d.strategy.kind), (1, StrategyKind::Rolling));
        assert_eq!(d.pod.containers[0].image, "x:1");
        assert_eq!(d.pod.containers[0].restart, "unless-stopped");
        assert_eq!(state.hosts[0].port, 22);
    }

    #[test]
    fn every_kind_of_mistake_is_reported_at_its_place_in_one_run() {
        let f = files(&[
            ("a.yaml", &web("      colour: red\n")),
            ("b.yaml", "name: b\nname: b\npod: {containers: []}\n"),
            ("c.yaml", "name: c\nreplicas: many\npod: {containers: [{name: x, image: y}]}\n"),
            ("d.yaml", "name: Bad_Name\npod: {containers: [{name: x, image: y}]}\n"),
            ("e.yaml", "name: e\nplacement: {hosts: \"role notin web\"}\npod: {containers: [{name: x, image: y}]}\n"),
            ("f.yaml", "name: e\npod: {containers: [{name: x, image: y}]}\n"),
            ("g.yaml", "name: g\nreplicas: 5\nplacement: {max_per_host: 2}\npod: {containers: [{name: x, image: y}]}\n"),
            ("h.yaml", "name: h\npod: {containers: [{name: x, image: y, ports: [\"80:80\"]}]}\n"),
            ("i.yaml", "name: i\npod: {containers: [{name: x, image: y, ports: [\"80:8080\"]}]}\n"),
            ("j.yaml", "name: j\nlabels: {\"bad key\": v}\npod: {containers: [{name: x, image: y, memory: lots}]}\n"),
        ]);
        let errors = errors(&f);
        let expect = [
            ("deployments/a.yaml:6:7", "unknown key `colour`"),
            (
                "deployments/b.yaml:2:1",
                "`name` appears twice in this mapping",
            ),
            (
                "deployments/c.yaml:2:11",
                "`replicas` must be a whole number",
            ),
            ("deployments/d.yaml:1:7", "invalid deployment name"),
            ("deployments/e.yaml:2:32", "invalid label selector"),
            ("deployments/f.yaml:1:7", "two deployments are named \"e\""),
            (
                "deployments/g.yaml:2:11",
                "5 replicas of g cannot be placed",
            ),
            (
                "deployments/i.yaml:2:",
                "host port 80/tcp is published by two deployments",
            ),
            ("deployments/j.yaml:2:", "invalid label key"),
            ("deployments/j.yaml:3:", "invalid memory limit"),
        ];
        expect_exactly(&errors, &expect);
    }

    #[test]
    fn canary_and_blue_green_mistakes_point_at_the_strategy() {
        let svc = "service: {name: web}\n";
        let f = files(&[
            ("a.yaml", &web(&format!("strategy: {{type: canary}}\n{svc}"))),
            ("b.yaml", &web("strategy: {type: blue-green}\n").replace("name: web", "name: b")),
            (
                "c.yaml",
                &web(&format!("      ports: [\"81:80\"]\nstrategy: {{type: blue-green}}\n{svc}"))
                    .replace("name: web", "name: c"),
            ),
            (
                "d.yaml",
                &web(&format!("strategy:\n  type: canary\n  steps:\n    - weight: 150\n    - {{weight: 5, pause: 1s}}\n    - analysis: {{path: /}}\n{svc}"))
                    .replace("name: web", "name: d"),
            ),
        ]);
        let errors = errors(&f);
        let expect = [
            ("deployments/a.yaml:6:18", "a canary rollout needs steps"),
            (
                "deployments/b.yaml:6:18",
                "a blue-green rollout needs a service",
            ),
            (
                "deployments/c.yaml:7:18",
                "host port 81 can be held by one container",
            ),
            ("deployments/d.yaml:9:15", "a weight is a percentage"),
            (
                "deployments/d.yaml:10:7",
                "exactly one of weight, pause, analysis",
            ),
            ("deployments/d.yaml:11:17", "an analysis needs the port"),
        ];
        expect_exactly(&errors, &expect);
        let ok = files(&[(
            "w.yaml",
            &web(&format!("strategy:\n  type: canary\n  steps: [{{weight: 20}}, {{pause: 30s}}, {{pause: {{}}}}, {{analysis: {{port: 80}}}}]\n{svc}")),
        )]);
        let state = load(&ok, &|_| None).unwrap();
        let s = &state.deployments[0].strategy;
        assert_eq!(
            s.steps[..3],
            [
                CanaryStep::Weight(20),
                CanaryStep::Pause(Some(30_000)),
                CanaryStep::Pause(None)
            ]
        );
        assert!(
            matches!(&s.steps[3], CanaryStep::Analysis(a) if a.port == 80 && a.status == 200 && a.path == "/")
        );
    }

    #[test]
    fn a_missing_project_file_is_an_error() {
        let mut f = files(&[]);
        f.files.remove(PROJECT_FILE);
        assert!(load(&f, &|_| None).is_err());
    }
}
