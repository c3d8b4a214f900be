//! berth: a declarative GitOps reconciler for fleets of plain Docker (or Podman) hosts.
//!
//! The core (`model`, `repo::load`, `diff`, `plan`, `render`) does no I/O; the shell
//! (`repo::source`, `hosts`, `apply`, `ops`, `cli`, `here`) talks to Git, SSH, Docker and this machine;
//! `known_hosts` (the SSH host keys this machine trusts) is below both the hosts and Git over SSH.
//!
//! A run, from repository to hosts (docs/architecture.md has the whole map):
//! 1. `repo::source` reads files at a commit; `repo::load` checks them into a `DesiredState`.
//! 2. `hosts` connects to every host over SSH (in parallel) and `hosts::observe` lists what
//!    each runs, in one round trip, as an `ObservedHost`.
//! 3. `diff` pairs declared pods with running ones; `plan::build` orders the work into waves
//!    by each deployment's strategy, with the edges' route changes as steps of their own:
//!    the `Plan`, a value that `render` prints and that holds everything the run will do.
//! 4. `ops::apply` takes the project's lock (`apply::lock`); `apply::executor` runs the waves,
//!    gated on health, rolling a failed wave back. An operation's result or `ops::Error`
//!    carries its exit code; `cli` turns flags into options, prints, and exits with it.
//!
//! The shell reaches an engine only through traits (`hosts::Observe`,
//! `hosts::lock_store::LockStore`, `hosts::console::Console`, `hosts::engine::Engine`), whose
//! Docker-over-SSH implementations in `hosts` are the only code that uses the Docker client.

pub mod apply;
pub mod cli;
pub mod diff;
pub mod here;
pub mod hosts;
pub mod known_hosts;
pub mod model;
pub mod ops;
pub mod plan;
pub mod render;
pub mod repo;
