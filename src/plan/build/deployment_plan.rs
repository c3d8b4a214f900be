//! One deployment's share of the plan, as a value: its waves, the changes and issues it
//! shows, what its new pods need prepared on their hosts, and where they answer. Strategies
//! return one; `build` folds them together. Pure.

use super::*;

#[derive(Default)]
pub(super) struct DeploymentPlan {
    pub(super) waves: Vec<Wave>,
    pub(super) changes: Vec<Change>,
    pub(super) issues: Vec<Issue>,
    /// Per host: what creating its new pods needs first (networks, volumes, images).
    pub(super) prepare: BTreeMap<String, BTreeSet<PrepareStep>>,
    /// Where the pods this plan creates answer, for the edges.
    pub(super) endpoints: BTreeMap<String, Endpoint>,
}

impl DeploymentPlan {
    /// Adds another plan's changes, issues, preparation and endpoints (and waves) after this
    /// one's.
    pub(super) fn extend(&mut self, other: DeploymentPlan) {
        self.waves.extend(other.waves);
        self.changes.extend(other.changes);
        self.issues.extend(other.issues);
        for (host, steps) in other.prepare {
            self.prepare.entry(host).or_default().extend(steps);
        }
        self.endpoints.extend(other.endpoints);
    }

    pub(super) fn rollout_issue(&mut self, d: &Deployment, message: String) {
        self.deployment_issue(IssueKind::Rollout, d, message);
    }

    /// An issue about a whole deployment (no host, no pod).
    pub(super) fn deployment_issue(&mut self, kind: IssueKind, d: &Deployment, message: String) {
        self.issues.push(Issue {
            kind,
            host: None,
            deployment: Some(d.name.clone()),
            pod: None,
            message,
        });
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

    /// A change of a pod known by name only (a member of a service).
    pub(super) fn pod_named_change(
        &mut self,
        d: &Deployment,
        host: &str,
        pod: &str,
        action: Action,
        reason: Reason,
    ) {
        self.changes.push(Change::plain(
            &d.name,
            host,
            action,
            ChangeKind::Pending,
            Some(pod.to_string()),
            reason,
        ));
    }

    /// A service name moves between sets of pods on a host.
    pub(super) fn switch_change(&mut self, d: &Deployment, host: &str, reason: Reason) {
        self.changes.push(Change::plain(
            &d.name,
            host,
            Action::Switch,
            ChangeKind::Pending,
            None,
            reason,
        ));
    }

    /// The plan of a new pod of `d` on `host`: its containers and labels, what to prepare
    /// for it there, and its ingress port; conflicts with unmanaged containers are issues.
    pub(super) fn pod_plan(
        &mut self,
        cx: &Context,
        d: &Deployment,
        revision: &str,
        ordinal: u32,
        host: &str,
    ) -> PodPlan {
        let desired = cx.input.desired;
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
        let ingress = self.ingress_binding(cx, d, host, &name, revision);
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
        self.check_conflicts(cx, d, host, &plan);
        plan
    }

    /// The host port a new pod of `d` on `host` publishes its ingress port on: the first free
    /// one of the range (not held by a container there, nor given earlier in this plan).
    fn ingress_binding(
        &mut self,
        cx: &Context,
        d: &Deployment,
        host: &str,
        pod: &str,
        revision: &str,
    ) -> Option<IngressBinding> {
        let ingress = d.ingress.as_ref()?;
        let range = cx.input.desired.edge.as_ref()?.pod_ports;
        let given = (cx.claimed.values())
            .chain(self.endpoints.values())
            .filter(|e| e.host == host)
            .map(|e| e.port);
        let used: BTreeSet<u16> = cx.ports_held(host).chain(given).collect();
        let Some(port) = crate::model::ingress::free_port(range, &used, pod) else {
            let message = format!(
                "no free host port left in {}-{} for pod {pod}",
                range.0, range.1
            );
            self.pod_issue(IssueKind::Conflict, host, &d.name, pod, message);
            return None;
        };
        let endpoint = Endpoint {
            host: host.to_string(),
            address: cx.host_address(host),
            port,
            revision: revision.to_string(),
        };
        self.endpoints.insert(pod.to_string(), endpoint);
        Some(IngressBinding {
            container_port: ingress.container_port,
            host_port: port,
        })
    }

    fn check_conflicts(&mut self, cx: &Context, d: &Deployment, host: &str, pod: &PodPlan) {
        let ports = d.pod.host_ports();
        let clashes: Vec<String> = cx
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
