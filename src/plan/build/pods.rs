//! A deployment's pods, one by one: which to keep, start, replace, create or remove, and the
//! plan of a new pod (its containers, labels and what to prepare for it). Pure.

use super::*;

/// A host's pods judged against the deployment.
struct Judged {
    /// Pods to keep, with the containers that need a start (empty: none).
    keep: Vec<(ObservedPod, Vec<String>)>,
    /// Pods that must be replaced: the pod, whether Git or a hand asks it, why, what differs.
    replaceable: Vec<(ObservedPod, ChangeKind, Reason, Vec<diff::FieldChange>)>,
}

/// What every host's decisions for a deployment share.
struct Scope<'s> {
    cx: &'s Context<'s>,
    revision: &'s str,
    eligible: &'s [String],
    /// The last apply used today's replica count: a missing or extra pod is drift.
    same_count: bool,
    /// No pod of the deployment runs anywhere yet.
    first_pods: bool,
    /// Git went back to a revision whose pods are kept stopped while another one runs: they
    /// start again (a rollback, not drift), and the running ones are kept in turn.
    revert: bool,
}

/// A deployment's pods judged host by host against Git: the work to do about each (for its
/// strategy to order) and the plan's changes and issues.
pub(super) fn pod_work(cx: &Context, d: &Deployment) -> (DeploymentPlan, Vec<Work>) {
    let mut out = DeploymentPlan::default();
    let work = out.pod_work(cx, d);
    (out, work)
}

impl DeploymentPlan {
    fn pod_work(&mut self, cx: &Context, d: &Deployment) -> Vec<Work> {
        let desired = cx.input.desired;
        let revision = d.revision(&desired.project);
        let eligible: Vec<String> = desired
            .eligible_hosts(d)
            .into_iter()
            .filter(|h| cx.reachable(&h.name))
            .map(|h| h.name.clone())
            .collect();
        let mine = cx.pods_of(d);
        let of_revision = |p: &&ObservedPod| p.revision == revision;
        let revert = !mine.iter().filter(of_revision).any(|p| p.is_running())
            && mine.iter().filter(of_revision).any(|p| p.is_stopped())
            && mine
                .iter()
                .any(|p| p.revision != revision && p.is_running());
        // Pods stay where they are; going back to a kept revision, where its pods are.
        let mut current: BTreeMap<String, u32> = BTreeMap::new();
        for p in mine.iter().filter(|p| !revert || p.revision == revision) {
            *current.entry(p.host.clone()).or_default() += 1;
        }
        let (target, unplaced) =
            placement::place(d.replicas, &eligible, &current, d.pods_per_host());
        if unplaced > 0 {
            self.deployment_issue(
                IssueKind::Notice,
                d,
                format!(
                    "{unplaced} replica(s) of {} cannot be placed on the reachable hosts",
                    d.name
                ),
            );
        }
        // Did the last apply use today's replica count? Then a missing or extra pod is drift.
        let same_count = mine
            .iter()
            .any(|p| p.replicas == Some(d.replicas) && p.revision == revision);
        let scope = Scope {
            cx,
            revision: &revision,
            eligible: &eligible,
            same_count,
            first_pods: mine.is_empty(),
            revert,
        };
        let mut next_ordinal = cx.next_ordinals(d);
        let mut work = Vec::new();
        let mut all_hosts: Vec<String> = mine.iter().map(|p| p.host.clone()).collect();
        all_hosts.extend(eligible.iter().cloned());
        all_hosts.sort();
        all_hosts.dedup();
        for host in all_hosts {
            if !cx.reachable(&host) {
                continue;
            }
            let want = target.get(&host).copied().unwrap_or(0);
            let mut pods: Vec<ObservedPod> =
                mine.iter().filter(|p| p.host == host).cloned().collect();
            pods.sort_by_key(|p| p.ordinal);
            let judged = self.judge(cx, d, &host, pods, &revision);
            let next = &mut next_ordinal;
            work.extend(self.host_work(d, &host, want, judged, &scope, next));
        }
        work
    }

