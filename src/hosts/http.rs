//! HTTP requests made from a host's side of its SSH connection (a `direct-tcpip` channel):
//! canary analysis asks pods, observation asks the edge which configuration it runs.

use crate::hosts::ssh::Session;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

/// One GET to `address:port` + `path` from the host's side of the SSH connection; its status
/// code and body (read up to a small limit: an answer, not a download).
pub async fn get(
    session: &Session,
    address: &str,
    port: u16,
    path: &str,
) -> Result<(u16, String), String> {
    let channel = session
        .channel_open_direct_tcpip(address, port as u32, "127.0.0.1", 0)
        .await
        .map_err(|e| format!("cannot reach {address}:{port}: {e}"))?;
    let io = TokioIo::new(channel.into_stream());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, address)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let code = res.status().as_u16();
    let body = http_body_util::Limited::new(res.into_body(), 64 * 1024);
    let bytes = http_body_util::BodyExt::collect(body)
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((code, String::from_utf8_lossy(&bytes).into_owned()))
}
