//! Flags shared by the subcommands, turned into the options `ops` takes, and printing.

use crate::ops::context::{
    home, known_hosts_path, ClientConfig, Connection, PlanScope, Source, SshOptions,
};
use crate::plan::{self, Plan};
use crate::render::Format;
use crate::repo;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct RepoArgs {
    /// The repository: a local path (Git checkout, a folder in one, or a plain directory) or a
    /// URL (https://, ssh://, git@host:path).
    #[arg(
        long,
        env = "BERTH_REPO",
        default_value = ".",
        help_heading = "Repository"
    )]
    pub repo: String,
    /// Branch, tag or commit to read, as git names it in the checkout (default: HEAD, what is
    /// checked out; `main` is the local branch, `origin/main` the remote-tracking one); for a
    /// URL, the remote's branch (default: its default branch).
    #[arg(long = "ref", env = "BERTH_REF", help_heading = "Repository")]
    pub git_ref: Option<String>,
    /// Only deployments whose labels match this selector, e.g. `app=web,env in (prod)`.
    #[arg(short = 'l', long = "selector", help_heading = "Repository")]
    pub selector: Option<String>,
    /// Where remote repositories are cached (default: $XDG_CACHE_HOME/berth or ~/.cache/berth).
    #[arg(long, env = "BERTH_CACHE_DIR", help_heading = "Repository")]
    pub cache_dir: Option<PathBuf>,
    /// The environment, when berth.yaml declares `environments:` (e.g. staging, production).
    #[arg(
        short = 'e',
        long = "env",
        env = "BERTH_ENV",
        value_name = "ENV",
        help_heading = "Repository"
    )]
    pub environment: Option<String>,
    /// The operator's policy (YAML, outside the repository): which commits may deploy
    /// (signed by listed SSH keys), which registries, images, host paths, host network and
    /// secrets a commit may use. Checked before any host is contacted (docs/policy.md).
    #[arg(
        long,
        env = "BERTH_POLICY",
        value_name = "FILE",
        help_heading = "Repository"
    )]
    pub policy: Option<PathBuf>,
    /// For a repository URL: how long the Git server may send nothing during a fetch before
    /// berth gives up on it (`60s`, `2m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout, default_value = "60s", help_heading = "Repository")]
    pub git_timeout: std::time::Duration,
}

#[derive(Args, Debug, Clone, Default)]
pub struct NotifyArgs {
    /// POST a JSON event here for each apply started and ended (succeeded, rolled back,
    /// failed, interrupted) and each drift found. Kept out of Git and never printed: such
    /// URLs often hold a token. With the secret `webhook` set (BERTH_SECRET_WEBHOOK, its
    /// _FILE, or $BERTH_SECRETS_DIR/webhook), each payload is signed: X-Berth-Signature is
    /// sha256=HMAC-SHA256 of "TIMESTAMP.BODY", X-Berth-Timestamp the time.
    #[arg(
        help_heading = "Notifications",
        long,
        env = "BERTH_WEBHOOK_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub webhook_url: Option<String>,
}

impl NotifyArgs {
    pub fn notifier(&self) -> crate::ops::notify::Notifier {
        // The signing key is a secret like any other: BERTH_SECRET_WEBHOOK, its _FILE, or
        // `webhook` in $BERTH_SECRETS_DIR.
        let key = crate::ops::context::secret_from("webhook", &|v| std::env::var_os(v));
        crate::ops::notify::Notifier::webhook(self.webhook_url.clone(), key)
    }
}

