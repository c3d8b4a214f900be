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

impl Builder<'_> {
    pub(super) fn deployment(
        &mut self,
        d: &Deployment,
        hosts: &BTreeMap<String, HostState>,
    ) -> Vec<Work> {
        let desired = self.input.desired;
        let revision = d.revision(&desired.project);
        let eligible: Vec<String> = desired
            .eligible_hosts(d)
            .into_iter()
            .filter(|h| hosts.get(&h.name).is_some_and(|s| s.reachable))
            .map(|h| h.name.clone())
            .collect();
        let mine = self.pods_of(d);
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
            revision: &revision,
            eligible: &eligible,
            same_count,
            first_pods: mine.is_empty(),
            revert,
        };
        let mut next_ordinal = self.next_ordinals(d);
        let mut work = Vec::new();
        let mut all_hosts: Vec<String> = mine.iter().map(|p| p.host.clone()).collect();
        all_hosts.extend(eligible.iter().cloned());
        all_hosts.sort();
        all_hosts.dedup();
        for host in all_hosts {
            if !hosts.get(&host).is_some_and(|s| s.reachable) {
                continue;
            }
            let want = target.get(&host).copied().unwrap_or(0);
            let mut pods: Vec<ObservedPod> =
                mine.iter().filter(|p| p.host == host).cloned().collect();
            pods.sort_by_key(|p| p.ordinal);
            let judged = self.judge(d, &host, pods, &revision);
            work.extend(self.host_work(d, &host, want, judged, &scope, &mut next_ordinal));
        }
        work
    }

    /// Sorts a host's pods into those to keep (with the containers that need a start) and
    /// those to replace (with why), noting unhealthy ones as issues.
    fn judge(
        &mut self,
        d: &Deployment,
        host: &str,
        pods: Vec<ObservedPod>,
        revision: &str,
    ) -> Judged {
        let desired = self.input.desired;
        let mut keep: Vec<(ObservedPod, Vec<String>)> = Vec::new();
        let mut replaceable: Vec<(ObservedPod, ChangeKind, Reason, Vec<diff::FieldChange>)> =
            Vec::new();
        for p in pods {
            match diff::judge(&p, d, revision, &desired.secrets) {
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
            let new = self.pod_plan(d, scope.revision, ordinal, &host);
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

    pub(super) fn pod_issue(
        &mut self,
        kind: IssueKind,
        host: &str,
        deployment: &str,
        pod: &str,
        message: String,
    ) {
        self.issues.push(Issue {
            kind,
            host: Some(host.to_string()),
            deployment: Some(deployment.to_string()),
            pod: Some(pod.to_string()),
            message,
        });
    }

    /// Records a change of one pod of `d`.
    pub(super) fn change(&mut self, d: &Deployment, mut c: PodChange) {
        let with_specs = matches!(c.action, Action::Replace | Action::Create);
        // Every strategy's replace says what changed, field by field (a canary's and a
        // blue-green's as well as a rolling one's).
        if let (Action::Replace, Some(old), true) = (c.action, c.old, c.fields.is_empty()) {
            c.fields = diff::pod_field_changes(&old.containers, &d.pod.containers);
        }
        self.changes.push(Change {
            deployment: d.name.clone(),
            host: c.host.to_string(),
            action: c.action,
            kind: c.kind,
            pod: c.old.map(|p| p.name.clone()),
            new_pod: c.new_pod,
            volume: None,
            reason: c.reason,
            fields: c.fields,
            old_spec: c.old.filter(|_| with_specs).map(observed_spec_map),
            new_spec: with_specs.then(|| spec_map(&d.pod.containers)),
        });
    }

    pub(super) fn pod_plan(
        &mut self,
        d: &Deployment,
        revision: &str,
        ordinal: u32,
        host: &str,
    ) -> PodPlan {
        let desired = self.input.desired;
        let project = &desired.project;
        let name = pod_name(&d.name, revision, ordinal);
        let network = network_name(project);
        let prep = self.prepare.entry(host.to_string()).or_default();
        prep.insert(PrepareStep::Network(network.clone()));
        let labels_json = serde_json::to_string(&d.labels).expect("labels serialise");
        let containers = d
            .pod
            .containers
            .iter()
            .enumerate()
            .map(|(index, c)| {
                // `pull: never`: the host must have the image; creating the pod says if not.
                if c.pull != PullPolicy::Never {
                    prep.insert(PrepareStep::Image(c.pull_ref()));
                }
                for v in c.volumes.iter().filter(|v| v.is_named_volume()) {
                    prep.insert(PrepareStep::Volume(volume_name(project, &v.source)));
                }
                let mut labels = d.labels.clone();
                for (k, v) in [
                    (label::PROJECT, project.clone()),
                    (label::DEPLOYMENT, d.name.clone()),
                    (label::POD, name.clone()),
                    (label::CONTAINER, c.name.clone()),
                    (label::REVISION, revision.to_string()),
                    (label::ORDINAL, ordinal.to_string()),
                    (label::INDEX, index.to_string()),
                    (label::SPEC, c.canonical_json()),
                    (label::ROLE, Role::Stable.as_str().to_string()),
                    (label::LABELS, labels_json.clone()),
                    (diff::REPLICAS_LABEL, d.replicas.to_string()),
                ] {
                    labels.insert(k.to_string(), v);
                }
                if let Some(commit) = &desired.commit {
                    labels.insert(label::COMMIT.to_string(), commit.clone());
                }
                ContainerPlan {
                    name: container_name(&name, &c.name),
                    spec: c.clone(),
                    labels,
                }
            })
            .collect::<Vec<_>>();
        let aliases = d.service.iter().map(|s| s.name.clone()).collect();
        let ingress = self.ingress_binding(d, host, &name, revision);
        let mut containers = containers;
        if let (Some(b), Some(first)) = (&ingress, containers.first_mut()) {
            first.labels.insert(
                crate::model::ingress::INGRESS_PORT_LABEL.to_string(),
                b.host_port.to_string(),
            );
        }
        let plan = PodPlan {
            name,
            deployment: d.name.clone(),
            network,
            aliases,
            containers,
            ingress,
        };
        self.check_conflicts(d, host, &plan);
        plan
    }

    pub(super) fn check_conflicts(&mut self, d: &Deployment, host: &str, pod: &PodPlan) {
        let ports = d.pod.host_ports();
        let clashes: Vec<String> = self
            .unmanaged
            .iter()
            .filter(|u| u.host == host)
            .filter_map(|u| {
                let what = if pod.containers.iter().any(|c| c.name == u.name) {
                    format!("has the name berth needs for pod {}", pod.name)
                } else {
                    let (port, proto) = u.host_ports.iter().find(|p| ports.contains(p))?;
                    format!("holds host port {port}/{proto} that {} publishes", d.name)
                };
                Some(format!(
                    "unmanaged container {} {what}; berth will not remove it",
                    u.name
                ))
            })
            .collect();
        for message in clashes {
            self.pod_issue(IssueKind::Conflict, host, &d.name, &pod.name, message);
        }
    }
}
