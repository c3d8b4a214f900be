//! The audit log across hosts: each apply recorded on the hosts it touched, and `berth
//! history` reading them back, merged.

use crate::apply::Outcome;
use crate::hosts::docker_ops::history as on_host;
use crate::hosts::Fleet;
use crate::model::history::{merge, ApplyRecord};
use crate::plan::Plan;

/// Who is applying and from where: `BERTH_USER` (a CI's actor) or the login name, and
/// `BERTH_MACHINE` (a CI's runner) or this machine's host name.
fn who() -> (String, String) {
    let machine = std::env::var("BERTH_MACHINE")
        .ok()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .to_string()
        });
    let user = ["BERTH_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    (user, machine)
}

pub fn result_word(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Applied { .. } => "applied",
        Outcome::RolledBack(failed) if failed.iter().all(|f| f.rollback_errors.is_empty()) => {
            "rolled back"
        }
        Outcome::RolledBack(_) => "failed",
        Outcome::Abandoned { .. } => "interrupted",
        Outcome::LockLost { .. } => "lock lost",
    }
}

/// Records an apply on each host it touched; a host that cannot take it is named in the
/// returned warnings (the apply itself is done).
pub async fn record(
    fleet: &Fleet,
    plan: &Plan,
    hosts: &[String],
    outcome: &Outcome,
) -> Vec<String> {
    let (user, machine) = who();
    let mut id = [0u8; 6];
    let _ = getrandom::getrandom(&mut id);
    let mut deployments: Vec<String> = plan.changes.iter().map(|c| c.deployment.clone()).collect();
    deployments.extend(plan.waves.iter().filter_map(|w| w.deployment.clone()));
    deployments.sort();
    deployments.dedup();
    deployments.retain(|d| !d.is_empty());
    let record = ApplyRecord {
        id: id.iter().map(|b| format!("{b:02x}")).collect(),
        at: crate::here::unix_now(),
        user,
        machine,
        commit: plan.commit.clone(),
        summary: crate::render::summary(plan),
        result: result_word(outcome).to_string(),
        deployments,
        hosts: hosts.to_vec(),
    };
    let writes = hosts
        .iter()
        .filter_map(|h| fleet.connected.get(h).map(|c| (h, c)))
        .map(|(h, c)| {
            let record = &record;
            async move {
                on_host::record_apply(&c.docker, &plan.project, record)
                    .await
                    .err()
                    .map(|e| format!("{h}: the apply could not be recorded in its history: {e}"))
            }
        });
    futures_util::future::join_all(writes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The applies recorded on the reachable hosts, newest first (of one deployment, if named),
/// and the hosts whose records could not be read.
pub async fn history(
    fleet: &Fleet,
    project: &str,
    deployment: Option<&str>,
) -> (Vec<ApplyRecord>, Vec<String>) {
    let reads = fleet
        .connected
        .iter()
        .map(|(h, c)| async move { (h.clone(), on_host::history(&c.docker, project).await) });
    let mut per_host = Vec::new();
    let mut failed = Vec::new();
    for (h, r) in futures_util::future::join_all(reads).await {
        match r {
            Ok(records) => per_host.push(records.into_iter().map(|(_, r)| r).collect()),
            Err(e) => failed.push(format!("{h}: {e}")),
        }
    }
    (merge(per_host, deployment), failed)
}
