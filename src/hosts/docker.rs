//! The Docker API over the host's SSH session: each HTTP connection is one
//! `direct-streamlocal` channel to the engine's unix socket. Concurrent requests are capped,
//! since a burst of opens can overflow the remote socket's accept backlog; channels are opened
//! ahead of need (`Spares`) so that only a host's first round of requests waits for them.

use super::deadline::{missed, Deadline, Deadlined, Limits, Silence};
use super::ssh::Session;
use super::HostError;
use bollard::{ClientVersion, Docker};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Concurrent Docker requests (channels) per host.
pub const CHANNELS_PER_HOST: usize = 16;

/// Channels kept open ahead of need over the whole fleet. Each costs the remote sshd and
/// engine a connection: 16 per host for 200 hosts would be 3,200 connections, most never
/// used by a one-shot command.
pub const SPARE_CHANNELS_IN_ALL: usize = 256;

/// The spare channels each of `hosts` hosts keeps: up to `CHANNELS_PER_HOST`, a share of
/// `SPARE_CHANNELS_IN_ALL`, and at least one.
pub fn spares_per_host(hosts: usize) -> usize {
    (SPARE_CHANNELS_IN_ALL / hosts.max(1)).clamp(1, CHANNELS_PER_HOST)
}

fn io_error(e: impl std::fmt::Display) -> bollard::errors::Error {
    bollard::errors::Error::IOError {
        err: std::io::Error::other(e.to_string()),
    }
}

/// Registry credentials as the engine takes them with a pull.
pub fn credentials(c: &crate::model::registry::Credentials) -> bollard::auth::DockerCredentials {
    use crate::model::registry::Credentials;
    match c {
        Credentials::Password {
            server,
            username,
            password,
        } => bollard::auth::DockerCredentials {
            username: Some(username.clone()),
            password: Some(password.clone()),
            serveraddress: Some(server.clone()),
            ..Default::default()
        },
        Credentials::IdentityToken { server, token } => bollard::auth::DockerCredentials {
            identitytoken: Some(token.clone()),
            serveraddress: Some(server.clone()),
            ..Default::default()
        },
    }
}

/// A channel to the engine's socket.
type EngineChannel = russh::Channel<russh::client::Msg>;

async fn open(session: &Session, socket: &str) -> Result<EngineChannel, bollard::errors::Error> {
    session
        .channel_open_direct_streamlocal(socket)
        .await
        .map_err(|e| io_error(format!("cannot open a channel to {socket}: {e}")))
}

/// Sends one HTTP request over an open channel, which closes when the response is done.
async fn send_over<B, S>(
    stream: S,
    mut req: hyper::Request<B>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<hyper::Response<hyper::body::Incoming>, bollard::errors::Error>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // HTTP/1.1 needs a Host header; hyper's low-level client does not add one.
    req.headers_mut().insert(
        hyper::header::HOST,
        hyper::header::HeaderValue::from_static("docker"),
    );
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // With upgrades: an exec or attach takes the connection over as a raw stream.
        let _ = conn.with_upgrades().await;
        drop(permit);
    });
    Ok(sender.send_request(req).await?)
}

/// Channels to the engine opened ahead of need, up to `keep` idle ones. A round
/// of requests that follows another (the inspects after the container list) then starts at
/// once, instead of waiting a round trip for its channels to open. A spare is used within
/// `SPARE_FOR`: an engine may close a connection that stays idle. (Spares are kept as
/// channels, not streams: a stream closes its channel from a task when dropped, and the last
/// ones are dropped after the runtime has stopped.)
struct Spares {
    session: Arc<Session>,
    socket: String,
    ready: std::sync::Mutex<Vec<(std::time::Instant, EngineChannel)>>,
    opening: std::sync::atomic::AtomicUsize,
    keep: usize,
}

const SPARE_FOR: std::time::Duration = std::time::Duration::from_secs(30);

impl Spares {
    fn take(&self) -> Option<EngineChannel> {
        let mut ready = self.ready.lock().expect("not poisoned");
        let (fresh, stale): (Vec<_>, Vec<_>) = std::mem::take(&mut *ready)
            .into_iter()
            .partition(|(opened, _)| opened.elapsed() < SPARE_FOR);
        *ready = fresh;
        for (_, channel) in stale {
            tokio::spawn(async move {
                let _ = channel.close().await;
            });
        }
        ready.pop().map(|(_, channel)| channel)
    }

