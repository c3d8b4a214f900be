//! HTTP requests made from a host's side of its SSH connection (a `direct-tcpip` channel):
//! canary analysis asks pods, observation asks the edge which configuration it runs.

use crate::hosts::ssh::Session;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

/// Why a GET from the host's side got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Nothing took the connection at `address:port` (the host's sshd could not open it).
    #[error("cannot reach {at}: {why}")]
    Unreachable { at: String, why: String },
    /// The connection was taken, but no whole HTTP answer came back.
    #[error("{0}")]
    Answer(String),
}

fn answer(e: impl std::fmt::Display) -> HttpError {
    HttpError::Answer(e.to_string())
}

/// One GET to `address:port` + `path` from the host's side of the SSH connection; its status
/// code and body (read up to a small limit: an answer, not a download).
pub async fn get(
    session: &Session,
    address: &str,
    port: u16,
    path: &str,
) -> Result<(u16, String), HttpError> {
    let channel = session
        .channel_open_direct_tcpip(address, port as u32, "127.0.0.1", 0)
        .await
        .map_err(|e| HttpError::Unreachable {
            at: format!("{address}:{port}"),
            why: e.to_string(),
        })?;
    let io = TokioIo::new(channel.into_stream());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(answer)?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, address)
        .body(Empty::<Bytes>::new())
        .map_err(answer)?;
    let res = sender.send_request(req).await.map_err(answer)?;
    let code = res.status().as_u16();
    let body = http_body_util::Limited::new(res.into_body(), 64 * 1024);
    let bytes = http_body_util::BodyExt::collect(body)
        .await
        .map_err(answer)?
        .to_bytes();
    Ok((code, String::from_utf8_lossy(&bytes).into_owned()))
}
