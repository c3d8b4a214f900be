//! One SSH session per host (russh). Docker calls run over channels of that session.

use super::route::{ClientConfig, Hop};
use super::HostError;
use crate::known_hosts;
use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How berth authenticates and checks host keys.
#[derive(Clone, Debug)]
pub struct SshOptions {
    pub known_hosts: PathBuf,
    pub accept_new_host_keys: bool,
    /// Identity files to try, in order.
    pub identities: Vec<PathBuf>,
    /// A private key's text (from `BERTH_SSH_KEY`), tried first.
    pub key_text: Option<String>,
    pub connect_timeout: Duration,
    /// How long one Docker API call may take, its answer included; for a pull, the longest
    /// time without progress.
    pub command_timeout: Duration,
    /// How long one image pull may take.
    pub pull_timeout: Duration,
    /// The OpenSSH client configuration: aliases, users, ports, keys, bastions.
    pub config: Arc<ClientConfig>,
}

/// Checks the server's key against known_hosts during the handshake.
pub struct Checker {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    accept_new: bool,
    /// Why the host key was refused, for the error message.
    refused: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            *self.refused.lock().expect("not poisoned") =
                Some("host certificates are not supported".into());
            return Ok(false);
        };
        match known_hosts::check(
            &self.known_hosts,
            &self.host,
            self.port,
            key,
            self.accept_new,
        ) {
            Ok(()) => Ok(true),
            Err(why) => {
                *self.refused.lock().expect("not poisoned") = Some(why);
                Ok(false)
            }
        }
    }
}

pub type Session = Handle<Checker>;

/// The host key algorithms to ask for: those of the keys known_hosts records for the host
/// first (as OpenSSH does), so a host that has such a key presents it, then russh's own
/// order. An RSA key recorded counts for all three RSA signature algorithms.
fn host_key_order(recorded: &[russh::keys::Algorithm]) -> Vec<russh::keys::Algorithm> {
    use russh::keys::Algorithm;
    let kind = |a: &Algorithm| match a {
        Algorithm::Rsa { .. } => "rsa".to_string(),
        other => other.to_string(),
    };
    let defaults = russh::Preferred::DEFAULT.key.to_vec();
    let (mut first, rest): (Vec<Algorithm>, Vec<Algorithm>) = defaults
        .into_iter()
        .partition(|a| recorded.iter().any(|r| kind(r) == kind(a)));
    first.sort_by_key(|a| recorded.iter().position(|r| kind(r) == kind(a)));
    first.extend(rest);
    first
}

/// The keys to try: `BERTH_SSH_KEY`, `-i` files, then the ones the SSH config names for this
/// server (those that exist, as `ssh` skips missing ones).
fn load_keys(options: &SshOptions, hop: &Hop) -> Result<Vec<PrivateKey>, HostError> {
    let mut keys = Vec::new();
    if let Some(text) = &options.key_text {
        keys.push(russh::keys::decode_secret_key(text, None).map_err(|e| {
            HostError::Route(format!("BERTH_SSH_KEY is not a usable private key: {e}"))
        })?);
    }
    let unreadable = |path: &std::path::Path, e| {
        HostError::Route(format!("cannot read identity {}: {e}", path.display()))
    };
    for path in options
        .identities
        .iter()
        .chain(hop.identities.iter().filter(|p| p.exists()))
    {
        keys.push(russh::keys::load_secret_key(path, None).map_err(|e| unreadable(path, e))?);
    }
    Ok(keys)
}

/// Opens and authenticates a session to one server: over TCP, or through a bastion's
/// session (a `direct-tcpip` channel, as `ssh -J` does), checking its host key either way.
pub async fn connect(
    hop: &Hop,
    options: &SshOptions,
    via: Option<&Arc<Session>>,
) -> Result<Arc<Session>, HostError> {
    let data_arrived = via.map(|_| Arc::new(tokio::sync::Notify::new()));
    let session = Arc::new(authenticated(hop, options, via, data_arrived.clone()).await?);
    if let Some(data_arrived) = data_arrived {
        answer_through_bastion(&session, data_arrived);
    }
    Ok(session)
}

/// Through a bastion, the bastion's own TCP hop to the host delays its ACKs (its kernel's
/// delayed ACK, up to 40 ms), and the host's sshd, which does not set TCP_NODELAY for
/// forwarded channels, holds back the second part of a reply written in two (an engine's
/// headers, then its body) until that ACK. A packet sent back towards the host carries the
/// ACK at once: so, whenever data arrives from the host, berth sends it an SSH keepalive
/// (no reply asked; a few dozen bytes). At most one waits at a time.
fn answer_through_bastion(session: &Arc<Session>, data_arrived: Arc<tokio::sync::Notify>) {
    let session = Arc::downgrade(session);
    tokio::spawn(async move {
        loop {
            data_arrived.notified().await;
            let Some(session) = session.upgrade() else {
                break;
            };
            if session.send_keepalive(false).await.is_err() {
                break;
            }
        }
    });
}

