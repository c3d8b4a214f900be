use super::common::*;
use super::exit;
use super::progress::Verbosity;
use crate::apply::{self, lock, lock::LockError, Outcome};
use crate::hosts::{self, Fleet};
use crate::plan::Plan;
use crate::render::Format;
use clap::Args;
use miette::{miette, IntoDiagnostic, Result};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Apply changes: plan, show the plan, ask, then execute it with health gates. With a saved
/// plan file, apply exactly that plan, or refuse (exit 5) if a host changed since.
///
/// Example: berth apply --repo ./deploy --auto-approve
/// Example: berth plan -o plan.json && berth apply plan.json
#[derive(Args, Debug)]
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
    format: Format,
    verbosity: Verbosity,
) -> Result<u8> {
    let args = ApplyArgs {
        plan_file: None,
        repo,
        ssh,
        auto_approve: true,
        flags,
        lock,
        format,
    };
    run(args, verbosity)
}

/// Stopping old pods for this long is worth a word about signals.
const SLOW_STOP: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads a plan saved by `berth plan -o` and connects to its hosts.
async fn saved_plan(file: &std::path::Path, ssh: &SshArgs) -> Result<(Fleet, Plan)> {
    let name = file.display();
    let bytes =
        std::fs::read(file).map_err(|e| miette!("cannot read the plan file {name}: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        miette!(
            help = "a plan file is the JSON that `berth plan -o FILE` writes",
            "the plan file {name} is not UTF-8 text"
        )
    })?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        let offset = text
            .lines()
            .take(e.line().saturating_sub(1))
            .map(|l| l.len() + 1)
            .sum::<usize>()
            + e.column().saturating_sub(1);
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let what = match e.classify() {
            serde_json::error::Category::Eof => "it ends too early".to_string(),
            serde_json::error::Category::Syntax => "it is not valid JSON".to_string(),
            _ => format!("it is not a berth plan: {e}"),
        };
        miette!(
            labels = vec![miette::LabeledSpan::at(offset..offset, "here")],
            help = "a plan file is the JSON that `berth plan -o FILE` writes; make a new one",
            "the plan file {name} cannot be read: {what}"
        )
        .with_source_code(miette::NamedSource::new(name.to_string(), text.clone()))
    })?;
    if plan.version != crate::plan::PLAN_VERSION {
        return Err(miette!(
            "the plan file {name} has format version {}, which this berth does not read (it writes {})",
            plan.version,
            crate::plan::PLAN_VERSION
        ));
    }
    let unset: Vec<String> = crate::plan::saved::secrets_needed(&plan)
        .into_iter()
        .filter(|n| secret_lookup(n).is_none())
        .collect();
    if !unset.is_empty() {
        let vars: Vec<String> = unset
            .iter()
            .map(|n| crate::repo::load::secret_env_var(n))
            .collect();
        return Err(miette!(
            help = format!(
                "set {} to the value(s) the plan was made with",
                vars.join(", ")
            ),
            "the plan file {name} creates pods with secret(s) {} that have no value here",
            unset.join(", ")
        ));
    }
    let hosts: Vec<_> = plan
        .hosts
        .values()
        .filter(|h| h.reachable)
        .map(|h| h.connection.clone())
        .collect();
    let fleet = hosts::connect_all(&hosts, &ssh.options(), ssh.max_handshakes).await;
    Ok((fleet, plan))
}

