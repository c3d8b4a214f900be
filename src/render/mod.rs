//! Rendering plans and states: text (Terraform-like), JSON (versioned), Markdown (PR comment).
//! Pure: colour is decided by the caller.

pub mod desired;
pub mod logs;
pub mod markdown;
pub mod text;

use crate::plan::{Action, Change, Plan};
use similar::TextDiff;

/// How a plan or a state is shown (`--format`; the CLI maps the flag's words to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

pub fn json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).expect("a plan always serialises")
}

pub fn symbol(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Replace => "~",
        Action::Start => ">",
        Action::Remove => "-",
        Action::Switch => "⇄",
        Action::Stop => "‖",
        Action::Route => "↪",
    }
}

pub fn verb(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Replace => "replace",
        Action::Start => "start",
        Action::Remove => "remove",
        Action::Switch => "switch",
        Action::Stop => "stop",
        Action::Route => "route",
    }
}

/// A unified diff of each container spec that differs (old → new), pretty JSON per container.
pub fn spec_diff(change: &Change) -> String {
    let (Some(old), Some(new)) = (&change.old_spec, &change.new_spec) else {
        return String::new();
    };
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    let mut out = String::new();
    for name in names {
        let pretty = |v: Option<&serde_json::Value>| {
            v.map(|v| serde_json::to_string_pretty(v).expect("json") + "\n")
                .unwrap_or_default()
        };
        let (a, b) = (pretty(old.get(name)), pretty(new.get(name)));
        if a == b {
            continue;
        }
        let diff = TextDiff::from_lines(&a, &b);
        let old_label = format!("{}/{name}", change.pod.as_deref().unwrap_or("(none)"));
        let new_label = format!("{}/{name}", change.new_pod.as_deref().unwrap_or("(none)"));
        out.push_str(
            &diff
                .unified_diff()
                .context_radius(2)
                .header(&old_label, &new_label)
                .to_string(),
        );
    }
    out
}

/// What a change is about: `old → new` pods, one pod, or a volume; names wrapped in `quote`.
pub fn subject(c: &Change, quote: &str) -> String {
    let q = |s: &str| format!("{quote}{s}{quote}");
    match (&c.pod, &c.new_pod, &c.volume) {
        (Some(o), Some(n), _) => format!("{} → {}", q(o), q(n)),
        (Some(o), None, _) => q(o),
        (None, Some(n), _) => q(n),
        (None, None, Some(v)) => format!("volume {}", q(v)),
        (None, None, None) if c.action == Action::Route => "its configuration".into(),
        (None, None, None) => String::new(),
    }
}

/// The commit, abbreviated as Git does for humans, or "working tree" for a plain directory.
pub fn short_commit(commit: Option<&str>) -> &str {
    commit.map_or("working tree", |c| {
        // A plan file may hold anything here: cut on a character boundary.
        let end = c.char_indices().nth(12).map_or(c.len(), |(i, _)| i);
        &c[..end]
    })
}

/// `1 to create, 2 to replace, 0 to start, 1 to remove`.
pub fn summary(plan: &Plan) -> String {
    let switch = match plan.count(Action::Switch) {
        0 => String::new(),
        n => format!(", {n} to switch"),
    };
    let stop = match plan.count(Action::Stop) {
        0 => String::new(),
        n => format!(", {n} to stop (kept for rollback)"),
    };
    let restarts = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Replace && c.reason.is_restart())
        .count();
    let restarts = match restarts {
        0 => String::new(),
        n => format!(" ({n} restarts)"),
    };
    format!(
        "{} to create, {} to replace{restarts}, {} to start, {} to remove{switch}{stop}",
        plan.count(Action::Create),
        plan.count(Action::Replace),
        plan.count(Action::Start),
        plan.count(Action::Remove)
    )
}