    /// Sorts a host's pods into those to keep (with the containers that need a start) and
    /// those to replace (with why), noting unhealthy ones as issues.
    fn judge(
        &mut self,
        cx: &Context,
        d: &Deployment,
        host: &str,
        pods: Vec<ObservedPod>,
        revision: &str,
    ) -> Judged {
        let desired = cx.input.desired;
        let restart = cx.input.intents.get(&d.name) == Some(&Intent::Restart);
        let mut keep: Vec<(ObservedPod, Vec<String>)> = Vec::new();
        let mut replaceable: Vec<(ObservedPod, ChangeKind, Reason, Vec<diff::FieldChange>)> =
            Vec::new();
        for p in pods {
            match diff::judge(&p, d, revision, &desired.secrets) {
                Condition::Current { .. } if restart && p.is_running() => {
                    replaceable.push((p, ChangeKind::Pending, Reason::Restart, vec![]))
                }
                Condition::Current { health } => {
                    let problem = match health {
                        Some(Health::Unhealthy) => Some("unhealthy"),
                        Some(Health::Starting) => Some("still starting"),
                        _ => None,
                    };
                    if let Some(problem) = problem {
                        self.pod_issue(
                            IssueKind::Health,
                            host,
                            &d.name,
                            &p.name,
                            format!("{} is {problem}", p.name),
                        );
                    }
                    if p.containers
                        .iter()
                        .any(|c| c.state == ContainerState::Restarting)
                    {
                        self.pod_issue(
                            IssueKind::Health,
                            host,
                            &d.name,
                            &p.name,
                            format!("{} is restarting", p.name),
                        );
                    }
                    keep.push((p, vec![]));
                }
                Condition::Stopped { containers } => keep.push((p, containers)),
                Condition::Broken { why, fields } => {
                    replaceable.push((p, ChangeKind::Drift, why, fields))
                }
                Condition::SecretsChanged { secrets } => {
                    let why = Reason::SecretsChanged { secrets };
                    replaceable.push((p, ChangeKind::Pending, why, vec![]))
                }
                Condition::Outdated { fields } => {
                    let why = Reason::Revision {
                        from: p.revision.clone(),
                        to: revision.to_string(),
                    };
                    replaceable.push((p, ChangeKind::Pending, why, fields))
                }
            }
        }
        Judged { keep, replaceable }
    }

