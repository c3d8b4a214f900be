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

fn io_error(e: impl std::fmt::Display) -> bollard::errors::Error {
    bollard::errors::Error::IOError {
        err: std::io::Error::other(e.to_string()),
    }
}

/// Sends one HTTP request to the engine over a new channel of the session. The channel
/// closes when the response (and its body) is done; `permit` is held until then.
async fn send<B>(
    session: &Session,
    socket: &str,
    mut req: hyper::Request<B>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<hyper::Response<hyper::body::Incoming>, bollard::errors::Error>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // HTTP/1.1 needs a Host header; hyper's low-level client does not add one.
    req.headers_mut().insert(
        hyper::header::HOST,
        hyper::header::HeaderValue::from_static("docker"),
    );
    let channel = session
        .channel_open_direct_streamlocal(socket)
        .await
        .map_err(|e| io_error(format!("cannot open a channel to {socket}: {e}")))?;
    let io = TokioIo::new(channel.into_stream());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        // With upgrades: an exec or attach takes the connection over as a raw stream.
        let _ = conn.with_upgrades().await;
        drop(permit);
    });
    Ok(sender.send_request(req).await?)
}

/// A raw JSON request to the engine, for the few calls bollard's models cannot express
/// (network creation with `CheckDuplicate`, which older engines need to refuse a duplicate).
pub async fn raw_json(
    session: &Session,
    socket: &str,
    method: hyper::Method,
    path: &str,
    body: serde_json::Value,
) -> Result<(u16, serde_json::Value), String> {
    use http_body_util::BodyExt;
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .map_err(|e| e.to_string())?;
    let response = send(session, socket, req, None)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((status, value))
}

/// A bollard client whose requests travel over `session`, version negotiated with the engine.
/// Each API call may take at most `request_timeout` (image pulls included).
pub async fn connect(
    session: Arc<Session>,
    socket: &str,
    request_timeout: std::time::Duration,
) -> Result<Docker, String> {
    let limit = Arc::new(Semaphore::new(CHANNELS_PER_HOST));
    let socket = socket.to_string();
    let transport = move |req: bollard::BollardRequest| {
        let session = session.clone();
        let limit = limit.clone();
        let socket = socket.clone();
        async move {
            let permit = limit.acquire_owned().await.map_err(io_error)?;
            send(&session, &socket, req, Some(permit)).await
        }
    };
    let docker = Docker::connect_with_custom_transport(
        transport,
        Some("http://docker"),
        request_timeout.as_secs().max(1),
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
