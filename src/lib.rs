//! berth: a declarative GitOps reconciler for fleets of plain Docker hosts.
//!
//! The core (`model`, `repo::load`, `diff`, `plan`, `render`) does no I/O; the shell
//! (`repo::source`, `hosts`, `apply`, `cli`) talks to Git, SSH and Docker.

pub mod apply;
pub mod cli;
pub mod diff;
pub mod here;
pub mod hosts;
pub mod model;
pub mod plan;
pub mod render;
pub mod repo;
