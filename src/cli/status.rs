use super::common::*;
use super::exit;
use crate::ops::context::{load_repo, parse_selector, Depth, Secrets};
use clap::Args;
use miette::Result;

/// Show each deployment as it runs: ready pods against replicas at the desired revision,
/// pods per host with their state, health and service membership, and any canary or
/// blue-green rollout in progress.
///
/// Examples:
///   berth status --repo ./deploy -l app=web
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct StatusArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// text or json.
    #[arg(long, value_enum, default_value = "text")]
    pub format: StateFormat,
}

pub fn run(a: StatusArgs) -> Result<u8> {
    let selector = parse_selector(&a.repo.selector)?;
    let desired = load_repo(&a.repo.source(Some(&a.ssh)), Secrets::NotNeeded)?;
    let to = a.ssh.connection()?;
    // Deep: an inspect per pod container shows which pods are behind their service.
    let status = crate::ops::status::status(&desired, &to, Depth::Deep, selector.as_ref());
    let s = runtime().block_on(status);
    match a.format {
        StateFormat::Json => crate::outln!("{}", serde_json::to_string_pretty(&s).expect("json")),
        StateFormat::Text => crate::out!("{}", crate::render::status_text(&s)),
    }
    Ok(if s.unreachable.is_empty() || a.ssh.allow_unreachable {
        exit::OK
    } else {
        exit::ERROR
    })
}
