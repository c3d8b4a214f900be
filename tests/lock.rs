//! The apply lock between real berth processes on the lab: a lease that ends when its holder
//! is killed, a takeover by the next apply, waiting with --lock-wait, `berth lock status`, and
//! `berth unlock` refusing to remove the lock of a live process.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// A deployment whose apply takes a while: each pod must stay ready for `min_ready`.
fn slow_web(version: &str, min_ready: &str) -> String {
    web("web", 3, version, "role in (web,worker)").replace(
        "strategy: {min_ready: 1s, health_timeout: 30s}",
        &format!("strategy: {{min_ready: {min_ready}, health_timeout: 30s}}"),
    )
}

fn lock_networks(repo: &Repo, host: &str) -> String {
    docker(
        host,
        &[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("name=berth-lock-{}", repo.project),
        ],
    )
    .trim()
    .to_string()
}

fn leases(repo: &Repo, host: &str) -> String {
    docker(
        host,
        &[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("name=berth-lease-{}", repo.project),
        ],
    )
    .trim()
    .to_string()
}

/// Waits (at most 30 s) until the lock exists on every host.
fn wait_for_lock(repo: &Repo) {
    let start = Instant::now();
    while HOSTS.iter().any(|h| lock_networks(repo, h).is_empty()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the apply never took its lock"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_apply_holds_the_lock_only_until_its_lease_ends() {
    let repo = Repo::new("t-lease");
    repo.write("deployments/web.yaml", &slow_web("v1", "1s"));
    repo.commit("v1");
    repo.apply_ok(&[]);
    repo.write("deployments/web.yaml", &slow_web("v2", "6s"));
    repo.commit("v2");

    let holder = spawn_berth(&repo, &["apply", "--auto-approve", "--lock-lease", "3s"]);
    let pid = holder.id();
    wait_for_lock(&repo);

    let status = repo.berth(&["lock", "status"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(
        status.stdout.matches(&format!("pid {pid}")).count(),
        3,
        "lock status names the holder on each host: {status:?}"
    );
    let unlock = repo.berth(&["unlock"]);
    assert_eq!(unlock.code, 1, "{unlock:?}");
    assert!(
        unlock.said().contains("still running on this machine"),
        "{unlock:?}"
    );
    assert!(
        !lock_networks(&repo, "h1").is_empty(),
        "unlock removed a live lock"
    );

    // A second apply gives up at once; a third waits.
    let refused = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(
        refused.stderr.contains(&format!("pid {pid}")),
        "{refused:?}"
    );
    let waiting = spawn_berth(&repo, &["apply", "--auto-approve", "--lock-wait", "2m"]);

    // The holder dies without releasing anything.
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    let killed = finish(holder);
    assert_ne!(killed.code, 0);
    assert!(
        !lock_networks(&repo, "h1").is_empty(),
        "SIGKILL cannot release"
    );

    let waited = finish(waiting);
    assert_eq!(waited.code, 0, "{waited:?}");
    assert!(
        waited.stderr.contains("waiting for the apply lock")
            && waited.stderr.contains("took over the apply lock")
            && waited.stderr.contains(&format!("pid {pid}")),
        "{waited:?}"
    );
    for h in HOSTS {
        assert!(lock_networks(&repo, h).is_empty(), "lock left on {h}");
        assert!(leases(&repo, h).is_empty(), "lease left on {h}");
    }
    let status = repo.berth(&["lock", "status"]);
    assert_eq!(status.stdout.matches(": free").count(), 3, "{status:?}");
    // The taker planned again under the lock: it finished the killed apply's work.
    let plan = repo.berth(&["plan", "--exit-code"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let running: Vec<_> = repo
        .all_containers()
        .into_iter()
        .filter(|c| c.state == "running")
        .collect();
    assert_eq!(running.len(), 3, "{running:?}");
}

#[test]
fn of_two_applies_started_together_exactly_one_runs() {
    let repo = Repo::new("t-contend");
    repo.write("deployments/web.yaml", &slow_web("v1", "3s"));
    repo.commit("v1");
    let a = spawn_berth(&repo, &["apply", "--auto-approve"]);
    let b = spawn_berth(&repo, &["apply", "--auto-approve"]);
    let (a, b) = (finish(a), finish(b));
    let mut codes = [a.code, b.code];
    codes.sort();
    assert_eq!(codes, [0, 4], "a: {a:?}\nb: {b:?}");
    assert_eq!(repo.all_containers().len(), 3);
    for h in HOSTS {
        assert!(lock_networks(&repo, h).is_empty(), "lock left on {h}");
    }
}
