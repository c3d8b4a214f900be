//! Faults on hosts during an apply: a host's link cut (its veth set down), a host's dockerd
//! restarted, a host's dockerd frozen (SIGSTOP). The apply ends with a documented exit code and
//! names the host; once the host is back, the next apply converges. (A host unreachable from
//! the start is in tests/lab/e2e.rs.) They run on the lab's fault hosts h6..h8, which no other
//! test uses.

use crate::common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// A fault hits every project on the host: the tests here take turns.
static ONE_FAULT_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A project on the fault hosts, h6 and h7 (role web) and h8 (role worker).
fn fault_repo(project: &str) -> Repo {
    let inventory = "hosts:\n  - {name: h6, address: 198.18.0.16, labels: {role: web}}\n  - {name: h7, address: 198.18.0.17, labels: {role: web}}\n  - {name: h8, address: 198.18.0.18, labels: {role: worker}}\n";
    Repo::on(project, &FAULT_HOSTS, inventory)
}

fn lab(args: &[&str]) {
    let ok = Command::new(root().join("scripts/lab"))
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "scripts/lab {args:?} failed");
}

/// Six pods over the three hosts, one replaced at a time, each ready for 2 s.
fn six(version: &str) -> String {
    web("web", 6, version, "role in (web,worker)").replace(
        "strategy: {min_ready: 1s, health_timeout: 30s}",
        "strategy: {min_ready: 2s, health_timeout: 30s, max_surge: 1, max_unavailable: 0}\nservice: {name: web}",
    )
}

fn spawn_apply(repo: &Repo) -> std::process::Child {
    spawn_berth(
        repo,
        &["apply", "--auto-approve", "-v", "--command-timeout", "8s"],
    )
}

/// Deploys six v1 pods, commits v2 and starts its apply; returns once a v2 pod runs.
fn start_rollout(repo: &Repo) -> std::process::Child {
    repo.write("deployments/web.yaml", &six("v1"));
    repo.commit("v1");
    repo.apply_ok(&[]);
    repo.write("deployments/web.yaml", &six("v2"));
    repo.commit("v2");
    let apply = spawn_apply(repo);
    wait_for_rollout(repo, "v2");
    apply
}

/// Waits until a pod of `version` runs somewhere: the rollout is under way.
fn wait_for_rollout(repo: &Repo, version: &str) {
    let start = Instant::now();
    let image = format!("berth-lab/web:{version}");
    while !repo.all_containers().iter().any(|c| c.image == image) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the rollout never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// After the fault is gone: one plain apply converges to six v2 pods, nothing left to do.
fn assert_recovers(repo: &Repo) {
    let r = repo.berth(&["apply", "--auto-approve", "--lock-wait", "60s"]);
    assert_eq!(r.code, 0, "the next apply converges: {r:?}");
    let plan = repo.berth(&["plan", "--exit-code"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let drift = repo.berth(&["drift"]);
    assert_eq!(drift.code, 0, "{drift:?}");
    let running: Vec<Container> = repo
        .all_containers()
        .into_iter()
        .filter(|c| c.state == "running")
        .collect();
    assert_eq!(running.len(), 6, "{running:?}");
    assert!(
        running.iter().all(|c| c.image == "berth-lab/web:v2"),
        "{running:?}"
    );
}

#[test]
fn a_host_whose_link_is_cut_during_an_apply_is_named_and_the_next_apply_converges() {
    let _turn = ONE_FAULT_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let repo = fault_repo("t-cut");
    let apply = start_rollout(&repo);
    lab(&["link", "h7", "down"]);
    let r = finish(apply);
    lab(&["link", "h7", "up"]);
    assert!(
        r.code == 1 || r.code == 3,
        "a failed apply exits 1 or 3: {r:?}"
    );
    assert!(r.stderr.contains("h7"), "the report names the host: {r:?}");
    // The other hosts' pods serve: nothing there is left stopped or half-made.
    for h in ["h6", "h8"] {
        let c = repo.containers(h);
        assert!(c.iter().all(|c| c.state == "running"), "{h}: {c:?}");
        assert!(c.len() >= 2, "{h}: {c:?}");
    }
    assert_recovers(&repo);
}

#[test]
fn a_dockerd_restarted_during_an_apply_is_named_and_the_next_apply_converges() {
    let _turn = ONE_FAULT_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let repo = fault_repo("t-restart");
    let apply = start_rollout(&repo);
    lab(&["restart-docker", "h8"]);
    let r = finish(apply);
    // Either the restart hit a step on h8 (exit 3 or 1, naming it), or h8 had finished its
    // part and came back with its pods restarted by their restart policy (exit 0).
    assert!(matches!(r.code, 0 | 1 | 3), "{r:?}");
    if r.code != 0 {
        assert!(r.stderr.contains("h8"), "the report names the host: {r:?}");
    }
    assert_recovers(&repo);
}

#[test]
fn a_frozen_dockerd_ends_the_apply_within_its_deadline_and_the_next_apply_converges() {
    let _turn = ONE_FAULT_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let repo = fault_repo("t-freeze");
    let apply = start_rollout(&repo);
    // h7's engine stops answering anything, in the middle of the rollout (its containers
    // run on: only dockerd is suspended).
    lab(&["freeze", "h7"]);
    let frozen = Instant::now();
    let r = finish(apply);
    let took = frozen.elapsed();
    lab(&["thaw", "h7"]);
    assert!(
        r.code == 1 || r.code == 3,
        "a failed apply exits 1 or 3: {r:?}"
    );
    assert!(
        r.stderr
            .contains("h7: the Docker engine did not answer within 8s"),
        "the report names the host and what did not answer: {r:?}"
    );
    // One wait on the frozen engine, not one per call: the rollback on the others, the
    // history record, the lock's renewal and release do not wait on h7 again.
    assert!(
        took < Duration::from_secs(8 + 20),
        "the apply ended {took:?} after the freeze, with an 8s deadline: {r:?}"
    );
    for h in ["h6", "h8"] {
        let c = repo.containers(h);
        assert!(c.iter().all(|c| c.state == "running"), "{h}: {c:?}");
        assert!(c.len() >= 2, "{h}: {c:?}");
    }
    // The lock left on h7 is taken over at once (its holder's process ended): no unlock.
    assert_recovers(&repo);
}
