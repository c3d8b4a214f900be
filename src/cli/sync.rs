//! `berth sync`: converge from cron or CI. It is `berth apply --auto-approve` without a saved
//! plan: plan, apply under the lock, exit 0 when done or when nothing changed, non-zero only
//! on failure (1 error, 3 rolled back, 4 locked). A rollout waiting for `berth promote` is left
//! waiting. With `--every`, it keeps running: read Git (fetch a remote), converge, sleep.

use super::apply;
use super::common::*;
use super::progress::Verbosity;
use crate::render::Format;
use clap::Args;
use miette::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Converge the hosts to Git without asking (for cron and CI): plan, then apply under the
/// project's lock. Exits non-zero only on failure.
///
/// With --every, berth keeps running as a reconciler: each round reads Git again (fetching a
/// remote repository), repairs drift and rolls out new commits, then sleeps. SIGTERM or
/// Ctrl-C while it sleeps or plans ends it with exit 0; during an apply, the wave in progress
/// is rolled back first, as for any apply.
///
/// Examples:
///   berth sync --repo https://git.example/ops/deploy.git --ref main
///   berth sync --repo https://git.example/ops/deploy.git --every 1m
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct SyncArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub flags: PlanFlags,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Keep running: a sync every DURATION (`30s`, `1m`, `1h`), until SIGTERM or Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub every: Option<Duration>,
}

pub fn run(a: SyncArgs, verbosity: Verbosity) -> Result<u8> {
    let every = a.every;
    let args = apply::unattended(a.repo, a.ssh, a.flags, a.lock, a.notify, a.format);
    match every {
        None => apply::run(args, verbosity),
        Some(every) => runtime().block_on(keep_syncing(&args, every, verbosity)),
    }
}

/// Syncs, sleeps `every`, and again, until a signal: one round's failure is reported and the
/// next round tries again.
async fn keep_syncing(
    args: &apply::ApplyArgs,
    every: Duration,
    verbosity: Verbosity,
) -> Result<u8> {
    let stopping = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(tokio::sync::Notify::new());
    {
        let (stopping, stop) = (stopping.clone(), stop.clone());
        tokio::spawn(async move {
            let signal = crate::apply::executor::interrupt().await;
            eprintln!("sync: {signal}: stopping after this round");
            stopping.store(true, Ordering::SeqCst);
            stop.notify_one();
        });
    }
    let mut round = 0u64;
    while !stopping.load(Ordering::SeqCst) {
        round += 1;
        let started = crate::apply::unix_now();
        eprintln!(
            "sync: round {round} at {}",
            crate::model::rollout::rfc3339(started)
        );
        match apply::run_async(args, verbosity).await {
            Ok(code) => eprintln!("sync: round {round} ended with exit {code}"),
            Err(report) => eprintln!("sync: round {round} failed: {report:?}"),
        }
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.notified() => break,
        }
    }
    Ok(super::exit::OK)
}
