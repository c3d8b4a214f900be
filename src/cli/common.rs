//! Options shared by the subcommands, and the steps they share: load the repository, connect,
//! observe, plan.

use crate::hosts::{self, observe::ObserveOptions, ssh::SshOptions, Fleet};
use crate::model::{DesiredState, Selector};
use crate::plan::{self, Plan, PlanInput};
use crate::render::Format;
use crate::repo::{self, source};
use clap::Args;
use miette::{miette, Result};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct RepoArgs {
    /// The repository: a local path (Git checkout, a folder in one, or a plain directory) or a
    /// URL (https://, ssh://, git@host:path).
    #[arg(long, env = "BERTH_REPO", default_value = ".")]
    pub repo: String,
    /// Branch, tag or commit to read (default: HEAD, or the remote's default branch).
    #[arg(long = "ref", env = "BERTH_REF")]
    pub git_ref: Option<String>,
    /// Only deployments whose labels match this selector, e.g. `app=web,env in (prod)`.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Where remote repositories are cached (default: $XDG_CACHE_HOME/berth or ~/.cache/berth).
    #[arg(long, env = "BERTH_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct SshArgs {
    /// known_hosts file that host keys are checked against (default ~/.ssh/known_hosts).
    #[arg(long, env = "BERTH_KNOWN_HOSTS")]
    pub known_hosts: Option<PathBuf>,
    /// Record unknown host keys in known_hosts (changed keys are always refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Private key file to authenticate with (repeatable). `BERTH_SSH_KEY` may hold a key's
    /// text instead; without either, ssh-agent and ~/.ssh/id_* are tried.
    #[arg(short = 'i', long = "identity", env = "BERTH_IDENTITY")]
    pub identity: Vec<PathBuf>,
    /// How long to wait for a host's SSH handshake and Docker engine (`10`, `10s`, `1m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub connect_timeout: Duration,
    /// How long one Docker API call may take; an image pull is one call.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "300s")]
    pub command_timeout: Duration,
    /// At most this many SSH handshakes at once.
    #[arg(long, default_value_t = 10)]
    pub max_handshakes: usize,
    /// Plan and apply on the reachable hosts when some are unreachable (otherwise exit 1).
    #[arg(long)]
    pub allow_unreachable: bool,
}

/// How an apply takes the project's lock.
#[derive(Args, Debug, Clone)]
pub struct LockArgs {
    /// Wait up to this long for a lock someone else holds (e.g. `90s`, `5m`) instead of
    /// exiting 4.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lock_wait: Option<Duration>,
    /// How long the lock outlives this apply if it dies without releasing it (renewed while
    /// it runs); after that the next apply takes the lock over.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub lock_lease: Duration,
}

impl LockArgs {
    pub fn options(&self) -> crate::apply::lock::LockOptions {
        crate::apply::lock::LockOptions {
            wait: self.lock_wait.unwrap_or_default(),
            lease: self.lock_lease.max(Duration::from_secs(1)),
        }
    }
}

/// A duration flag in the repository's units (`500ms`, `30s`, `5m`, `1h`).
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    repo::units::duration_ms(text).map(Duration::from_millis)
}

/// What a plan covers beyond pods declared in Git.
#[derive(Args, Debug, Clone, Default)]
pub struct PlanFlags {
    /// Remove pods of deployments that are no longer declared in Git.
    #[arg(long)]
    pub prune: bool,
    /// With --prune, also remove berth's volumes that no deployment declares and no
    /// remaining container mounts (their data is lost).
    #[arg(long, requires = "prune")]
    pub prune_volumes: bool,
    /// Kept for old scripts: every managed container is inspected anyway (resources changed
    /// by `docker update`, service membership).
    #[arg(long, hide = true, conflicts_with = "fast")]
    pub deep: bool,
    /// Skip inspecting each managed container: plan from the container list alone (one
    /// request per host), blind to `docker update` and to pods outside their service name.
    #[arg(long)]
    pub fast: bool,
    /// Roll out again a revision whose rolling or recreate rollout failed before (without
    /// it, `sync` leaves such a revision alone until Git changes).
    #[arg(long)]
    pub retry: bool,
    /// Set by `promote`, `abort` and `rollback`: the plan covers only these deployments.
    #[arg(skip)]
    pub intents: std::collections::BTreeMap<String, plan::Intent>,
}

fn known_hosts_path(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| home().join(".ssh").join("known_hosts"))
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

impl SshArgs {
    pub fn options(&self) -> SshOptions {
        let mut identities = self.identity.clone();
        let key_text = std::env::var("BERTH_SSH_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty());
        if identities.is_empty()
            && key_text.is_none()
            && std::env::var_os("SSH_AUTH_SOCK").is_none()
        {
            for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                let p = home().join(".ssh").join(name);
                if p.exists() {
                    identities.push(p);
                }
            }
        }
        SshOptions {
            known_hosts: known_hosts_path(self.known_hosts.clone()),
            accept_new_host_keys: self.accept_new_host_keys,
            identities,
            key_text,
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
        }
    }
}

pub fn secret_lookup(name: &str) -> Option<String> {
    std::env::var(repo::load::secret_env_var(name)).ok()
}

/// `--format text|json|markdown`: the words of the flag for the renderer's formats.
impl clap::ValueEnum for Format {
    fn value_variants<'a>() -> &'a [Self] {
        &[Format::Text, Format::Json, Format::Markdown]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Markdown => "markdown",
        }))
    }
}

