//! Apply: executes plan steps on hosts, gated on health, rolling back a failed wave.

mod drain;
mod edge;
pub mod executor;
mod failure;
mod health_gate;
mod host_steps;
mod job_step;
pub mod lock;
pub mod progress;
mod step;

pub use crate::hosts::docker_ops::{PodInputs, Secrets};
pub use executor::{
    execute, execute_on, Engines, FailedWave, FailureKind, Fence, Logins, Outcome, Progress,
    StepFailure, Waits,
};
