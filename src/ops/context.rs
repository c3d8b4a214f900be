//! What every operation starts from: the repository read and checked, its hosts connected,
//! and a plan built from what they run.

use super::error::Result;
pub use super::secrets::secret_from;
use super::secrets::SecretSource;
pub use super::source::{home, known_hosts_path, read_source, Source, GIT_TIMEOUT};
use crate::hosts::{self, observe::ObserveOptions, Fleet};
/// The SSH settings a `Connection` holds (from the command line and ssh_config).
pub use crate::hosts::{route::ClientConfig, ssh::SshOptions};
use crate::model::policy::Policy;
use crate::model::registry::RegistryLogin;
use crate::model::{DesiredState, PullPolicy, Selector};
use crate::plan::digests::{self, Observed};
use crate::plan::{self, Issue, Plan, PlanInput};
use crate::repo;
use miette::miette;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How to reach the hosts.
#[derive(Debug, Clone)]
pub struct Connection {
    pub ssh: SshOptions,
    /// At most this many SSH handshakes at once.
    pub max_handshakes: usize,
    /// Go on with the reachable hosts when some are not (otherwise refuse).
    pub allow_unreachable: bool,
}

/// What a plan covers beyond the pods Git declares.
#[derive(Debug, Clone, Default)]
pub struct PlanScope {
    pub prune: bool,
    pub prune_volumes: bool,
    /// Plan from the container list alone, without inspecting each managed container.
    pub fast: bool,
    /// Roll out again a revision whose rollout failed before.
    pub retry: bool,
    /// A plan made to be read (`berth plan`, e.g. of a pull request): the repository's
    /// registry logins go only to registries the policy lists.
    pub for_review: bool,
    /// promote, abort or rollback: the plan covers only these deployments.
    pub intents: BTreeMap<String, plan::Intent>,
    /// `berth rollback --to`: the kept revision to bring back, by deployment.
    pub rollback_to: BTreeMap<String, String>,
}

/// Whether a command needs the values of the secrets the deployments name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Offline or read-only commands: no value is read (render, status, lock).
    NotNeeded,
    /// Planning: the secrets of the deployments the selector picks must be set.
    ForSelected,
}

/// A selector given on the command line, with a diagnostic pointing into its text.
pub fn parse_selector(text: &Option<String>) -> Result<Option<Selector>> {
    let Some(text) = text else { return Ok(None) };
    Selector::parse(text).map(Some).map_err(|e| {
        // The reason is in the message too: a label past the end of the text is not shown.
        let at = e.offset.min(text.len());
        let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
        miette!(
            labels = vec![miette::LabeledSpan::at(at..end, "here")],
            "invalid selector for -l: {}",
            e.message
        )
        .with_source_code(text.clone())
        .into()
    })
}

/// Reads and checks the repository; its problems come back as diagnostics.
pub fn load_repo(source: &Source, secrets: Secrets) -> Result<DesiredState> {
    Ok(load_checked(source, secrets)?.desired)
}

/// The repository as read and checked under the operator's policy.
pub struct Loaded {
    pub desired: DesiredState,
    /// Where its secrets' values come from.
    pub secrets: Arc<SecretSource>,
    pub policy: Option<Policy>,
    /// Who signed the commit, when the policy asks for signed commits.
    pub signer: Option<String>,
}

/// Reads the policy, the repository at its commit, checks the commit's signature and every
/// value the policy limits: all before any host is contacted.
pub fn load_checked(source: &Source, secrets: Secrets) -> Result<Loaded> {
    let policy = super::policy::load(source.policy.as_deref(), &source.repo)?;
    let src = read_source(source)?;
    let on_disk = source.worktree && source.git_ref.is_none();
    let signer = if on_disk {
        // Files on disk carry no signature: `validate` checks every other rule, and the
        // commit's signer is checked where a commit is read (plan, apply, sync, or
        // `validate --ref`).
        if policy.as_ref().is_some_and(|p| p.allowed_signers.is_some()) {
            eprintln!("note: the files on disk carry no signature: the policy's allowed_signers is checked on the commit (plan, apply, sync, validate --ref)");
        }
        None
    } else {
        super::policy::check_commit(
            policy.as_ref(),
            source.policy.as_deref(),
            src.commit.as_ref(),
        )?
    };
    for w in &src.warnings {
        eprintln!("warning: {w}");
    }
    let values = Arc::new(SecretSource::with_repository(&src.files));
    let env = source.environment.as_deref();
    let desired = match secrets {
        Secrets::NotNeeded => repo::load::load_under(&src.files, env, None, None, policy.as_ref()),
        Secrets::ForSelected => {
            let selector = parse_selector(&source.selector)?;
            let lookup = |name: &str| values.lookup(name);
            let loaded = repo::load::load_under(
                &src.files,
                env,
                Some(&lookup),
                selector.as_ref(),
                policy.as_ref(),
            );
            if loaded.is_err() {
                if let Some(why) = values.sops_error() {
                    eprintln!("warning: {why}");
                }
            }
            loaded
        }
    };
    let desired = desired.map_err(miette::Report::new)?;
    for skipped in values.sops_skipped() {
        eprintln!("warning: a SOPS file was skipped: {skipped}");
    }
    Ok(Loaded {
        desired,
        secrets: values,
        policy,
        signer: signer.map(|s| s.to_string()),
    })
}

