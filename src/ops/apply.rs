//! `apply`, `sync`, `promote`, `abort`, `rollback`: a plan (saved, or made now) applied under
//! the project's lock, or refused before any step.

use super::context::{self, check_unreachable, Connection, PlanScope, Source};
use super::error::{exit, Error, Result};
use super::secrets::SecretSource;
use crate::apply::{self, lock, lock::LockError, lock::LockOptions};
/// What an apply ends with, and what it reports as it goes (the CLI prints both).
pub use crate::apply::{Outcome, Progress};
use crate::hosts::{self, Fleet};
use crate::model::files::{by_hash, FileContents};
use crate::plan::{IssueKind, Plan};
use miette::miette;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What an apply is asked to do.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// A plan saved by `berth plan -o FILE`: applied as it is, or refused as stale.
    pub plan_file: Option<PathBuf>,
    /// Without a plan file: the repository to plan from.
    pub source: Source,
    pub connection: Connection,
    pub scope: PlanScope,
    pub lock: LockOptions,
    /// Apply without asking; the plan is made again under the lock.
    pub auto_approve: bool,
    /// Where apply events go.
    pub notifier: super::notify::Notifier,
}

/// How an apply talks to whoever runs it: a terminal, a CI log, a test.
pub trait Ui: Sync {
    /// The plan about to be applied (once more if it was made again under the lock).
    fn show_plan(&self, plan: &Plan);
    /// Whether to go on; asked before the lock is taken, unless approved beforehand.
    fn confirm(&self) -> Result<bool>;
    fn notice(&self, message: String);
    fn warn(&self, message: String);
    /// Where the executor reports its steps on these hosts.
    fn progress(&self, hosts: &[String]) -> Arc<dyn Progress>;
}

/// How an apply that ran to its end went.
#[derive(Debug)]
pub enum Applied {
    /// The plan had nothing to do (and the hosts were as planned).
    Nothing,
    /// Whoever was asked said no.
    Cancelled,
    /// The waves ran: their outcome, the wall time they took, and what the plan did in
    /// a few words ("2 to create, 1 to replace").
    Ran {
        outcome: Outcome,
        elapsed: Duration,
        summary: String,
    },
}

impl Applied {
    pub fn exit_code(&self) -> u8 {
        match self {
            Applied::Nothing => exit::OK,
            Applied::Cancelled => exit::ERROR,
            Applied::Ran { outcome, .. } => match outcome {
                Outcome::Applied { .. } => exit::OK,
                Outcome::Abandoned { .. } => exit::INTERRUPTED,
                Outcome::LockLost { .. } => exit::LOCKED,
                Outcome::RolledBack(failed)
                    if failed.iter().all(|f| f.rollback_errors.is_empty()) =>
                {
                    exit::ROLLED_BACK
                }
                Outcome::RolledBack(_) => exit::ERROR,
            },
        }
    }
}

