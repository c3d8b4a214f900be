//! Plans: the plan type and how it is built from desired and observed state (pure).

pub mod build;
pub mod digests;
pub mod membership;
pub mod routes;
pub mod saved;
pub mod types;

pub use build::{build, Intent, PlanInput};
pub use types::*;
