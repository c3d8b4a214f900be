//! The end-to-end tests on the lab's real hosts (`scripts/lab up 3 --bastion --podman 2`), in
//! one test binary: one link of the crate, and the tests of every file share the test threads,
//! so a file's slow test no longer holds up the next file's. Each test has a project of its own
//! (and its own host ports), so tests of different files run side by side. The tests that cut
//! or stop whole hosts, and the kill tests, which count failed requests, are in tests/chaos.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod bastion;
mod bench_lab;
mod ci_examples;
mod digests;
mod e2e;
mod environments;
mod example_webapp;
mod files;
mod first_hour;
mod history;
mod ingress;
mod jobs;
mod lock;
mod podman;
mod pods;
mod policy;
mod registry;
mod rollback;
mod rollout;
mod secrets;
mod sops;
mod sync_every;
mod webhook;
