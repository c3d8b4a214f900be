use super::common::*;
use super::exit;
use crate::ops::context::{load_repo, parse_selector, Secrets};
use clap::Args;
use miette::Result;

/// Print the desired state after defaults, offline (no host is contacted): for reviewing a
/// pull request without host credentials.
///
/// Examples:
///   berth render --repo . -l tier=frontend --format json
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct RenderArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// text or json.
    #[arg(long, value_enum, default_value = "text")]
    pub format: StateFormat,
}

pub fn run(a: RenderArgs) -> Result<u8> {
    let mut state = load_repo(&a.repo.source(None), Secrets::NotNeeded)?;
    if let Some(sel) = parse_selector(&a.repo.selector)? {
        state.deployments.retain(|d| sel.matches(&d.labels));
    }
    match a.format {
        StateFormat::Json => {
            crate::outln!("{}", serde_json::to_string_pretty(&state).expect("json"))
        }
        StateFormat::Text => crate::out!("{}", crate::render::desired::text(&state)),
    }
    Ok(exit::OK)
}
