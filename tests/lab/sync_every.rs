//! `berth sync --every` as a reconciler on the lab: it converges, repairs a container removed
//! by hand, rolls out a new commit, serves its metrics through 2,000 idle connections, and ends
//! with exit 0 on SIGTERM while it sleeps.

use crate::common::*;
use std::time::{Duration, Instant};

fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("sync --every did not get there: {what}");
}

#[test]
fn sync_every_repairs_drift_rolls_out_commits_and_stops_on_sigterm() {
    let repo = Repo::new("t-every");
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "zone=b"));
    repo.commit("v1");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut watched = Watched::start(&repo, &["sync", "--every", "5s", "--metrics", &addr]);
    let running = |image: &str| {
        let c = repo.running_on("h2");
        c.len() == 1 && c[0].image.ends_with(image)
    };
    until("v1 runs", || running("web:v1"));
    // Removed only once the first round is over: a pod removed during its health gate fails
    // that rollout, which is a verdict on the revision, not drift.
    watched.wait_for("round 1 ended with exit 0");
    let first = repo.running_on("h2")[0].name.clone();
    // Removed by hand: the next round puts it back.
    docker("h2", &["rm", "-f", &first]);
    until("the removed pod is back", || running("web:v1"));
    // A new commit: rolled out by a later round.
    repo.write("deployments/web.yaml", &web("web", 1, "v2", "zone=b"));
    repo.commit("v2");
    until("v2 runs", || running("web:v2"));
    watched.wait_for("ended with exit 0");
    // The metrics, as Prometheus would scrape them.
    until("the metrics show the v2 pod ready", || {
        let text = scrape(&addr);
        text.contains("berth_pods_ready{project=\"t-every\",deployment=\"web\"} 1")
            && text.contains("berth_pods_desired{project=\"t-every\",deployment=\"web\"} 1")
            && text.contains("berth_syncs_total{project=\"t-every\",exit_code=\"0\"}")
            && text.contains("berth_last_sync_exit_code{project=\"t-every\"} 0")
    });
    // 2,000 idle connections to the metrics port (a scan, a slowloris): the rounds go on
    // (a new commit is rolled out, which needs SSH sockets) and a scrape is answered.
    let idle: Vec<std::net::TcpStream> = (0..2000)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))
                .ok()
        })
        .collect();
    assert!(idle.len() >= 1900, "only {} connections opened", idle.len());
    repo.write("deployments/web.yaml", &web("web", 1, "v3", "zone=b"));
    repo.commit("v3");
    until("v3 runs while the idle connections are held", || {
        running("web:v3")
    });
    until("a scrape is answered while they are held", || {
        scrape(&addr).contains("berth_last_sync_exit_code{project=\"t-every\"} 0")
    });
    drop(idle);
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &watched.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (code, rest) = watched.finish();
    assert_eq!(code, Some(0), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:?}");
}

/// GET /metrics over plain HTTP.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}
