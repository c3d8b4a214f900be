use super::common::*;
use super::exit;
use crate::diff::status::status;
use crate::hosts::observe::ObserveOptions;
use crate::ops::context::{connect_hosts, load_repo, parse_selector, Secrets};
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
    let observed = runtime().block_on(async {
        let fleet = connect_hosts(&desired, &to).await;
        // Deep: an inspect per pod container shows which pods are behind their service.
        let options = ObserveOptions {
            project: desired.project.clone(),
            volumes: false,
            deep: true,
            images: vec![],
            edge_admin_port: None,
        };
        fleet.observe(&options).await
    });
    // Offline as to registries: each image is taken at the digest its pods run.
    let (desired, _) = crate::plan::digests::settle(&desired, &Default::default(), &observed);
    let s = status(&desired, &observed, selector.as_ref());
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