/// Plans (or reads the saved plan), checks it may run, takes the lock and runs it.
///
/// Unattended runs (`auto_approve`) plan again under the lock, so a run that waited for the
/// lock applies what is true then; a plan someone approved (a saved one, or one confirmed
/// when asked) is applied as it is, or refused as stale.
pub async fn apply(options: &ApplyOptions, ui: &dyn Ui) -> Result<Applied> {
    let (fleet, plan, context, inputs) = match &options.plan_file {
        Some(file) => {
            let (fleet, plan, inputs) = saved_plan(file, options).await?;
            (fleet, plan, None, inputs)
        }
        None => {
            let context =
                context::connect(&options.source, &options.connection, &options.scope).await?;
            let plan = context.plan().await?;
            let fleet = context.fleet.clone();
            let inputs = Inputs {
                secrets: context.secrets.clone(),
                files: Arc::new(context.desired.files.clone()),
            };
            (fleet, plan, Some(context), inputs)
        }
    };
    let replan = context.filter(|_| options.auto_approve);
    if replan.is_none() || plan.waves.is_empty() {
        ui.show_plan(&plan);
    }
    check_runnable(&plan, options)?;
    if plan.waves.is_empty() {
        // Nothing to do, but a saved plan still promises the hosts are as it saw them.
        if options.plan_file.is_some() {
            check_stale(&fleet, &plan, &inputs.secrets).await?;
        } else if !plan.dead_locks.is_empty() {
            clear_dead_locks(&fleet, &plan, &options.lock, ui).await;
        }
        return Ok(Applied::Nothing);
    }
    if !options.auto_approve && !ui.confirm()? {
        return Ok(Applied::Cancelled);
    }
    let hosts = reachable_hosts(&plan);
    let notice = |m: String| ui.notice(m);
    let locks = match lock::acquire(&fleet, &plan.project, &hosts, &options.lock, &notice).await {
        Ok(l) => l,
        Err(e @ LockError::Held { .. }) => return Err(Error::Locked(e.to_string())),
        Err(e) => return Err(miette!("{e}").into()),
    };
    let applied = match &replan {
        Some(context) => match context.plan().await {
            Err(e) => Err(e),
            Ok(plan) => {
                ui.show_plan(&plan);
                match check_runnable(&plan, options) {
                    Err(e) => Err(e),
                    Ok(()) if reachable_hosts(&plan) != hosts => Err(miette!(
                        "the reachable hosts changed while waiting for the lock; run again"
                    )
                    .into()),
                    Ok(()) if plan.waves.is_empty() => Ok(Applied::Nothing),
                    Ok(()) => {
                        execute(&plan, &fleet, &inputs, ui, locks.fence(), &options.notifier).await
                    }
                }
            }
        },
        // Under the lock, the hosts must still be as planned (a saved plan, or someone
        // else's apply while this one waited for its confirmation).
        None => match check_stale(&fleet, &plan, &inputs.secrets).await {
            Err(stale) => Err(stale),
            Ok(()) => execute(&plan, &fleet, &inputs, ui, locks.fence(), &options.notifier).await,
        },
    };
    if let Err(e) = locks.release().await {
        ui.warn(format!("could not release the apply lock: {e}"));
    }
    applied
}

/// A lock left by an apply that died: take it over and let it go, so nothing of that apply
/// stays behind.
async fn clear_dead_locks(fleet: &Fleet, plan: &Plan, options: &LockOptions, ui: &dyn Ui) {
    let notice = |m: String| ui.notice(m);
    let hosts = reachable_hosts(plan);
    match lock::acquire(fleet, &plan.project, &hosts, options, &notice).await {
        Ok(locks) => {
            if let Err(e) = locks.release().await {
                ui.warn(format!("could not release the apply lock: {e}"));
            }
        }
        Err(e) => ui.warn(format!("the dead apply's lock stays: {e}")),
    }
}

/// Where a plan's pods get their secret values and repository files from.
struct Inputs {
    secrets: Arc<SecretSource>,
    files: Arc<FileContents>,
}

/// Reads a plan saved by `berth plan -o` and connects to its hosts.
async fn saved_plan(
    file: &std::path::Path,
    options: &ApplyOptions,
) -> Result<(Fleet, Plan, Inputs)> {
    let to = &options.connection;
    let name = file.display().to_string();
    let bytes =
        std::fs::read(file).map_err(|e| miette!("cannot read the plan file {name}: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        miette!(
            help = "a plan file is the JSON that `berth plan -o FILE` writes",
            "the plan file {name} is not UTF-8 text"
        )
    })?;
    let plan = crate::plan::saved::parse(&name, &text)?;
    check_saved_plan_policy(&plan, &name, &options.source)?;
    let inputs = saved_plan_inputs(&plan, &options.source);
    let secrets = &inputs.secrets;
    let unset: Vec<String> = crate::plan::saved::secrets_needed(&plan)
        .into_iter()
        .filter(|n| secrets.lookup(n).is_none())
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
        )
        .into());
    }
    let hosts: Vec<_> = plan
        .hosts
        .values()
        .filter(|h| h.reachable)
        .map(|h| h.connection.clone())
        .collect();
    let missing = crate::plan::saved::files_missing(&plan, &inputs.files);
    if !missing.is_empty() {
        return Err(miette!(
            help = "pass --repo with the repository the plan was made from (berth reads it at the plan's commit)",
            "the plan file {name} places files that are not in the repository at hand: {}",
            missing.join(", ")
        )
        .into());
    }
    let fleet = hosts::connect_all(&hosts, &to.ssh, to.max_handshakes).await;
    Ok((fleet, plan, inputs))
}

