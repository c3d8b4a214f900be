//! Canary analysis: HTTP requests that berth makes to each canary pod's address, through the
//! SSH connection it already holds to the pod's host (a `direct-tcpip` channel), so no port
//! has to be published and no agent runs on the host.

use super as ops;
use crate::hosts::http::HttpError;
use crate::hosts::ssh::Session;
use crate::model::Analysis;
use crate::plan::ServiceJoin;
use bollard::Docker;
use futures_util::future::join_all;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One GET to `address:port` + `path`; its status code.
async fn status(session: &Session, address: &str, port: u16, path: &str) -> Result<u16, HttpError> {
    crate::hosts::http::get(session, address, port, path)
        .await
        .map(|(code, _)| code)
}

/// Checks every pod `samples` times, `interval_ms` apart (pods in parallel), and adds its
/// failures to `wave_failures`, which the hosts of one wave share. Fails when the wave's count
/// is over `failure_limit`, with this host's failures listed.
pub async fn analyze(
    docker: &Docker,
    session: &Session,
    pods: &[ServiceJoin],
    check: &Analysis,
    wave_failures: &AtomicU32,
) -> Result<(), (String, String)> {
    let per_pod = pods.iter().map(|p| async move {
        let address = match ops::address(docker, &p.container, &p.network).await {
            Ok(a) => a,
            Err(e) => return vec![e.to_string()],
        };
        let mut failures = Vec::new();
        for i in 0..check.samples {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(check.interval_ms)).await;
            }
            let got = tokio::time::timeout(
                REQUEST_TIMEOUT,
                status(session, &address, check.port, &check.path),
            )
            .await
            .unwrap_or_else(|_| {
                Err(HttpError::Answer(format!(
                    "no answer within {REQUEST_TIMEOUT:?}"
                )))
            });
            match got {
                Ok(code) if code == check.status => {}
                Ok(code) => failures.push(format!(
                    "{}: GET {} answered {code}, expected {}",
                    p.container, check.path, check.status
                )),
                Err(e) => failures.push(format!("{}: GET {}: {e}", p.container, check.path)),
            }
        }
        failures
    });
    let failures: Vec<String> = join_all(per_pod).await.into_iter().flatten().collect();
    let mine = failures.len() as u32;
    let all = wave_failures.fetch_add(mine, Ordering::SeqCst) + mine;
    if all > check.failure_limit {
        return Err((
            format!(
                "analysis failed: {all} request(s) failed over all hosts, {mine} of {} here (limit {})",
                pods.len() as u32 * check.samples,
                check.failure_limit
            ),
            failures.join("\n") + "\n",
        ));
    }
    Ok(())
}