    /// Opens channels in the background until idle and opening ones make up the pool.
    fn refill(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        let idle = self.ready.lock().expect("not poisoned").len();
        let opening = self.opening.load(Ordering::SeqCst);
        for _ in (idle + opening)..self.keep {
            self.opening.fetch_add(1, Ordering::SeqCst);
            let spares = self.clone();
            tokio::spawn(async move {
                if let Ok(channel) = open(&spares.session, &spares.socket).await {
                    let opened = std::time::Instant::now();
                    spares
                        .ready
                        .lock()
                        .expect("not poisoned")
                        .push((opened, channel));
                }
                spares.opening.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }
}

/// Why a raw call failed.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("the Docker engine did not answer within {0:?}")]
    TimedOut(std::time::Duration),
    #[error("{0}")]
    Failed(String),
}

/// A raw JSON request to the engine, for the few calls bollard's models cannot express
/// (network creation with `CheckDuplicate`, which older engines need to refuse a duplicate).
pub async fn raw_json(
    within: std::time::Duration,
    session: &Session,
    socket: &str,
    method: hyper::Method,
    path: &str,
    body: serde_json::Value,
) -> Result<(u16, serde_json::Value), RawError> {
    use http_body_util::BodyExt;
    // The whole exchange, answer body included, within the deadline (bollard's own timeout
    // covers only the headers of the calls it makes).
    let exchange = async {
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_string(),
            )))
            .map_err(|e| e.to_string())?;
        let channel = open(session, socket).await.map_err(|e| e.to_string())?;
        let response = send_over(channel.into_stream(), req, None)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        // An engine's answer to these calls is small: a larger one is refused, not held.
        let bytes = http_body_util::Limited::new(response.into_body(), MAX_RAW_BODY)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok::<_, String>((status, value))
    };
    tokio::time::timeout(within, exchange)
        .await
        .map_err(|_| RawError::TimedOut(within))?
        .map_err(RawError::Failed)
}

/// The most berth reads of an engine's answer to a call it makes by hand (`raw_json`): the
/// container list of a host with thousands of containers fits, as under `deadline`'s cap.
const MAX_RAW_BODY: usize = 64 * 1024 * 1024;

/// The Docker API version berth speaks: Docker 20.10's, which every engine since answers.
pub const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// The API version an engine gave in its first answer. Docker puts it in the `Api-Version`
/// header of every response, so berth needs no request of its own to learn it.
#[derive(Clone, Default)]
pub struct EngineApi(Arc<tokio::sync::watch::Sender<Option<String>>>);

impl EngineApi {
    fn saw(&self, headers: &hyper::HeaderMap) {
        // An answer without the header says nothing of a version: `api_verdict` refuses it.
        let api = headers
            .get("api-version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        self.0.send_if_modified(|seen| {
            let first = seen.is_none();
            if first {
                *seen = Some(api);
            }
            first
        });
    }
}

/// A bollard client whose requests travel over `session`, speaking `API_VERSION`, and what
/// its engine's first answer said of its API (`check_engine`). Nothing is sent yet.
/// Each call has a deadline by what it asks (`deadline::Deadline::for_request`), its answer
/// included; the first one missed makes the host `silence`d: later calls fail at once.
/// `spares` channels are kept open ahead of need (`spares_per_host`).
pub fn connect(
    session: Arc<Session>,
    socket: &str,
    limits: Limits,
    silence: Silence,
    spares: usize,
) -> Result<(Docker, EngineApi), HostError> {
    let api = EngineApi::default();
    let seen = api.clone();
    let limit = Arc::new(Semaphore::new(CHANNELS_PER_HOST));
    let spares = Arc::new(Spares {
        session,
        socket: socket.to_string(),
        ready: Default::default(),
        opening: Default::default(),
        keep: spares,
    });
    let transport = move |req: bollard::BollardRequest| {
        let limit = limit.clone();
        let spares = spares.clone();
        let seen = seen.clone();
        let silence = silence.clone();
        async move {
            if let Some(said) = silence.said() {
                return Err(io_error(format!(
                    "{said} earlier in this run: not asked again"
                )));
            }
            let deadline =
                Deadline::for_request(req.method().as_str(), &req.uri().to_string(), limits);
            // Waiting for a free channel is not the engine's silence: it is outside the
            // deadline (the calls holding the channels have theirs).
            let permit = limit.acquire_owned().await.map_err(io_error)?;
            let asked = async {
                let channel = match spares.take() {
                    Some(channel) => channel,
                    None => open(&spares.session, &spares.socket).await?,
                };
                spares.refill();
                let stream = Deadlined::new(channel.into_stream(), deadline, silence.clone());
                send_over(stream, req, Some(permit)).await
            };
            // The channel's deadline ends a silent answer; this one a channel that does not
            // open.
            let response = match deadline.total {
                Some(total) => tokio::time::timeout(total, asked)
                    .await
                    .unwrap_or_else(|_| {
                        let said = missed(&deadline, false);
                        silence.mark(&said);
                        Err(io_error(said))
                    }),
                None => asked.await,
            };
            // A missed deadline reads as what it is, not as hyper's words for a cut stream.
            let response = response.map_err(|e| silence.said().map_or(e, io_error))?;
            seen.saw(response.headers());
            Ok(response)
        }
    };
    // bollard's own timeout (on the headers only) is a backstop behind the deadlines above.
    let backstop = limits.pull.max(limits.command) + std::time::Duration::from_secs(60);
    let docker = Docker::connect_with_custom_transport(
        transport,
        Some("http://docker"),
        backstop.as_secs(),
        &API_VERSION,
    )
    .map_err(HostError::from)?;
    Ok((docker, api))
}

