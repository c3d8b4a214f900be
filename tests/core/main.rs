//! The pure core and the checks that need no lab, in one test binary (one link of the crate
//! instead of one per file): plans built from fixture files, the executor on engines in
//! memory, the plan format and its golden files, JSON Schemas, proptest fuzzing, broken
//! inputs, and Git sources on local repositories.

#[path = "../common/mod.rs"]
mod common;
#[path = "../fixture/mod.rs"]
mod fixture;

mod executor;
mod fuzz;
mod golden;
mod plan_core;
mod plan_format;
mod robustness;
mod schema;
mod source;
