//! The audit log: a record of each apply, kept on every host it touched (so it does not live
//! on one operator's machine), merged across hosts by `berth history`. Pure.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// On a record's volume: the [`ApplyRecord`], JSON.
pub const HISTORY_LABEL: &str = "berth.history";
/// On a record's volume: the project (not `berth.project`, so that the records stay out of
/// the project's volumes as observed, pruned or locked).
pub const HISTORY_PROJECT_LABEL: &str = "berth.history-project";
/// Records kept per host and project; the oldest go first.
pub const HISTORY_KEEP: usize = 100;

/// One apply, as recorded on the hosts it touched.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ApplyRecord {
    /// Unique per apply: the same record on several hosts is one apply.
    pub id: String,
    /// Unix seconds when it ended.
    pub at: u64,
    pub user: String,
    pub machine: String,
    pub commit: Option<String>,
    /// The plan's summary: `1 to create, 2 to replace, …`.
    pub summary: String,
    /// applied, rolled back, failed, interrupted.
    pub result: String,
    pub deployments: Vec<String>,
    pub hosts: Vec<String>,
}

/// The volume name of a record (sorts by time on a host).
pub fn record_volume(project: &str, record: &ApplyRecord) -> String {
    format!("berth-history-{project}-{:012}-{}", record.at, record.id)
}

/// Records from every host: one per apply, newest first, only those that touched
/// `deployment` when one is named.
pub fn merge(per_host: Vec<Vec<ApplyRecord>>, deployment: Option<&str>) -> Vec<ApplyRecord> {
    let mut by_id: BTreeMap<String, ApplyRecord> = BTreeMap::new();
    for r in per_host.into_iter().flatten() {
        by_id.entry(r.id.clone()).or_insert(r);
    }
    let mut out: Vec<ApplyRecord> = by_id
        .into_values()
        .filter(|r| deployment.is_none_or(|d| r.deployments.iter().any(|x| x == d)))
        .collect();
    out.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, at: u64, deployments: &[&str]) -> ApplyRecord {
        ApplyRecord {
            id: id.into(),
            at,
            user: "ana".into(),
            machine: "laptop".into(),
            commit: None,
            summary: String::new(),
            result: "applied".into(),
            deployments: deployments.iter().map(|d| d.to_string()).collect(),
            hosts: vec![],
        }
    }

    #[test]
    fn one_apply_seen_on_two_hosts_is_one_record_newest_first() {
        let merged = merge(
            vec![
                vec![rec("a", 10, &["web"]), rec("b", 20, &["api"])],
                vec![rec("a", 10, &["web"])],
            ],
            None,
        );
        assert_eq!(
            merged.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        let web = merge(
            vec![vec![rec("a", 10, &["web"]), rec("b", 20, &["api"])]],
            Some("web"),
        );
        assert_eq!(web.len(), 1);
        assert!(
            record_volume("shop", &rec("a", 10, &[]))
                < record_volume("shop", &rec("a", 9_999, &[]))
        );
    }
}
