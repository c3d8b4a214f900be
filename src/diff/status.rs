//! The live status of each deployment: desired against live revisions, pods per host, their
//! health and service. Pure: built from the desired state and observations.

use super::{group, ObservedPod};
use crate::model::{ContainerState, DesiredState, Health, ObservedHost, Rollout, Selector};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub project: String,
    pub commit: Option<String>,
    pub deployments: Vec<DeploymentStatus>,
    /// Hosts that could not be observed, with the reason.
    pub unreachable: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeploymentStatus {
    pub name: String,
    pub revision: String,
    pub replicas: u32,
    /// Pods at the desired revision that run and are not unhealthy.
    pub ready: u32,
    pub service: Option<String>,
    pub pods: Vec<PodStatus>,
    /// A canary or blue-green rollout in progress, the last one aborted, or a rollback to a
    /// kept revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Old revisions kept stopped for `berth rollback --to`, newest first.
    pub kept: Vec<KeptRevision>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeptRevision {
    pub revision: String,
    pub pods: u32,
    /// When its newest pod was created (Unix seconds).
    pub created: i64,
}

/// Revisions none of whose pods runs, other than `revision`, newest first.
fn kept(pods: &[&ObservedPod], revision: &str) -> Vec<KeptRevision> {
    let mut by: BTreeMap<&str, KeptRevision> = BTreeMap::new();
    for p in pods.iter().filter(|p| p.revision != revision) {
        let created = p.containers.iter().map(|c| c.created).max().unwrap_or(0);
        let k = by.entry(&p.revision).or_insert_with(|| KeptRevision {
            revision: p.revision.clone(),
            pods: 0,
            created,
        });
        k.pods += 1;
        k.created = k.created.max(created);
    }
    let live: Vec<&str> = pods
        .iter()
        .filter(|p| !p.is_stopped())
        .map(|p| p.revision.as_str())
        .collect();
    let mut out: Vec<KeptRevision> = by
        .into_values()
        .filter(|k| !live.contains(&k.revision.as_str()))
        .collect();
    out.sort_by_key(|k| std::cmp::Reverse(k.created));
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct PodStatus {
    pub host: String,
    pub name: String,
    pub revision: String,
    /// At the desired revision.
    pub current: bool,
    /// The first of its containers that is not running, else running.
    pub state: ContainerState,
    pub health: Option<Health>,
    /// The service names it answers to (the service, or its preview name); `None` when
    /// membership was not observed.
    pub behind: Option<Vec<String>>,
}

fn pod_status(p: &ObservedPod, revision: &str, service: Option<&str>) -> PodStatus {
    let preview = service.map(crate::model::names::preview_alias);
    let names: Vec<&str> = service.into_iter().chain(preview.as_deref()).collect();
    let behind = p.behind(&names);
    let state = p
        .containers
        .iter()
        .map(|c| c.state.clone())
        .find(|s| *s != ContainerState::Running)
        .unwrap_or(ContainerState::Running);
    let health = p.health();
    PodStatus {
        host: p.host.clone(),
        name: p.name.clone(),
        revision: p.revision.clone(),
        current: p.revision == revision,
        state,
        health,
        behind,
    }
}

pub fn status(
    desired: &DesiredState,
    observed: &BTreeMap<String, Result<ObservedHost, String>>,
    selector: Option<&Selector>,
) -> Status {
    let mut pods: Vec<ObservedPod> = Vec::new();
    let mut unreachable = BTreeMap::new();
    for (host, o) in observed {
        match o {
            Ok(o) => pods.extend(group(&desired.project, o).0),
            Err(e) => {
                unreachable.insert(host.clone(), e.clone());
            }
        }
    }
    let deployments = desired
        .deployments
        .iter()
        .filter(|d| selector.is_none_or(|s| s.matches(&d.labels)))
        .map(|d| {
            let revision = d.revision(&desired.project);
            let rollout = Rollout::of(observed, &d.name).cloned();
            let serving = Rollout::serving(rollout.as_ref(), &revision);
            let own: Vec<&ObservedPod> = pods.iter().filter(|p| p.deployment == d.name).collect();
            let kept = kept(&own, &serving);
            let mut mine: Vec<PodStatus> = own
                .iter()
                .map(|p| pod_status(p, &revision, d.service.as_ref().map(|s| s.name.as_str())))
                .collect();
            mine.sort_by(|a, b| (&a.host, &a.name).cmp(&(&b.host, &b.name)));
            let ready = mine
                .iter()
                .filter(|p| {
                    p.current
                        && p.state == ContainerState::Running
                        && p.health != Some(Health::Unhealthy)
                })
                .count() as u32;
            DeploymentStatus {
                name: d.name.clone(),
                revision,
                replicas: d.replicas,
                ready,
                service: d.service.as_ref().map(|s| s.name.clone()),
                pods: mine,
                rollout,
                kept,
            }
        })
        .collect();
    Status {
        project: desired.project.clone(),
        commit: desired.commit.clone(),
        deployments,
        unreachable,
    }
}
