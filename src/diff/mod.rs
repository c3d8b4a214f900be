//! Pairing desired with observed: grouping containers into pods, judging each pod against
//! its deployment, and field-level differences between container specs.

pub mod placement;
pub mod status;

use crate::model::secret::{SecretValues, SECRETS_LABEL};
use crate::model::{
    label, ContainerSpec, Deployment, Health, Labels, ObservedContainer, ObservedHost, Reason,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The containers of one pod as observed on one host.
#[derive(Debug, Clone)]
pub struct ObservedPod {
    pub host: String,
    pub deployment: String,
    pub name: String,
    pub revision: String,
    pub ordinal: u32,
    /// The replica count the pod was created for (`berth.replicas`).
    pub replicas: Option<u32>,
    /// The deployment's labels as recorded on the pod.
    pub labels: Labels,
    pub containers: Vec<ObservedContainer>,
}

impl ObservedPod {
    /// The container that owns the pod's network (index 0), where its service aliases live.
    pub fn network_owner(&self) -> Option<&ObservedContainer> {
        self.containers
            .iter()
            .find(|c| c.label(label::INDEX) == Some("0"))
    }

    /// Every container runs.
    pub fn is_running(&self) -> bool {
        self.containers.iter().all(|c| c.is_running())
    }

    /// No container runs.
    pub fn is_stopped(&self) -> bool {
        !self.containers.iter().any(|c| c.is_running())
    }

    /// The worst health among its containers.
    pub fn health(&self) -> Option<Health> {
        self.containers
            .iter()
            .filter_map(|c| c.health.clone())
            .max_by_key(|h| match h {
                Health::Healthy => 0,
                Health::Starting => 1,
                Health::Unhealthy => 2,
            })
    }

    /// Which of `names` the pod answers to; `None` unless a deep observation saw its aliases.
    pub fn behind(&self, names: &[&str]) -> Option<Vec<String>> {
        let aliases = &self.network_owner()?.resources.as_ref()?.aliases;
        Some(
            aliases
                .iter()
                .filter(|a| names.contains(&a.as_str()))
                .cloned()
                .collect(),
        )
    }
}

/// Containers not managed by this project, which berth never touches.
#[derive(Debug, Clone)]
pub struct Unmanaged {
    pub host: String,
    pub name: String,
    pub host_ports: Vec<(u16, String)>,
}

pub const REPLICAS_LABEL: &str = "berth.replicas";

/// Splits what a host runs into this project's pods and everything else.
pub fn group(project: &str, host: &ObservedHost) -> (Vec<ObservedPod>, Vec<Unmanaged>) {
    let mut pods: BTreeMap<(String, String), ObservedPod> = BTreeMap::new();
    let mut unmanaged = Vec::new();
    for c in &host.containers {
        if c.label(label::PROJECT) != Some(project) {
            unmanaged.push(Unmanaged {
                host: host.host.clone(),
                name: c.name.clone(),
                host_ports: c.host_ports.clone(),
            });
            continue;
        }
        if c.label(label::JOB).is_some() {
            // A job's container (removed when it ends; one left by a dead apply is removed
            // when the job runs again) is not a pod.
            continue;
        }
        let deployment = c.label(label::DEPLOYMENT).unwrap_or("").to_string();
        let pod = c.label(label::POD).unwrap_or(&c.name).to_string();
        let entry = pods
            .entry((deployment.clone(), pod.clone()))
            .or_insert_with(|| ObservedPod {
                host: host.host.clone(),
                deployment,
                name: pod,
                revision: c.label(label::REVISION).unwrap_or("").to_string(),
                ordinal: c
                    .label(label::ORDINAL)
                    .and_then(|o| o.parse().ok())
                    .unwrap_or(u32::MAX),
                replicas: c.label(REPLICAS_LABEL).and_then(|o| o.parse().ok()),
                labels: c
                    .label(label::LABELS)
                    .and_then(|l| serde_json::from_str(l).ok())
                    .unwrap_or_default(),
                containers: vec![],
            });
        entry.containers.push(c.clone());
    }
    (pods.into_values().collect(), unmanaged)
}

/// One field of one container that differs: old → new, as compact JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct FieldChange {
    pub container: String,
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// How an observed pod compares with what its deployment wants.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Current revision, complete, running (maybe still starting or unhealthy).
    Current { health: Option<Health> },
    /// Current revision and spec, but some containers are not running.
    Stopped { containers: Vec<String> },
    /// Current revision, but containers are missing or were changed by hand.
    Broken {
        why: Reason,
        fields: Vec<FieldChange>,
    },
    /// Another revision: Git changed.
    Outdated { fields: Vec<FieldChange> },
    /// Current revision and spec, but the value of these secrets changed since the pod was
    /// created (or an older berth recorded them without a salt).
    SecretsChanged { secrets: Vec<String> },
}

