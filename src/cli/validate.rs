use super::common::*;
use super::exit;
use crate::ops::context::{load_repo, Secrets};
use clap::Args;
use miette::Result;

/// Check the repository offline, as render and plan do, without contacting a host or
/// needing a secret: every problem is reported at its file, line and column, and berth exits
/// 1 when there is one. It reads the files as they are on disk (what a pre-commit hook
/// checks); --ref checks a commit instead.
///
/// Examples:
///   berth validate
///   berth validate --repo ./deploy --ref main
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
}

pub fn run(a: ValidateArgs) -> Result<u8> {
    let source = crate::ops::context::Source {
        worktree: true,
        ..a.repo.source(None)
    };
    crate::ops::context::parse_selector(&a.repo.selector)?;
    let state = load_repo(&source, Secrets::NotNeeded)?;
    let pods: u32 = state.deployments.iter().map(|d| d.replicas).sum();
    crate::outln!(
        "valid: project {}, {} host(s), {} deployment(s), {pods} pod(s)",
        state.project,
        state.hosts.len(),
        state.deployments.len()
    );
    Ok(exit::OK)
}
