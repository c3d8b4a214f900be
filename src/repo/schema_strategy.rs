//! The `strategy:` of a deployment (and of `defaults:`), as users write it.

use super::schema::Scalar;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyFile {
    /// rolling (default), recreate, canary or blue-green.
    #[serde(rename = "type", default)]
    #[schemars(with = "Option<String>")]
    pub kind: Option<Spanned<String>>,
    /// How long a new pod stays ready before it counts (a duration: 500ms, 2s, 1m).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub min_ready: Option<Spanned<String>>,
    /// How long a new pod may take to be ready: the rollout's progress deadline.
    #[serde(default, alias = "progress_deadline")]
    #[schemars(with = "Option<String>")]
    pub health_timeout: Option<Spanned<String>>,
    /// How long an old pod gets to exit on SIGTERM before SIGKILL.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub stop_timeout: Option<Spanned<String>>,
    /// Rolling: pods above replicas during the update (a count, or a percentage rounded up).
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub max_surge: Option<Spanned<Scalar>>,
    /// Rolling: pods below replicas during the update (a count, or a percentage rounded down).
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub max_unavailable: Option<Spanned<Scalar>>,
    /// How long an old pod keeps serving after it left its service, before it is stopped.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub drain: Option<Spanned<String>>,
    /// Canary: weight, pause and analysis steps, in order.
    #[serde(default)]
    #[schemars(with = "Option<Vec<CanaryStepFile>>")]
    pub steps: Option<Spanned<Vec<Spanned<CanaryStepFile>>>>,
    /// Blue-green: switch to the new set once it is healthy, without `berth promote`.
    #[serde(default)]
    pub auto_promote: Option<bool>,
    /// Blue-green: how long the old set stays in reserve after promotion, for `berth rollback`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub scale_down_delay: Option<Spanned<String>>,
    /// Old revisions kept stopped for `berth rollback --to`.
    #[serde(default)]
    pub history_limit: Option<u32>,
}

/// One canary step: exactly one of its keys.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryStepFile {
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub weight: Option<Spanned<u32>>,
    /// A duration, or `{}` to wait for `berth promote`. Read as any value (an untagged
    /// enum would buffer the input and lose the locations of what follows).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub pause: Option<Spanned<serde_json::Value>>,
    #[serde(default)]
    #[schemars(with = "Option<AnalysisFile>")]
    pub analysis: Option<Spanned<AnalysisFile>>,
    /// Judge the canary by the edges' counts of its answers (a deployment with an ingress).
    #[serde(default)]
    #[schemars(with = "Option<super::schema_ingress::EdgeAnalysisFile>")]
    pub edge_analysis: Option<Spanned<super::schema_ingress::EdgeAnalysisFile>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalysisFile {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub samples: Option<u32>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub failure_limit: Option<u32>,
}
