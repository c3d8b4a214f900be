//! `berth promote`, `berth abort`, `berth rollback` and `berth restart`: move a canary or
//! blue-green rollout on, undo it, go back to a kept revision, or restart a deployment's
//! pods, from any machine. Each plans only its deployment, shows the plan and
//! applies it under the project's lock, as `berth apply --auto-approve` would.

use super::apply;
use super::common::*;
use super::progress::Verbosity;
use crate::plan::Intent;
use crate::render::Format;
use clap::Args;
use miette::Result;

#[derive(Args, Debug)]
pub struct RolloutArgs {
    /// The deployment whose rollout to act on.
    pub deployment: String,
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub rollout: RolloutArgs,
    /// The kept revision to bring back (its first characters will do), as `berth status`
    /// lists them; without it, the newest.
    #[arg(long, value_name = "REVISION")]
    pub to: Option<String>,
}

pub fn run(a: RolloutArgs, intent: Intent, verbosity: Verbosity) -> Result<u8> {
    run_with(a, intent, None, verbosity)
}

pub fn rollback(a: RollbackArgs, verbosity: Verbosity) -> Result<u8> {
    run_with(a.rollout, Intent::Rollback, a.to, verbosity)
}

fn run_with(
    a: RolloutArgs,
    intent: Intent,
    to: Option<String>,
    verbosity: Verbosity,
) -> Result<u8> {
    let mut flags = PlanFlags::default();
    flags.intents.insert(a.deployment.clone(), intent);
    if let Some(to) = to {
        flags.rollback_to.insert(a.deployment.clone(), to);
    }
    apply::run_unattended(a.repo, a.ssh, flags, a.lock, a.notify, a.format, verbosity)
}
