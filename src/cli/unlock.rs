//! `berth unlock` and `berth lock status`: look at the project's apply lock, and remove one
//! left behind by an apply that cannot release it (its lease also ends on its own).

use super::common::*;
use super::exit;
use crate::model::clock::rfc3339;
use crate::ops::{
    self,
    context::{load_repo, Secrets},
};
use clap::{Args, Subcommand};
use miette::Result;

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

pub fn status(a: LockStatusArgs) -> Result<u8> {
    let desired = load_repo(&a.repo.source(Some(&a.ssh)), Secrets::NotNeeded)?;
    let to = a.ssh.connection()?;
    let locks = runtime().block_on(ops::lock::status(&desired, &to));
    for (host, found) in locks.hosts {
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
                    ops::lock::lease_words(&h, Some(now))
                },
                if ops::lock::gone(&h, now) && !h.expired(now) {
                    " (its process on this machine has ended: the next apply takes it over)"
                } else {
                    ""
                }
            ),
            Err(e) => format!("unknown: {e}"),
        };
        crate::outln!("{host}: {line}");
    }
    for (h, e) in &locks.unreachable {
        crate::outln!("{h}: unreachable: {e}");
    }
    Ok(if locks.unreachable.is_empty() {
        exit::OK
    } else {
        exit::ERROR
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
    let to = a.ssh.connection()?;
    let (removed, unreachable) = runtime().block_on(ops::lock::unlock(&desired, &to, a.force))?;
    eprintln!(
        "apply lock of {} removed on {} host(s)",
        desired.project,
        removed.len()
    );
    for (h, e) in &unreachable {
        eprintln!("warning: {h} is unreachable: {e}");
    }
    Ok(if unreachable.is_empty() {
        exit::OK
    } else {
        exit::ERROR
    })
}
