use super::common::*;
use super::exit;
use crate::model::DesiredState;
use crate::ops::context::{load_repo, parse_selector, Secrets};
use clap::Args;
use miette::Result;

/// Print the desired state after defaults, offline (no host is contacted): for reviewing a
/// pull request without host credentials.
///
/// Examples:
///   berth render --repo . -l tier=frontend --format json
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct RenderArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// text or json.
    #[arg(long, value_enum, default_value = "text")]
    pub format: StateFormat,
}

fn text(state: &DesiredState) -> String {
    let mut out = format!(
        "project {} at {}\n",
        state.project,
        state.commit.as_deref().unwrap_or("working tree")
    );
    for h in &state.hosts {
        let labels: Vec<String> = h.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(
            "host {} {}@{}:{} [{}]\n",
            h.name,
            h.user,
            h.address,
            h.port,
            labels.join(",")
        ));
    }
    for d in &state.deployments {
        let hosts: Vec<&str> = state
            .eligible_hosts(d)
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        out.push_str(&format!(
            "\ndeployment {} revision {} ({})\n  replicas {} on [{}] max/host {}\n  strategy {:?} min_ready {}ms health_timeout {}ms\n",
            d.name,
            d.revision(&state.project),
            d.file,
            d.replicas,
            hosts.join(", "),
            d.placement.max_per_host.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
            d.strategy.kind,
            d.strategy.min_ready_ms,
            d.strategy.health_timeout_ms
        ));
        if let Some(s) = &d.service {
            out.push_str(&format!(
                "  service {}{}\n",
                s.name,
                s.port.map(|p| format!(":{p}")).unwrap_or_default()
            ));
        }
        for c in &d.pod.containers {
            let spec = serde_json::to_string_pretty(c).expect("json");
            out.push_str(&format!("  container {}:\n", c.name));
            for l in spec.lines() {
                out.push_str(&format!("    {l}\n"));
            }
        }
    }
    out
}

pub fn run(a: RenderArgs) -> Result<u8> {
    let mut state = load_repo(&a.repo.source(None), Secrets::NotNeeded)?;
    if let Some(sel) = parse_selector(&a.repo.selector)? {
        state.deployments.retain(|d| sel.matches(&d.labels));
    }
    match a.format {
        StateFormat::Json => {
            crate::outln!("{}", serde_json::to_string_pretty(&state).expect("json"))
        }
        StateFormat::Text => crate::out!("{}", text(&state)),
    }
    Ok(exit::OK)
}
