//! What berth remembers of a canary or blue-green rollout between runs, so that a paused
//! rollout survives the process: `berth plan`/`status` show it and `berth promote`/`abort`
//! continue or undo it from any machine. It lives as a label on an empty Docker volume per
//! deployment (`berth-rollout-<project>-<deployment>`) on each of the deployment's hosts:
//! labels cannot change, so a new state replaces the volume.

use super::ObservedHost;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The label that holds the state (JSON) on the rollout volume.
pub const ROLLOUT_LABEL: &str = "berth.rollout";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
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
    /// A rolling or recreate rollout of this revision failed and was rolled back: `sync` does
    /// not try it again until Git changes (or `--retry`), so a bad commit does not flap.
    Failed,
    /// `berth rollback --to` brought back a kept revision (`stable`) while Git still declares
    /// `revision`: berth keeps the kept one, and drift reports it, until Git names another
    /// revision or `berth rollback --to` goes back to Git's.
    #[serde(rename = "rolled-back")]
    RolledBack,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Rollout {
    pub deployment: String,
    /// Canary or blue-green.
    pub strategy: super::StrategyKind,
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
    /// Which attempt at the revision this is: a hash of the strategy it was rolled out with.
    /// An abort or a failure holds for that attempt only; a changed strategy (a fixed
    /// analysis path, say) is a new attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
}

impl Rollout {
    /// Whether this state ended the given attempt at `revision` (aborted or failed), so that
    /// it must not be tried again unasked. A state without an attempt (older berth) holds for
    /// any.
    pub fn stops(&self, revision: &str, attempt: &str) -> bool {
        matches!(self.phase, Phase::Aborted | Phase::Failed)
            && self.revision == revision
            && self.attempt.as_deref().is_none_or(|a| a == attempt)
    }

    /// Whether this state holds `desired` back at a kept revision (`berth rollback --to`
    /// while Git still declares `desired`).
    pub fn holds_back(&self, desired: &str) -> bool {
        self.phase == Phase::RolledBack && self.revision == desired
    }

    /// The revision that should serve: `desired`, unless `state` holds it back.
    pub fn serving(state: Option<&Rollout>, desired: &str) -> String {
        match state {
            Some(s) if s.holds_back(desired) => s.stable.clone(),
            _ => desired.to_string(),
        }
    }

    /// Of the states found on several hosts, the one written last.
    pub fn newest<'a>(found: impl IntoIterator<Item = &'a Rollout>) -> Option<&'a Rollout> {
        found.into_iter().max_by_key(|r| r.since)
    }

    /// A deployment's rollout state: the newest found on the hosts that could be observed.
    pub fn of<'a>(
        observed: &'a BTreeMap<String, Result<ObservedHost, String>>,
        deployment: &str,
    ) -> Option<&'a Rollout> {
        Rollout::newest(
            observed
                .values()
                .filter_map(|o| o.as_ref().ok())
                .flat_map(|o| o.rollouts.iter())
                .filter(|r| r.deployment == deployment),
        )
    }
}

pub use super::clock::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_state_wins() {
        let r = |since| Rollout {
            deployment: "web".into(),
            strategy: crate::model::StrategyKind::Canary,
            revision: "b".into(),
            stable: "a".into(),
            phase: Phase::Paused,
            step: 1,
            weight: 50,
            since,
            attempt: None,
        };
        let found = [r(5), r(9), r(7)];
        assert_eq!(Rollout::newest(&found).unwrap().since, 9);
    }

    #[test]
    fn an_abort_holds_for_its_revision_and_strategy_only() {
        let aborted = Rollout {
            deployment: "web".into(),
            strategy: crate::model::StrategyKind::Canary,
            revision: "b".into(),
            stable: "a".into(),
            phase: Phase::Aborted,
            step: 0,
            weight: 0,
            since: 1,
            attempt: Some("s1".into()),
        };
        assert!(aborted.stops("b", "s1"));
        assert!(
            !aborted.stops("b", "s2"),
            "a changed strategy is a new attempt"
        );
        assert!(!aborted.stops("c", "s1"), "a new revision is a new attempt");
        let old = Rollout {
            attempt: None,
            ..aborted.clone()
        };
        assert!(old.stops("b", "anything"));
        let paused = Rollout {
            phase: Phase::Paused,
            ..aborted
        };
        assert!(!paused.stops("b", "s1"));
    }
}
