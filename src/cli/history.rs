use super::common::*;
use crate::model::history::ApplyRecord;
use crate::ops::context::{connect_hosts, load_repo, Secrets};
use clap::Args;
use miette::Result;

/// Show the applies recorded on the hosts, newest first: when, who from which machine, the
/// commit, what changed and how it ended. Each apply is recorded on every host it touched,
/// so the history does not depend on one operator's machine.
///
/// Examples:
///   berth history
///   berth history web --limit 5 --format json
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct HistoryArgs {
    /// Only the applies that changed this deployment.
    pub deployment: Option<String>,
    /// At most this many (newest first).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// text or json.
    #[arg(long, value_enum, default_value = "text")]
    pub format: StateFormat,
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
}

pub fn table(records: &[ApplyRecord]) -> String {
    let mut out = String::new();
    for r in records {
        let commit = r
            .commit
            .as_deref()
            .map_or("-".to_string(), |c| c.chars().take(12).collect());
        out.push_str(&format!(
            "{}  {:<11}  {}@{}  {commit}  {}: {}\n",
            crate::model::rollout::rfc3339(r.at),
            r.result,
            r.user,
            r.machine,
            if r.deployments.is_empty() {
                "-".to_string()
            } else {
                r.deployments.join(",")
            },
            r.summary
        ));
    }
    out
}

pub fn run(a: HistoryArgs) -> Result<u8> {
    let desired = load_repo(&a.repo.source(Some(&a.ssh)), Secrets::NotNeeded)?;
    let to = a.ssh.connection()?;
    let (records, failed) = runtime().block_on(async {
        let fleet = connect_hosts(&desired, &to).await;
        let (records, mut failed) =
            crate::ops::history::history(&fleet, &desired.project, a.deployment.as_deref()).await;
        failed.extend(
            fleet
                .failed
                .iter()
                .map(|(h, e)| format!("{h} is unreachable: {e}")),
        );
        (records, failed)
    });
    for f in &failed {
        eprintln!("warning: {f} (its records are not shown)");
    }
    let records: Vec<ApplyRecord> = records.into_iter().take(a.limit).collect();
    match a.format {
        StateFormat::Json => {
            crate::outln!("{}", serde_json::to_string_pretty(&records).expect("json"))
        }
        StateFormat::Text if records.is_empty() => {
            crate::outln!("no apply is recorded on the reachable hosts")
        }
        StateFormat::Text => crate::out!("{}", table(&records)),
    }
    Ok(if failed.is_empty() || a.ssh.allow_unreachable {
        super::exit::OK
    } else {
        super::exit::ERROR
    })
}