pub fn color_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub fn parse_selector(text: &Option<String>) -> Result<Option<Selector>> {
    let Some(text) = text else { return Ok(None) };
    Selector::parse(text).map(Some).map_err(|e| {
        // The reason is in the message too: a label past the end of the text is not shown.
        let at = e.offset.min(text.len());
        let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
        miette::miette!(
            labels = vec![miette::LabeledSpan::at(at..end, "here")],
            "invalid selector for -l: {}",
            e.message
        )
        .with_source_code(text.clone())
    })
}

/// Reads and validates the repository. Problems are printed as diagnostics.
pub fn load_repo(args: &RepoArgs, ssh: Option<&SshArgs>, secrets: Secrets) -> Result<DesiredState> {
    let cache_dir = args.cache_dir.clone().unwrap_or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home().join(".cache"))
            .join("berth")
    });
    // Commands without SSH options (render) still honour BERTH_KNOWN_HOSTS for ssh:// repos.
    let given = ssh
        .and_then(|s| s.known_hosts.clone())
        .or_else(|| std::env::var_os("BERTH_KNOWN_HOSTS").map(PathBuf::from));
    let known_hosts = known_hosts_path(given);
    let req = source::SourceRequest {
        repo: &args.repo,
        git_ref: args.git_ref.as_deref(),
        cache_dir,
        known_hosts,
        credentials: source::GitCredentials::from_env(),
    };
    let src = source::read(&req)?;
    for w in &src.warnings {
        eprintln!("warning: {w}");
    }
    match secrets {
        Secrets::NotNeeded => repo::load::load_with(&src.files, None, None),
        Secrets::ForSelected => {
            let selector = parse_selector(&args.selector)?;
            repo::load::load_with(&src.files, Some(&secret_lookup), selector.as_ref())
        }
    }
    .map_err(miette::Report::new)
}

/// Whether a command needs the values of the secrets the deployments name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Offline or read-only commands: no value is read (render, status, lock).
    NotNeeded,
    /// Planning: the secrets of the deployments `-l` selects must be set.
    ForSelected,
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The repository loaded and its hosts connected: what planning (again) needs.
pub struct Context {
    pub fleet: Fleet,
    pub desired: DesiredState,
    pub selector: Option<Selector>,
    pub flags: PlanFlags,
}

impl Context {
    /// Observes the hosts and builds the plan. Every managed container is inspected as well
    /// (resources, service membership), so that whatever a killed apply or a hand left behind
    /// is seen and repaired by a plain plan; `--fast` skips that.
    pub async fn plan(&self) -> Plan {
        let options = ObserveOptions {
            project: self.desired.project.clone(),
            volumes: self.flags.prune_volumes,
            deep: !self.flags.fast,
        };
        let observed = self.fleet.observe(&options).await;
        plan::build(&PlanInput {
            desired: &self.desired,
            observed: &observed,
            selector: self.selector.as_ref(),
            prune: self.flags.prune,
            prune_volumes: self.flags.prune_volumes,
            now: crate::apply::unix_now(),
            intents: self.flags.intents.clone(),
            retry: self.flags.retry,
        })
    }
}

/// Loads the repository and connects to its hosts.
pub async fn connect(repo: &RepoArgs, ssh: &SshArgs, flags: &PlanFlags) -> Result<Context> {
    let selector = parse_selector(&repo.selector)?;
    let desired = load_repo(repo, Some(ssh), Secrets::ForSelected)?;
    // promote/abort/rollback of a deployment Git does not declare: say so before any host.
    for name in flags.intents.keys() {
        if !desired.deployments.iter().any(|d| &d.name == name) {
            let declared: Vec<&str> = desired
                .deployments
                .iter()
                .map(|d| d.name.as_str())
                .collect();
            return Err(miette!(
                help = format!("the deployments are: {}", declared.join(", ")),
                "there is no deployment named {name} in the repository"
            ));
        }
    }
    let fleet = hosts::connect_all(&desired.hosts, &ssh.options(), ssh.max_handshakes).await;
    Ok(Context {
        fleet,
        desired,
        selector,
        flags: flags.clone(),
    })
}

/// Loads the repository, connects to its hosts, observes them and builds the plan.
pub async fn connect_and_plan(
    repo: &RepoArgs,
    ssh: &SshArgs,
    flags: &PlanFlags,
) -> Result<(Fleet, Plan)> {
    let context = connect(repo, ssh, flags).await?;
    let plan = context.plan().await;
    Ok((context.fleet, plan))
}

pub fn print_plan(plan: &Plan, format: Format) {
    match format {
        Format::Text => crate::out!("{}", crate::render::text::plan(plan, color_stdout())),
        Format::Json => crate::outln!("{}", crate::render::json(plan)),
        Format::Markdown => crate::out!("{}", crate::render::markdown::plan(plan)),
    }
}

/// Unreachable hosts stop the run unless `--allow-unreachable`.
pub fn check_unreachable(plan: &Plan, ssh: &SshArgs) -> Result<()> {
    let down: Vec<String> = plan.unreachable().map(|i| i.message.clone()).collect();
    if !down.is_empty() && !ssh.allow_unreachable {
        return Err(miette!(
            help = "rerun with --allow-unreachable to go on with the reachable hosts",
            "{}",
            down.join("\n")
        ));
    }
    Ok(())
}
