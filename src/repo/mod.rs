//! The Git source and the repository format: reading files at a commit, loading and
//! validating them into the desired state.

pub mod diag;
pub mod git_tls;
pub mod load;
pub mod messages;
pub mod policy;
pub mod schema;
pub mod schema_ingress;
pub mod schema_strategy;
pub mod signers;
pub mod sops;
pub mod source;
pub mod units;

pub use diag::Diagnostics;
pub use load::{load, RepoFiles};
