//! The terminal rendering of a plan.

use super::{
    created_lines, group_changes, group_subject, short_commit, spec_diff, subject, summary, symbol,
    verb, waves_with_services,
};
use crate::plan::{Action, ChangeKind, IssueKind, Plan};
use std::fmt::Write;

struct Paint(bool);

impl Paint {
    fn code(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn action(&self, a: Action, s: &str) -> String {
        let code = match a {
            Action::Create => "32",
            Action::Replace => "33",
            Action::Start => "36",
            Action::Remove => "31",
            Action::Switch => "35",
            Action::Stop => "34",
            Action::Route => "36",
        };
        self.code(code, s)
    }
}

pub fn plan(plan: &Plan, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    let commit = short_commit(plan.commit.as_deref());
    let reachable = plan.hosts.values().filter(|h| h.reachable).count();
    writeln!(
        out,
        "{} project {} at {commit}, {reachable}/{} host(s) observed",
        p.code("1", "berth plan:"),
        super::project_title(plan),
        plan.hosts.len()
    )
    .ok();
    if let Some(signer) = &plan.signed_by {
        writeln!(out, "  commit signed by {signer}").ok();
    }
    if let Some(sel) = &plan.selector {
        writeln!(out, "  deployments matching -l {sel}").ok();
    }
    for line in super::not_in_git_lines(plan) {
        writeln!(out, "\n{} {line}", p.code("1;33", "deployment")).ok();
    }
    let mut deployments: Vec<&str> = plan.changes.iter().map(|c| c.deployment.as_str()).collect();
    deployments.dedup();
    let mut seen = std::collections::BTreeSet::new();
    for d in deployments {
        if !seen.insert(d) {
            continue;
        }
        writeln!(
            out,
            "\n{}",
            p.code(
                "1",
                &if d.is_empty() {
                    "not owned by a deployment".to_string()
                } else {
                    format!("deployment {d}")
                }
            )
        )
        .ok();
        for group in group_changes(plan.changes.iter().filter(|c| c.deployment == d)) {
            let c = group[0];
            let (host, pods) = if group.len() == 1 {
                (c.host.clone(), subject(c, ""))
            } else {
                group_subject(&group, "")
            };
            let kind = match c.kind {
                ChangeKind::Pending => "pending",
                ChangeKind::Drift => "drift",
            };
            writeln!(
                out,
                "  {} {:<8} {:<10} {pods}\n      {kind}: {}",
                p.action(c.action, symbol(c.action)),
                p.action(c.action, verb(c.action)),
                host,
                c.reason
            )
            .ok();
            for line in created_lines(c) {
                writeln!(out, "      {line}").ok();
            }
            for f in &c.fields {
                writeln!(
                    out,
                    "      {}.{}: {} → {}",
                    f.container,
                    f.field,
                    shown(f.old.as_deref()),
                    shown(f.new.as_deref())
                )
                .ok();
            }
            let diff = spec_diff(c);
            for line in diff.lines() {
                let painted = if line.starts_with('+') && !line.starts_with("+++") {
                    p.code("32", line)
                } else if line.starts_with('-') && !line.starts_with("---") {
                    p.code("31", line)
                } else {
                    line.to_string()
                };
                writeln!(out, "        {painted}").ok();
            }
        }
    }
    if !plan.waves.is_empty() {
        writeln!(
            out,
            "\n{}",
            p.code("1", "steps (and who answers to each service name)")
        )
        .ok();
        for (i, (wave, services)) in waves_with_services(plan).into_iter().enumerate() {
            if i == 0 {
                for (name, members) in &services {
                    writeln!(out, "     now: {name} → {members}").ok();
                }
                continue;
            }
            writeln!(out, "  {i:>2}. {wave}").ok();
            for (name, members) in &services {
                writeln!(out, "        {name} → {members}").ok();
            }
        }
    }
    if !plan.issues.is_empty() {
        writeln!(out, "\n{}", p.code("1", "issues")).ok();
        for i in &plan.issues {
            let tag = match i.kind {
                IssueKind::Health => p.code("33", "health"),
                IssueKind::Conflict => p.code("31", "conflict"),
                IssueKind::Unreachable => p.code("31", "unreachable"),
                IssueKind::Extra => p.code("33", "extra"),
                IssueKind::Notice => p.code("36", "notice"),
                IssueKind::Rollout => p.code("35", "rollout"),
                IssueKind::RolledBack => p.code("33", "rolled back"),
            };
            writeln!(
                out,
                "  ! {tag} {}{}",
                i.host
                    .as_deref()
                    .map(|h| format!("{h}: "))
                    .unwrap_or_default(),
                i.message
            )
            .ok();
        }
    }
    let pending = plan
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Pending)
        .count();
    let drift = plan.changes.len() - pending;
    if plan.has_changes() {
        writeln!(
            out,
            "\n{} {} ({pending} pending, {drift} drift)",
            p.code("1", "Plan:"),
            summary(plan)
        )
        .ok();
    } else {
        use crate::plan::Observation;
        // A rollout that waits (a paused canary, a blue-green before promotion, a failed or
        // aborted revision) is not the live state matching Git: say what it waits for.
        let waiting = plan
            .issues
            .iter()
            .any(|i| i.kind == crate::plan::IssueKind::Rollout);
        let line =
            match (plan.observed_scope(), waiting) {
                (Observation::None { hosts }, _) => format!(
                "{} no host answered (0 of {hosts} observed): nothing is known of the live state.",
                p.code("1", "Nothing observed:")
            ),
                (
                    Observation::Some {
                        observed,
                        hosts,
                        unseen,
                    },
                    _,
                ) => format!(
                "{} on the {observed} of {hosts} hosts observed{}; not observed, so unknown: {}.",
                p.code("1", "No changes"),
                if waiting { " (a rollout waits, as said above)" } else { "" },
                unseen.join(", ")
            ),
                (Observation::All, true) => format!(
                    "{} a rollout waits, as said above; nothing else differs from Git.",
                    p.code("1", "No changes to make now:")
                ),
                (Observation::All, false) => {
                    format!("{} the live state matches Git.", p.code("1", "No changes:"))
                }
            };
        writeln!(out, "\n{line}").ok();
    }
    out
}

/// A field's value as a plan line shows it: digests cut to 12 hex digits (the spec diff below
/// and the JSON plan keep them whole).
pub(crate) fn shown(value: Option<&str>) -> String {
    match value {
        None => "(none)".to_string(),
        // A label or a saved plan may hold anything here: cut by characters, never bytes.
        Some(v) if v.starts_with("sha256:") && v.chars().count() > 19 => {
            format!("{}…", v.chars().take(19).collect::<String>())
        }
        Some(v) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_digest_is_cut_by_characters() {
        assert_eq!(
            super::shown(Some("sha256:0123456789abcdef")),
            "sha256:0123456789ab…"
        );
        // Multi-byte characters where byte 19 falls inside one: no panic.
        let odd = "sha256:ééééééééééééééé";
        assert_eq!(super::shown(Some(odd)), format!("{}…", &odd[..31]));
        assert_eq!(super::shown(None), "(none)");
    }
}
