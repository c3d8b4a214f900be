//! Apply: executes plan steps on hosts, gated on health, rolling back a failed wave.

pub mod analysis;
pub mod docker_ops;
mod drain;
mod edge;
pub mod engine;
pub mod executor;
mod health_gate;
mod host_steps;
mod job_step;
pub mod lock;
pub mod progress;
mod step;

/// The clock, in Unix seconds (lock and rollout timestamps, rollout delays).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub use executor::{
    execute, execute_on, Engines, FailedWave, FailureKind, Fence, Logins, Outcome, PodInputs,
    Progress, Secrets, StepFailure, Waits,
};
