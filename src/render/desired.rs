//! The desired state as `berth render` shows it: in the words and units of the repository
//! format (`min_ready: 2s`, `memory: 64m`, canary steps as written), after defaults, so a
//! reviewer reads back what they wrote and what berth filled in. Pure.

use crate::model::{
    Amount, CanaryStep, ContainerSpec, Deployment, DesiredState, EnvValue, PullPolicy, StrategyKind,
};
use std::fmt::Write;

/// Milliseconds as the repository writes a duration: `500ms`, `2s`, `1m30s`, `2h`.
pub fn duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut s = ms / 1000;
    let mut out = String::new();
    for (unit, size) in [("h", 3600), ("m", 60)] {
        if s >= size {
            write!(out, "{}{unit}", s / size).ok();
            s %= size;
        }
    }
    if s > 0 || out.is_empty() {
        write!(out, "{s}s").ok();
    }
    out
}

/// Bytes as the repository writes memory: `512k`, `64m`, `2g`, or bytes.
pub fn memory(bytes: u64) -> String {
    for (unit, size) in [("g", 1u64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// Milli-CPUs as the repository writes them: `0.5`, `2`, or `250m`.
pub fn cpus(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else if millis.is_multiple_of(100) {
        format!("{}", millis as f64 / 1000.0)
    } else {
        format!("{millis}m")
    }
}

fn amount(a: Amount) -> String {
    match a {
        Amount::Count(n) => n.to_string(),
        Amount::Percent(p) => format!("\"{p}%\""),
    }
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// A YAML scalar: quoted when YAML would read it otherwise.
fn scalar(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./@:".contains(c))
        && !text.contains(": ")
        && text.parse::<f64>().is_err()
        && !matches!(text, "true" | "false" | "null" | "yes" | "no");
    if plain {
        text.to_string()
    } else {
        serde_json::to_string(text).expect("a string")
    }
}

fn strategy(d: &Deployment) -> String {
    let s = &d.strategy;
    let kind = match s.kind {
        StrategyKind::Rolling => "rolling",
        StrategyKind::Recreate => "recreate",
        StrategyKind::Canary => "canary",
        StrategyKind::BlueGreen => "blue-green",
    };
    let mut parts = vec![
        format!("type: {kind}"),
        format!("min_ready: {}", duration(s.min_ready_ms)),
        format!("health_timeout: {}", duration(s.health_timeout_ms)),
        format!("stop_timeout: {}", duration(s.stop_timeout_s as u64 * 1000)),
        format!("drain: {}", duration(s.drain_ms)),
        format!("history_limit: {}", s.history_limit),
    ];
    match s.kind {
        StrategyKind::Rolling => {
            parts.push(format!("max_surge: {}", amount(s.max_surge)));
            parts.push(format!("max_unavailable: {}", amount(s.max_unavailable)));
        }
        StrategyKind::Canary => {
            let steps: Vec<String> = s
                .steps
                .iter()
                .map(|step| match step {
                    CanaryStep::Weight(w) => format!("{{weight: {w}}}"),
                    CanaryStep::Pause(Some(ms)) => format!("{{pause: {}}}", duration(*ms)),
                    CanaryStep::Pause(None) => "{pause: {}}".into(),
                    CanaryStep::EdgeAnalysis(e) => format!(
                        "{{edge_analysis: {{duration: {}, max_errors: {}%, min_requests: {}{}}}}}",
                        duration(e.duration_ms),
                        e.max_errors_percent,
                        e.min_requests,
                        e.max_latency_ms
                            .map(|m| format!(", max_latency: {}", duration(m)))
                            .unwrap_or_default()
                    ),
                    CanaryStep::Analysis(a) => format!(
                        "{{analysis: {{port: {}, path: {}, status: {}, samples: {}, interval: {}, failure_limit: {}}}}}",
                        a.port,
                        scalar(&a.path),
                        a.status,
                        a.samples,
                        duration(a.interval_ms),
                        a.failure_limit
                    ),
                })
                .collect();
            parts.push(format!("steps: {}", list(&steps)));
        }
        StrategyKind::BlueGreen => {
            parts.push(format!("auto_promote: {}", s.auto_promote));
            parts.push(format!(
                "scale_down_delay: {}",
                duration(s.scale_down_delay_ms)
            ));
        }
        StrategyKind::Recreate => {}
    }
    format!("{{{}}}", parts.join(", "))
}

fn env(map: &std::collections::BTreeMap<String, EnvValue>) -> String {
    let items: Vec<String> = map
        .iter()
        .map(|(k, v)| match v {
            EnvValue::Plain(s) => format!("{}: {}", scalar(k), scalar(s)),
            EnvValue::Secret { secret } => format!("{}: {{secret: {}}}", scalar(k), scalar(secret)),
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

fn container(out: &mut String, c: &ContainerSpec) {
    let args = |a: &[String]| list(&a.iter().map(|s| scalar(s)).collect::<Vec<_>>());
    writeln!(out, "    - name: {}", c.name).ok();
    writeln!(out, "      image: {}", scalar(&c.image)).ok();
    if let Some(e) = &c.entrypoint {
        writeln!(out, "      entrypoint: {}", args(e)).ok();
    }
    if let Some(cmd) = &c.command {
        writeln!(out, "      command: {}", args(cmd)).ok();
    }
    if !c.env.is_empty() {
        writeln!(out, "      env: {}", env(&c.env)).ok();
    }
    if !c.env_secret_files.is_empty() {
        let files: Vec<String> = c
            .env_secret_files
            .iter()
            .map(|s| format!("{{secret: {s}}}"))
            .collect();
        writeln!(out, "      env_file: {}", list(&files)).ok();
    }
    if !c.ports.is_empty() {
        let ports: Vec<String> = c.ports.iter().map(|p| format!("\"{p}\"")).collect();
        writeln!(out, "      ports: {}", list(&ports)).ok();
    }
    if !c.volumes.is_empty() {
        let vols: Vec<String> = c
            .volumes
            .iter()
            .map(|m| {
                format!(
                    "\"{}:{}{}\"",
                    m.source,
                    m.target,
                    if m.read_only { ":ro" } else { "" }
                )
            })
            .collect();
        writeln!(out, "      volumes: {}", list(&vols)).ok();
    }
    if !c.files.is_empty() {
        writeln!(out, "      files:").ok();
    }
    for f in &c.files {
        writeln!(
            out,
            "        - {{source: {}, target: {}, mode: {}{}}}",
            scalar(&f.source),
            scalar(&f.target),
            f.mode,
            if f.template { ", template: true" } else { "" }
        )
        .ok();
    }
    if let Some(h) = &c.healthcheck {
        writeln!(
            out,
            "      healthcheck: {{test: {}, interval: {}, timeout: {}, retries: {}, start_period: {}}}",
            args(&h.test),
            duration(h.interval_ms),
            duration(h.timeout_ms),
            h.retries,
            duration(h.start_period_ms)
        )
        .ok();
    }
    writeln!(out, "      restart: {}", c.restart).ok();
    if let Some(m) = c.memory {
        writeln!(out, "      memory: {}", memory(m)).ok();
    }
    if let Some(m) = c.millicpus {
        writeln!(out, "      cpus: {}", cpus(m)).ok();
    }
    if c.init {
        writeln!(out, "      init: true").ok();
    }
    let pull = match c.pull {
        PullPolicy::Digest => None,
        PullPolicy::Always => Some("always"),
        PullPolicy::Missing => Some("missing"),
        PullPolicy::Never => Some("never"),
    };
    if let Some(p) = pull {
        writeln!(out, "      pull: {p}").ok();
    }
}

/// The desired state, in the repository's words.
pub fn text(state: &DesiredState) -> String {
    let mut out = String::new();
    let environment = state
        .environment
        .as_ref()
        .map(|e| format!(" (environment {e})"))
        .unwrap_or_default();
    writeln!(
        out,
        "# project {}{environment} at {}",
        state.project,
        state.commit.as_deref().unwrap_or("working tree")
    )
    .ok();
    writeln!(out, "hosts:").ok();
    for h in &state.hosts {
        let labels: Vec<String> = h
            .labels
            .iter()
            .map(|(k, v)| format!("{k}: {}", scalar(v)))
            .collect();
        writeln!(
            out,
            "  - {{name: {}, address: {}, port: {}, user: {}, labels: {{{}}}}}",
            h.name,
            h.address,
            h.port,
            h.user,
            labels.join(", ")
        )
        .ok();
    }
    for d in &state.deployments {
        let hosts: Vec<&str> = state
            .eligible_hosts(d)
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        writeln!(
            out,
            "---\n# {} (revision {}), may run on: {}",
            d.file,
            d.revision(&state.project),
            hosts.join(", ")
        )
        .ok();
        writeln!(out, "name: {}", d.name).ok();
        if !d.labels.is_empty() {
            let labels: Vec<String> = d
                .labels
                .iter()
                .map(|(k, v)| format!("{k}: {}", scalar(v)))
                .collect();
            writeln!(out, "labels: {{{}}}", labels.join(", ")).ok();
        }
        writeln!(out, "replicas: {}", d.replicas).ok();
        let max = d
            .placement
            .max_per_host
            .map(|m| format!(", max_per_host: {m}"))
            .unwrap_or_default();
        writeln!(out, "placement: {{hosts: \"{}\"{max}}}", d.placement.hosts).ok();
        writeln!(out, "pod:\n  containers:").ok();
        for c in &d.pod.containers {
            container(&mut out, c);
        }
        if let Some(s) = &d.service {
            let port = s.port.map(|p| format!(", port: {p}")).unwrap_or_default();
            writeln!(out, "service: {{name: {}{port}}}", s.name).ok();
        }
        writeln!(out, "strategy: {}", strategy(d)).ok();
        if !d.jobs.is_empty() {
            writeln!(out, "jobs:").ok();
            for j in &d.jobs {
                let command = j
                    .command
                    .as_ref()
                    .map(|c| {
                        format!(
                            ", command: {}",
                            list(&c.iter().map(|s| scalar(s)).collect::<Vec<_>>())
                        )
                    })
                    .unwrap_or_default();
                let extra = if j.env.is_empty() {
                    String::new()
                } else {
                    format!(", env: {}", env(&j.env))
                };
                writeln!(
                    out,
                    "  - {{name: {}, container: {}{command}{extra}, hosts: \"{}\", timeout: {}}}",
                    j.name,
                    j.container,
                    j.hosts,
                    duration(j.timeout_ms)
                )
                .ok();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_as_they_are_written() {
        assert_eq!(duration(2_000), "2s");
        assert_eq!(duration(90_000), "1m30s");
        assert_eq!(duration(7_200_000), "2h");
        assert_eq!(duration(500), "500ms");
        assert_eq!(duration(0), "0s");
        assert_eq!(memory(64 << 20), "64m");
        assert_eq!(memory(2 << 30), "2g");
        assert_eq!(memory(1000), "1000");
        assert_eq!(cpus(500), "0.5");
        assert_eq!(cpus(2000), "2");
        assert_eq!(cpus(250), "250m");
        assert_eq!(scalar("8080"), "\"8080\"");
        assert_eq!(scalar("web"), "web");
        assert_eq!(scalar("a b"), "\"a b\"");
    }
}
