use super::common::*;
use crate::ops::context::{connect_hosts, load_repo, parse_selector, Secrets};
use crate::ops::pods::{deployments, logs, LogsOptions, PodFilter};
use clap::Args;
use miette::Result;
use std::time::Duration;

/// Show the logs of every pod of a deployment (or of every deployment) across hosts, merged
/// in time order, each line prefixed with its host and pod.
///
/// Pod names change with every revision; this finds them. With -f, new lines are printed as
/// they come, from new pods too (a rollout's), until Ctrl-C.
///
/// Examples:
///   berth logs web --tail 50
///   berth logs web -f --since 10m
///   berth logs -l tier=frontend --host h1 --timestamps
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct LogsArgs {
    /// The deployment (default: every deployment, or those -l selects).
    pub deployment: Option<String>,
    /// Keep printing new lines until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
    /// Only lines written in this last while (`30s`, `10m`, `2h`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Only the last N lines of each container (default: all).
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
    /// Only pods on this host.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Show each line's time as the engine recorded it.
    #[arg(long)]
    pub timestamps: bool,
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
}

pub fn run(a: LogsArgs) -> Result<u8> {
    let filter = PodFilter {
        deployment: a.deployment.clone(),
        selector: parse_selector(&a.repo.selector)?,
        host: a.host.clone(),
    };
    let desired = load_repo(&a.repo.source(Some(&a.ssh)), Secrets::NotNeeded)?;
    let names = deployments(&desired, &filter)?;
    check_host(&desired, a.host.as_deref())?;
    let to = a.ssh.connection()?;
    let since = a.since.map(|d| {
        let now = crate::here::unix_now() as i64;
        now - d.as_secs() as i64
    });
    let options = LogsOptions {
        follow: a.follow,
        since,
        tail: a.tail,
        timestamps: a.timestamps,
    };
    runtime().block_on(async {
        let fleet = connect_hosts(&desired, &to).await;
        let down: Vec<String> = (fleet.failed.iter())
            .filter(|(h, _)| a.host.as_deref().is_none_or(|x| x == h.as_str()))
            .map(|(h, e)| format!("{h} is unreachable: {e}"))
            .collect();
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let print = |line: &str| crate::outln!("{line}");
        let followed = logs(
            &fleet,
            &desired.project,
            &names,
            a.host.as_deref(),
            &options,
            &print,
            stop,
        )
        .await?;
        let which = names.iter().cloned().collect::<Vec<_>>().join(", ");
        // Logs from some hosts only are not the logs asked for: the run fails, naming the
        // hosts left out.
        if !down.is_empty() {
            return Err(miette::miette!(
                help = "pass --host to read the logs of one host that answers",
                "the logs of {which} leave out host(s) that could not be reached:\n{}",
                down.join("\n")
            ));
        }
        if followed == 0 {
            eprintln!("no pod of {which} runs on the hosts");
        }
        Ok(super::exit::OK)
    })
}

/// A `--host` that is not in the inventory is a mistake worth saying.
pub fn check_host(desired: &crate::model::DesiredState, host: Option<&str>) -> Result<()> {
    match host {
        Some(h) if !desired.hosts.iter().any(|x| x.name == h) => {
            let names: Vec<&str> = desired.hosts.iter().map(|x| x.name.as_str()).collect();
            Err(miette::miette!(
                help = format!("the hosts are: {}", names.join(", ")),
                "there is no host named {h} in the inventory"
            ))
        }
        _ => Ok(()),
    }
}