/// Refuses a plan that must not run: unreachable hosts (unless allowed), unmanaged
/// containers in the way, a promote/abort/rollback with nothing to act on.
fn check_runnable(plan: &Plan, a: &ApplyArgs) -> Result<()> {
    check_unreachable(plan, &a.ssh)?;
    let conflicts: Vec<String> = plan.conflicts().map(|c| c.message.clone()).collect();
    if !conflicts.is_empty() {
        return Err(miette!(
            help = "remove or rename the unmanaged containers, then plan again",
            "refusing to apply:\n{}",
            conflicts.join("\n")
        ));
    }
    if plan.waves.is_empty() && !a.flags.intents.is_empty() {
        let why: Vec<String> = plan
            .issues
            .iter()
            .filter(|i| i.kind == crate::plan::IssueKind::Rollout)
            .map(|i| i.message.clone())
            .collect();
        let names: Vec<&String> = a.flags.intents.keys().collect();
        return Err(miette!(
            "nothing to do for {names:?}{}",
            if why.is_empty() {
                ": it is not selected or matches no host".to_string()
            } else {
                format!(": {}", why.join("; "))
            }
        ));
    }
    Ok(())
}

fn reachable_hosts(plan: &Plan) -> Vec<String> {
    plan.hosts
        .iter()
        .filter(|(_, s)| s.reachable)
        .map(|(h, _)| h.clone())
        .collect()
}

pub fn run(a: ApplyArgs, verbosity: Verbosity) -> Result<u8> {
    let rt = runtime();
    rt.block_on(async {
        // Unattended runs (sync, promote, --auto-approve) plan again under the lock, so a run
        // that waited for the lock applies what is true then; a plan someone approved (a
        // saved one, or one confirmed at the prompt) is applied as it is, or refused as stale.
        let (fleet, plan, context) = match &a.plan_file {
            Some(file) => {
                let (fleet, plan) = saved_plan(file, &a.ssh).await?;
                (fleet, plan, None)
            }
            None => {
                let context = connect(&a.repo, &a.ssh, &a.flags).await?;
                let plan = context.plan().await;
                let fleet = context.fleet.clone();
                (fleet, plan, Some(context))
            }
        };
        let replan = context.filter(|_| a.auto_approve);
        if replan.is_none() || plan.waves.is_empty() {
            print_plan(&plan, a.format);
        }
        check_runnable(&plan, &a)?;
        if plan.waves.is_empty() {
            // Nothing to do, but a saved plan still promises the hosts are as it saw them.
            if a.plan_file.is_some() {
                return Ok(check_stale(&fleet, &plan).await.unwrap_or(exit::OK));
            }
            // A lock left by an apply that died: take it over and let it go, so nothing of
            // that apply stays behind.
            if !plan.dead_locks.is_empty() {
                let notice = |m: String| eprintln!("notice: {m}");
                let hosts = reachable_hosts(&plan);
                match lock::acquire(&fleet, &plan.project, &hosts, &a.lock.options(), &notice).await
                {
                    Ok(locks) => {
                        if let Err(e) = locks.release().await {
                            eprintln!("warning: could not release the apply lock: {e}");
                        }
                    }
                    Err(e) => eprintln!("warning: the dead apply's lock stays: {e}"),
                }
            }
            return Ok(exit::OK);
        }
        if !a.auto_approve && !confirm()? {
            eprintln!("apply cancelled");
            return Ok(exit::ERROR);
        }
        let notice = |m: String| eprintln!("notice: {m}");
        let hosts = reachable_hosts(&plan);
        let locks =
            match lock::acquire(&fleet, &plan.project, &hosts, &a.lock.options(), &notice).await {
                Ok(l) => l,
                Err(e @ LockError::Held { .. }) => {
                    eprintln!("error: {e}");
                    return Ok(exit::LOCKED);
                }
                Err(e) => return Err(miette!("{e}")),
            };
        let code = match &replan {
            Some(context) => {
                let plan = context.plan().await;
                print_plan(&plan, a.format);
                let same_hosts = reachable_hosts(&plan) == hosts;
                match check_runnable(&plan, &a) {
                    Err(e) => Err(e),
                    Ok(()) if !same_hosts => Err(miette!(
                        "the reachable hosts changed while waiting for the lock; run again"
                    )),
                    Ok(()) if plan.waves.is_empty() => Ok(exit::OK),
                    Ok(()) => execute(&plan, &fleet, verbosity, locks.lost()).await,
                }
            }
            // Under the lock, the hosts must still be as planned (a saved plan, or someone
            // else's apply while this one waited for its confirmation).
            None => match check_stale(&fleet, &plan).await {
                Some(stale) => Ok(stale),
                None => execute(&plan, &fleet, verbosity, locks.lost()).await,
            },
        };
        if let Err(e) = locks.release().await {
            eprintln!("warning: could not release the apply lock: {e}");
        }
        code
    })
}