/// Whether the engine's first answer (to whatever berth asked first) comes within `within`
/// and says it speaks `API_VERSION` or newer.
pub async fn check_engine(api: &EngineApi, within: std::time::Duration) -> Result<(), HostError> {
    let mut seen = api.0.subscribe();
    let answered = tokio::time::timeout(within, seen.wait_for(Option::is_some))
        .await
        .map_err(|_| HostError::Silent {
            said: format!("the Docker engine did not answer within {within:?}"),
        })?
        .map(|api| api.clone().unwrap_or_default())
        .map_err(|e| HostError::Engine(format!("cannot reach the Docker engine: {e}")))?;
    api_verdict(&answered)
}

/// Whether the engine has answered anything yet.
pub fn answered(api: &EngineApi) -> bool {
    api.0.borrow().is_some()
}

/// The engine's API as far as it is known: an error when it is older than `API_VERSION`.
pub fn known_api_verdict(api: &EngineApi) -> Result<(), HostError> {
    match api.0.borrow().as_deref() {
        Some(answered) => api_verdict(answered),
        None => Ok(()),
    }
}

fn api_verdict(api: &str) -> Result<(), HostError> {
    if api.is_empty() {
        Err(HostError::Api(format!(
            "the engine did not say which Docker API it speaks (no Api-Version header); berth needs {}.{} or newer (Docker 20.10)",
            API_VERSION.major_version, API_VERSION.minor_version
        )))
    } else if speaks_at_least(api, &API_VERSION) {
        Ok(())
    } else {
        Err(HostError::Api(format!(
            "the Docker engine speaks API {api}; berth needs {}.{} or newer (Docker 20.10)",
            API_VERSION.major_version, API_VERSION.minor_version
        )))
    }
}

/// `1.43` against `1.41`, as numbers (`1.9` is older than `1.41`).
fn speaks_at_least(api: &str, wanted: &ClientVersion) -> bool {
    let mut parts = api.split('.').map(|p| p.parse::<usize>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (wanted.major_version, wanted.minor_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(api: &EngineApi, version: Option<&str>) {
        let mut headers = hyper::HeaderMap::new();
        if let Some(v) = version {
            headers.insert("api-version", v.parse().unwrap());
        }
        api.saw(&headers);
    }

    #[tokio::test]
    async fn the_first_answer_tells_the_engine_api_and_later_ones_do_not_change_it() {
        let api = EngineApi::default();
        assert_eq!(known_api_verdict(&api), Ok(()), "nothing known yet");
        let within = std::time::Duration::from_millis(50);
        let silent = check_engine(&api, within).await.unwrap_err();
        assert!(
            matches!(&silent, HostError::Silent { said } if said.contains("did not answer within")),
            "{silent}"
        );
        answered(&api, Some("1.40"));
        answered(&api, Some("1.45"));
        let old = check_engine(&api, within).await.unwrap_err();
        assert!(
            matches!(&old, HostError::Api(e) if e.contains("speaks API 1.40")),
            "{old}"
        );
        assert_eq!(known_api_verdict(&api), Err(old));

        let api = EngineApi::default();
        answered(&api, Some("1.43"));
        assert_eq!(check_engine(&api, within).await, Ok(()));

        let api = EngineApi::default();
        answered(&api, None);
        let unsaid = check_engine(&api, within).await.unwrap_err();
        assert!(
            matches!(&unsaid, HostError::Api(e) if e.contains("no Api-Version header")),
            "{unsaid}"
        );
    }

    #[test]
    fn a_large_fleet_keeps_fewer_spare_channels_per_host() {
        assert_eq!(spares_per_host(1), CHANNELS_PER_HOST);
        assert_eq!(spares_per_host(16), 16);
        assert_eq!(spares_per_host(32), 8);
        assert_eq!(spares_per_host(200), 1);
        assert_eq!(spares_per_host(1000), 1);
        assert_eq!(spares_per_host(0), CHANNELS_PER_HOST);
    }

    #[test]
    fn api_versions_compare_as_numbers() {
        assert!(speaks_at_least("1.41", &API_VERSION));
        assert!(speaks_at_least("1.50", &API_VERSION));
        assert!(speaks_at_least("2.0", &API_VERSION));
        assert!(!speaks_at_least("1.40", &API_VERSION));
        assert!(!speaks_at_least("1.9", &API_VERSION));
        assert!(!speaks_at_least("", &API_VERSION));
    }
}