pub fn spec_value(spec: &ContainerSpec) -> Value {
    serde_json::to_value(spec).expect("a container spec always serialises")
}

/// The spec a container was created from, parsed from its `berth.spec` label. A secret's
/// plain hash, which older versions kept there, is left out: secrets are compared by
/// `changed_secrets`.
pub fn observed_spec(c: &ObservedContainer) -> Option<Value> {
    let mut spec: Value = c
        .label(label::SPEC)
        .and_then(|s| serde_json::from_str(s).ok())?;
    if let Some(env) = spec.get_mut("env").and_then(Value::as_object_mut) {
        for v in env.values_mut() {
            if let Some(secret) = v.as_object_mut().filter(|o| o.contains_key("secret")) {
                secret.remove("sha256");
            }
        }
    }
    Some(spec)
}

/// The secrets of a pod whose values differ from what its containers were created with, or
/// that they carry no salted record of. Secrets without a value at hand are not judged.
pub fn changed_secrets(pod: &ObservedPod, d: &Deployment, values: &SecretValues) -> Vec<String> {
    let mut changed = Vec::new();
    for spec in &d.pod.containers {
        let observed = pod
            .containers
            .iter()
            .find(|c| c.label(label::CONTAINER) == Some(spec.name.as_str()));
        let sealed: BTreeMap<String, String> = observed
            .and_then(|c| c.label(SECRETS_LABEL))
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_default();
        for secret in spec.secret_names() {
            if values.get(secret).is_none() {
                continue;
            }
            let same = sealed
                .get(secret)
                .is_some_and(|s| values.matches(secret, s) == Some(true));
            if !same && !changed.iter().any(|c| c == secret) {
                changed.push(secret.to_string());
            }
        }
    }
    changed
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Field-level differences between the containers of an observed pod and a desired pod.
pub fn pod_field_changes(
    observed: &[ObservedContainer],
    desired: &[ContainerSpec],
) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let by_name: BTreeMap<&str, &ObservedContainer> = observed
        .iter()
        .map(|c| (c.label(label::CONTAINER).unwrap_or(&c.name), c))
        .collect();
    for d in desired {
        let new = spec_value(d);
        match by_name.get(d.name.as_str()) {
            None => out.push(FieldChange {
                container: d.name.clone(),
                field: "(container)".into(),
                old: None,
                new: Some("added".into()),
            }),
            Some(c) => {
                let old = observed_spec(c).unwrap_or(Value::Null);
                out.extend(spec_field_changes(&d.name, &old, &new));
            }
        }
    }
    for name in by_name.keys() {
        if !desired.iter().any(|d| d.name == *name) {
            out.push(FieldChange {
                container: name.to_string(),
                field: "(container)".into(),
                old: Some("present".into()),
                new: None,
            });
        }
    }
    out
}

/// Differences between two specs as JSON objects, field by field.
pub fn spec_field_changes(container: &str, old: &Value, new: &Value) -> Vec<FieldChange> {
    let empty = serde_json::Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys.into_iter().filter(|k| o.get(*k) != n.get(*k)) {
        if k == "files" {
            out.extend(file_changes(container, o.get(k), n.get(k)));
            continue;
        }
        out.push(FieldChange {
            container: container.to_string(),
            field: k.clone(),
            old: o.get(k).map(compact),
            new: n.get(k).map(compact),
        });
    }
    out
}

