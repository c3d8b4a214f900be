//! What berth remembers of a canary or blue-green rollout between runs, so that a paused
//! rollout survives the process: `berth plan`/`status` show it and `berth promote`/`abort`
//! continue or undo it from any machine. It lives as a label on a small network per
//! deployment (`berth-rollout-<project>-<deployment>`) on each of the deployment's hosts.

use serde::{Deserialize, Serialize};

/// The label that holds the state (JSON) on the rollout network.
pub const ROLLOUT_LABEL: &str = "berth.rollout";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Waiting for `berth promote`: a canary at a `pause: {}` step, or a blue-green new set
    /// ready behind the preview name.
    Paused,
    /// Blue-green: the service points at the new set; the old set is kept, out of service,
    /// until `scale_down_delay` has passed (for `berth rollback`).
    Promoted,
    /// Aborted (failed analysis or health, `berth abort`, `berth rollback`): this revision is
    /// not rolled out again until Git names another one.
    Aborted,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rollout {
    pub deployment: String,
    /// The revision being rolled out.
    pub revision: String,
    /// The revision it replaces.
    pub stable: String,
    pub phase: Phase,
    /// Canary: the index of the step it stopped at. Blue-green: 0.
    pub step: usize,
    /// Canary: the share of pods on the new revision at that step, in percent.
    #[serde(default)]
    pub weight: u32,
    /// When the state was written (Unix seconds), stamped by whoever writes it.
    #[serde(default)]
    pub since: u64,
}

/// The network that carries a deployment's rollout state.
pub fn rollout_network(project: &str, deployment: &str) -> String {
    format!("berth-rollout-{project}-{deployment}")
}

impl Rollout {
    /// Of the states found on several hosts, the one written last.
    pub fn newest<'a>(found: impl IntoIterator<Item = &'a Rollout>) -> Option<&'a Rollout> {
        found.into_iter().max_by_key(|r| r.since)
    }
}
