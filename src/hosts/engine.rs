//! What the executor asks of one host: the operations its steps need, as a trait. The real
//! one is Docker over the host's SSH session (`hosts::docker_ops::DockerEngine`); tests give the executor an
//! engine in memory, so its waves, lanes, rollbacks and interrupts are checked without hosts.

use crate::model::haproxy::EdgeFile;
use crate::model::{Analysis, JobRecord, Rollout};
use crate::plan::{JobPlan, PodPlan, ServiceJoin};
use futures_util::future::BoxFuture;
use std::sync::atomic::AtomicU32;

pub use super::docker_ops::Probe;

pub use super::docker_ops::OpError;

/// An operation's outcome.
pub type OpResult<T = ()> = Result<T, OpError>;

/// Each host's engine, by host name.
pub type Engines = std::collections::BTreeMap<String, std::sync::Arc<dyn Engine>>;

/// One host's engine, as the executor uses it. Every operation is idempotent: creating what
/// exists or removing what is gone succeeds, so a re-run converges.
pub trait Engine: Send + Sync {
    fn ensure_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, OpResult>;
    fn ensure_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, OpResult>;
    fn ensure_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, OpResult>;
    fn create_pod<'a>(&'a self, pod: &'a PodPlan) -> BoxFuture<'a, OpResult>;
    /// Creates an edge pod with the configuration (and the files it names) it starts with.
    fn create_edge<'a>(
        &'a self,
        pod: &'a PodPlan,
        config: &'a str,
        files: &'a [EdgeFile],
    ) -> BoxFuture<'a, OpResult>;
    /// The statistics (CSV) of the edge running here.
    fn edge_stats(&self, admin_port: u16) -> BoxFuture<'_, OpResult<String>>;
    /// Gives the edges running here a new configuration; done once they serve with it.
    fn edge_reload<'a>(
        &'a self,
        config: &'a str,
        files: &'a [EdgeFile],
        admin_port: u16,
    ) -> BoxFuture<'a, OpResult>;
    fn start<'a>(&'a self, containers: &'a [String]) -> BoxFuture<'a, OpResult>;
    fn stop<'a>(&'a self, containers: &'a [String], timeout_s: u32) -> BoxFuture<'a, OpResult>;
    fn remove<'a>(&'a self, containers: &'a [String], timeout_s: u32) -> BoxFuture<'a, OpResult>;
    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, OpResult>;
    fn join<'a>(&'a self, join: &'a ServiceJoin) -> BoxFuture<'a, OpResult>;
    /// Takes a pod from behind its names (done already is fine: it drains before it stops
    /// either way, since an apply killed a moment ago may have taken it out).
    fn leave<'a>(&'a self, leave: &'a ServiceJoin) -> BoxFuture<'a, OpResult>;
    fn record_rollout<'a>(
        &'a self,
        deployment: &'a str,
        state: Option<&'a Rollout>,
    ) -> BoxFuture<'a, OpResult>;
    fn probe<'a>(&'a self, container: &'a str) -> BoxFuture<'a, OpResult<Probe>>;
    /// Runs a job to completion, passing each line of its output to `output`; its exit
    /// code, or an error when it did not finish within its timeout.
    fn run_job<'a>(
        &'a self,
        job: &'a JobPlan,
        output: &'a JobOutput<'a>,
    ) -> BoxFuture<'a, OpResult<i64>>;
    fn record_job<'a>(&'a self, record: &'a JobRecord) -> BoxFuture<'a, OpResult>;
    /// The last lines of a container's output, for a failure report.
    fn last_logs<'a>(&'a self, container: &'a str, lines: usize) -> BoxFuture<'a, String>;
    /// Why this engine is not asked anything more in this run (it missed a deadline).
    fn silent(&self) -> Option<String> {
        None
    }
    /// Asks each pod `check` and adds its failures to `wave_failures` (shared by the hosts of
    /// a wave); fails with (message, details) past the check's limit.
    fn analyze<'a>(
        &'a self,
        pods: &'a [ServiceJoin],
        check: &'a Analysis,
        wave_failures: &'a AtomicU32,
    ) -> BoxFuture<'a, Result<(), (String, String)>>;
}

/// Where a job's output goes, line by line.
pub type JobOutput<'a> = dyn Fn(&str) + Send + Sync + 'a;