#[derive(Args, Debug, Clone)]
pub struct SshArgs {
    /// known_hosts file that host keys are checked against (default ~/.ssh/known_hosts).
    #[arg(long, env = "BERTH_KNOWN_HOSTS", help_heading = "SSH")]
    pub known_hosts: Option<PathBuf>,
    /// Record unknown host keys in known_hosts (changed keys are always refused).
    #[arg(long, help_heading = "SSH")]
    pub accept_new_host_keys: bool,
    /// Private key file to authenticate with (repeatable). `BERTH_SSH_KEY` may hold a key's
    /// text instead; without either, ssh-agent and ~/.ssh/id_* are tried.
    #[arg(
        short = 'i',
        long = "identity",
        env = "BERTH_IDENTITY",
        help_heading = "SSH"
    )]
    pub identity: Vec<PathBuf>,
    /// How long to wait for a host's SSH handshake and Docker engine (`10`, `10s`, `1m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout, default_value = "10s", help_heading = "SSH")]
    pub connect_timeout: Duration,
    /// How long one Docker API call may take, its answer included (a stop: plus its grace
    /// time); a pull must make progress this often. A host that misses it is not asked again
    /// in this run.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout, default_value = "300s", help_heading = "SSH")]
    pub command_timeout: Duration,
    /// How long one image pull may take in all.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout, default_value = "30m", help_heading = "SSH")]
    pub pull_timeout: Duration,
    /// At most this many SSH handshakes at once (and at most 10 to any one SSH server, as
    /// sshd's default MaxStartups drops more).
    #[arg(long, default_value_t = 64, help_heading = "SSH")]
    pub max_handshakes: usize,
    /// Plan and apply on the reachable hosts when some are unreachable (otherwise exit 1).
    #[arg(long, help_heading = "SSH")]
    pub allow_unreachable: bool,
    /// OpenSSH client configuration to read host aliases, users, ports, keys, known_hosts
    /// files and bastions (ProxyJump) from (default: ~/.ssh/config when it exists; `none`:
    /// no file).
    #[arg(
        long,
        env = "BERTH_SSH_CONFIG",
        value_name = "FILE",
        help_heading = "SSH"
    )]
    pub ssh_config: Option<PathBuf>,
}

/// How an apply takes the project's lock.
#[derive(Args, Debug, Clone)]
pub struct LockArgs {
    /// Wait up to this long for a lock someone else holds (e.g. `90s`, `5m`) instead of
    /// exiting 4.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Lock")]
    pub lock_wait: Option<Duration>,
    /// How long the lock outlives this apply if it dies without releasing it (renewed while
    /// it runs); after that the next apply takes the lock over.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s", help_heading = "Lock")]
    pub lock_lease: Duration,
}

impl LockArgs {
    pub fn options(&self) -> crate::ops::lock::LockOptions {
        crate::ops::lock::LockOptions {
            wait: self.lock_wait.unwrap_or_default(),
            lease: self.lock_lease.max(Duration::from_secs(1)),
        }
    }
}

/// A duration flag in the repository's units (`500ms`, `30s`, `5m`, `1h`).
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    repo::units::duration_ms(text).map(Duration::from_millis)
}

/// A timeout: a duration of at least a second (the engine and Git deadlines count seconds,
/// and 0 would end every call at once).
pub fn parse_timeout(text: &str) -> std::result::Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < Duration::from_secs(1) {
        return Err(format!("{text} is too short: a timeout is at least 1s"));
    }
    Ok(d)
}

/// What a plan covers beyond pods declared in Git.
#[derive(Args, Debug, Clone, Default)]
pub struct PlanFlags {
    /// Remove pods of deployments that are no longer declared in Git.
    #[arg(long, help_heading = "Plan")]
    pub prune: bool,
    /// With --prune, also remove berth's volumes that no deployment declares and no
    /// remaining container mounts (their data is lost).
    #[arg(long, requires = "prune", help_heading = "Plan")]
    pub prune_volumes: bool,
    /// Kept for old scripts: every managed container is inspected anyway (resources changed
    /// by `docker update`, service membership).
    #[arg(long, hide = true, conflicts_with = "fast", help_heading = "Plan")]
    pub deep: bool,
    /// Skip inspecting each managed container: plan from the container list alone (one
    /// request per host), blind to `docker update` and to pods outside their service name.
    #[arg(long, help_heading = "Plan")]
    pub fast: bool,
    /// Roll out again a revision whose rolling or recreate rollout failed before (without
    /// it, `sync` leaves such a revision alone until Git changes).
    #[arg(long, help_heading = "Plan")]
    pub retry: bool,
    /// Set by `promote`, `abort` and `rollback`: the plan covers only these deployments.
    #[arg(skip)]
    pub intents: std::collections::BTreeMap<String, plan::Intent>,
    /// Set by `rollback --to`.
    #[arg(skip)]
    pub rollback_to: std::collections::BTreeMap<String, String>,
}