/// The repository loaded and its hosts connected: what planning (again) needs.
pub struct Context {
    pub fleet: Fleet,
    pub desired: DesiredState,
    /// Where secret values come from (the environment, files, the repository's SOPS files).
    pub secrets: Arc<SecretSource>,
    pub selector: Option<Selector>,
    pub scope: PlanScope,
    pub policy: Option<Policy>,
    /// Who signed the commit (shown in the plan's header).
    pub signer: Option<String>,
}

impl Context {
    /// Observes the hosts, resolves the images' tags to digests and builds the plan. Every
    /// managed container is inspected as well (resources, service membership), so that
    /// whatever a killed apply or a hand left behind is seen and repaired by a plain plan;
    /// `fast` skips that.
    pub async fn plan(&self) -> Result<Plan> {
        let options = ObserveOptions {
            project: self.desired.project.clone(),
            volumes: self.scope.prune_volumes,
            deep: !self.scope.fast,
            images: digests::images_to_observe(&self.desired),
            edge_admin_port: self.desired.edge.as_ref().map(|e| e.admin_port),
        };
        let observed = observe(&self.fleet, &options).await;
        let (desired, notices) = self.with_digests(&observed).await?;
        let mut plan = plan::build(&PlanInput {
            desired: &desired,
            observed: &observed,
            selector: self.selector.as_ref(),
            prune: self.scope.prune,
            prune_volumes: self.scope.prune_volumes,
            now: crate::here::unix_now(),
            intents: self.scope.intents.clone(),
            retry: self.scope.retry,
            rollback_to: self.scope.rollback_to.clone(),
        });
        plan.issues.extend(notices);
        plan.signed_by = self.signer.clone();
        Ok(plan)
    }

    /// The desired state with each image's tag resolved to the digest it names now (see
    /// `plan::digests`); a `pull: always` image whose tag cannot be resolved stops the plan.
    async fn with_digests(&self, observed: &Observed) -> Result<(DesiredState, Vec<Issue>)> {
        let asks = digests::to_resolve(&self.desired, observed);
        let (declared, withheld) = self.logins_to_send();
        let logins =
            super::registry::logins(asks.keys().map(String::as_str), &declared, &|name: &str| {
                self.secrets.lookup(name)
            })?;
        // What the plan shows of a registry that did not answer: its words.
        let resolved: BTreeMap<String, std::result::Result<String, String>> = (self.fleet)
            .resolve_digests(&asks, &logins)
            .await
            .into_iter()
            .map(|(image, digest)| (image, digest.map_err(|e| e.to_string())))
            .collect();
        let strict = self
            .desired
            .deployments
            .iter()
            .flat_map(|d| &d.pod.containers)
            .filter(|c| c.pull == PullPolicy::Always && c.resolves_tag());
        for c in strict {
            let server = crate::model::registry::registry_of(&c.image);
            if withheld.iter().any(|s| s == server) {
                continue; // said below: the plan did not send the login that would resolve it
            }
            if let Some(Err(why)) = resolved.get(&c.image) {
                return Err(miette!(
                    help = "the registry must answer for `pull: always`; without it, the pods keep the digest they run",
                    "cannot resolve {} to a digest: {why}",
                    c.image
                )
                .into());
            }
        }
        let (desired, mut notices) = digests::settle(&self.desired, &resolved, observed);
        let asked: std::collections::BTreeSet<&str> = asks
            .keys()
            .map(|i| crate::model::registry::registry_of(i))
            .collect();
        for server in withheld.iter().filter(|s| asked.contains(s.as_str())) {
            notices.push(Issue {
                kind: plan::IssueKind::Notice,
                host: None,
                deployment: None,
                pod: None,
                message: format!(
                    "the login berth.yaml declares for registry {server} was not sent: a plan sends the repository's logins only to registries the policy lists (--policy, registries:); images from {server} that need it keep the digest their pods run"
                ),
            });
        }
        Ok((desired, notices))
    }

    /// The repository's registry logins this run may send, and the servers of those it may
    /// not: a plan made for review sends them only to registries the policy lists (apply
    /// and sync send them all: the policy already refused any registry it does not allow).
    fn logins_to_send(&self) -> (Vec<RegistryLogin>, Vec<String>) {
        let all = &self.desired.registries;
        if !self.scope.for_review {
            return (all.clone(), vec![]);
        }
        let listed = |server: &str| {
            self.policy
                .as_ref()
                .is_some_and(|p| p.lists_registry(server))
        };
        let (send, keep): (Vec<RegistryLogin>, Vec<RegistryLogin>) =
            all.iter().cloned().partition(|l| listed(&l.server));
        (send, keep.into_iter().map(|l| l.server).collect())
    }
}

