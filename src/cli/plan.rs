use super::common::*;
use super::exit;
use crate::ops::context;
use crate::render::Format;
use clap::Args;
use miette::Result;
use std::path::PathBuf;

/// Show what would change: compare Git with the live containers on every host.
///
/// Examples:
///   berth plan --repo ./deploy -l app=web -o plan.json
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct PlanArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Save the plan (JSON) for `berth apply FILE`.
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
    /// Exit 2 when there are changes (pending or drift).
    #[arg(long)]
    pub exit_code: bool,
    #[command(flatten)]
    pub flags: PlanFlags,
}

pub fn run(a: PlanArgs) -> Result<u8> {
    let to = a.ssh.connection()?;
    // Made to be read (a pull request's plan among them): the repository's registry logins
    // go only to registries the operator's policy lists.
    let scope = context::PlanScope {
        for_review: true,
        ..a.flags.scope()
    };
    let (_fleet, plan) =
        runtime().block_on(context::plan(&a.repo.source(Some(&a.ssh)), &to, &scope))?;
    print_plan(&plan, a.format);
    if let Some(out) = &a.out {
        std::fs::write(out, crate::render::json(&plan))
            .map_err(|e| miette::miette!("cannot write the plan to {}: {e}", out.display()))?;
        eprintln!("plan saved to {}", out.display());
    }
    context::check_unreachable(&plan, &to)?;
    Ok(if a.exit_code && plan.has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    })
}
