//! What is no longer declared: pods of deployments that left Git (removed with `--prune`,
//! named otherwise) and volumes no deployment uses (`--prune-volumes`). Pure.

use super::*;

impl Builder<'_> {
    /// Pods of deployments that are not in Git (or deleted from it).
    /// Steps that remove pods of deployments not in Git (with --prune); notices otherwise.
    pub(super) fn orphans(
        &mut self,
        hosts: &BTreeMap<String, HostState>,
    ) -> BTreeMap<String, Vec<Step>> {
        let declared: BTreeSet<&str> = self
            .input
            .desired
            .deployments
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        let orphans: Vec<ObservedPod> = self
            .pods
            .iter()
            .filter(|p| !declared.contains(p.deployment.as_str()))
            .filter(|p| self.input.selector.is_none_or(|s| s.matches(&p.labels)))
            .filter(|p| hosts.get(&p.host).is_some_and(|h| h.reachable))
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
            if self.input.prune {
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
    pub(super) fn unused_volumes(
        &mut self,
        removed: &BTreeSet<(String, String)>,
        steps: &mut BTreeMap<String, Vec<Step>>,
    ) {
        let project = &self.input.desired.project;
        let declared: BTreeSet<String> = self
            .input
            .desired
            .deployments
            .iter()
            .flat_map(|d| d.pod.containers.iter().flat_map(|c| c.volumes.iter()))
            .filter(|m| m.is_named_volume())
            .map(|m| volume_name(project, &m.source))
            .collect();
        for (host, observed) in self.input.observed {
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
