//! The apply lock between real berth processes on the lab: a killed holder on this machine is
//! taken over at once, one from elsewhere when its lease ends; waiting with --lock-wait,
//! `berth lock status`, `berth unlock` refusing to remove the lock of a live process, and
//! lease volumes left by an apply killed while releasing cleared by the next one; a holder
//! suspended (SIGSTOP) past its lease stopping without a step when it resumes, and clocks an
//! hour apart unable to take a live lock (leases are judged by the engines' clocks).

use crate::common::*;
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
fn a_killed_apply_on_this_machine_is_taken_over_without_waiting_for_its_lease() {
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

    // A second apply gives up at once.
    let refused = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(
        refused.stderr.contains(&format!("pid {pid}")),
        "{refused:?}"
    );
    // A third waits: its words go to a file, to see that it waits before the holder dies.
    let said = repo.path().join(".waiting.log");
    let waiting = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["apply", "--auto-approve", "--lock-wait", "2m", "--repo"])
        .arg(repo.path())
        .env("NO_COLOR", "1")
        .stdout(std::fs::File::create(&said).unwrap())
        .stderr(std::fs::File::create(repo.path().join(".waiting.err")).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !std::fs::read_to_string(repo.path().join(".waiting.err"))
        .unwrap_or_default()
        .contains("waiting for the apply lock")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the third apply never waited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

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

    let mut waited = finish(waiting);
    waited.stdout = std::fs::read_to_string(&said).unwrap();
    waited.stderr = std::fs::read_to_string(repo.path().join(".waiting.err")).unwrap();
    assert_eq!(waited.code, 0, "{waited:?}");
    assert!(
        waited.stderr.contains("waiting for the apply lock")
            && waited.stderr.contains("took over the apply lock")
            && waited.stderr.contains(&format!("pid {pid}"))
            // Its process ran on this machine: no need to wait out the lease.
            && waited.stderr.contains("its process has ended"),
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

/// Puts a lock on every host as an apply on another machine would leave it: its process
/// cannot be checked from here, so only its lease tells when it is gone.
fn foreign_lock(repo: &Repo, lease_s: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for h in HOSTS {
        docker(
            h,
            &[
                "network",
                "create",
                "--label",
                &format!("berth.project={}", repo.project),
                "--label",
                "berth.lock.id=elsewhere1",
                "--label",
                "berth.lock.owner=ci@elsewhere pid 77",
                "--label",
                &format!("berth.lock.since={now}"),
                "--label",
                &format!("berth.lock.lease={lease_s}"),
                "--label",
                "berth.lock.process=00000000-0000-0000-0000-000000000000/1/0/77/1",
                &format!("berth-lock-{}", repo.project),
            ],
        );
    }
}

/// Puts a lease volume of the lock `id` on `host`, labelled as berth labels them.
fn lease_volume(repo: &Repo, host: &str, id: &str, n: u32, label: &str) {
    docker(
        host,
        &[
            "volume",
            "create",
            "--label",
            &format!("berth.project={}", repo.project),
            "--label",
            &format!("berth.lock.id={id}"),
            "--label",
            label,
            &format!("berth-lease-{}-{id}-{n}", repo.project),
        ],
    );
}

/// Leaves a lease volume of no lock on `host`, as an apply killed while it released does.
fn orphan_lease(repo: &Repo, host: &str) {
    lease_volume(repo, host, "released1", 4, "berth.lock.expires=99999999999");
}

#[test]
fn a_lock_from_another_machine_holds_until_its_lease_ends_and_left_over_leases_are_cleared() {
    let repo = Repo::new("t-foreign");
    repo.write("deployments/web.yaml", &slow_web("v1", "1s"));
    repo.commit("v1");
    repo.apply_ok(&[]);

    // Leases of no lock (an apply killed while releasing) are named by a plan and cleared
    // by the next apply, even one with nothing else to do.
    orphan_lease(&repo, "h2");
    let plan = repo.berth(&["plan"]);
    assert!(
        plan.stdout
            .contains("h2: an apply stopped without releasing its lock"),
        "{plan:?}"
    );
    let apply = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(leases(&repo, "h2").is_empty(), "the left-over lease stays");
    assert!(lock_networks(&repo, "h2").is_empty(), "{apply:?}");

    // A live lock whose process is elsewhere: refused, then taken over once its lease ends.
    foreign_lock(&repo, 6);
    repo.write("deployments/web.yaml", &slow_web("v2", "1s"));
    repo.commit("v2");
    let refused = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(
        refused.stderr.contains("ci@elsewhere pid 77"),
        "{refused:?}"
    );
    let status = repo.berth(&["lock", "status"]);
    assert_eq!(
        status.stdout.matches("lease runs until").count(),
        3,
        "{status:?}"
    );
    let waited = repo.berth(&["apply", "--auto-approve", "--lock-wait", "1m"]);
    assert_eq!(waited.code, 0, "{waited:?}");
    assert!(
        waited.stderr.contains("took over the apply lock")
            && waited.stderr.contains("lease expired"),
        "{waited:?}"
    );
    for h in HOSTS {
        assert!(lock_networks(&repo, h).is_empty(), "lock left on {h}");
        assert!(leases(&repo, h).is_empty(), "lease left on {h}");
    }
}

fn signal(pid: u32, sig: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{sig} {pid}");
}

/// The container events of `repo`'s project on `host` from `since` until now: what touched
/// its pods (other tests' projects run on the same hosts meanwhile). To the nanosecond: the
/// apply that finished just before `since` may have touched them within the same second.
fn container_events(repo: &Repo, host: &str, since: std::time::Duration) -> String {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    docker(
        host,
        &[
            "events",
            "--since",
            &format!("{}.{:09}", since.as_secs(), since.subsec_nanos()),
            "--until",
            &until.to_string(),
            "--filter",
            "type=container",
            "--filter",
            &format!("label=berth.project={}", repo.project),
            "--filter",
            "event=create",
            "--filter",
            "event=start",
            "--filter",
            "event=stop",
            "--filter",
            "event=destroy",
            "--filter",
            "event=kill",
            "--filter",
            "event=rename",
        ],
    )
}

#[test]
fn a_holder_suspended_past_its_lease_resumes_and_stops_without_touching_a_host() {
    let repo = Repo::new("t-suspend");
    repo.write("deployments/web.yaml", &slow_web("v1", "1s"));
    repo.commit("v1");
    repo.apply_ok(&[]);
    repo.write("deployments/web.yaml", &slow_web("v2", "4s"));
    repo.commit("v2");

    // The holder is suspended (a paused CI machine, a laptop's lid) while it waits for a
    // new pod to stay ready.
    let mut holder = Watched::start(
        &repo,
        &["apply", "--auto-approve", "--lock-lease", "3s", "-v"],
    );
    holder.wait_for("to be ready for 4s");
    signal(holder.pid(), "STOP");

    // Its lease runs out by the engines' clocks; another apply takes over and finishes.
    let start = Instant::now();
    loop {
        let status = repo.berth(&["lock", "status"]);
        if status.stdout.matches("lease expired").count() == 3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the suspended holder's lease never ran out: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let taker = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(taker.code, 0, "{taker:?}");
    assert!(
        taker.stderr.contains("took over the apply lock")
            && taker.stderr.contains(&format!("pid {}", holder.pid())),
        "{taker:?}"
    );
    // A third apply holds the lock now, from elsewhere, when the first one wakes up.
    foreign_lock(&repo, 600);
    for h in HOSTS {
        foreign_lease(&repo, h);
    }
    let resumed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    signal(holder.pid(), "CONT");
    let (code, said) = holder.finish();
    let said = said.join("\n");
    assert_eq!(code, Some(4), "exit 4, the lock's code: {said}");
    assert!(
        said.contains("was taken over") && said.contains("ci@elsewhere pid 77 holds it now"),
        "names who holds the lock: {said}"
    );
    assert!(
        !said.contains("rolling back"),
        "no rollback without the lock: {said}"
    );
    for h in HOSTS {
        let events = container_events(&repo, h, resumed_at);
        assert!(
            events.trim().is_empty(),
            "{h} was touched after the holder resumed:\n{events}"
        );
        // Its release left the lock and the lease of the one holding it now.
        assert!(!lock_networks(&repo, h).is_empty(), "{h}: lock removed");
        assert_eq!(
            leases(&repo, h),
            format!("berth-lease-{}-elsewhere1-0", repo.project),
            "{h}: only the holder's lease stays"
        );
    }
    let unlock = repo.berth(&["unlock"]);
    assert_eq!(unlock.code, 0, "{unlock:?}");
    let plan = repo.berth(&["plan", "--exit-code"]);
    assert_eq!(plan.code, 0, "the taker converged the fleet: {plan:?}");
}

/// A lease volume of the lock `foreign_lock` puts on `host`.
fn foreign_lease(repo: &Repo, host: &str) {
    lease_volume(repo, host, "elsewhere1", 0, "berth.lock.lease=600");
}

/// berth under libfaketime: its clock `offset` away from the engines' (`+1h`, `-1h`).
fn skewed(repo: &Repo, offset: &str, args: &[&str]) -> std::process::Child {
    let faketime = Command::new("faketime").arg("--version").output();
    assert!(
        faketime.is_ok(),
        "this test needs libfaketime's `faketime` (Debian package faketime; .ci/run installs it)"
    );
    Command::new("faketime")
        .args(["-f", offset])
        .arg(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .arg("--repo")
        .arg(repo.path())
        .env("NO_COLOR", "1")
        // Timers keep the real monotonic clock: only the wall clock is skewed.
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn clocks_an_hour_apart_cannot_take_a_live_lock() {
    let repo = Repo::new("t-skew");
    repo.write("deployments/web.yaml", &slow_web("v1", "1s"));
    repo.commit("v1");
    repo.apply_ok(&[]);
    repo.write("deployments/web.yaml", &slow_web("v2", "3s"));
    repo.commit("v2");

    // The holder's clock is an hour slow: by its own time its leases ran out long ago.
    let holder = skewed(
        &repo,
        "-1h",
        &["apply", "--auto-approve", "--lock-lease", "3s"],
    );
    wait_for_lock(&repo);
    let start = Instant::now();
    while HOSTS.iter().any(|h| leases(&repo, h).is_empty()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no lease written"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The taker's clock is an hour fast.
    let taker = finish(skewed(&repo, "+1h", &["apply", "--auto-approve"]));
    assert_eq!(taker.code, 4, "a live lock was taken: {taker:?}");
    // (faketime runs berth as its child: the pid named is not the one spawned here.)
    assert!(
        taker.stderr.contains("is held by") && taker.stderr.contains("left by the host's clock"),
        "{taker:?}"
    );
    let holder = finish(holder);
    assert_eq!(holder.code, 0, "the holder kept its lock: {holder:?}");
    assert!(!holder.stderr.contains("taken over"), "{holder:?}");
    let plan = repo.berth(&["plan", "--exit-code"]);
    assert_eq!(plan.code, 0, "{plan:?}");
}
