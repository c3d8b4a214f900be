//! The fleet: SSH sessions to every host (in parallel, handshakes capped), a Docker client
//! over each, and what berth asks of a host outside a step: observation (`Observe`), the
//! apply lock's primitives (`lock_store`), logs and exec (`console`); and what the executor
//! asks for each step (`engine::Engine`), done on Docker by `docker_ops`. The Docker client
//! (bollard) is used only in this module. Errors are `HostError`s.

pub mod console;
pub mod deadline;
pub mod docker;
pub mod docker_ops;
pub mod engine;
mod error;
pub mod http;
pub mod lock_store;
pub mod observe;
pub mod route;
pub mod ssh;

pub use error::{HostError, HostErrors};

use crate::model::{Host, ObservedHost};
use bollard::Docker;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// A connected host: its session is kept for the whole run.
#[derive(Clone)]
pub struct Connected {
    pub host: Host,
    pub docker: Docker,
    /// What the engine's first answer said of its API.
    pub api: docker::EngineApi,
    pub session: Arc<ssh::Session>,
    /// The bastions the session goes through, kept open while it is.
    pub via: Vec<Arc<ssh::Session>>,
    /// How long its engine may take to first answer (`--connect-timeout`).
    pub answer_within: std::time::Duration,
    /// How long its engine's calls may take.
    pub limits: deadline::Limits,
    /// Whether its engine missed a deadline in this run (then it is not asked again).
    pub silence: deadline::Silence,
}

impl Connected {
    /// A raw JSON call (see `docker::raw_json`) under the host's deadline and silence.
    pub async fn raw_json(
        &self,
        method: hyper::Method,
        path: &str,
        body: serde_json::Value,
    ) -> Result<(u16, serde_json::Value), HostError> {
        if let Some(said) = self.silence.said() {
            return Err(HostError::Silent {
                said: format!("{said} earlier in this run: not asked again"),
            });
        }
        let within = self.limits.command;
        let answer = docker::raw_json(
            within,
            &self.session,
            &self.host.docker_socket,
            method,
            path,
            body,
        )
        .await;
        answer.map_err(|e| match e {
            docker::RawError::TimedOut(within) => {
                let said = format!(
                    "the Docker engine did not answer within {}s (--command-timeout)",
                    within.as_secs()
                );
                self.silence.mark(&said);
                HostError::Silent { said }
            }
            docker::RawError::Failed(e) => HostError::Engine(e),
        })
    }
}

impl Connected {
    /// An error of a call made through the Docker client, of the kind it is: `Silent` when the
    /// call found the host silent or made it so (bollard's transport can only say so in
    /// words, which stay as they are), else the error as it is.
    pub fn kind_of(&self, e: HostError) -> HostError {
        match e {
            HostError::Engine(said) if self.silence.said().is_some() => HostError::Silent { said },
            e => e,
        }
    }
}

/// Credentials for pulls, by registry (as `model::registry::registry_of` names it).
pub type Logins = BTreeMap<String, crate::model::registry::Credentials>;

/// The connected hosts and, for the others, why they could not be reached.
#[derive(Clone)]
pub struct Fleet {
    pub connected: BTreeMap<String, Connected>,
    pub failed: BTreeMap<String, HostError>,
}

/// The bastion sessions of one run, by the chain of hops that leads to each: every host
/// behind a bastion goes through one connection to it.
#[derive(Clone, Default)]
struct Bastions {
    sessions: Arc<tokio::sync::Mutex<BTreeMap<String, BastionCell>>>,
}

type BastionCell = Arc<tokio::sync::OnceCell<Result<Arc<ssh::Session>, HostError>>>;

impl Bastions {
    /// The sessions to each bastion of the chain, in order, opened once per chain prefix.
    async fn through(
        &self,
        jumps: &[route::Hop],
        options: &ssh::SshOptions,
    ) -> Result<Vec<Arc<ssh::Session>>, HostError> {
        let mut via: Vec<Arc<ssh::Session>> = Vec::new();
        let mut chain = String::new();
        for hop in jumps {
            chain.push_str(&hop.key());
            chain.push(',');
            let cell = self
                .sessions
                .lock()
                .await
                .entry(chain.clone())
                .or_default()
                .clone();
            let previous = via.last().cloned();
            let session = cell
                .get_or_init(|| async move {
                    ssh::connect(hop, options, previous.as_ref())
                        .await
                        .map_err(|e| e.within(&format!("bastion {}", hop.key())))
                })
                .await
                .clone()?;
            via.push(session);
        }
        Ok(via)
    }
}

/// sshd drops unauthenticated connections past its MaxStartups (10 by default), so at most
/// this many handshakes go to one SSH server (address and port) at once.
pub const HANDSHAKES_PER_SERVER: usize = 10;

/// A cap on concurrent handshakes for each SSH server.
#[derive(Clone, Default)]
struct PerServer(Arc<std::sync::Mutex<BTreeMap<String, Arc<Semaphore>>>>);

impl PerServer {
    fn of(&self, hop: &route::Hop) -> Arc<Semaphore> {
        self.0
            .lock()
            .expect("not poisoned")
            .entry(format!("{}:{}", hop.address, hop.port))
            .or_insert_with(|| Arc::new(Semaphore::new(HANDSHAKES_PER_SERVER)))
            .clone()
    }
}

