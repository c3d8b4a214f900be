//! A pull-request comment: a one-line verdict, a table of changes per deployment and
//! collapsible diffs.

use super::{short_commit, spec_diff, subject, summary, symbol, verb, waves_with_services};
use crate::plan::{ChangeKind, Plan};
use std::fmt::Write;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn plan(plan: &Plan) -> String {
    let mut out = String::new();
    let commit = short_commit(plan.commit.as_deref());
    let verdict = if plan.has_changes() {
        format!(
            "**berth plan** for `{}` at `{commit}`: {}",
            super::project_title(plan),
            summary(plan)
        )
    } else {
        format!(
            "**berth plan** for `{}` at `{commit}`: no changes, the live state matches Git",
            super::project_title(plan)
        )
    };
    writeln!(out, "{verdict}\n").ok();
    let mut deployments: Vec<&str> = plan.changes.iter().map(|c| c.deployment.as_str()).collect();
    deployments.sort();
    deployments.dedup();
    for d in deployments {
        if d.is_empty() {
            writeln!(out, "### not owned by a deployment\n").ok();
        } else {
            writeln!(out, "### deployment `{d}`\n").ok();
        }
        writeln!(
            out,
            "| | action | host | pod | kind | reason |\n|---|---|---|---|---|---|"
        )
        .ok();
        for c in plan.changes.iter().filter(|c| c.deployment == d) {
            let pod = subject(c, "`");
            let kind = if c.kind == ChangeKind::Drift {
                "drift"
            } else {
                "pending"
            };
            writeln!(
                out,
                "| `{}` | {} | {} | {pod} | {kind} | {} |",
                symbol(c.action),
                verb(c.action),
                c.host,
                cell(&c.reason.to_string())
            )
            .ok();
        }
        for c in plan.changes.iter().filter(|c| c.deployment == d) {
            let diff = spec_diff(c);
            if diff.is_empty() {
                continue;
            }
            writeln!(
                out,
                "\n<details><summary>diff of {} on {}</summary>\n\n```diff\n{}```\n</details>",
                c.new_pod.as_deref().unwrap_or(""),
                c.host,
                diff
            )
            .ok();
        }
        writeln!(out).ok();
    }
    if !plan.waves.is_empty() {
        writeln!(
            out,
            "<details><summary>steps, and who answers to each service name</summary>\n"
        )
        .ok();
        for (i, (wave, services)) in waves_with_services(plan).into_iter().enumerate() {
            if i == 0 {
                for (name, members) in &services {
                    writeln!(out, "- now: `{name}` → {}", cell(members)).ok();
                }
                continue;
            }
            writeln!(out, "{i}. {}", cell(&wave)).ok();
            for (name, members) in &services {
                writeln!(out, "   - `{name}` → {}", cell(members)).ok();
            }
        }
        writeln!(out, "\n</details>\n").ok();
    }
    if !plan.issues.is_empty() {
        writeln!(out, "### issues\n").ok();
        for i in &plan.issues {
            writeln!(out, "- **{:?}** {}", i.kind, cell(&i.message)).ok();
        }
    }
    out
}
