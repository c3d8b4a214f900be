//! `berth lock status` and `berth unlock`: who holds the project's apply lock on each host,
//! and removing one left behind by an apply that cannot release it.

use super::context::{connect_hosts, Connection};
use super::error::Result;
use crate::apply::lock;
use crate::hosts::{Fleet, HostError};
use crate::model::lock::{Holder, DEFAULT_LEASE_S};
use crate::model::DesiredState;
use futures_util::future::join_all;
use miette::miette;

pub use crate::apply::lock::{gone, lease_words, LockOptions};

/// A host's lock holder, with its engine's time when it was read (`None`: free).
pub type Found = std::result::Result<Option<(Holder, u64)>, HostError>;

/// Each host's lock: per connected host what was found, and the hosts that did not answer.
pub struct Locks {
    pub hosts: Vec<(String, Found)>,
    pub unreachable: Vec<(String, String)>,
}

async fn holders(fleet: &Fleet, project: &str) -> Vec<(String, Found)> {
    let found =
        join_all((fleet.connected.values()).map(|c| lock::holder(c, project, DEFAULT_LEASE_S)))
            .await;
    fleet.connected.keys().cloned().zip(found).collect()
}

fn unreachable(fleet: &Fleet) -> Vec<(String, String)> {
    (fleet.failed.iter())
        .map(|(h, e)| (h.clone(), e.to_string()))
        .collect()
}

/// Who holds the project's lock on each host.
pub async fn status(desired: &DesiredState, to: &Connection) -> Locks {
    let fleet = connect_hosts(desired, to).await;
    Locks {
        hosts: holders(&fleet, &desired.project).await,
        unreachable: unreachable(&fleet),
    }
}

/// Removes the project's lock from every host that answers, whoever holds it; refused while
/// the holder is a live process on this machine, unless `force`. Returns the hosts it was
/// removed on and those that did not answer.
pub async fn unlock(
    desired: &DesiredState,
    to: &Connection,
    force: bool,
) -> Result<(Vec<String>, Vec<(String, String)>)> {
    let fleet = connect_hosts(desired, to).await;
    if !force {
        for (host, found) in holders(&fleet, &desired.project).await {
            let Ok(Some((h, _))) = found else { continue };
            let fate = h.process.as_deref().map(crate::here::fate);
            if let Some(crate::here::Fate::Running(pid)) = fate {
                return Err(miette!(
                    help = "wait for it to finish, or stop that process first (--force removes the lock anyway)",
                    "the apply lock on {host} is held by {}, which is still running on this machine (pid {pid})",
                    h.owner
                )
                .into());
            }
        }
    }
    let names: Vec<String> = fleet.connected.keys().cloned().collect();
    lock::force_release(&fleet, &desired.project, &names)
        .await
        .map_err(|e| miette!("{e}"))?;
    Ok((names, unreachable(&fleet)))
}
