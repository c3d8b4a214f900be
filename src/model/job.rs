//! A deployment's jobs (migrations): what runs before a revision's pods. Pure.

use super::desired::{ContainerSpec, EnvValue, PodSpec};
use super::selector::Selector;
use serde::Serialize;
use std::collections::BTreeMap;

/// A container run to completion on one host before a revision's first new pod starts, once
/// per revision (Argo CD's PreSync hook, Kamal's pre-deploy): a database migration.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Job {
    pub name: String,
    /// The pod container whose image, env, env files, files and volumes it runs with.
    pub container: String,
    /// Its own command (else the container's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Env over the container's.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    /// The hosts it may run on (the first reachable one by name is chosen).
    #[schemars(with = "String")]
    pub hosts: Selector,
    /// How long it may run before it is killed and the rollout stopped.
    pub timeout_ms: u64,
}

impl Job {
    /// What the job's container is created from: the pod container's spec (as planned, with
    /// its digest), the job's command and env, no published port (the pods hold those), no
    /// healthcheck and no restart.
    pub fn spec(&self, pod: &PodSpec) -> Option<ContainerSpec> {
        let mut spec = pod
            .containers
            .iter()
            .find(|c| c.name == self.container)?
            .clone();
        spec.name = self.name.clone();
        if self.command.is_some() {
            spec.command = self.command.clone();
        }
        spec.env.extend(self.env.clone());
        spec.ports.clear();
        spec.healthcheck = None;
        spec.restart = "no".into();
        Some(spec)
    }
}
