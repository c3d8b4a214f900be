//! The lab's parts for benchmarks, on the real lab: the latency relay (`scripts/lab latency`)
//! and the fan-out endpoints (`scripts/lab endpoints`) that `scripts/bench-suite` measures
//! through. Each test puts the lab back as it found it.

use crate::common::*;
use std::io::Read;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn lab(args: &[&str]) {
    let out = Command::new(root().join("scripts/lab"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/lab {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How long the SSH server's first line takes to arrive from `addr`.
fn banner_after(addr: &str) -> (Duration, String) {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    (start.elapsed(), String::from_utf8_lossy(&line).into())
}

#[test]
fn the_relay_delays_each_way_by_half_its_round_trip_and_berth_plans_through_it() {
    let repo = Repo::new("relay");
    repo.write("deployments/web.yaml", &web("web", 2, "v1", "role=web"));
    repo.commit("web");
    repo.apply_ok(&[]);
    let (direct, _) = banner_after("198.18.0.11:22");

    lab(&["latency", "120"]);
    let (relayed, banner) = banner_after("127.0.0.1:22001");
    // The same hosts, each reached through its relay port: the plan must find its pods.
    repo.write(
        "inventory.yaml",
        &inventory()
            .replace("address: 198.18.0.11", "address: 127.0.0.1, port: 22001")
            .replace("address: 198.18.0.12", "address: 127.0.0.1, port: 22002")
            .replace("address: 198.18.0.13", "address: 127.0.0.1, port: 22003"),
    );
    repo.commit("through the relay");
    let start = Instant::now();
    let plan = repo.berth(&["plan", "--exit-code"]);
    let took = start.elapsed();
    lab(&["latency", "0"]);

    assert!(banner.starts_with("SSH-2.0-"), "{banner:?}");
    // The banner crosses once, server to client: half of 120 ms.
    assert!(
        relayed >= Duration::from_millis(60) && direct < Duration::from_millis(60),
        "banner after {relayed:?} through the relay, {direct:?} direct"
    );
    assert_eq!(plan.code, 0, "{plan:?}");
    // A handshake alone is several round trips.
    assert!(took >= Duration::from_millis(4 * 120), "plan took {took:?}");
    // Stopped: nothing listens on the relay port any more.
    assert!(TcpStream::connect("127.0.0.1:22001").is_err());
}

#[test]
fn endpoints_are_more_ssh_servers_in_front_of_the_same_engines() {
    require_lab();
    lab(&["endpoints", "6"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("berth.yaml"), "project: fanout\n").unwrap();
    let hosts: String = (1..=6)
        .map(|k| {
            format!(
                "  - {{name: e{k}, address: 198.18.0.{}, port: {}}}\n",
                10 + (k - 1) % 3 + 1,
                23000 + k
            )
        })
        .collect();
    std::fs::write(
        dir.path().join("inventory.yaml"),
        format!("hosts:\n{hosts}"),
    )
    .unwrap();
    let repo = dir.path().to_str().unwrap();
    // One handshake at a time: the cap holds and every endpoint still answers.
    let plan = berth(&[
        "plan",
        "--exit-code",
        "--max-handshakes",
        "1",
        "--repo",
        repo,
    ]);
    lab(&["endpoints", "0"]);

    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.contains("No changes"), "{plan:?}");
    assert!(TcpStream::connect("198.18.0.11:23001").is_err());
}