/// Connects to all hosts in parallel: at most `max_handshakes` handshakes at once in all, and
/// `HANDSHAKES_PER_SERVER` to any one SSH server.
pub async fn connect_all(
    hosts: &[Host],
    options: &ssh::SshOptions,
    max_handshakes: usize,
) -> Fleet {
    let limit = Arc::new(Semaphore::new(max_handshakes.max(1)));
    let spares = docker::spares_per_host(hosts.len());
    let per_server = PerServer::default();
    let bastions = Bastions::default();
    let tasks: Vec<_> = hosts
        .iter()
        .cloned()
        .map(|host| {
            let limit = limit.clone();
            let per_server = per_server.clone();
            let options = options.clone();
            let bastions = bastions.clone();
            tokio::spawn(async move {
                let route = options.config.route(&host)?;
                let server = per_server.of(&route.target);
                let server_permit = server.acquire_owned().await.expect("semaphore open");
                let permit = limit.acquire_owned().await.expect("semaphore open");
                let via = bastions.through(&route.jumps, &options).await?;
                let session = ssh::connect(&route.target, &options, via.last()).await;
                drop(permit);
                drop(server_permit);
                let session = session?;
                let limits = deadline::Limits {
                    command: options.command_timeout,
                    pull: options.pull_timeout,
                };
                let silence = deadline::Silence::default();
                let (docker, api) = docker::connect(
                    session.clone(),
                    &host.docker_socket,
                    limits,
                    silence.clone(),
                    spares,
                )?;
                Ok::<_, HostError>(Connected {
                    host,
                    docker,
                    api,
                    session,
                    via,
                    answer_within: options.connect_timeout,
                    limits,
                    silence,
                })
            })
        })
        .collect();
    let mut fleet = Fleet {
        connected: BTreeMap::new(),
        failed: BTreeMap::new(),
    };
    for (host, task) in hosts.iter().zip(tasks) {
        match task.await {
            Ok(Ok(c)) => {
                fleet.connected.insert(host.name.clone(), c);
            }
            Ok(Err(e)) => {
                fleet.failed.insert(host.name.clone(), e);
            }
            Err(e) => {
                fleet.failed.insert(
                    host.name.clone(),
                    HostError::Ssh(format!("internal error while connecting: {e}")),
                );
            }
        }
    }
    fleet
}

impl Fleet {
    /// Observes every connected host in parallel; unreachable hosts carry their error.
    /// Asks each host's engine (which asks the registry) for the digest its image's tag
    /// names now, all at once; `asks` maps each image to the host to ask.
    pub async fn resolve_digests(
        &self,
        asks: &BTreeMap<String, String>,
        logins: &Logins,
    ) -> BTreeMap<String, Result<String, HostError>> {
        let lookups = asks.iter().map(|(image, host)| async move {
            let Some(c) = self.connected.get(host) else {
                let why = self.failed.get(host).cloned();
                return (
                    image.clone(),
                    Err(why.unwrap_or_else(|| HostError::Ssh(format!("{host} is not connected")))),
                );
            };
            let login = logins
                .get(crate::model::registry::registry_of(image))
                .map(docker::credentials);
            let found = c.docker.inspect_registry_image(image, login).await;
            let digest = match found {
                Ok(info) => info
                    .descriptor
                    .digest
                    .filter(|d| d.starts_with("sha256:"))
                    .ok_or_else(|| HostError::Engine("the registry gave no digest".into())),
                Err(e) => Err(e.into()),
            };
            (image.clone(), digest)
        });
        futures_util::future::join_all(lookups)
            .await
            .into_iter()
            .collect()
    }

    pub async fn observe(
        &self,
        opts: &observe::ObserveOptions,
    ) -> BTreeMap<String, Result<ObservedHost, HostError>> {
        let tasks: Vec<_> = self
            .connected
            .values()
            .map(|c| {
                let c = c.clone();
                let opts = opts.clone();
                tokio::spawn(async move {
                    let observed = c.observe(&opts).await;
                    (c.host.name.clone(), observed)
                })
            })
            .collect();
        let mut out: BTreeMap<String, Result<ObservedHost, HostError>> = self
            .failed
            .iter()
            .map(|(h, e)| (h.clone(), Err(e.clone())))
            .collect();
        for t in tasks {
            if let Ok((h, r)) = t.await {
                out.insert(h, r);
            }
        }
        out
    }
}

/// What a host runs, as one engine reports it: the seam observation goes through (a
/// connected Docker host is the one implementation).
pub trait Observe: Send + Sync {
    /// The project's containers, volumes, lock, images and edge on the host, in one round
    /// trip where the engine allows.
    fn observe<'a>(
        &'a self,
        opts: &'a observe::ObserveOptions,
    ) -> futures_util::future::BoxFuture<'a, Result<ObservedHost, HostError>>;
}

impl Observe for Connected {
    fn observe<'a>(
        &'a self,
        opts: &'a observe::ObserveOptions,
    ) -> futures_util::future::BoxFuture<'a, Result<ObservedHost, HostError>> {
        use futures_util::FutureExt;
        observe_checked(self, opts).boxed()
    }
}

/// Observes a host, checking its engine on the observation's first answer: it must come
/// within `answer_within` and speak berth's API. An engine too old refuses the observation's
/// requests; the version is the error to report then, not the refusal.
async fn observe_checked(
    c: &Connected,
    opts: &observe::ObserveOptions,
) -> Result<ObservedHost, HostError> {
    let observe = observe::observe(c, opts);
    tokio::pin!(observe);
    tokio::select! {
        biased;
        checked = docker::check_engine(&c.api, c.answer_within) => {
            checked?;
            observe.await
        }
        observed = &mut observe => {
            docker::known_api_verdict(&c.api)?;
            // Failed before the engine answered anything: say so first.
            observed.map_err(|e| match e {
                HostError::Engine(e) if !docker::answered(&c.api) => {
                    HostError::Engine(format!("cannot reach the Docker engine: {e}"))
                }
                e => e,
            })
        }
    }
}