/// The waves of a plan, each followed by its edge steps (`edge step`, what it does) and the
/// service names whose members it changes: `(wave description, [(service, members after the
/// wave)])`, with the members before the plan first (description empty). Services no wave
/// touches are left out.
pub fn waves_with_services(plan: &Plan) -> Vec<(String, Vec<(String, String)>)> {
    use crate::plan::membership::{describe, timeline};
    let t = timeline(plan);
    let touched: std::collections::BTreeSet<&String> = t
        .windows(2)
        .flat_map(|w| {
            w[1].keys()
                .chain(w[0].keys())
                .filter(|k| w[0].get(*k) != w[1].get(*k))
                .collect::<Vec<_>>()
        })
        .collect();
    let members = |m: &crate::plan::membership::Membership, name: &String| {
        m.get(name)
            .map(describe)
            .unwrap_or_else(|| "(nobody)".into())
    };
    let mut out = vec![(
        String::new(),
        touched
            .iter()
            .map(|n| ((*n).clone(), members(&t[0], n)))
            .collect(),
    )];
    for (i, wave) in plan.waves.iter().enumerate() {
        let edge_steps = (wave.steps.values().flatten()).filter_map(|s| match s {
            crate::plan::Step::RouteEdges { add, remove } => Some((
                "edge step".to_string(),
                crate::plan::membership::describe_edge_step(add, remove),
            )),
            _ => None,
        });
        let changed: Vec<(String, String)> = edge_steps
            .chain(
                touched
                    .iter()
                    .filter(|n| members(&t[i], n) != members(&t[i + 1], n))
                    .map(|n| ((*n).clone(), members(&t[i + 1], n))),
            )
            .collect();
        out.push((wave.description.clone(), changed));
    }
    // The edges' routes, the same way: before the plan, then where a wave changes them.
    let routes = crate::plan::routes::timeline_of_routes(plan);
    for (i, entry) in out.iter_mut().enumerate() {
        let Some(now) = routes.get(i) else { break };
        for (name, text) in now {
            let moved = routes.windows(2).any(|w| w[0].get(name) != w[1].get(name));
            let changed = i == 0 || routes[i - 1].get(name) != Some(text);
            if moved && changed {
                entry.1.push((name.clone(), text.clone()));
            }
        }
    }
    out
}

/// A rollout state in a few words: what, where it stands, since when.
pub fn rollout_text(r: &crate::model::Rollout) -> String {
    use crate::model::{rollout::rfc3339, Phase};
    let what = match r.phase {
        Phase::Paused if r.strategy == crate::model::StrategyKind::Canary => format!(
            "canary of revision {} paused at step {} (weight {}%), waiting for `berth promote {}`",
            r.revision,
            r.step + 1,
            r.weight,
            r.deployment
        ),
        Phase::Paused => format!(
            "revision {} waits behind the preview name for `berth promote {}`",
            r.revision, r.deployment
        ),
        Phase::Promoted => format!(
            "revision {} promoted; the old set ({}) is kept for `berth rollback {}`",
            r.revision, r.stable, r.deployment
        ),
        Phase::Aborted => format!(
            "revision {} aborted; revision {} serves",
            r.revision, r.stable
        ),
        Phase::Failed => format!(
            "the rollout of revision {} failed and was rolled back; it is not tried again until Git changes (or `--retry`)",
            r.revision
        ),
        Phase::RolledBack => format!(
            "rolled back to revision {} by `berth rollback`; Git still declares revision {} (`berth rollback {} --to {}` goes back to it)",
            r.stable, r.revision, r.deployment, r.revision
        ),
    };
    format!("{what}, since {}", rfc3339(r.since))
}

/// `berth status` as text: a line per deployment, then its pods by host.
pub fn status_text(s: &crate::diff::status::Status) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let commit = short_commit(s.commit.as_deref());
    writeln!(out, "project {} at {commit}", s.project).ok();
    for d in &s.deployments {
        let service = d
            .service
            .as_deref()
            .map(|n| format!(", service {n}"))
            .unwrap_or_default();
        writeln!(
            out,
            "\n{} {}/{} ready at revision {}{service}",
            d.name, d.ready, d.replicas, d.revision
        )
        .ok();
        let mut live: std::collections::BTreeMap<&str, usize> = Default::default();
        for p in d
            .pods
            .iter()
            .filter(|p| p.state == crate::model::ContainerState::Running)
        {
            *live.entry(p.revision.as_str()).or_default() += 1;
        }
        if live.keys().any(|r| *r != d.revision) {
            let revisions: Vec<String> = live
                .iter()
                .map(|(r, n)| format!("{r} ({n} running)"))
                .collect();
            writeln!(out, "  live: {}", revisions.join(", ")).ok();
        }
        if let Some(r) = &d.rollout {
            writeln!(out, "  rollout: {}", rollout_text(r)).ok();
        }
        if !d.kept.is_empty() {
            let kept: Vec<String> = d
                .kept
                .iter()
                .map(|k| {
                    let when = crate::model::rollout::rfc3339(k.created.max(0) as u64);
                    format!("{} ({} pod(s), created {when})", k.revision, k.pods)
                })
                .collect();
            writeln!(out, "  kept for `berth rollback --to`: {}", kept.join(", ")).ok();
        }
        for p in &d.pods {
            let health = p
                .health
                .as_ref()
                .map(|h| format!(" ({h:?})").to_lowercase())
                .unwrap_or_default();
            let behind = match &p.behind {
                Some(names) if !names.is_empty() => format!(", behind {}", names.join(", ")),
                Some(_) if d.service.is_some() => ", out of service".to_string(),
                _ => String::new(),
            };
            let marker = if p.current { " " } else { "*" };
            writeln!(
                out,
                "  {marker} {:<10} {:<32} {}{health}{behind}",
                p.host, p.name, p.state
            )
            .ok();
        }
        if d.pods.iter().any(|p| !p.current) {
            writeln!(
                out,
                "  (* at another revision: an update is pending or under way)"
            )
            .ok();
        }
    }
    for (h, e) in &s.unreachable {
        writeln!(out, "\n! {h} is unreachable: {e}").ok();
    }
    out
}

