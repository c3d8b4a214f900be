//! The executor's `Engine` on a Docker host, over its SSH session: each operation is one of
//! `docker_ops`'s.

use super as ops;
use super::analysis;
use crate::hosts::engine::{Engine, JobOutput, OpError, OpResult, Probe};
use crate::hosts::ssh::Session;
use crate::model::haproxy::EdgeFile;
use crate::model::registry::registry_of;
use crate::model::{Analysis, JobRecord, Rollout};
use crate::plan::{JobPlan, PodPlan, ServiceJoin};
use bollard::Docker;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

/// The engine of each connected host of the fleet, by host name, for an apply of `project`.
pub fn engines(
    fleet: &crate::hosts::Fleet,
    project: &str,
    inputs: super::PodInputs,
    logins: Arc<crate::hosts::Logins>,
) -> crate::hosts::engine::Engines {
    (fleet.connected.iter())
        .map(|(name, c)| {
            let engine: Arc<dyn Engine> = Arc::new(DockerEngine {
                docker: c.docker.clone(),
                session: c.session.clone(),
                project: project.to_string(),
                inputs: inputs.clone(),
                logins: logins.clone(),
                addresses: Default::default(),
                silence: c.silence.clone(),
            });
            (name.clone(), engine)
        })
        .collect()
}

/// A host's Docker engine over its SSH session.
pub struct DockerEngine {
    pub docker: Docker,
    pub session: Arc<Session>,
    pub project: String,
    pub inputs: super::PodInputs,
    /// Credentials for pulls, by registry.
    pub logins: Arc<crate::hosts::Logins>,
    /// Keeps starts away from the addresses of pods being reconnected.
    pub addresses: ops::Addresses,
    /// Whether the engine missed a deadline in this run.
    pub silence: crate::hosts::deadline::Silence,
}

impl Engine for DockerEngine {
    fn silent(&self) -> Option<String> {
        self.silence.said()
    }

    fn ensure_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, OpResult> {
        ops::ensure_network(&self.docker, name, &self.project).boxed()
    }

    fn ensure_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, OpResult> {
        ops::ensure_volume(&self.docker, name, &self.project).boxed()
    }

    fn ensure_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, OpResult> {
        let login = self.logins.get(registry_of(image));
        ops::ensure_image(&self.docker, image, login).boxed()
    }

    fn create_pod<'a>(&'a self, pod: &'a PodPlan) -> BoxFuture<'a, OpResult> {
        ops::create_pod(
            &self.docker,
            pod,
            &self.project,
            &self.inputs,
            None,
            &self.addresses,
        )
        .boxed()
    }

    fn create_edge<'a>(
        &'a self,
        pod: &'a PodPlan,
        config: &'a str,
        files: &'a [EdgeFile],
    ) -> BoxFuture<'a, OpResult> {
        async move {
            let edge = ops::edge::materialize(config, files, self.inputs.secrets.as_ref())?;
            ops::create_pod(
                &self.docker,
                pod,
                &self.project,
                &self.inputs,
                Some(&edge),
                &self.addresses,
            )
            .await
        }
        .boxed()
    }

    fn edge_stats(&self, admin_port: u16) -> BoxFuture<'_, OpResult<String>> {
        async move {
            let got = crate::hosts::http::get(&self.session, "127.0.0.1", admin_port, "/stats;csv");
            match got.await {
                Ok((200, body)) => Ok(body),
                Ok((code, _)) => Err(OpError::Refused(format!(
                    "the edge's statistics: status {code}"
                ))),
                Err(e) => Err(OpError::Refused(format!("the edge's statistics: {e}"))),
            }
        }
        .boxed()
    }

    fn edge_reload<'a>(
        &'a self,
        config: &'a str,
        files: &'a [EdgeFile],
        admin_port: u16,
    ) -> BoxFuture<'a, OpResult> {
        async move {
            let edge = ops::edge::materialize(config, files, self.inputs.secrets.as_ref())?;
            ops::edge::reload(
                &self.docker,
                &self.session,
                &self.project,
                &edge,
                admin_port,
            )
            .await
        }
        .boxed()
    }

    fn start<'a>(&'a self, containers: &'a [String]) -> BoxFuture<'a, OpResult> {
        ops::start_containers(&self.docker, containers, &self.project, &self.addresses).boxed()
    }

    fn stop<'a>(&'a self, containers: &'a [String], timeout_s: u32) -> BoxFuture<'a, OpResult> {
        ops::stop_containers(&self.docker, containers, &self.project, timeout_s).boxed()
    }

    fn remove<'a>(&'a self, containers: &'a [String], timeout_s: u32) -> BoxFuture<'a, OpResult> {
        ops::remove_containers(&self.docker, containers, &self.project, timeout_s).boxed()
    }

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, OpResult> {
        ops::remove_volume(&self.docker, name).boxed()
    }

    fn join<'a>(&'a self, join: &'a ServiceJoin) -> BoxFuture<'a, OpResult> {
        ops::join_service(
            &self.docker,
            &join.container,
            &join.network,
            &join.aliases,
            &self.addresses,
        )
        .boxed()
    }

    fn leave<'a>(&'a self, leave: &'a ServiceJoin) -> BoxFuture<'a, OpResult> {
        ops::leave_service(
            &self.docker,
            &leave.container,
            &leave.network,
            &leave.aliases,
            &self.addresses,
        )
        .boxed()
    }

    fn record_rollout<'a>(
        &'a self,
        deployment: &'a str,
        state: Option<&'a Rollout>,
    ) -> BoxFuture<'a, OpResult> {
        ops::record_rollout(&self.docker, &self.project, deployment, state).boxed()
    }

    fn probe<'a>(&'a self, container: &'a str) -> BoxFuture<'a, OpResult<Probe>> {
        ops::probe(&self.docker, container).boxed()
    }

    fn last_logs<'a>(&'a self, container: &'a str, lines: usize) -> BoxFuture<'a, String> {
        ops::last_logs(&self.docker, container, lines).boxed()
    }

    fn run_job<'a>(
        &'a self,
        job: &'a JobPlan,
        output: &'a JobOutput<'a>,
    ) -> BoxFuture<'a, OpResult<i64>> {
        ops::jobs::run_job(
            &self.docker,
            job,
            &self.project,
            &self.inputs,
            output,
            &self.addresses,
        )
        .boxed()
    }

    fn record_job<'a>(&'a self, record: &'a JobRecord) -> BoxFuture<'a, OpResult> {
        ops::jobs::record_job(&self.docker, &self.project, record).boxed()
    }

    fn analyze<'a>(
        &'a self,
        pods: &'a [ServiceJoin],
        check: &'a Analysis,
        wave_failures: &'a AtomicU32,
    ) -> BoxFuture<'a, Result<(), (String, String)>> {
        analysis::analyze(&self.docker, &self.session, pods, check, wave_failures).boxed()
    }
}