impl RepoArgs {
    /// The repository to read. Commands without SSH flags (render) still honour
    /// BERTH_KNOWN_HOSTS for ssh:// repositories.
    pub fn source(&self, ssh: Option<&SshArgs>) -> Source {
        Source {
            repo: self.repo.clone(),
            git_ref: self.git_ref.clone(),
            selector: self.selector.clone(),
            cache_dir: self.cache_dir.clone(),
            known_hosts: ssh
                .and_then(|s| s.known_hosts.clone())
                .or_else(|| std::env::var_os("BERTH_KNOWN_HOSTS").map(PathBuf::from)),
            environment: self.environment.clone(),
            policy: self.policy.clone(),
            worktree: false,
            git_timeout: Some(self.git_timeout),
        }
    }
}

impl PlanFlags {
    pub fn scope(&self) -> PlanScope {
        PlanScope {
            prune: self.prune,
            prune_volumes: self.prune_volumes,
            fast: self.fast,
            retry: self.retry,
            for_review: false,
            intents: self.intents.clone(),
            rollback_to: self.rollback_to.clone(),
        }
    }
}

impl SshArgs {
    /// How to reach the hosts; an SSH config file that cannot be read stops the command
    /// before any host is touched.
    pub fn connection(&self) -> miette::Result<Connection> {
        Ok(Connection {
            ssh: self.options()?,
            max_handshakes: self.max_handshakes,
            allow_unreachable: self.allow_unreachable,
        })
    }

    fn options(&self) -> miette::Result<SshOptions> {
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
        Ok(SshOptions {
            known_hosts: known_hosts_path(self.known_hosts.clone()),
            accept_new_host_keys: self.accept_new_host_keys,
            identities,
            key_text,
            connect_timeout: self.connect_timeout,
            command_timeout: self.command_timeout,
            pull_timeout: self.pull_timeout,
            config: Arc::new(self.client_config()?),
        })
    }
}

impl SshArgs {
    fn client_config(&self) -> miette::Result<ClientConfig> {
        match &self.ssh_config {
            Some(p) if p.as_os_str() == "none" => Ok(ClientConfig::default()),
            given => ClientConfig::read(given.as_deref(), &home()).map_err(|e| {
                miette::miette!(
                    help = "--ssh-config none reads no file; see docs/repository.md, \"Reaching the hosts\"",
                    "{e}"
                )
            }),
        }
    }
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

/// `--format text|json`: for commands that show a state, not a plan (no Markdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateFormat {
    Text,
    Json,
}

/// `--color`, as given once for the whole run.
static COLOR: std::sync::OnceLock<clap::ColorChoice> = std::sync::OnceLock::new();

/// Sets `--color` for the run: plans on stdout, and errors on stderr.
pub fn set_color(choice: clap::ColorChoice) {
    let _ = COLOR.set(choice);
    let on = match choice {
        clap::ColorChoice::Always => Some(true),
        clap::ColorChoice::Never => Some(false),
        clap::ColorChoice::Auto => None,
    };
    if let Some(on) = on {
        let _ = miette::set_hook(Box::new(move |_| {
            Box::new(miette::MietteHandlerOpts::new().color(on).build())
        }));
    }
}

/// Whether stdout gets colour: `--color always|never`, else a terminal without `NO_COLOR`.
pub fn color_stdout() -> bool {
    match COLOR.get() {
        Some(clap::ColorChoice::Always) => true,
        Some(clap::ColorChoice::Never) => false,
        _ => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

pub fn print_plan(plan: &Plan, format: Format) {
    match format {
        Format::Text => crate::out!("{}", crate::render::text::plan(plan, color_stdout())),
        Format::Json => crate::outln!("{}", crate::render::json(plan)),
        Format::Markdown => crate::out!("{}", crate::render::markdown::plan(plan)),
    }
}