/// Loads the repository and connects to its hosts.
pub async fn connect(source: &Source, to: &Connection, scope: &PlanScope) -> Result<Context> {
    let selector = parse_selector(&source.selector)?;
    let loaded = load_checked(source, Secrets::ForSelected)?;
    let desired = loaded.desired;
    // promote/abort/rollback of a deployment Git does not declare: say so before any host.
    for name in scope.intents.keys() {
        if !desired.deployments.iter().any(|d| &d.name == name) {
            let declared: Vec<&str> = desired
                .deployments
                .iter()
                .map(|d| d.name.as_str())
                .collect();
            return Err(miette!(
                help = format!("the deployments are: {}", declared.join(", ")),
                "there is no deployment named {name} in the repository"
            )
            .into());
        }
    }
    let fleet = connect_hosts(&desired, to).await;
    Ok(Context {
        fleet,
        desired,
        secrets: loaded.secrets,
        selector,
        scope: scope.clone(),
        policy: loaded.policy,
        signer: loaded.signer,
    })
}

/// Connects to the hosts the repository declares, in parallel.
pub async fn connect_hosts(desired: &DesiredState, to: &Connection) -> Fleet {
    hosts::connect_all(&desired.hosts, &to.ssh, to.max_handshakes).await
}

/// How much an observation asks of each host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// One listing per host.
    Shallow,
    /// Also an inspect per pod container: which pods are behind their service names.
    Deep,
}

/// Observes every connected host; a host that could not be observed or reached carries
/// the words of why, which is what the plan and the reports show of it.
pub async fn observe(fleet: &Fleet, options: &ObserveOptions) -> Observed {
    (fleet.observe(options).await.into_iter())
        .map(|(host, observed)| (host, observed.map_err(|e| e.to_string())))
        .collect()
}

/// Connects to the project's hosts and observes its containers on each, in one round trip
/// per host.
pub async fn observe_hosts(
    desired: &DesiredState,
    to: &Connection,
    depth: Depth,
) -> (Fleet, Observed) {
    let fleet = connect_hosts(desired, to).await;
    let options = ObserveOptions {
        project: desired.project.clone(),
        deep: depth == Depth::Deep,
        ..Default::default()
    };
    let observed = observe(&fleet, &options).await;
    (fleet, observed)
}

/// Loads the repository, connects to its hosts, observes them and builds the plan.
pub async fn plan(source: &Source, to: &Connection, scope: &PlanScope) -> Result<(Fleet, Plan)> {
    let context = connect(source, to, scope).await?;
    let plan = context.plan().await?;
    Ok((context.fleet, plan))
}

/// Unreachable hosts stop the run unless they are allowed.
pub fn check_unreachable(plan: &Plan, to: &Connection) -> Result<()> {
    let down: Vec<String> = plan.unreachable().map(|i| i.message.clone()).collect();
    // Going on with the reachable hosts needs one: with none, nothing was checked at all.
    if matches!(plan.observed_scope(), plan::Observation::None { .. }) {
        return Err(miette!(
            help = "check the hosts' addresses, SSH keys and known_hosts; --allow-unreachable goes on only when some host answers",
            "no host answered (0 of {} observed):\n{}",
            plan.hosts.len(),
            down.join("\n")
        )
        .into());
    }
    if !down.is_empty() && !to.allow_unreachable {
        return Err(miette!(
            help = "rerun with --allow-unreachable to go on with the reachable hosts",
            "{}",
            down.join("\n")
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    #[test]
    fn a_secret_comes_from_its_variable_then_its_file_then_the_secrets_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db-password"), "from-dir\n").unwrap();
        std::fs::write(dir.path().join("api-token"), "from-dir-too").unwrap();
        let named = dir.path().join("elsewhere");
        std::fs::write(&named, "from-file\r\n").unwrap();
        let mut vars: HashMap<String, OsString> = HashMap::new();
        vars.insert("BERTH_SECRETS_DIR".into(), dir.path().into());
        vars.insert("BERTH_SECRET_API_TOKEN_FILE".into(), named.clone().into());
        vars.insert("BERTH_SECRET_PLAIN".into(), "from-env".into());
        let env = |v: &str| vars.get(v).cloned();
        assert_eq!(secret_from("plain", &env).as_deref(), Some("from-env"));
        assert_eq!(secret_from("api-token", &env).as_deref(), Some("from-file"));
        assert_eq!(
            secret_from("db-password", &env).as_deref(),
            Some("from-dir")
        );
        assert_eq!(secret_from("missing", &env), None);
        // A name is never a path out of the directory.
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        assert_eq!(secret_from(".hidden", &env), None);
    }
}
