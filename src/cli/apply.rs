use super::common::*;
use super::progress::Verbosity;
use crate::ops::apply::{Applied, ApplyOptions, Ui};
use crate::ops::apply::{Outcome, Progress};
use crate::ops::{self, exit};
use crate::plan::Plan;
use crate::render::Format;
use clap::Args;
use miette::{miette, IntoDiagnostic, Result};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Apply changes: plan, show the plan, ask, then execute it with health gates. With a saved
/// plan file, apply exactly that plan without asking (it was reviewed when it was made, as
/// with `terraform apply PLAN`), or refuse (exit 5) if a host changed since.
///
/// Examples:
///   berth apply --repo ./deploy --auto-approve
///   berth plan -o plan.json && berth apply plan.json
#[derive(Args, Debug, Clone)]
#[command(verbatim_doc_comment)]
pub struct ApplyArgs {
    /// A plan saved by `berth plan -o FILE`.
    pub plan_file: Option<PathBuf>,
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Do not ask for confirmation (for CI).
    #[arg(long)]
    pub auto_approve: bool,
    #[command(flatten)]
    pub flags: PlanFlags,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

fn confirm() -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(miette!(
            help = "pass --auto-approve to apply without a prompt",
            "cannot ask for confirmation: stdin is not a terminal"
        ));
    }
    crate::out!("Apply these changes? Only 'yes' is accepted: ");
    std::io::stdout().flush().into_diagnostic()?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .into_diagnostic()?;
    Ok(line.trim() == "yes")
}

/// Plans and applies without asking, from the repository (sync, promote, abort, rollback).
pub fn run_unattended(
    repo: RepoArgs,
    ssh: SshArgs,
    flags: PlanFlags,
    lock: LockArgs,
    notify: NotifyArgs,
    format: Format,
    verbosity: Verbosity,
) -> Result<u8> {
    run(
        unattended(repo, ssh, flags, lock, notify, format),
        verbosity,
    )
}

/// The apply `sync`, `promote`, `abort` and `rollback` run: from the repository, not asking.
pub fn unattended(
    repo: RepoArgs,
    ssh: SshArgs,
    flags: PlanFlags,
    lock: LockArgs,
    notify: NotifyArgs,
    format: Format,
) -> ApplyArgs {
    ApplyArgs {
        plan_file: None,
        repo,
        ssh,
        auto_approve: true,
        flags,
        lock,
        notify,
        format,
    }
}

/// Stopping old pods for this long is worth a word about signals.
const SLOW_STOP: std::time::Duration = std::time::Duration::from_secs(5);

/// An apply run from a terminal or a CI log: plans on stdout, the rest on stderr.
struct Terminal {
    format: Format,
    verbosity: Verbosity,
}

impl Ui for Terminal {
    fn show_plan(&self, plan: &Plan) {
        // Quiet: errors and the one-line result only.
        if self.verbosity != Verbosity::Quiet {
            print_plan(plan, self.format);
        }
    }

    fn confirm(&self) -> ops::Result<bool> {
        Ok(confirm()?)
    }

    fn notice(&self, message: String) {
        eprintln!("notice: {message}");
    }

    fn warn(&self, message: String) {
        eprintln!("warning: {message}");
    }

    fn progress(&self, hosts: &[String]) -> Arc<dyn Progress> {
        super::progress::for_apply(self.verbosity, hosts)
    }
}

pub fn run(a: ApplyArgs, verbosity: Verbosity) -> Result<u8> {
    runtime().block_on(run_async(&a, verbosity))
}

/// An apply inside a running runtime (`sync --every` runs one after another).
pub async fn run_async(a: &ApplyArgs, verbosity: Verbosity) -> Result<u8> {
    if let (Some(file), Some(sel)) = (&a.plan_file, &a.repo.selector) {
        return Err(miette!(
            help = "make the plan with -l instead: berth plan -l SELECTOR -o FILE",
            "-l {sel} cannot narrow the saved plan {}: it applies exactly as it was made",
            file.display()
        ));
    }
    let options = ApplyOptions {
        plan_file: a.plan_file.clone(),
        source: a.repo.source(Some(&a.ssh)),
        connection: a.ssh.connection()?,
        scope: a.flags.scope(),
        lock: a.lock.options(),
        // A saved plan was reviewed when it was made: it applies without a prompt.
        auto_approve: a.auto_approve || a.plan_file.is_some(),
        notifier: a.notify.notifier(),
    };
    let ui = Terminal {
        format: a.format,
        verbosity,
    };
    let applied = ops::apply::apply(&options, &ui).await;
    match applied {
        Ok(applied) => {
            report(&applied);
            Ok(applied.exit_code())
        }
        Err(ops::Error::Refused(report)) => Err(report),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(e.exit_code())
        }
    }
}

/// Says how an apply went, on stderr.
fn report(applied: &Applied) {
    let Applied::Ran {
        outcome,
        elapsed,
        summary,
    } = applied
    else {
        match applied {
            Applied::Cancelled => eprintln!("apply cancelled"),
            _ => eprintln!("apply: no changes to make"),
        }
        return;
    };
    match outcome {
        Outcome::Applied { waits } => {
            eprintln!(
                "apply complete: {} in {:.1}s ({:.1}s in health gates, drains and pauses; {:.1}s stopping old pods)",
                summary,
                elapsed.as_secs_f64(),
                waits.strategy.as_secs_f64(),
                waits.stopping.as_secs_f64()
            );
            if waits.stopping >= SLOW_STOP {
                eprintln!(
                    "note: old pods took {:.1}s to stop: a process that ignores SIGTERM (a shell as PID 1 does) is killed only after the stop timeout; `init: true` on its container runs an init that passes signals on",
                    waits.stopping.as_secs_f64()
                );
            }
        }
        Outcome::Abandoned { signal } => {
            eprintln!(
                "{signal} during the rollback: it stopped half-way; `berth plan` shows what is left and \
                 the next `berth apply` repairs it"
            );
        }
        Outcome::LockLost { why } => {
            eprintln!(
                "apply stopped: {why}\nnothing was rolled back: the hosts are the other apply's now; `berth plan` shows where they stand"
            );
        }
        Outcome::RolledBack(failed) => {
            for f in failed {
                eprintln!("\napply failed in \"{}\":", f.wave);
                for s in &f.failures {
                    eprintln!("  {}: {}", s.host, s.message);
                    for l in s.details.lines() {
                        eprintln!("    {l}");
                    }
                }
                if !f.rollback_errors.is_empty() {
                    eprintln!("rollback had errors:\n  {}", f.rollback_errors.join("\n  "));
                }
            }
            if applied.exit_code() == exit::ROLLED_BACK {
                eprintln!(
                    "rolled back: the failed pods were removed and the old pods keep serving"
                );
            }
        }
    }
}
