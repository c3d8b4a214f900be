//! What a saved plan needs of the world when it is applied later: the secret values it names,
//! and secret values that still agree with the pods it keeps. Pure: the shell observes and
//! looks the values up.
//!
//! A plan file holds no secret value and nothing derived from one. So a value changed
//! between `plan -o` and `apply` is seen where it shows: a pod the plan keeps runs with a
//! value (its salted record, see `model::secret`) that is no longer the current one. Then
//! the plan no longer says what applying would have to do, and it is refused before any step.

use super::types::ContainerPlan;
use super::types::{Plan, Step, PLAN_VERSION};
use crate::model::policy::{Policy, Refusal, SecretUser};
use crate::model::secret::{self, SECRETS_LABEL};
use crate::model::Labels;
use crate::model::{label, ObservedHost};
use std::collections::{BTreeMap, BTreeSet};

/// serde's words for a value of the wrong shape, in the user's: "invalid length 0, expected
/// struct Plan with 16 elements" says a list stood where an object belongs.
fn plain_serde(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    if message.contains("expected struct") || message.starts_with("invalid type") {
        if let Some((_, expected)) = message.split_once("expected ") {
            let expected = (expected.split(" with ").next().unwrap_or(expected))
                .replace("struct Plan", "a plan")
                .replace("struct ", "")
                .replace("a map", "an object");
            let found = match message.split_once("invalid type: ") {
                Some((_, rest)) => rest
                    .split(',')
                    .next()
                    .unwrap_or("another value")
                    .to_string(),
                None => "a list".to_string(),
            };
            return format!("found {found} where {} belongs", expected.trim());
        }
    }
    message.to_string()
}

/// Reads a plan file's text (the JSON `berth plan -o` writes), or says where and why it is
/// not one, pointing into the text.
pub fn parse(name: &str, text: &str) -> Result<Plan, miette::Report> {
    let plan: Plan = serde_json::from_str(text).map_err(|e| {
        let offset = text
            .lines()
            .take(e.line().saturating_sub(1))
            .map(|l| l.len() + 1)
            .sum::<usize>()
            + e.column().saturating_sub(1);
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let what = match e.classify() {
            serde_json::error::Category::Eof => "it ends too early".to_string(),
            serde_json::error::Category::Syntax => "it is not valid JSON".to_string(),
            _ => format!("it is not a berth plan ({})", plain_serde(&e.to_string())),
        };
        // A plan file may be one huge line: the frame shows the part around the error.
        let (shown, at) = crate::repo::diag::shortened(text, (offset, 0).into());
        miette::miette!(
            labels = vec![miette::LabeledSpan::at(at.offset()..at.offset(), "here")],
            help = "a plan file is the JSON that `berth plan -o FILE` writes; make a new one",
            "the plan file {name} cannot be read: {what}"
        )
        .with_source_code(miette::NamedSource::new(name, shown))
    })?;
    if plan.version != PLAN_VERSION {
        return Err(miette::miette!(
            "the plan file {name} has format version {}, which this berth does not read (it writes {PLAN_VERSION})",
            plan.version,
        ));
    }
    Ok(plan)
}

/// The secrets the pods a plan creates are given, and the registry passwords its pulls use,
/// by name.
pub fn secrets_needed(plan: &Plan) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = plan
        .registries
        .iter()
        .map(|r| r.password_secret.clone())
        .collect();
    for spec in created_specs(plan) {
        names.extend(spec.secret_names().into_iter().map(str::to_string));
    }
    names
}

/// The specs of the containers a plan creates: its pods' and its jobs'.
fn created_specs(plan: &Plan) -> impl Iterator<Item = &crate::model::ContainerSpec> {
    created(plan).map(|(_, c)| &c.spec)
}

/// The containers a plan creates, with the deployment of each.
fn created(plan: &Plan) -> impl Iterator<Item = (&str, &ContainerPlan)> {
    plan.waves
        .iter()
        .flat_map(|w| w.steps.values().flatten())
        .flat_map(|step| match step {
            Step::CreatePod { pod } => (pod.containers.iter())
                .map(|c| (pod.deployment.as_str(), c))
                .collect(),
            Step::RunJob { job } => vec![(job.deployment.as_str(), &job.container)],
            _ => vec![],
        })
}

