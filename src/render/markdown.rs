//! A pull-request comment: a one-line verdict, a table of changes per deployment and
//! collapsible diffs.

use super::{
    group_changes, group_subject, short_commit, spec_diff, subject, summary, symbol, verb,
    waves_with_services,
};
use crate::plan::{ChangeKind, Plan};
use std::fmt::Write;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// GitHub refuses a comment over 65,536 characters; the plan stays under it with room for
/// the note that says what was cut.
pub const COMMENT_LIMIT: usize = 65_536;
const NOTE_ROOM: usize = 400;

/// The reason, and what changed field by field (`app.image: v1 → v2`), in one cell.
fn what(c: &crate::plan::Change) -> String {
    let mut text = c.reason.to_string();
    for f in &c.fields {
        text.push_str(&format!(
            "; {}.{}: {} → {}",
            f.container,
            f.field,
            f.old.as_deref().unwrap_or("(none)"),
            f.new.as_deref().unwrap_or("(none)")
        ));
    }
    for line in super::created_lines(c) {
        text.push_str(&format!("; {line}"));
    }
    text
}

/// The plan as a pull-request comment, cut (with a note) to fit GitHub's limit.
pub fn plan(plan: &Plan) -> String {
    fit(full(plan), COMMENT_LIMIT)
}

/// `text` whole when it has at most `limit` characters, else cut at a line and noted.
pub fn fit(text: String, limit: usize) -> String {
    let total = text.chars().count();
    if total <= limit {
        return text;
    }
    let budget = limit - NOTE_ROOM;
    let mut kept = String::new();
    let mut count = 0;
    for line in text.split_inclusive('\n') {
        let n = line.chars().count();
        if count + n > budget {
            break;
        }
        kept.push_str(line);
        count += n;
    }
    if kept.matches("```").count() % 2 == 1 {
        kept.push_str("```\n");
    }
    if kept.matches("<details>").count() > kept.matches("</details>").count() {
        kept.push_str("</details>\n");
    }
    kept.push_str(&format!(
        "\n**The plan is cut here**: it has {total} characters and a comment takes {limit}; `berth plan` (text or `--format json`) shows it whole.\n"
    ));
    kept
}

fn full(plan: &Plan) -> String {
    let mut out = String::new();
    let commit = short_commit(plan.commit.as_deref());
    let verdict = if plan.has_changes() {
        format!(
            "**berth plan** for `{}` at `{commit}`: {}",
            super::project_title(plan),
            summary(plan)
        )
    } else {
        use crate::plan::Observation;
        let verdict = match plan.observed_scope() {
            Observation::All => "no changes, the live state matches Git".to_string(),
            Observation::Some {
                observed,
                hosts,
                unseen,
            } => format!(
                "no changes on the {observed} of {hosts} hosts observed; not observed, so unknown: {}",
                unseen.join(", ")
            ),
            Observation::None { hosts } => {
                format!("nothing observed, no host answered (0 of {hosts})")
            }
        };
        format!(
            "**berth plan** for `{}` at `{commit}`: {verdict}",
            super::project_title(plan)
        )
    };
    writeln!(out, "{verdict}\n").ok();
    if let Some(signer) = &plan.signed_by {
        writeln!(out, "Commit signed by {}.\n", cell(signer)).ok();
    }
    for line in super::not_in_git_lines(plan) {
        writeln!(out, "**deployment {}**\n", cell(&line)).ok();
    }
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
        let groups = group_changes(plan.changes.iter().filter(|c| c.deployment == d));
        for group in &groups {
            let c = group[0];
            let (host, pod) = if group.len() == 1 {
                (c.host.clone(), subject(c, "`"))
            } else {
                group_subject(group, "`")
            };
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
                host,
                cell(&what(c))
            )
            .ok();
        }
        for group in &groups {
            let c = group[0];
            let diff = spec_diff(c);
            if diff.is_empty() {
                continue;
            }
            let of = if group.len() == 1 {
                format!("{} on {}", c.new_pod.as_deref().unwrap_or(""), c.host)
            } else {
                format!(
                    "the {} pods like {} on {}",
                    group.len(),
                    c.new_pod.as_deref().unwrap_or(""),
                    c.host
                )
            };
            writeln!(
                out,
                "\n<details><summary>diff of {of}</summary>\n\n```diff\n{diff}```\n</details>",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_comment_is_cut_at_a_line_with_a_note() {
        let text: String = (0..2000)
            .map(|i| format!("| row {i} | {} |\n", "x".repeat(40)))
            .collect();
        let cut = fit(text.clone(), COMMENT_LIMIT);
        assert!(cut.chars().count() <= COMMENT_LIMIT);
        assert!(cut.contains("**The plan is cut here**"));
        assert!(cut.contains(&format!("it has {} characters", text.chars().count())));
        let short = "a few lines\n".to_string();
        assert_eq!(fit(short.clone(), COMMENT_LIMIT), short);
        // An open diff block is closed before the note.
        let open = format!("<details>\n```diff\n{}", "+ line\n".repeat(20_000));
        let cut = fit(open, COMMENT_LIMIT);
        assert!(
            cut.matches("```").count().is_multiple_of(2) && cut.contains("</details>"),
            "{}",
            &cut[cut.len() - 300..]
        );
    }
}