async fn authenticated(
    hop: &Hop,
    options: &SshOptions,
    via: Option<&Arc<Session>>,
    data_arrived: Option<Arc<tokio::sync::Notify>>,
) -> Result<Session, HostError> {
    let known_hosts_file = hop
        .known_hosts
        .clone()
        .unwrap_or_else(|| options.known_hosts.clone());
    let recorded = known_hosts::recorded_algorithms(
        &known_hosts::read_files(&known_hosts_file),
        &hop.address,
        hop.port,
    );
    let config = Arc::new(client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(15)),
        nodelay: true,
        preferred: russh::Preferred {
            key: host_key_order(&recorded).into(),
            ..Default::default()
        },
        ..Default::default()
    });
    let refused = Arc::new(Mutex::new(None));
    let checker = Checker {
        host: hop.address.clone(),
        port: hop.port,
        known_hosts: known_hosts_file,
        accept_new: options.accept_new_host_keys,
        refused: refused.clone(),
    };
    let timeout = hop.connect_timeout.unwrap_or(options.connect_timeout);
    let connecting = async {
        match via {
            None => {
                let tcp = tokio::net::TcpStream::connect((hop.address.as_str(), hop.port)).await?;
                tcp.set_nodelay(true)?;
                client::connect_stream(config, QuickAck(tcp), checker).await
            }
            Some(bastion) => {
                let channel = bastion
                    .channel_open_direct_tcpip(hop.address.clone(), hop.port.into(), "127.0.0.1", 0)
                    .await?;
                let stream = Arrivals {
                    inner: channel.into_stream(),
                    notify: data_arrived.unwrap_or_default(),
                };
                client::connect_stream(config, stream, checker).await
            }
        }
    };
    let mut session = match tokio::time::timeout(timeout, connecting).await {
        Err(_) => {
            return Err(HostError::Ssh(format!(
                "connection timed out after {timeout:?}"
            )))
        }
        Ok(Err(e)) => {
            if let Some(why) = refused.lock().expect("not poisoned").take() {
                return Err(HostError::Ssh(why));
            }
            return Err(HostError::Ssh(format!(
                "cannot connect to {}:{}: {e}",
                hop.address, hop.port
            )));
        }
        Ok(Ok(s)) => s,
    };
    let keys = load_keys(options, hop)?;
    // Authentication has the same deadline: a server that stops answering after the
    // handshake must not hold the run.
    match tokio::time::timeout(timeout, authenticate(&mut session, keys, &hop.user)).await {
        Err(_) => Err(HostError::Ssh(format!(
            "SSH authentication as {} did not finish within {timeout:?}",
            hop.user
        ))),
        Ok(Err(why)) => Err(why),
        Ok(Ok(true)) => Ok(session),
        Ok(Ok(false)) => Err(HostError::Ssh(format!(
            "no key was accepted for {}@{}",
            hop.user, hop.address
        ))),
    }
}

/// Offers each key, then the agent's: whether one was accepted.
async fn authenticate(
    session: &mut Session,
    keys: Vec<PrivateKey>,
    user: &str,
) -> Result<bool, HostError> {
    // The server's preferred RSA signature hash, asked once per session (ignored for other keys).
    let hash = session
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten();
    for key in keys {
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        match session.authenticate_publickey(user, key).await {
            Ok(r) if r.success() => return Ok(true),
            Ok(_) => continue,
            Err(e) => return Err(HostError::Ssh(format!("authentication failed: {e}"))),
        }
    }
    Ok(try_agent(session, user, hash).await)
}

async fn try_agent(session: &mut Session, user: &str, hash: Option<russh::keys::HashAlg>) -> bool {
    if std::env::var_os("SSH_AUTH_SOCK").is_none() {
        return false;
    }
    let Ok(mut agent) = russh::keys::agent::client::AgentClient::connect_env().await else {
        return false;
    };
    let Ok(identities) = agent.request_identities().await else {
        return false;
    };
    for id in identities {
        let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = id else {
            continue;
        };
        if let Ok(r) = session
            .authenticate_publickey_with(user, key, hash, &mut agent)
            .await
        {
            if r.success() {
                return true;
            }
        }
    }
    false
}

/// A TCP stream to an SSH server that acknowledges at once what it reads. sshd does not set
/// TCP_NODELAY for forwarded channels, so an engine reply written in two parts (headers, then
/// body) waits with its second part for the ACK of the first, and a delayed ACK (40 ms on
/// Linux) stalls each such request. TCP_QUICKACK does not stay set, so it is set after each
/// read.
struct QuickAck(tokio::net::TcpStream);

impl tokio::io::AsyncRead for QuickAck {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let read = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = read {
            quick_ack(&self.0);
        }
        read
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn quick_ack(tcp: &tokio::net::TcpStream) {
    // Only a hint: a failure changes nothing but speed.
    let _ = socket2::SockRef::from(tcp).set_tcp_quickack(true);
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn quick_ack(_: &tokio::net::TcpStream) {}

impl tokio::io::AsyncWrite for QuickAck {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A stream that says when data arrives on it (see `answer_through_bastion`); dropped, it
/// says so once more, so that the task waiting on it ends.
struct Arrivals<S> {
    inner: S,
    notify: Arc<tokio::sync::Notify>,
}

impl<S> Drop for Arrivals<S> {
    fn drop(&mut self) {
        self.notify.notify_one();
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Arrivals<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(read, std::task::Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.notify.notify_one();
        }
        read
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Arrivals<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use russh::keys::{Algorithm, EcdsaCurve};

    #[test]
    fn the_recorded_host_key_algorithms_are_asked_for_first() {
        let order = super::host_key_order(&[Algorithm::Rsa { hash: None }]);
        assert!(matches!(order[0], Algorithm::Rsa { .. }), "{order:?}");
        assert!(
            order[..3]
                .iter()
                .all(|a| matches!(a, Algorithm::Rsa { .. })),
            "{order:?}"
        );
        let ecdsa = Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        };
        let order = super::host_key_order(&[ecdsa.clone(), Algorithm::Ed25519]);
        assert_eq!(order[..2], [ecdsa, Algorithm::Ed25519]);
        assert_eq!(order.len(), russh::Preferred::DEFAULT.key.len());
    }
}
