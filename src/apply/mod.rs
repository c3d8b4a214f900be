//! Apply: executes plan steps on hosts, gated on health, rolling back a failed wave.

pub mod docker_ops;
mod drain;
mod edge;
pub mod engine;
pub mod executor;
mod failure;
mod health_gate;
mod host_steps;
mod job_step;
pub mod lock;
pub mod progress;
mod step;

pub use executor::{
    execute, execute_on, Engines, FailedWave, FailureKind, Fence, Logins, Outcome, PodInputs,
    Progress, Secrets, StepFailure, Waits,
};
