//! The tests that break things on purpose, in one binary that runs alone (`scripts/test` gives
//! it a thread per test, as they spend most of their time waiting on rollouts):
//! - `kills`: berth killed with SIGKILL at many moments of every strategy on h1..h3, while
//!   clients count failed requests; nothing else runs on those hosts meanwhile.
//! - `faults`: a host's link cut, its dockerd restarted or frozen in the middle of an apply,
//!   on the lab's fault hosts h6..h8 (`scripts/lab up … --fault-hosts 3`), which no other test
//!   uses: a fault there harms nobody else's pods.

#[path = "../common/mod.rs"]
mod common;

mod faults;
mod kills;
