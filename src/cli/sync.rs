//! `berth sync`: converge from cron or CI. It is `berth apply --auto-approve` without a saved
//! plan: plan, apply under the lock, exit 0 when done or when nothing changed, non-zero only
//! on failure (1 error, 3 rolled back, 4 locked). A rollout waiting for `berth promote` is left
//! waiting.

use super::apply;
use super::common::*;
use super::progress::Verbosity;
use crate::render::Format;
use clap::Args;
use miette::Result;

/// Converge the hosts to Git without asking (for cron and CI): plan, then apply under the
/// project's lock. Exits non-zero only on failure.
///
/// Example: berth sync --repo https://git.example/ops/deploy.git --ref main
#[derive(Args, Debug)]
pub struct SyncArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub flags: PlanFlags,
    #[command(flatten)]
    pub lock: LockArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub fn run(a: SyncArgs, verbosity: Verbosity) -> Result<u8> {
    apply::run_unattended(a.repo, a.ssh, a.flags, a.lock, a.format, verbosity)
}
