//! The Docker API over the host's SSH session: each HTTP connection is one
//! `direct-streamlocal` channel to the engine's unix socket. Concurrent channels are capped,
//! since a burst of opens can overflow the remote socket's accept backlog.

use super::ssh::Session;
use bollard::{ClientVersion, Docker};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Concurrent Docker requests (channels) per host.
pub const CHANNELS_PER_HOST: usize = 8;
/// Seconds a single Docker API call may take.
pub const REQUEST_TIMEOUT_SECS: u64 = 120;

fn io_error(e: impl std::fmt::Display) -> bollard::errors::Error {
    bollard::errors::Error::IOError {
        err: std::io::Error::other(e.to_string()),
    }
}

/// A bollard client whose requests travel over `session`, version negotiated with the engine.
pub async fn connect(session: Arc<Session>, socket: &str) -> Result<Docker, String> {
    let limit = Arc::new(Semaphore::new(CHANNELS_PER_HOST));
    let socket = socket.to_string();
    let transport = move |mut req: bollard::BollardRequest| {
        // HTTP/1.1 needs a Host header; hyper's low-level client does not add one.
        req.headers_mut().insert(
            hyper::header::HOST,
            hyper::header::HeaderValue::from_static("docker"),
        );
        let session = session.clone();
        let limit = limit.clone();
        let socket = socket.clone();
        async move {
            let permit = limit.acquire_owned().await.map_err(io_error)?;
            let channel = session
                .channel_open_direct_streamlocal(socket.clone())
                .await
                .map_err(|e| io_error(format!("cannot open a channel to {socket}: {e}")))?;
            let io = TokioIo::new(channel.into_stream());
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(async move {
                let _ = conn.await;
                drop(permit);
            });
            Ok(sender.send_request(req).await?)
        }
    };
    let docker = Docker::connect_with_custom_transport(
        transport,
        Some("http://docker"),
        REQUEST_TIMEOUT_SECS,
        &ClientVersion {
            major_version: 1,
            minor_version: 41,
        },
    )
    .map_err(|e| e.to_string())?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| format!("cannot reach the Docker engine: {e}"))
}
