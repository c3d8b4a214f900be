//! One step on one host: what each step does with the host's engine (and with the edges,
//! the drains and the wave's shared analysis count), and why it failed.

use super::drain::Drains;
use super::edge::Edges;
use super::failure::{StepError, StepResult};
use super::health_gate::await_ready;
use super::progress::Progress;
use crate::hosts::engine::{Engine, OpResult};
use crate::plan::Step;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

fn plain(r: OpResult) -> StepResult {
    r.map_err(StepError::from)
}

/// What a host's steps run with.
pub(super) struct HostContext {
    pub(super) engine: Arc<dyn Engine>,
    pub(super) analysis_failures: Arc<AtomicU32>,
    pub(super) drains: Arc<Drains>,
    pub(super) edges: Arc<Edges>,
    /// Asked before each step: is the apply lock still this apply's?
    pub(super) fence: super::lock::Fence,
    pub(super) host: String,
    pub(super) progress: Arc<dyn Progress>,
}

pub(super) async fn run_step(ctx: &HostContext, step: &Step) -> StepResult {
    let engine = ctx.engine.as_ref();
    match step {
        Step::EnsureNetwork { name } => plain(engine.ensure_network(name).await),
        Step::EnsureVolume { name } => plain(engine.ensure_volume(name).await),
        Step::EnsureImage { image } => plain(engine.ensure_image(image).await),
        Step::CreatePod { pod } => match ctx.edges.create(&ctx.host, pod).await {
            Some(created) => plain(created),
            None => plain(engine.create_pod(pod).await),
        },
        Step::AwaitReady {
            pod,
            containers,
            min_ready_ms,
            timeout_ms,
            join,
        } => {
            if let Some(j) = join {
                ctx.drains.joined(&ctx.host, &j.container);
            }
            await_ready(
                engine,
                pod,
                containers,
                *min_ready_ms,
                *timeout_ms,
                join.as_ref(),
            )
            .await
        }
        Step::StartPod { containers, .. } => plain(engine.start(containers).await),
        Step::StopPod {
            containers,
            stop_timeout_s,
            ..
        } => plain(engine.stop(containers, *stop_timeout_s).await),
        Step::RemovePod {
            containers,
            stop_timeout_s,
            ..
        } => plain(engine.remove(containers, *stop_timeout_s).await),
        Step::RemoveVolume { name } => plain(engine.remove_volume(name).await),
        Step::JoinService { join, .. } => {
            ctx.drains.joined(&ctx.host, &join.container);
            plain(engine.join(join).await)
        }
        Step::LeaveService {
            leave, drain_ms, ..
        } => {
            let left = engine.leave(leave).await;
            // A pod found out of its service already drains too: an apply that was killed
            // may have taken it out a moment ago, with requests still in flight to it.
            if left.is_ok() {
                ctx.drains.left(&ctx.host, &leave.container, *drain_ms);
            }
            plain(left)
        }
        Step::RecordRollout { deployment, state } => {
            plain(engine.record_rollout(deployment, state.as_ref()).await)
        }
        Step::RunJob { job } => {
            super::job_step::run_job(ctx.engine.as_ref(), ctx.progress.as_ref(), &ctx.host, job)
                .await
        }
        Step::RecordJob { record } => plain(engine.record_job(record).await),
        // The edges' steps: no engine of this host is involved but its edge's.
        Step::RouteEdges { add, remove } => (ctx.edges.route(add, remove).await)
            .map_err(|e| StepError::new(e.to_string(), String::new())),
        Step::RouteWeight {
            deployment,
            revision,
            percent,
        } => (ctx.edges.weigh(deployment, revision, *percent).await)
            .map_err(|e| StepError::new(e.to_string(), String::new())),
        Step::SyncEdge => (ctx.edges.sync(&ctx.host).await)
            .map_err(|e| StepError::new(e.to_string(), String::new())),
        Step::EdgeAnalyze {
            deployment,
            revision,
            check,
        } => {
            let summary = ctx.edges.analyze(deployment, revision, check).await?;
            ctx.progress.output(&ctx.host, "edge analysis", &summary);
            Ok(())
        }
        Step::Wait { ms, .. } => {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            Ok(())
        }
        Step::Analyze { pods, check } => engine
            .analyze(pods, check, &ctx.analysis_failures)
            .await
            // The engine's analysis fails only on the pods' answers: a verdict.
            .map_err(|(message, details)| StepError::verdict(message, details)),
    }
}
