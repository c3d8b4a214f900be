//! Prometheus metrics for `berth sync --every --metrics ADDR`: when the last round ran and
//! how it ended, rounds by exit code, and each deployment's ready and desired pods. The text
//! is made from plain values (pure); `serve` answers any GET with it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the reconciler knows after its rounds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub project: String,
    /// Unix seconds when the last round ended.
    pub last_round_end: Option<u64>,
    pub last_exit_code: Option<u8>,
    pub last_round_seconds: f64,
    /// Rounds by exit code.
    pub rounds: BTreeMap<u8, u64>,
    /// By deployment: (ready, desired) pods after the last round.
    pub pods: BTreeMap<String, (u32, u32)>,
    /// Hosts unreachable after the last round.
    pub unreachable: usize,
    /// Rounds whose commit the policy refused (the fleet was kept at the last good one).
    pub refused_commits: u64,
    /// Whether the newest commit was refused in the last round.
    pub held_at_last_good: bool,
}

fn label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let p = label(&self.project);
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, kind: &str, lines: Vec<(String, String)>| {
            writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}").ok();
            for (labels, value) in lines {
                writeln!(out, "{name}{{project=\"{p}\"{labels}}} {value}").ok();
            }
        };
        gauge(
            "berth_last_sync_timestamp_seconds",
            "When the last sync round ended (Unix seconds).",
            "gauge",
            self.last_round_end
                .map(|t| (String::new(), t.to_string()))
                .into_iter()
                .collect(),
        );
        gauge(
            "berth_last_sync_exit_code",
            "The exit code of the last sync round (0 done, 1 error, 3 rolled back, 4 locked).",
            "gauge",
            self.last_exit_code
                .map(|c| (String::new(), c.to_string()))
                .into_iter()
                .collect(),
        );
        gauge(
            "berth_last_sync_duration_seconds",
            "How long the last sync round took.",
            "gauge",
            vec![(String::new(), format!("{:.3}", self.last_round_seconds))],
        );
        gauge(
            "berth_syncs_total",
            "Sync rounds, by exit code.",
            "counter",
            self.rounds
                .iter()
                .map(|(c, n)| (format!(",exit_code=\"{c}\""), n.to_string()))
                .collect(),
        );
        gauge(
            "berth_pods_ready",
            "Pods at the desired revision that run and are not unhealthy, by deployment.",
            "gauge",
            self.pods
                .iter()
                .map(|(d, (r, _))| (format!(",deployment=\"{}\"", label(d)), r.to_string()))
                .collect(),
        );
        gauge(
            "berth_pods_desired",
            "Replicas Git declares, by deployment.",
            "gauge",
            self.pods
                .iter()
                .map(|(d, (_, w))| (format!(",deployment=\"{}\"", label(d)), w.to_string()))
                .collect(),
        );
        gauge(
            "berth_hosts_unreachable",
            "Hosts that could not be observed after the last round.",
            "gauge",
            vec![(String::new(), self.unreachable.to_string())],
        );
        gauge(
            "berth_sync_refused_commits_total",
            "Rounds whose commit the policy refused (unsigned, or signed by a key it does not list).",
            "counter",
            vec![(String::new(), self.refused_commits.to_string())],
        );
        gauge(
            "berth_sync_held_at_last_good_commit",
            "1 when the last round refused the newest commit and kept the fleet at the last good one.",
            "gauge",
            vec![(String::new(), u8::from(self.held_at_last_good).to_string())],
        );
        out
    }
}

/// At most this many scrapes are served at once; a connection past it is closed at once, so
/// idle connections cannot take the file descriptors the sync rounds need for SSH.
pub const MAX_CONNECTIONS: usize = 32;
/// A client has this long to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// No connection lives longer than this, whatever it does.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// The address `--metrics` names: `PORT` alone is on loopback (`127.0.0.1:PORT`); another
/// interface has to be named (`0.0.0.0:9187`).
pub fn parse_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse()
        .map_err(|_| format!("{text:?} is not PORT or ADDRESS:PORT (e.g. 9187, 127.0.0.1:9187)"))
}

/// Serves the metrics on `addr` until the process ends: any request gets the text, one
/// request per connection. Accept errors (out of file descriptors) back off instead of
/// spinning.
pub async fn serve(
    addr: std::net::SocketAddr,
    metrics: Arc<Mutex<Metrics>>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(10);
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => {
                    backoff = Duration::from_millis(10);
                    stream
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, answer(stream, metrics)).await;
            });
        }
    });
    Ok(())
}

async fn answer(stream: tokio::net::TcpStream, metrics: Arc<Mutex<Metrics>>) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let service = hyper::service::service_fn(move |_req| {
        let text = metrics.lock().expect("not poisoned").render();
        async move {
            hyper::Response::builder()
                .header("content-type", "text/plain; version=0.0.4")
                .body(Full::new(Bytes::from(text)))
        }
    });
    let io = hyper_util::rt::TokioIo::new(stream);
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false)
        .serve_connection(io, service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_alone_is_on_loopback() {
        assert_eq!(parse_addr("9187").unwrap().to_string(), "127.0.0.1:9187");
        assert_eq!(
            parse_addr("0.0.0.0:9187").unwrap().to_string(),
            "0.0.0.0:9187"
        );
        assert!(parse_addr("localhost").is_err());
    }

    #[test]
    fn the_text_is_prometheus_exposition() {
        let m = Metrics {
            project: "shop".into(),
            last_round_end: Some(1_700_000_000),
            last_exit_code: Some(0),
            last_round_seconds: 1.5,
            rounds: BTreeMap::from([(0, 3), (3, 1)]),
            pods: BTreeMap::from([("web".to_string(), (2, 3))]),
            unreachable: 0,
            refused_commits: 2,
            held_at_last_good: true,
        };
        let text = m.render();
        for line in [
            "berth_last_sync_timestamp_seconds{project=\"shop\"} 1700000000",
            "berth_syncs_total{project=\"shop\",exit_code=\"3\"} 1",
            "berth_pods_ready{project=\"shop\",deployment=\"web\"} 2",
            "berth_pods_desired{project=\"shop\",deployment=\"web\"} 3",
            "# TYPE berth_syncs_total counter",
            "berth_sync_refused_commits_total{project=\"shop\"} 2",
            "berth_sync_held_at_last_good_commit{project=\"shop\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
