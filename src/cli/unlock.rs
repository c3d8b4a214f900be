//! `berth unlock` and `berth lock status`: look at the project's apply lock, and remove one
//! left behind by an apply that cannot release it (its lease also ends on its own).

use super::common::*;
use super::exit;
use crate::apply::lock;
use crate::hosts::Fleet;
use crate::model::clock::rfc3339;
use crate::model::lock::{Holder, DEFAULT_LEASE_S};
use crate::ops::context::{connect_hosts, load_repo, Secrets};
use clap::{Args, Subcommand};
use futures_util::future::join_all;
use miette::{miette, Result};

/// Remove the project's apply lock from every host, whoever holds it: for a lock whose apply
/// is gone but whose lease you do not want to wait out. Refuses while the holder is a live
/// process on this machine (unless --force).
///
/// Examples:
///   berth unlock --repo ./deploy
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct UnlockArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Remove the lock even while its holder runs on this machine.
    #[arg(long)]
    pub force: bool,
}

/// Show or remove the project's apply lock.
#[derive(Subcommand, Debug)]
pub enum LockCommand {
    /// Who holds the apply lock on each host, since when, and until when its lease runs.
    ///
    /// Examples:
    ///   berth lock status --repo ./deploy
    #[command(verbatim_doc_comment)]
    Status(LockStatusArgs),
}

#[derive(Args, Debug)]
pub struct LockStatusArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
}

/// Each host's lock holder, with its engine's time when it was read.
type Found = Result<Option<(Holder, u64)>, String>;

async fn holders(fleet: &Fleet, project: &str) -> Vec<(String, Found)> {
    let found = join_all(
        fleet
            .connected
            .values()
            .map(|c| lock::holder(c, project, DEFAULT_LEASE_S)),
    )
    .await;
    fleet.connected.keys().cloned().zip(found).collect()
}

pub fn status(a: LockStatusArgs) -> Result<u8> {
    let desired = load_repo(&a.repo.source(Some(&a.ssh)), Secrets::NotNeeded)?;
    runtime().block_on(async {
        let fleet = connect_hosts(&desired, &a.ssh.connection()?).await;
        for (host, found) in holders(&fleet, &desired.project).await {
            let line = match found {
                Ok(None) => "free".to_string(),
                Ok(Some((h, now))) => format!(
                    "held by {} since {}, {}{}",
                    h.owner,
                    rfc3339(h.since),
                    if h.expired(now) {
                        format!(
                            "its lease expired {} by {host}'s clock",
                            h.expires.map_or("?".into(), rfc3339)
                        )
                    } else {
                        lock::lease_words(&h, Some(now))
                    },
                    if lock::gone(&h, now) && !h.expired(now) {
                        " (its process on this machine has ended: the next apply takes it over)"
                    } else {
                        ""
                    }
                ),
                Err(e) => format!("unknown: {e}"),
            };
            crate::outln!("{host}: {line}");
        }
        for (h, e) in &fleet.failed {
            crate::outln!("{h}: unreachable: {e}");
        }
        Ok(if fleet.failed.is_empty() {
            exit::OK
        } else {
            exit::ERROR
        })
    })
}

pub fn run(a: UnlockArgs) -> Result<u8> {
    if let Some(sel) = &a.repo.selector {
        // The lock is the project's, on every host: a selector would narrow nothing.
        return Err(miette::miette!(
            help = "unlock takes no -l: it removes the project's lock on every host",
            "-l {sel} does not apply to the apply lock"
        ));
    }
    let desired = load_repo(&a.repo.source(Some(&a.ssh)), Secrets::NotNeeded)?;
    runtime().block_on(async {
        let fleet =
            connect_hosts(&desired, &a.ssh.connection()?).await;
        if !a.force {
            for (host, found) in holders(&fleet, &desired.project).await {
                let Ok(Some((h, _))) = found else { continue };
                let fate = h.process.as_deref().map(crate::here::fate);
                if let Some(crate::here::Fate::Running(pid)) = fate {
                    return Err(miette!(
                        help = "wait for it to finish, or stop that process first (--force removes the lock anyway)",
                        "the apply lock on {host} is held by {}, which is still running on this machine (pid {pid})",
                        h.owner
                    ));
                }
            }
        }
        let names: Vec<String> = fleet.connected.keys().cloned().collect();
        lock::force_release(&fleet, &desired.project, &names)
            .await
            .map_err(|e| miette!("{e}"))?;
        eprintln!(
            "apply lock of {} removed on {} host(s)",
            desired.project,
            names.len()
        );
        for (h, e) in &fleet.failed {
            eprintln!("warning: {h} is unreachable: {e}");
        }
        Ok(if fleet.failed.is_empty() {
            exit::OK
        } else {
            exit::ERROR
        })
    })
}