/// `files` compared per target: `files[/etc/app.conf]: config/app.conf sha256:0a1b… 0644 → …`.
fn file_changes(container: &str, old: Option<&Value>, new: Option<&Value>) -> Vec<FieldChange> {
    let by_target = |v: Option<&Value>| -> BTreeMap<String, String> {
        let list = v.and_then(Value::as_array).cloned().unwrap_or_default();
        list.iter()
            .map(|f| {
                let text = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let hash = text("sha256");
                let shown = format!(
                    "{} sha256:{}… {}{}",
                    text("source"),
                    &hash[..hash.len().min(12)],
                    text("mode"),
                    if f.get("template").and_then(Value::as_bool) == Some(true) {
                        " template"
                    } else {
                        ""
                    }
                );
                (text("target"), shown)
            })
            .collect()
    };
    let (o, n) = (by_target(old), by_target(new));
    let mut targets: Vec<&String> = o.keys().chain(n.keys()).collect();
    targets.sort();
    targets.dedup();
    targets
        .into_iter()
        .filter(|t| o.get(*t) != n.get(*t))
        .map(|t| FieldChange {
            container: container.to_string(),
            field: format!("files[{t}]"),
            old: o.get(t).cloned(),
            new: n.get(t).cloned(),
        })
        .collect()
}

/// Resource settings (seen by a deep observation) that differ from the desired spec.
pub fn resource_changes(pod: &ObservedPod, desired: &[ContainerSpec]) -> Vec<FieldChange> {
    let mut out = Vec::new();
    for c in &pod.containers {
        let (Some(r), Some(name)) = (&c.resources, c.label(label::CONTAINER)) else {
            continue;
        };
        let Some(spec) = desired.iter().find(|s| s.name == name) else {
            continue;
        };
        let pairs = [
            (
                "memory",
                r.memory.to_string(),
                spec.memory.unwrap_or(0).to_string(),
            ),
            (
                "millicpus",
                r.millicpus.to_string(),
                spec.millicpus.unwrap_or(0).to_string(),
            ),
            ("restart", r.restart.clone(), spec.restart.clone()),
        ];
        for (field, live, want) in pairs {
            if live != want {
                out.push(FieldChange {
                    container: name.to_string(),
                    field: field.to_string(),
                    old: Some(live),
                    new: Some(want),
                });
            }
        }
    }
    out
}

/// Judges one observed pod of a deployment against the deployment's desired revision and the
/// secret values at hand.
pub fn judge(
    pod: &ObservedPod,
    d: &Deployment,
    revision: &str,
    values: &SecretValues,
) -> Condition {
    if pod.revision != revision {
        return Condition::Outdated {
            fields: pod_field_changes(&pod.containers, &d.pod.containers),
        };
    }
    let fields = pod_field_changes(&pod.containers, &d.pod.containers);
    if !fields.is_empty() {
        let missing: Vec<&str> = fields
            .iter()
            .filter(|f| f.field == "(container)" && f.old.is_none())
            .map(|f| f.container.as_str())
            .collect();
        let why = if missing.is_empty() {
            Reason::ChangedByHand
        } else {
            Reason::ContainersRemovedByHand {
                containers: missing.iter().map(|c| c.to_string()).collect(),
            }
        };
        return Condition::Broken { why, fields };
    }
    let resources = resource_changes(pod, &d.pod.containers);
    if !resources.is_empty() {
        return Condition::Broken {
            why: Reason::ResourcesChangedByHand,
            fields: resources,
        };
    }
    let secrets = changed_secrets(pod, d, values);
    if !secrets.is_empty() {
        return Condition::SecretsChanged { secrets };
    }
    let stopped: Vec<String> = pod
        .containers
        .iter()
        .filter(|c| !c.is_running())
        .map(|c| c.name.clone())
        .collect();
    if !stopped.is_empty() {
        return Condition::Stopped {
            containers: stopped,
        };
    }
    Condition::Current {
        health: pod.health(),
    }
}