/// The project as a plan's headline names it: `shop`, or `shop-staging (environment staging)`.
pub fn project_title(plan: &Plan) -> String {
    match &plan.environment {
        Some(e) => format!("{} (environment {e})", plan.project),
        None => plan.project.clone(),
    }
}

/// Changes of one deployment that say the same thing of different pods (a 60-pod image bump),
/// so that a plan shows each once with its pods counted. Order is kept.
pub fn group_changes<'a>(changes: impl Iterator<Item = &'a Change>) -> Vec<Vec<&'a Change>> {
    let key = |c: &Change| {
        let fields: Vec<String> = c
            .fields
            .iter()
            .map(|f| format!("{}.{}:{:?}:{:?}", f.container, f.field, f.old, f.new))
            .collect();
        let spec = |s: &Option<std::collections::BTreeMap<String, serde_json::Value>>| {
            s.as_ref().map(|m| serde_json::to_string(m).expect("json"))
        };
        (
            c.action,
            c.kind,
            c.reason.to_string(),
            fields,
            spec(&c.old_spec),
            spec(&c.new_spec),
            c.volume.is_some(),
        )
    };
    let mut groups: Vec<(_, Vec<&Change>)> = Vec::new();
    for c in changes {
        let k = key(c);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, list)) => list.push(c),
            None => groups.push((k, vec![c])),
        }
    }
    groups.into_iter().map(|(_, list)| list).collect()
}

/// The hosts of a group of changes, and its pods: all of them when few, else the first two,
/// the last and the count.
pub fn group_subject(group: &[&Change], quote: &str) -> (String, String) {
    let mut hosts: Vec<&str> = group.iter().map(|c| c.host.as_str()).collect();
    hosts.dedup();
    let hosts = if hosts.len() > 3 {
        format!("{} hosts", hosts.len())
    } else {
        hosts.join(", ")
    };
    let mut subjects: Vec<String> = group.iter().map(|c| subject(c, quote)).collect();
    // The same words for every host (an edge's configuration) are said once.
    subjects.dedup();
    let pods = if subjects.len() <= 3 {
        subjects.join(", ")
    } else {
        format!(
            "{}, {}, …, {} ({} pods)",
            subjects[0],
            subjects[1],
            subjects[subjects.len() - 1],
            subjects.len()
        )
    };
    (hosts, pods)
}

/// What a created pod runs, a line per container: `app: ghcr.io/acme/web:2, ports 8080:80/tcp`.
pub fn created_lines(c: &Change) -> Vec<String> {
    let Some(spec) = c.new_spec.as_ref().filter(|_| c.action == Action::Create) else {
        return vec![];
    };
    spec.iter()
        .map(|(name, v)| {
            let image = v.get("image").and_then(|i| i.as_str()).unwrap_or("?");
            let ports: Vec<String> = v
                .get("ports")
                .and_then(|p| p.as_array())
                .into_iter()
                .flatten()
                .filter_map(|p| serde_json::from_value::<crate::model::Port>(p.clone()).ok())
                .map(|p| p.to_string())
                .collect();
            if ports.is_empty() {
                format!("{name}: {image}")
            } else {
                format!("{name}: {image}, ports {}", ports.join(" "))
            }
        })
        .collect()
}

/// A deployment that left Git, as a plan's headline says it: `api: removed from Git; its 3
/// pods on h1, h2 are kept (--prune removes them)`.
pub fn not_in_git_lines(plan: &Plan) -> Vec<String> {
    plan.not_in_git
        .iter()
        .map(|(d, pods)| {
            let mut hosts: Vec<&str> = pods.iter().filter_map(|p| p.split('/').next()).collect();
            hosts.sort();
            hosts.dedup();
            format!(
                "{d}: removed from Git; its {} pod(s) on {} are kept (--prune removes them)",
                pods.len(),
                hosts.join(", ")
            )
        })
        .collect()
}
