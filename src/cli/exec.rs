use super::common::*;
use crate::ops::context::{load_repo, observe_hosts, Depth, Secrets};
use crate::ops::pods::{choose, deployments, exec, pod_containers, ExecMode, PodFilter};
use clap::Args;
use miette::Result;

/// Run a command in one pod of a deployment: the one --pod names, or the first ready one
/// (on --host, if given). berth exits with the command's exit code.
///
/// Examples:
///   berth exec web -- env
///   berth exec web --host h2 --container app -- cat /etc/app/db.conf
///   berth exec web -it -- sh
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
// -i is `--interactive` here, as in `docker exec` and `kubectl exec`; keys with `--identity`.
#[command(mut_arg("identity", |a| a.short(None)))]
pub struct ExecArgs {
    /// The deployment whose pod runs the command.
    pub deployment: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
    /// The pod to run in (see `berth ps`).
    #[arg(long, conflicts_with = "host")]
    pub pod: Option<String>,
    /// The first ready pod on this host.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// The pod's container (default: its first).
    #[arg(short, long)]
    pub container: Option<String>,
    /// Pass berth's input to the command.
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a terminal (with -i: an interactive shell).
    #[arg(short, long)]
    pub tty: bool,
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
}

pub fn run(a: ExecArgs) -> Result<u8> {
    let filter = PodFilter {
        deployment: Some(a.deployment.clone()),
        ..Default::default()
    };
    let desired = load_repo(&a.repo.source(Some(&a.ssh)), Secrets::NotNeeded)?;
    let names = deployments(&desired, &filter)?;
    super::logs::check_host(&desired, a.host.as_deref())?;
    let to = a.ssh.connection()?;
    let mode = ExecMode {
        stdin: a.interactive,
        tty: a.tty,
    };
    runtime().block_on(async {
        let (fleet, observed) = observe_hosts(&desired, &to, Depth::Shallow).await;
        let containers = pod_containers(&observed, &desired.project, &names, a.host.as_deref());
        let down: Vec<String> = (fleet.failed.iter())
            .filter(|(h, _)| a.host.as_deref().is_none_or(|x| x == h.as_str()))
            .map(|(h, e)| format!("{h} is unreachable: {e}"))
            .collect();
        let target =
            choose(&containers, a.pod.as_deref(), a.container.as_deref()).map_err(|why| {
                // The pod may be on a host nobody could reach: say so, not only "no pod".
                match down.is_empty() {
                    true => miette::miette!("{why}"),
                    false => miette::miette!("{why} on the reachable hosts; {}", down.join("; ")),
                }
            })?;
        let raw = (a.tty && a.interactive)
            .then(crate::cli::terminal::Raw::enter)
            .flatten();
        let code = exec(&fleet, &target.host, &target.name, &a.command, mode).await;
        drop(raw);
        let code = code?;
        Ok(u8::try_from(code).unwrap_or(super::exit::ERROR))
    })
}