    /// One host's work: the surplus goes, stopped pods start, missing pods are created or
    /// replace a pod that must go, and replaceable pods left over are removed.
    fn host_work(
        &mut self,
        d: &Deployment,
        host: &str,
        want: u32,
        judged: Judged,
        scope: &Scope,
        next_ordinal: &mut impl FnMut() -> u32,
    ) -> Vec<Work> {
        let Judged {
            mut keep,
            replaceable,
        } = judged;
        let mut work = Vec::new();
        let host = host.to_string();
        // Too many good pods here: remove the surplus, stopped ones and high ordinals first.
        keep.sort_by_key(|(p, stopped)| (!stopped.is_empty(), p.ordinal));
        while keep.len() as u32 > want {
            let (p, _) = keep.pop().expect("non-empty");
            let (kind, reason) = if !scope.eligible.contains(&host) {
                (
                    ChangeKind::Pending,
                    Reason::Placement {
                        host: host.clone(),
                        deployment: d.name.clone(),
                    },
                )
            } else if scope.same_count {
                (ChangeKind::Drift, Reason::ExtraPod)
            } else {
                (
                    ChangeKind::Pending,
                    Reason::ScaleDown {
                        replicas: d.replicas,
                    },
                )
            };
            self.change(
                d,
                PodChange::new(&host, Action::Remove, kind, reason).of(&p),
            );
            work.push(Work::Remove(p));
        }
        for (p, stopped) in &keep {
            if !stopped.is_empty() {
                let (kind, reason) = if scope.revert {
                    let revision = scope.revision.to_string();
                    (ChangeKind::Pending, Reason::RollbackTo { revision })
                } else {
                    let containers = stopped.clone();
                    (ChangeKind::Drift, Reason::Stopped { containers })
                };
                self.change(d, PodChange::new(&host, Action::Start, kind, reason).of(p));
                work.push(Work::Start(p.clone()));
            }
        }
        let missing = want.saturating_sub(keep.len() as u32);
        let mut replaceable = replaceable.into_iter();
        for _ in 0..missing {
            let ordinal = next_ordinal();
            let new = self.pod_plan(scope.cx, d, scope.revision, ordinal, &host);
            match replaceable.next() {
                Some((old, kind, why, fields)) => {
                    let host_ports = d.pod.host_ports();
                    let stop_first = !host_ports.is_empty();
                    let reason = if stop_first {
                        Reason::StopsFirst {
                            because: Box::new(why),
                            host_port: host_ports[0].0,
                        }
                    } else {
                        why
                    };
                    let new_name = new.name.clone();
                    self.change(
                        d,
                        PodChange::new(&host, Action::Replace, kind, reason)
                            .of(&old)
                            .to(new_name)
                            .with_fields(fields),
                    );
                    work.push(Work::Create {
                        new,
                        host: host.clone(),
                        replaces: Some(old),
                        stop_first,
                    });
                }
                None => {
                    let (kind, reason) = if scope.first_pods {
                        (
                            ChangeKind::Pending,
                            Reason::NewDeployment {
                                deployment: d.name.clone(),
                            },
                        )
                    } else if scope.same_count && scope.eligible.contains(&host) {
                        (ChangeKind::Drift, Reason::RemovedByHand)
                    } else {
                        (
                            ChangeKind::Pending,
                            Reason::ScaleUp {
                                replicas: d.replicas,
                            },
                        )
                    };
                    let new_name = new.name.clone();
                    self.change(
                        d,
                        PodChange::new(&host, Action::Create, kind, reason).to(new_name),
                    );
                    work.push(Work::Create {
                        new,
                        host: host.clone(),
                        replaces: None,
                        stop_first: false,
                    });
                }
            }
        }
        for (old, kind, why, fields) in replaceable {
            let reason = Reason::NotNeeded {
                because: Box::new(why),
                replicas: want,
            };
            // A running pod of another revision is kept, stopped, as history.
            let keep =
                d.strategy.history_limit > 0 && old.revision != scope.revision && old.is_running();
            let action = if keep { Action::Stop } else { Action::Remove };
            self.change(
                d,
                PodChange::new(&host, action, kind, reason)
                    .of(&old)
                    .with_fields(fields),
            );
            work.push(if keep {
                Work::Stop(old)
            } else {
                Work::Remove(old)
            });
        }
        work
    }
}

impl Context<'_> {
    /// The deployment's pods, without the old revisions kept stopped for `berth rollback
    /// --to` (`history`): those neither count as replicas nor are drift.
    pub(super) fn pods_of(&self, d: &Deployment) -> Vec<ObservedPod> {
        let kept = self.kept_filter(d);
        self.pods
            .iter()
            .filter(|p| p.deployment == d.name && !kept(p))
            .cloned()
            .collect()
    }

    /// Hands out the ordinals no pod of the deployment uses, lowest first.
    pub(super) fn next_ordinals(&self, d: &Deployment) -> impl FnMut() -> u32 + use<> {
        let mut used: BTreeSet<u32> = self
            .pods
            .iter()
            .filter(|p| p.deployment == d.name)
            .map(|p| p.ordinal)
            .collect();
        move || {
            let o = (0..)
                .find(|o| !used.contains(o))
                .expect("an unused ordinal exists");
            used.insert(o);
            o
        }
    }
}
