//! What is no longer declared: pods of deployments that left Git (removed with `--prune`,
//! named otherwise) and volumes no deployment uses (`--prune-volumes`). Pure.

use super::*;

/// What the plan prunes, and what it names but keeps.
#[derive(Default)]
pub(super) struct Pruned {
    pub(super) changes: Vec<Change>,
    pub(super) issues: Vec<Issue>,
    /// Per host: the removals, in one wave after every deployment's.
    pub(super) steps: BTreeMap<String, Vec<Step>>,
    /// Pods of deployments that left Git, kept (see `Plan::not_in_git`).
    pub(super) not_in_git: BTreeMap<String, Vec<String>>,
}

/// Pods of deployments no longer in Git, and (`--prune-volumes`) volumes nothing uses once
/// the deployments' plans have run.
pub(super) fn plan<'p>(cx: &Context, parts: impl Iterator<Item = &'p DeploymentPlan>) -> Pruned {
    let mut pruned = Pruned::default();
    pruned.steps = pruned.orphans(cx);
    if cx.input.prune_volumes {
        let waves: Vec<&Wave> = parts.flat_map(|p| &p.waves).collect();
        let removed = removed_containers(waves.iter().map(|w| &w.steps).chain([&pruned.steps]));
        let mut steps = std::mem::take(&mut pruned.steps);
        pruned.unused_volumes(cx, &removed, &mut steps);
        pruned.steps = steps;
    }
    pruned
}

impl Pruned {
    /// Steps that remove pods of deployments not in Git (with --prune); notices otherwise.
    fn orphans(&mut self, cx: &Context) -> BTreeMap<String, Vec<Step>> {
        let declared: BTreeSet<&str> = cx
            .input
            .desired
            .deployments
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        let orphans: Vec<ObservedPod> = cx
            .pods
            .iter()
            .filter(|p| !declared.contains(p.deployment.as_str()))
            .filter(|p| cx.input.selector.is_none_or(|s| s.matches(&p.labels)))
            .filter(|p| cx.reachable(&p.host))
            .cloned()
            .collect();
        let mut steps: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for p in &orphans {
            let (kind, reason) = if p.deployment.is_empty() {
                (ChangeKind::Drift, Reason::Unowned)
            } else {
                (
                    ChangeKind::Pending,
                    Reason::NotInGit {
                        deployment: p.deployment.clone(),
                    },
                )
            };
            if cx.input.prune {
                self.changes.push(Change::plain(
                    &p.deployment,
                    &p.host,
                    Action::Remove,
                    kind,
                    Some(p.name.clone()),
                    reason,
                ));
                steps
                    .entry(p.host.clone())
                    .or_default()
                    .push(remove_step(p, DEFAULT_STOP_TIMEOUT_S));
            } else {
                if !p.deployment.is_empty() {
                    self.not_in_git
                        .entry(p.deployment.clone())
                        .or_default()
                        .push(format!("{}/{}", p.host, p.name));
                }
                self.issues.push(Issue {
                    kind: if kind == ChangeKind::Drift {
                        IssueKind::Extra
                    } else {
                        IssueKind::Notice
                    },
                    host: Some(p.host.clone()),
                    deployment: Some(p.deployment.clone()),
                    pod: Some(p.name.clone()),
                    message: format!("{}: {reason}; kept (use --prune to remove it)", p.name),
                });
            }
        }
        steps
    }

    /// Volumes of this project that no deployment declares and no container keeps using.
    /// `removed` holds the (host, container) pairs the plan removes.
    fn unused_volumes(
        &mut self,
        cx: &Context,
        removed: &BTreeSet<(String, String)>,
        steps: &mut BTreeMap<String, Vec<Step>>,
    ) {
        let project = &cx.input.desired.project;
        let declared: BTreeSet<String> = cx
            .input
            .desired
            .deployments
            .iter()
            .flat_map(|d| d.pod.containers.iter().flat_map(|c| c.volumes.iter()))
            .filter(|m| m.is_named_volume())
            .map(|m| volume_name(project, &m.source))
            .collect();
        for (host, observed) in cx.input.observed {
            let Ok(observed) = observed else { continue };
            for v in &observed.volumes {
                if v.labels.get(label::PROJECT) != Some(project) || declared.contains(&v.name) {
                    continue;
                }
                let users: Vec<&str> = observed
                    .containers
                    .iter()
                    .filter(|c| {
                        c.volumes.contains(&v.name)
                            && !removed.contains(&(host.clone(), c.name.clone()))
                    })
                    .map(|c| c.name.as_str())
                    .collect();
                if !users.is_empty() {
                    self.issues.push(Issue {
                        kind: IssueKind::Notice,
                        host: Some(host.clone()),
                        deployment: None,
                        pod: None,
                        message: format!(
                            "volume {} is not declared in Git but {} still mount(s) it; kept",
                            v.name,
                            users.join(", ")
                        ),
                    });
                    continue;
                }
                self.changes.push(Change {
                    volume: Some(v.name.clone()),
                    ..Change::plain(
                        "",
                        host,
                        Action::Remove,
                        ChangeKind::Pending,
                        None,
                        Reason::VolumeNotDeclared {
                            volume: v.name.clone(),
                        },
                    )
                });
                steps
                    .entry(host.clone())
                    .or_default()
                    .push(Step::RemoveVolume {
                        name: v.name.clone(),
                    });
            }
        }
    }
}