/// Under a policy, a saved plan is held to it as a repository is: its commit must be one the
/// policy lets deploy (read from `--repo`), and what it creates must be allowed.
fn check_saved_plan_policy(plan: &Plan, name: &str, source: &Source) -> Result<()> {
    let Some(policy) = super::policy::load(source.policy.as_deref(), &source.repo)? else {
        return Ok(());
    };
    if policy.allowed_signers.is_some() {
        let Some(commit) = &plan.commit else {
            return Err(miette!("the plan file {name} names no commit, and the policy lets only signed commits deploy").into());
        };
        let at_commit = Source {
            git_ref: Some(commit.clone()),
            ..source.clone()
        };
        let src = context::read_source(&at_commit)?;
        super::policy::check_commit(Some(&policy), source.policy.as_deref(), src.commit.as_ref())?;
    }
    let refused = crate::plan::saved::policy_refusals(plan, &policy);
    if !refused.is_empty() {
        return Err(miette!(
            help = "make the plan again from a commit the policy allows",
            "the plan file {name} does what the policy {} refuses:\n  {}",
            policy.file,
            refused.join("\n  ")
        )
        .into());
    }
    Ok(())
}

/// A saved plan's secrets (the environment and files, and the SOPS files of the repository)
/// and repository files, from `--repo` at the commit the plan was made from, when it can be
/// read there.
fn saved_plan_inputs(plan: &Plan, source: &Source) -> Inputs {
    let at_commit = plan.commit.as_ref().map(|commit| Source {
        git_ref: Some(commit.clone()),
        ..source.clone()
    });
    let (secrets, files) = match at_commit.map(|s| context::read_source(&s)) {
        Some(Ok(src)) => (
            SecretSource::with_repository(&src.files),
            by_hash(&src.files.blobs),
        ),
        _ => (SecretSource::environment(), FileContents::default()),
    };
    Inputs {
        secrets: Arc::new(secrets),
        files: Arc::new(files),
    }
}

