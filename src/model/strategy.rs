//! How a deployment rolls out: the strategy and its settings (rolling, recreate, canary
//! steps, blue-green), normalised.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    Rolling,
    Recreate,
    Canary,
    BlueGreen,
}

impl StrategyKind {
    /// Canary and blue-green run two revisions at once and keep rollout state between runs.
    pub fn is_progressive(self) -> bool {
        matches!(self, StrategyKind::Canary | StrategyKind::BlueGreen)
    }
}

/// One step of a canary rollout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CanaryStep {
    /// Percent of the replicas that run the new revision (behind the same service name).
    Weight(u32),
    /// Wait this long; `None` waits for `berth promote`.
    Pause(Option<u64>),
    /// Check the canary pods over HTTP before going on.
    Analysis(Analysis),
    /// Judge the canary by the edges' own counts of its answers (ingress deployments).
    EdgeAnalysis(super::edge_stats::EdgeAnalysis),
}

/// HTTP checks berth makes through the SSH connection to each canary pod's address.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Analysis {
    pub path: String,
    pub port: u16,
    /// The status code a good answer has.
    pub status: u16,
    /// Requests per pod.
    pub samples: u32,
    pub interval_ms: u64,
    /// Failed requests (over all canary pods) tolerated before the canary is aborted.
    pub failure_limit: u32,
}

/// Old revisions kept stopped unless a strategy says otherwise (Kubernetes keeps 10 replica
/// sets, but those cost nothing; a stopped container holds its disk).
pub const DEFAULT_HISTORY_LIMIT: u32 = 2;

fn is_default_history_limit(n: &u32) -> bool {
    *n == DEFAULT_HISTORY_LIMIT
}

/// Docker's own default grace period before SIGKILL.
pub const DEFAULT_STOP_TIMEOUT_S: u32 = 10;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Strategy {
    pub kind: StrategyKind,
    /// How long a new pod must stay running (and healthy) before it counts as ready.
    pub min_ready_ms: u64,
    /// How long a new pod may take to become ready before the rollout is aborted.
    pub health_timeout_ms: u64,
    /// How long an old pod gets to stop on SIGTERM before it is killed.
    pub stop_timeout_s: u32,
    /// Rolling: pods above `replicas` allowed during the update.
    pub max_surge: Amount,
    /// Rolling: pods below `replicas` allowed during the update.
    pub max_unavailable: Amount,
    /// How long a pod that left its service keeps serving the connections it has before it
    /// is stopped.
    pub drain_ms: u64,
    /// Canary: the steps, in order; after the last, the rest of the pods are replaced.
    pub steps: Vec<CanaryStep>,
    /// Blue-green: switch the service to the new set as soon as it is healthy.
    pub auto_promote: bool,
    /// Blue-green: how long the old set stays (out of service) after promotion, for
    /// `berth rollback`; the first run after that removes it.
    pub scale_down_delay_ms: u64,
    /// How many old revisions stay on the hosts, stopped, for `berth rollback --to` (not
    /// counted in `replicas`); older ones are removed. Left out of the JSON at its default,
    /// so the hashes of a revision's attempt stay what they were before it existed.
    #[serde(skip_serializing_if = "is_default_history_limit")]
    pub history_limit: u32,
}

/// A count, or a percentage of the replica count.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Amount {
    Count(u32),
    Percent(u32),
}

impl Amount {
    /// Kubernetes rounding: a surge rounds up, an unavailability rounds down.
    pub fn resolve(self, replicas: u32, round_up: bool) -> u32 {
        match self {
            Amount::Count(n) => n,
            Amount::Percent(p) => {
                let scaled = replicas as u64 * p as u64;
                (if round_up {
                    scaled.div_ceil(100)
                } else {
                    scaled / 100
                }) as u32
            }
        }
    }

    pub fn parse(text: &str) -> Result<Amount, String> {
        let t = text.trim();
        let bad = || format!("{text:?} is not a count or a percentage like 25%");
        match t.strip_suffix('%') {
            Some(p) => {
                let p: u32 = p.trim().parse().map_err(|_| bad())?;
                if p > 100 {
                    return Err(format!("{text:?} is more than 100%"));
                }
                Ok(Amount::Percent(p))
            }
            None => t.parse().map(Amount::Count).map_err(|_| bad()),
        }
    }
}

impl Strategy {
    /// (surge, unavailable) for a replica count. Never both zero: a rollout must move.
    pub fn rolling_budget(&self, replicas: u32) -> (u32, u32) {
        let surge = self.max_surge.resolve(replicas, true);
        let unavailable = self.max_unavailable.resolve(replicas, false);
        if surge == 0 && unavailable == 0 {
            (1, 0)
        } else {
            (surge, unavailable)
        }
    }
}