/// What the operator's policy refuses in a saved plan, as `deployment: refusal (rule)`: a
/// plan file is input too (a pull request's CI can make one), so `apply PLAN` under a policy
/// holds it to the same rules as the repository.
pub fn policy_refusals(plan: &Plan, policy: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |who: &str, r: Result<(), Refusal>| {
        if let Err(r) = r {
            let line = format!("{who}: {} ({})", r.message, r.rule);
            if !out.contains(&line) {
                out.push(line);
            }
        }
    };
    for (deployment, c) in created(plan) {
        let spec = &c.spec;
        if spec.network_mode.as_deref() == Some("host") {
            note(
                deployment,
                policy.check_host_network(&format!("container {}", c.name)),
            );
            note(deployment, policy.check_edge_image(&spec.image));
        } else {
            note(deployment, policy.check_image(&spec.image));
        }
        for m in spec.volumes.iter().filter(|m| !m.is_named_volume()) {
            note(deployment, policy.check_bind_mount(&m.source));
        }
        let labels: Labels = (c.labels.iter())
            .filter(|(k, _)| !k.starts_with("berth."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let user = SecretUser::Deployment {
            name: deployment.to_string(),
            labels,
        };
        for name in spec.secret_names() {
            note(deployment, policy.check_secret(&user, name));
        }
    }
    for login in &plan.registries {
        note("registries", policy.check_login(&login.server));
        let user = SecretUser::Registry(login.server.clone());
        note(
            "registries",
            policy.check_secret(&user, &login.password_secret),
        );
    }
    out
}

/// The files the pods a plan creates are given whose contents are not in `files`, as
/// `path (sha256 abcdef…)`.
pub fn files_missing(plan: &Plan, files: &crate::model::files::FileContents) -> Vec<String> {
    let mut missing: BTreeSet<String> = BTreeSet::new();
    let wanted = created_specs(plan).flat_map(|s| &s.files);
    for f in wanted.filter(|f| !files.contains_key(&f.sha256)) {
        missing.insert(format!(
            "{} (sha256 {}…)",
            f.source,
            &f.sha256[..12.min(f.sha256.len())]
        ));
    }
    missing.into_iter().collect()
}

/// The secrets whose current value differs from the one a pod that the plan leaves in place
/// runs with, each with where it was seen (`secret NAME: POD on HOST`). Secrets without a
/// value at hand are not judged.
pub fn secrets_changed_since(
    plan: &Plan,
    observed: &BTreeMap<String, Result<ObservedHost, String>>,
    value: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let removed: BTreeSet<(&str, &str)> = plan
        .waves
        .iter()
        .flat_map(|w| &w.steps)
        .flat_map(|(host, steps)| steps.iter().map(move |s| (host, s)))
        .filter_map(|(host, s)| match s {
            Step::RemovePod { containers, .. } => Some((host, containers)),
            _ => None,
        })
        .flat_map(|(host, cs)| cs.iter().map(move |c| (host.as_str(), c.as_str())))
        .collect();
    let mut changed = BTreeSet::new();
    for (host, o) in observed {
        let Ok(o) = o else { continue };
        for c in &o.containers {
            if c.label(label::PROJECT) != Some(plan.project.as_str())
                || removed.contains(&(host.as_str(), c.name.as_str()))
            {
                continue;
            }
            let sealed: BTreeMap<String, String> = c
                .label(SECRETS_LABEL)
                .and_then(|l| serde_json::from_str(l).ok())
                .unwrap_or_default();
            for (name, record) in sealed {
                if value(&name).is_some_and(|v| !secret::matches(&record, &v)) {
                    let pod = c.label(label::POD).unwrap_or(&c.name);
                    changed.insert(format!("secret {name}: {pod} on {host}"));
                }
            }
        }
    }
    changed.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn said(text: &str) -> String {
        parse("plan.json", text).unwrap_err().to_string()
    }

    #[test]
    fn a_file_that_is_not_a_plan_is_said_so_without_serdes_words() {
        let list = said("[]");
        assert!(
            list.contains("the plan file plan.json cannot be read"),
            "{list}"
        );
        assert!(
            !list.contains("16 elements") && !list.contains("struct"),
            "{list}"
        );
        assert!(list.contains("where a plan belongs"), "{list}");
        let number = said("{\"version\": \"two\"}");
        assert!(!number.contains("struct"), "{number}");
        assert!(said("{").contains("it ends too early"));
        assert!(said("nope").contains("it is not valid JSON"));
    }
}
