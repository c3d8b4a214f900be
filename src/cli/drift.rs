use super::common::*;
use super::exit;
use crate::ops::context::{self, PlanScope};
use crate::plan::{ChangeKind, IssueKind, Plan};
use crate::render::Format;
use clap::Args;
use miette::Result;

/// Detect hand-made changes: exit 2 with a report when a host differs from what berth last
/// applied (containers stopped, removed, added or changed by hand), or runs a revision Git
/// no longer declares after `berth rollback --to`.
///
/// Pending changes from Git are not drift; `berth plan --exit-code` reports those.
///
/// Examples:
///   berth drift --repo ./deploy --format markdown
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct DriftArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Issues that are drift in themselves: a container nobody declared, a deployment held at
/// a revision Git no longer declares (`berth rollback --to`).
fn is_drift(kind: IssueKind) -> bool {
    matches!(kind, IssueKind::Extra | IssueKind::RolledBack)
}

/// The plan reduced to its drift.
fn drift_only(plan: &Plan) -> Plan {
    let mut p = plan.clone();
    p.changes.retain(|c| c.kind == ChangeKind::Drift);
    p.issues.retain(|i| {
        matches!(
            i.kind,
            IssueKind::Extra
                | IssueKind::Unreachable
                | IssueKind::Conflict
                | IssueKind::Health
                | IssueKind::RolledBack
        )
    });
    p.waves.clear();
    p
}

pub fn run(a: DriftArgs) -> Result<u8> {
    let to = a.ssh.connection()?;
    let (_fleet, plan) = runtime().block_on(context::plan(
        &a.repo.source(Some(&a.ssh)),
        &to,
        &PlanScope::default(),
    ))?;
    let drift = drift_only(&plan);
    match a.format {
        Format::Text => {
            if drift.has_changes() || drift.issues.iter().any(|i| is_drift(i.kind)) {
                crate::outln!("drift found:");
                for c in &drift.changes {
                    let pod = c.pod.as_deref().or(c.new_pod.as_deref()).unwrap_or("");
                    crate::outln!("  {} {} {pod}: {}", c.host, c.deployment, c.reason);
                }
            } else {
                use crate::plan::Observation;
                match drift.observed_scope() {
                    Observation::All => {
                        crate::outln!("no drift: the hosts match what berth applied")
                    }
                    Observation::Some { observed, hosts, unseen } => crate::outln!(
                        "no drift on the {observed} of {hosts} hosts observed; not observed, so unknown: {}",
                        unseen.join(", ")
                    ),
                    Observation::None { hosts } => crate::outln!(
                        "nothing observed: no host answered (0 of {hosts}), drift unknown"
                    ),
                }
            }
            for i in &drift.issues {
                crate::outln!(
                    "  {} {:?}: {}",
                    i.host.as_deref().unwrap_or("-"),
                    i.kind,
                    i.message
                );
            }
        }
        other => print_plan(&drift, other),
    }
    let extra = drift.issues.iter().any(|i| is_drift(i.kind));
    if drift.has_changes() || extra {
        let mut details: Vec<String> = drift
            .changes
            .iter()
            .map(|c| {
                let pod = c.pod.as_deref().or(c.new_pod.as_deref()).unwrap_or("");
                format!("{} {} {pod}: {}", c.host, c.deployment, c.reason)
            })
            .collect();
        details.extend(
            drift
                .issues
                .iter()
                .filter(|i| is_drift(i.kind))
                .map(|i| i.message.clone()),
        );
        let event = crate::ops::notify::Event::of("drift.found", &drift, details);
        if let Some(warning) = runtime().block_on(a.notify.notifier().send(&event)) {
            eprintln!("warning: {warning}");
        }
    }
    context::check_unreachable(&plan, &to)?;
    Ok(if drift.has_changes() || extra {
        exit::CHANGES
    } else {
        exit::OK
    })
}
