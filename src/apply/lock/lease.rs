//! The lock's lease: a volume per renewal, labelled with the lock's id and its lease; it runs
//! out a lease after the engine created it, by the engine's clock. A new lease volume is
//! written before the previous one goes, so a held lock always has one. Each renewal first
//! proves the lock is still this apply's (see `fence`); a holder that finds it taken, or
//! that renewed too late, or that cannot renew, stops its apply before its next step.

use super::fence::{Fence, Stamp};
use crate::hosts::lock_store::LockStore;
use crate::hosts::HostError;
use crate::model::label;
use crate::model::lock::{self, Record};
use crate::model::names;
use futures_util::future::join_all;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The lease volumes of the lock with this id (all of the project's when `id` is `None`).
pub(super) async fn leases(
    store: &dyn LockStore,
    project: &str,
    id: Option<&str>,
) -> Result<Vec<(String, Record)>, HostError> {
    let mut wanted = vec![format!("{}={project}", label::PROJECT)];
    wanted.push(match id {
        Some(id) => format!("{}={id}", lock::ID_LABEL),
        None => lock::ID_LABEL.to_string(),
    });
    (store.leases(wanted).await).map_err(|e| e.within("reading the lock's leases"))
}

/// Writes lease volume `n`; returns when the engine created it (its clock), when it says.
pub(super) async fn write_lease(
    store: &dyn LockStore,
    project: &str,
    id: &str,
    n: u64,
    lease_s: u64,
) -> Result<Option<u64>, HostError> {
    let labels = BTreeMap::from([
        (label::PROJECT.to_string(), project.to_string()),
        (lock::ID_LABEL.to_string(), id.to_string()),
        (lock::LEASE_LABEL.to_string(), lease_s.to_string()),
        // For older berth, which judged leases by this (its writer's clock).
        (
            lock::EXPIRES_LABEL.to_string(),
            (crate::here::unix_now() + lease_s).to_string(),
        ),
    ]);
    let name = names::lease_name(project, id, n);
    (store.write_lease(&name, labels).await).map_err(|e| e.within("writing the lock lease"))
}

/// A host whose lock this apply holds, as the renewal keeps it.
pub(super) struct HeldHost {
    pub(super) c: Arc<dyn LockStore>,
    /// The lock network this apply created there: its generation.
    pub(super) network_id: String,
    /// When the engine created the newest lease (or the lock), by its clock.
    pub(super) created: Option<u64>,
    /// When this machine last renewed there.
    pub(super) renewed: Stamp,
}

/// What one renewal on one host found.
enum Renewal {
    Kept(Option<u64>),
    /// The lock is not this apply's any more, or may not be: why.
    Lost(String),
    /// The host did not answer: the lock may still be ours.
    Failed(HostError),
}

/// Proves the lock on one host is still this apply's, then writes lease `n`. The proof
/// comes first: a lease written for a lock another apply took would look like a dead apply's.
/// A host whose engine missed a deadline is left alone: no step goes there any more in this
/// run, and its lock is left to run out (the next apply on this machine takes it over).
async fn renew_one(h: &HeldHost, project: &str, id: &str, n: u64, lease_s: u64) -> Renewal {
    let name = h.c.host();
    if h.c.silent() {
        return Renewal::Kept(None);
    }
    match h.c.read_lock(project).await {
        Err(e) => return Renewal::Failed(super::lock_unread(e)),
        Ok(Some((network_id, _))) if network_id == h.network_id => {}
        Ok(found) => {
            let holder = found
                .and_then(|(_, r)| r.labels.get(lock::OWNER_LABEL).cloned())
                .map_or("no one holds it now".into(), |o| {
                    format!("{o} holds it now")
                });
            return Renewal::Lost(format!(
                "the apply lock on {name} was taken over while this apply was not renewing its lease ({holder}): stopping before its next step; the other apply finishes the work"
            ));
        }
    }
    let created = match write_lease(h.c.as_ref(), project, id, n, lease_s).await {
        Ok(created) => created,
        Err(e) => return Renewal::Failed(e),
    };
    if let (Some(previous), Some(next)) = (h.created, created) {
        if !lock::renewed_in_time(previous, next, lease_s) {
            return Renewal::Lost(format!(
                "the apply lock's lease on {name} ran out before this apply renewed it ({}s between renewals by {name}'s clock, for a {lease_s}s lease; was this process suspended?), so another apply may have taken it over: stopping before its next step",
                next - previous
            ));
        }
    }
    let old = names::lease_name(project, id, n - 1);
    let _ = h.c.remove_lease(&old).await;
    Renewal::Kept(created)
}

/// Renews the lease on every locked host every third of the lease, or at once when the
/// fence asks, until told to stop; a lost lock ends the apply through the fence.
pub(super) async fn renew(
    mut hosts: Vec<HeldHost>,
    project: String,
    id: String,
    lease: Duration,
    fence: Fence,
    mut stop: watch::Receiver<bool>,
) {
    let lease_s = lease.as_secs().max(1);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(lease / 3) => {}
            _ = fence.woken() => {}
            _ = stop.changed() => return,
        }
        let began = Stamp::now();
        n += 1;
        let found = join_all(
            hosts
                .iter()
                .map(|h| renew_one(h, &project, &id, n, lease_s)),
        )
        .await;
        let mut all = true;
        for (h, found) in hosts.iter_mut().zip(found) {
            match found {
                Renewal::Kept(created) => {
                    // Unknown (an engine that does not say): the next renewal is not judged.
                    h.created = created;
                    h.renewed = began;
                }
                Renewal::Lost(why) => {
                    fence.lose(why);
                    return;
                }
                // The engine missed its deadline just now: out of this run, as above.
                Renewal::Failed(_) if h.c.silent() => {}
                Renewal::Failed(e) => {
                    all = false;
                    if h.renewed.elapsed() > lease * 2 / 3 {
                        // Soon another apply may take this host's lock over: stop before it can.
                        fence.lose(format!(
                            "the apply lock's lease on {} could not be renewed for {}s ({e}), so another apply may take it over: stopping",
                            h.c.host(),
                            h.renewed.elapsed().as_secs()
                        ));
                        return;
                    }
                }
            }
        }
        if all {
            fence.proved(began);
        }
    }
}
