//! Apply: executes plan steps on hosts, gated on health, rolling back a failed wave.

pub mod analysis;
pub mod docker_ops;
pub mod executor;
pub mod lock;

pub use executor::{execute, Outcome, Progress, Secrets, StepFailure};
