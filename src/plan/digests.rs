//! Tags resolved to digests. A container whose image is a tag (`web:main`) runs the digest
//! that tag named when the plan was made: the shell asks one host's engine (which asks the
//! registry), and the digest becomes part of the container's spec, so of the revision. A tag
//! that moved is then a new revision, rolled out with the deployment's strategy, and a
//! saved plan creates exactly the digests it showed. Pure: the shell observes and asks.
//!
//! An image that a host has from no registry (built or loaded there) is not asked about. An
//! image the registry cannot be asked about keeps the digest its pods run (with a notice), so
//! a registry that is down changes nothing.

use super::types::{Issue, IssueKind};
use crate::model::{image_name, label, ContainerSpec, DesiredState, ObservedHost};
use std::collections::{BTreeMap, BTreeSet};

pub type Observed = BTreeMap<String, Result<ObservedHost, String>>;

/// What asking about each tag gave: its digest, or why it could not be had.
pub type Resolved = BTreeMap<String, Result<String, String>>;

/// The containers whose tag is resolved to a digest.
fn resolving(desired: &DesiredState) -> impl Iterator<Item = &ContainerSpec> {
    desired
        .deployments
        .iter()
        .flat_map(|d| &d.pod.containers)
        .filter(|c| c.resolves_tag())
}

/// The images a plan asks the hosts about while observing them.
pub fn images_to_observe(desired: &DesiredState) -> Vec<String> {
    let images: BTreeSet<&str> = resolving(desired).map(|c| c.image.as_str()).collect();
    images.into_iter().map(str::to_string).collect()
}

/// The tags to resolve, each with the host whose engine to ask: one that has the image from
/// a registry, else one that will run it, else any that answered. An image that hosts have
/// only from no registry is left out.
pub fn to_resolve(desired: &DesiredState, observed: &Observed) -> BTreeMap<String, String> {
    let answered: Vec<&ObservedHost> = observed.values().filter_map(|o| o.as_ref().ok()).collect();
    let mut asks = BTreeMap::new();
    for d in &desired.deployments {
        let runs_on: Vec<&str> = desired
            .eligible_hosts(d)
            .iter()
            .map(|h| h.name.as_str())
            .filter(|h| answered.iter().any(|o| o.host == *h))
            .collect();
        for c in d.pod.containers.iter().filter(|c| c.resolves_tag()) {
            if asks.contains_key(&c.image) {
                continue;
            }
            let having: Vec<(&str, &Vec<String>)> = answered
                .iter()
                .filter_map(|o| o.images.get(&c.image).map(|d| (o.host.as_str(), d)))
                .collect();
            // A digest of another repository (the same image pushed elsewhere) says nothing
            // about where this name comes from.
            let name = image_name(&c.image);
            let from_registry = having
                .iter()
                .find(|(_, digests)| digests.iter().any(|d| d.split('@').next() == Some(name)));
            let host = match from_registry {
                Some((host, _)) => *host,
                None if !having.is_empty() => continue,
                None => match runs_on.first() {
                    Some(host) => host,
                    None => match answered.first() {
                        Some(o) => o.host.as_str(),
                        None => continue,
                    },
                },
            };
            asks.insert(c.image.clone(), host.to_string());
        }
    }
    asks
}

/// The desired state with each container's digest: the one resolved, or, where none could be
/// had, the one its pods run (those of a rollout in progress first); and a notice for each
/// tag that could not be resolved.
pub fn settle(
    desired: &DesiredState,
    resolved: &Resolved,
    observed: &Observed,
) -> (DesiredState, Vec<Issue>) {
    let mut settled = desired.clone();
    let mut issues = Vec::new();
    let mut told: BTreeSet<String> = BTreeSet::new();
    for d in &mut settled.deployments {
        let running = running_digests(&d.name, &desired.project, observed);
        for c in &mut d.pod.containers {
            if !c.resolves_tag() {
                continue;
            }
            match resolved.get(&c.image) {
                Some(Ok(digest)) => c.digest = Some(digest.clone()),
                failed => {
                    c.digest = running.get(&(c.name.clone(), c.image.clone())).cloned();
                    if let Some(Err(why)) = failed {
                        if told.insert(c.image.clone()) {
                            let keeps = match &c.digest {
                                Some(_) => "its pods keep the digest they run",
                                None => "it is pulled by its tag",
                            };
                            issues.push(Issue {
                                kind: IssueKind::Notice,
                                host: None,
                                deployment: Some(d.name.clone()),
                                pod: None,
                                message: format!(
                                    "cannot resolve {} to a digest ({why}); {keeps}",
                                    c.image
                                ),
                            });
                        }
                    }
                }
            }
        }
    }
    (settled, issues)
}

/// The digest each container (by name and image) of a deployment's pods runs: the pods of
/// the revision a rollout in progress records first, then those most pods run.
fn running_digests(
    deployment: &str,
    project: &str,
    observed: &Observed,
) -> BTreeMap<(String, String), String> {
    let hosts: Vec<&ObservedHost> = observed.values().filter_map(|o| o.as_ref().ok()).collect();
    let rolling_out: BTreeSet<&str> = hosts
        .iter()
        .flat_map(|h| &h.rollouts)
        .filter(|r| r.deployment == deployment)
        .map(|r| r.revision.as_str())
        .collect();
    // (container, image) → digest → (pods of the rollout's revision, pods).
    let mut seen: BTreeMap<(String, String), BTreeMap<String, (usize, usize)>> = BTreeMap::new();
    for c in hosts.iter().flat_map(|h| &h.containers) {
        if c.label(label::PROJECT) != Some(project)
            || c.label(label::DEPLOYMENT) != Some(deployment)
        {
            continue;
        }
        let Some(spec) = c.label(label::SPEC) else {
            continue;
        };
        let Ok(spec) = serde_json::from_str::<ContainerSpec>(spec) else {
            continue;
        };
        let Some(digest) = spec.digest else { continue };
        let in_rollout = c
            .label(label::REVISION)
            .is_some_and(|r| rolling_out.contains(r));
        let count = seen
            .entry((spec.name, spec.image))
            .or_default()
            .entry(digest)
            .or_default();
        count.0 += usize::from(in_rollout);
        count.1 += 1;
    }
    seen.into_iter()
        .filter_map(|(key, digests)| {
            let best = digests.into_iter().max_by_key(|(_, counts)| *counts)?;
            Some((key, best.0))
        })
        .collect()
}