/// Exit 5 with the hosts whose project containers differ from what the plan saw, if any.
async fn check_stale(fleet: &Fleet, plan: &Plan) -> Option<u8> {
    let options = crate::hosts::observe::ObserveOptions {
        project: plan.project.clone(),
        ..Default::default()
    };
    let observed = fleet.observe(&options).await;
    let mut stale: Vec<String> = crate::plan::saved::secrets_changed_since(plan, &observed, &secret_lookup)
        .into_iter()
        .map(|s| format!("{s} runs with another value than the one set now, and the plan keeps that pod (the value changed since the plan was made)"))
        .collect();
    for (name, state) in plan.hosts.iter().filter(|(_, s)| s.reachable) {
        match observed.get(name) {
            Some(Ok(o)) if Some(o.fingerprint(&plan.project)) == state.fingerprint => {}
            Some(Ok(_)) => stale.push(format!("{name} changed since the plan was made")),
            Some(Err(e)) => stale.push(format!("{name} is unreachable now: {e}")),
            None => stale.push(format!("{name} was not observed")),
        }
    }
    if stale.is_empty() {
        return None;
    }
    eprintln!(
        "error: the plan is stale:\n  {}\nrun berth plan again",
        stale.join("\n  ")
    );
    Some(exit::STALE)
}

async fn execute(
    plan: &Plan,
    fleet: &Fleet,
    verbosity: Verbosity,
    stop: apply::Stop,
) -> Result<u8> {
    let secrets: apply::Secrets = Arc::new(secret_lookup);
    let hosts: Vec<String> = plan
        .waves
        .iter()
        .flat_map(|w| w.steps.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let progress = super::progress::for_apply(verbosity, &hosts);
    let started = std::time::Instant::now();
    match apply::execute(plan, fleet, secrets, progress, stop)
        .await
        .map_err(|e| miette!("{e}"))?
    {
        Outcome::Applied { waits } => {
            eprintln!(
                "apply complete: {} in {:.1}s ({:.1}s in health gates, drains and pauses; {:.1}s stopping old pods)",
                crate::render::summary(plan),
                started.elapsed().as_secs_f64(),
                waits.strategy.as_secs_f64(),
                waits.stopping.as_secs_f64()
            );
            if waits.stopping >= SLOW_STOP {
                eprintln!(
                    "note: old pods took {:.1}s to stop: a process that ignores SIGTERM (a shell as PID 1 does) is killed only after the stop timeout; `init: true` on its container runs an init that passes signals on",
                    waits.stopping.as_secs_f64()
                );
            }
            Ok(exit::OK)
        }
        Outcome::Abandoned { signal } => {
            eprintln!(
                "{signal} during the rollback: it stopped half-way; `berth plan` shows what is left and \
                 the next `berth apply` repairs it"
            );
            Ok(exit::INTERRUPTED)
        }
        Outcome::RolledBack(failed) => {
            let mut clean = true;
            for f in &failed {
                eprintln!("\napply failed in \"{}\":", f.wave);
                for s in &f.failures {
                    eprintln!("  {}: {}", s.host, s.message);
                    for l in s.details.lines() {
                        eprintln!("    {l}");
                    }
                }
                if !f.rollback_errors.is_empty() {
                    clean = false;
                    eprintln!("rollback had errors:\n  {}", f.rollback_errors.join("\n  "));
                }
            }
            if clean {
                eprintln!(
                    "rolled back: the failed pods were removed and the old pods keep serving"
                );
                Ok(exit::ROLLED_BACK)
            } else {
                Ok(exit::ERROR)
            }
        }
    }
}