/// Refuses a plan that must not run: unreachable hosts (unless allowed), unmanaged
/// containers in the way, a promote/abort/rollback with nothing to act on.
fn check_runnable(plan: &Plan, options: &ApplyOptions) -> Result<()> {
    check_unreachable(plan, &options.connection)?;
    let conflicts: Vec<String> = plan.conflicts().map(|c| c.message.clone()).collect();
    if !conflicts.is_empty() {
        return Err(miette!(
            help = "remove or rename the unmanaged containers, then plan again",
            "refusing to apply:\n{}",
            conflicts.join("\n")
        )
        .into());
    }
    let intents = &options.scope.intents;
    if plan.waves.is_empty() && !intents.is_empty() {
        let why: Vec<String> = plan
            .issues
            .iter()
            .filter(|i| i.kind == IssueKind::Rollout)
            .map(|i| i.message.clone())
            .collect();
        let names: Vec<&String> = intents.keys().collect();
        return Err(miette!(
            "nothing to do for {names:?}{}",
            if why.is_empty() {
                ": it is not selected or matches no host".to_string()
            } else {
                format!(": {}", why.join("; "))
            }
        )
        .into());
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

/// Refuses (stale) when a host's project containers differ from what the plan saw, or a pod
/// the plan keeps runs with another secret value than the one set now.
async fn check_stale(fleet: &Fleet, plan: &Plan, secrets: &SecretSource) -> Result<()> {
    let options = hosts::observe::ObserveOptions {
        project: plan.project.clone(),
        ..Default::default()
    };
    let observed = super::context::observe(fleet, &options).await;
    let mut stale: Vec<String> = crate::plan::saved::secrets_changed_since(plan, &observed, &|n| secrets.lookup(n))
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
        Ok(())
    } else {
        Err(Error::Stale(stale))
    }
}

async fn execute(
    plan: &Plan,
    fleet: &Fleet,
    inputs: &Inputs,
    ui: &dyn Ui,
    fence: apply::Fence,
    notifier: &super::notify::Notifier,
) -> Result<Applied> {
    use super::notify::Event;
    if let Some(warning) = notifier
        .send(&Event::of("apply.started", plan, vec![]))
        .await
    {
        ui.warn(warning);
    }
    let source = &inputs.secrets;
    let values = source.clone();
    let secrets: apply::Secrets = Arc::new(move |name: &str| values.lookup(name));
    let hosts: Vec<String> = plan
        .waves
        .iter()
        .flat_map(|w| w.steps.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let logins = Arc::new(super::registry::logins(
        plan.images(),
        &plan.registries,
        &|name: &str| source.lookup(name),
    )?);
    let started = Instant::now();
    let pod_inputs = apply::PodInputs {
        secrets,
        files: inputs.files.clone(),
        seals: Default::default(),
    };
    let outcome = apply::execute(plan, fleet, pod_inputs, logins, ui.progress(&hosts), fence)
        .await
        .map_err(|e| miette!("{e}"))?;
    // Not after a lost lock: the hosts are another apply's now, and it keeps their history.
    if !matches!(outcome, Outcome::LockLost { .. }) {
        for warning in super::history::record(fleet, plan, &hosts, &outcome).await {
            ui.warn(warning);
        }
    }
    let event = Event::of(ended_event(&outcome), plan, failure_lines(&outcome));
    if let Some(warning) = notifier.send(&event).await {
        ui.warn(warning);
    }
    Ok(Applied::Ran {
        outcome,
        elapsed: started.elapsed(),
        summary: crate::render::summary(plan),
    })
}

/// The event an apply's end is.
fn ended_event(outcome: &Outcome) -> &'static str {
    match super::history::result_word(outcome) {
        "applied" => "apply.succeeded",
        "rolled back" => "apply.rolled_back",
        "interrupted" => "apply.interrupted",
        _ => "apply.failed",
    }
}

/// What went wrong, a line per failed step and rollback error.
fn failure_lines(outcome: &Outcome) -> Vec<String> {
    let failed = match outcome {
        Outcome::RolledBack(failed) => failed,
        Outcome::LockLost { why } => return vec![why.clone()],
        _ => return vec![],
    };
    failed
        .iter()
        .flat_map(|f| {
            let steps = f
                .failures
                .iter()
                .map(move |s| format!("{}: {}: {}", f.wave, s.host, s.message));
            steps.chain(f.rollback_errors.iter().map(|e| format!("rollback: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{FailedWave, Waits};

    fn ran(outcome: Outcome) -> Applied {
        Applied::Ran {
            outcome,
            elapsed: Duration::ZERO,
            summary: String::new(),
        }
    }

    fn failed(rollback_errors: &[&str]) -> FailedWave {
        FailedWave {
            wave: "web: wave 1".into(),
            failures: vec![],
            rollback_errors: rollback_errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn each_way_an_apply_ends_has_its_exit_code() {
        assert_eq!(Applied::Nothing.exit_code(), exit::OK);
        assert_eq!(Applied::Cancelled.exit_code(), exit::ERROR);
        let done = Outcome::Applied {
            waits: Waits::default(),
        };
        assert_eq!(ran(done).exit_code(), exit::OK);
        let clean = Outcome::RolledBack(vec![failed(&[]), failed(&[])]);
        assert_eq!(ran(clean).exit_code(), exit::ROLLED_BACK);
        // A rollback that itself failed somewhere is an error, not a clean rollback.
        let messy = Outcome::RolledBack(vec![failed(&[]), failed(&["h1: remove failed"])]);
        assert_eq!(ran(messy).exit_code(), exit::ERROR);
        let lost = Outcome::LockLost {
            why: "taken".into(),
        };
        assert_eq!(ran(lost).exit_code(), exit::LOCKED);
        let abandoned = Outcome::Abandoned { signal: "SIGINT" };
        assert_eq!(ran(abandoned).exit_code(), exit::INTERRUPTED);
    }

    #[test]
    fn refusals_locks_and_stale_plans_have_their_exit_codes() {
        assert_eq!(Error::from(miette!("bad")).exit_code(), exit::ERROR);
        assert_eq!(Error::Locked("held".into()).exit_code(), exit::LOCKED);
        let stale = Error::Stale(vec!["h1 changed since the plan was made".into()]);
        assert_eq!(stale.exit_code(), exit::STALE);
        assert!(stale.to_string().contains("h1 changed"), "{stale}");
    }
}
