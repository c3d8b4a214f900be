//! End-to-end proofs of progressive delivery on the lab: a client pod on every host asks the
//! service name in a loop during each rollout and records every answer.

use crate::common::clients::*;
use crate::common::*;

#[test]
fn a_rolling_update_of_six_pods_fails_no_request() {
    let repo = Repo::new("t-zero");
    let strategy = "{min_ready: 1s, health_timeout: 30s, max_surge: 1, max_unavailable: 0}";
    let v1 = web_everywhere(6, "v1", strategy);
    rolling_update_fails_no_request(&repo, &v1, 200);

    // v3 fails its health check: the rollout stops at the first batch, v2 stays at full
    // count and answers every request.
    let before: Vec<Container> = repo
        .all_containers()
        .into_iter()
        .filter(|c| c.name.starts_with("web-"))
        .collect();
    let broken = v1
        .replace("web:v1", "web:v3")
        .replace("/healthz", "/missing");
    repo.write("deployments/web.yaml", &broken);
    repo.commit("web v3 with a failing health check");
    let r = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("rolling batch 1/"), "{r:?}");
    let after: Vec<Container> = repo
        .all_containers()
        .into_iter()
        .filter(|c| c.name.starts_with("web-"))
        .collect();
    assert_eq!(after, before, "the v2 pods, all running, and nothing else");
    let all = settle(&repo, &answers(&repo), 10);
    assert_eq!(failures(&all), 0, "{}", failed_report(&all));
    let tail = last_versions(&all, 5);
    assert!(tail.iter().all(|l| l == "ok berth-lab web v2"), "{tail:?}");
}

#[test]
fn a_blue_green_switch_fails_no_request_and_rolls_back_instantly() {
    let repo = Repo::new("t-bluegreen");
    let strategy = "{type: blue-green, min_ready: 1s, health_timeout: 30s, scale_down_delay: 10m}";
    let v1 = web_everywhere(3, "v1", strategy)
        .replace("replicas: 3", "replicas: 3\nplacement: {max_per_host: 1}");
    start_with_clients(&repo, &v1);
    repo.write("deployments/web.yaml", &v1.replace("web:v1", "web:v2"));
    repo.commit("web v2");
    let r = repo.apply_ok(&[]);
    assert!(r.all().contains("web-preview"), "{r:?}");
    // The new set waits behind the preview name; the service still answers v1 only.
    let mark = answers(&repo);
    let during = heard_after(&repo, &mark, 40);
    assert!(!during.is_empty());
    assert_eq!(
        share(&during, "v1"),
        1.0,
        "before promotion only v1: {during:?}"
    );
    assert_eq!(
        repo.all_containers().len(),
        3 + 6,
        "old and new set beside each other, and clients"
    );
    let plan = repo.berth(&["plan"]);
    assert!(plan.stdout.contains("paused"), "{plan:?}");
    assert!(plan.stdout.contains("berth promote web"), "{plan:?}");

    eprintln!("promote from {}", unix_now());
    let r = repo.berth(&["promote", "web"]);
    eprintln!("promote until {}", unix_now());
    assert_eq!(r.code, 0, "{r:?}");
    // A request that began before the switch may still be answered by the old set (it keeps
    // serving what it has; a connection retried after TCP's 1 s timeout included): new
    // requests are what must reach v2 only.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let mark = answers(&repo);
    let after = heard_after(&repo, &mark, 40);
    assert!(!after.is_empty());
    assert_eq!(
        share(&after, "v2"),
        1.0,
        "after promotion only v2: {after:?}"
    );
    let status = repo.berth(&["status"]);
    assert!(status.stdout.contains("promoted"), "{status:?}");

    // Within scale_down_delay the old set is still there: rollback switches back.
    eprintln!("rollback from {}", unix_now());
    let r = repo.berth(&["rollback", "web"]);
    eprintln!("rollback until {}", unix_now());
    assert_eq!(r.code, 0, "{r:?}");
    let mark = answers(&repo);
    let back = heard_after(&repo, &mark, 40);
    assert_eq!(share(&back, "v1"), 1.0, "after rollback only v1: {back:?}");
    let all = answers(&repo);
    assert_eq!(failures(&all), 0, "{}", failed_report(&all));
    // The rolled back revision is not rolled out again by a plain apply.
    let plan = repo.berth(&["plan"]);
    assert!(plan.stdout.contains("aborted"), "{plan:?}");
    assert!(plan.stdout.contains("No changes"), "{plan:?}");
}

#[test]
fn a_canary_at_weight_50_splits_traffic_and_a_failed_analysis_rolls_back() {
    let repo = Repo::new("t-canary");
    let strategy = "\n  type: canary\n  min_ready: 1s\n  health_timeout: 30s\n  steps:\n    - weight: 50\n    - analysis: {port: 8080, path: /healthz, samples: 3, interval: 200ms}\n    - pause: {}";
    let v1 = web_everywhere(6, "v1", strategy)
        .replace("replicas: 6", "replicas: 6\nplacement: {max_per_host: 2}");
    start_with_clients(&repo, &v1);
    repo.write("deployments/web.yaml", &v1.replace("web:v1", "web:v2"));
    repo.commit("web v2");
    let r = repo.apply_ok(&[]);
    assert!(
        r.all().contains("effective 50%"),
        "the plan states the weight: {r:?}"
    );
    let mark = answers(&repo);
    let split = heard_after(&repo, &mark, 80);
    assert!(split.len() > 60, "{split:?}");
    let v2 = share(&split, "v2");
    // One of the two pods behind the name on each host: DNS round robin gives about half.
    assert!(
        (0.25..=0.75).contains(&v2),
        "v2 answered {v2:.2} of requests at weight 50"
    );
    assert_eq!(share(&split, "v1") + v2, 1.0);
    let status = repo.berth(&["status"]);
    assert!(status.stdout.contains("paused"), "{status:?}");

    let r = repo.berth(&["promote", "web"]);
    assert_eq!(r.code, 0, "{r:?}");
    let running: Vec<Container> = repo
        .running_containers()
        .into_iter()
        .filter(|c| c.name.starts_with("web-"))
        .collect();
    assert_eq!(running.len(), 6, "{running:?}");
    assert!(running
        .iter()
        .all(|c| c.image.ends_with("v2") && c.state == "running"));

    // v3 fails its analysis: one failed request per canary pod, one pod per host, 3 in all,
    // over a limit of 2 (counted over all hosts, not per host). The canary goes, v2 answers
    // all the time, at full count.
    let bad = v1.replace("web:v1", "web:v3").replace(
        "path: /healthz, samples: 3, interval: 200ms",
        "path: /missing, samples: 1, failure_limit: 2",
    );
    repo.write("deployments/web.yaml", &bad);
    repo.commit("web v3, whose analysis fails");
    let r = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.all()
            .contains("analysis failed: 3 request(s) failed over all hosts"),
        "{r:?}"
    );
    let after: Vec<Container> = repo
        .running_containers()
        .into_iter()
        .filter(|c| c.name.starts_with("web-"))
        .collect();
    assert_eq!(after, running, "the v2 pods, all running, and no v3 pod");
    let kept = repo.stopped_containers();
    assert!(
        kept.iter().all(|c| c.image.ends_with("v1")),
        "only v1 is kept stopped: {kept:?}"
    );
    let mark = answers(&repo);
    let tail = heard_after(&repo, &mark, 20);
    assert_eq!(share(&tail, "v2"), 1.0, "{tail:?}");
    let all = answers(&repo);
    assert_eq!(failures(&all), 0, "{}", failed_report(&all));
}

#[test]
fn blue_green_with_auto_promote_and_no_delay_ends_with_the_new_set_serving_and_the_old_kept() {
    let repo = Repo::new("t-autopromote");
    let strategy =
        "{type: blue-green, auto_promote: true, scale_down_delay: 0s, min_ready: 1s, health_timeout: 30s}";
    let v1 = web_everywhere(2, "v1", strategy);
    repo.write("deployments/web.yaml", &v1);
    repo.commit("v1");
    repo.apply_ok(&[]);
    repo.write("deployments/web.yaml", &v1.replace("web:v1", "web:v2"));
    repo.commit("v2");
    let r = repo.apply_ok(&[]);
    assert!(r.all().contains("promote revision"), "{r:?}");
    let pods = repo.running_containers();
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert!(pods.iter().all(|c| c.image.ends_with("v2")), "{pods:?}");
    // The old set is stopped, kept for `berth rollback --to`.
    let kept = repo.stopped_containers();
    assert!(
        kept.len() == 2 && kept.iter().all(|c| c.image.ends_with("v1")),
        "{kept:?}"
    );
    let status = repo.berth(&["status"]);
    assert!(status.stdout.contains("behind web"), "{status:?}");
    assert!(
        !status.stdout.contains("rollout:"),
        "the state is cleared: {status:?}"
    );
    let plan = repo.berth(&["plan", "--exit-code"]);
    assert_eq!(plan.code, 0, "{plan:?}");
}

#[test]
fn an_interrupted_apply_rolls_its_wave_back_and_releases_the_lock() {
    let repo = Repo::new("t-interrupt");
    let strategy = "\n  type: canary\n  min_ready: 1s\n  health_timeout: 30s\n  steps:\n    - weight: 50\n    - pause: 5m";
    let v1 = web_everywhere(2, "v1", strategy)
        .replace("replicas: 2", "replicas: 2\nplacement: {hosts: role=web}");
    repo.write("deployments/web.yaml", &v1);
    repo.commit("v1");
    repo.apply_ok(&[]);
    let before = repo.all_containers();
    repo.write("deployments/web.yaml", &v1.replace("web:v1", "web:v2"));
    repo.commit("v2");
    let mut run = Watched::start(&repo, &["apply", "--auto-approve"]);
    run.wait_for("pause 300s");
    run.interrupt();
    let seen = run.seen.clone();
    let (code, rest) = run.finish();
    assert_eq!(code, Some(3), "{seen:?}\n{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("interrupted by SIGINT")),
        "{rest:?}"
    );
    assert_eq!(
        repo.all_containers(),
        before,
        "the v1 pods, running, and nothing else"
    );
    for h in ["h1", "h2"] {
        let locks = docker(
            h,
            &[
                "network",
                "ls",
                "-q",
                "--filter",
                "name=berth-lock-t-interrupt",
            ],
        );
        assert!(locks.trim().is_empty(), "the lock is released on {h}");
    }
    let plan = repo.berth(&["plan"]);
    assert!(plan.stdout.contains("aborted"), "{plan:?}");
}

#[test]
fn berth_abort_takes_a_paused_canary_back_and_sync_leaves_it_alone() {
    let repo = Repo::new("t-abort");
    let strategy =
        "\n  type: canary\n  min_ready: 1s\n  health_timeout: 30s\n  steps:\n    - weight: 50\n    - pause: {}";
    let v1 = web_everywhere(4, "v1", strategy)
        .replace("replicas: 4", "replicas: 4\nplacement: {max_per_host: 2}");
    start_with_clients(&repo, &v1);
    let web_pods = || -> Vec<Container> {
        repo.all_containers()
            .into_iter()
            .filter(|c| c.name.starts_with("web-"))
            .collect()
    };
    let before = web_pods();
    assert_eq!(before.len(), 4, "{before:?}");
    repo.write("deployments/web.yaml", &v1.replace("web:v1", "web:v2"));
    repo.commit("web v2");
    repo.apply_ok(&[]);

    // The canary answers its share while paused.
    let mark = answers(&repo);
    let start = std::time::Instant::now();
    loop {
        let heard = since(&mark, &answers(&repo));
        if heard.len() > 40 && share(&heard, "v2") > 0.0 {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the paused canary never answered: {heard:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let r = repo.berth(&["abort", "web"]);
    assert_eq!(r.code, 0, "{r:?}");
    // The very pods that served before the canary, all running again; the canary is gone.
    assert_eq!(web_pods(), before, "the v1 pods, and nothing else");
    let mark = answers(&repo);
    let tail = heard_after(&repo, &mark, 40);
    assert!(tail.len() > 20, "{tail:?}");
    assert_eq!(share(&tail, "v1"), 1.0, "only v1 answers: {tail:?}");
    let all = answers(&repo);
    assert_eq!(failures(&all), 0, "{}", failed_report(&all));

    // Git still says v2: sync leaves the aborted revision alone, and says so.
    let r = repo.berth(&["sync"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.all().contains("aborted"), "{r:?}");
    assert_eq!(web_pods(), before, "sync retried an aborted canary");
    let status = repo.berth(&["status"]);
    assert!(status.stdout.contains("aborted"), "{status:?}");
}

#[test]
fn a_signal_during_a_rollback_stops_it_half_way_with_exit_130_and_the_next_apply_repairs_it() {
    let repo = Repo::new("t-abandon");
    let slow = |yaml: String| {
        yaml.replace(
            "strategy: {min_ready: 1s, health_timeout: 30s}",
            "strategy: {min_ready: 1s, health_timeout: 4s, stop_timeout: 15s}",
        )
    };
    let v1 = slow(web("web", 1, "v1", "zone=b"));
    repo.write("deployments/web.yaml", &v1);
    repo.commit("v1");
    repo.apply_ok(&[]);
    let before = repo.all_containers();
    // v2 never answers its healthcheck, and its shell (PID 1) ignores SIGTERM: removing it in
    // the rollback waits out the 15 s stop timeout.
    let v2 = v1.replace(
        "      image: berth-lab/web:v1\n",
        "      image: berth-lab/web:v1\n      command: [sh, -c, \"while true; do sleep 1; done\"]\n",
    );
    repo.write("deployments/web.yaml", &v2);
    repo.commit("v2, never healthy");
    let mut run = Watched::start(&repo, &["apply", "--auto-approve"]);
    run.wait_for("rolling back");
    std::thread::sleep(std::time::Duration::from_millis(500));
    run.interrupt();
    let seen = run.seen.clone();
    let (code, rest) = run.finish();
    assert_eq!(code, Some(130), "{seen:?}\n{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("SIGINT during the rollback: it stopped half-way")),
        "{rest:?}"
    );
    for h in HOSTS {
        let locks = docker(
            h,
            &[
                "network",
                "ls",
                "-q",
                "--filter",
                "name=berth-lock-t-abandon",
            ],
        );
        assert!(locks.trim().is_empty(), "the lock is released on {h}");
    }

    // Git goes back to v1: a plain apply repairs what the cut rollback left, and the very
    // v1 pod serves. The v2 pod the rollback had stopped stays stopped: berth cannot tell
    // it from an old revision kept for `berth rollback --to` (history_limit forgets it).
    repo.write("deployments/web.yaml", &v1);
    repo.commit("back to v1");
    let r = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        repo.running_containers(),
        before,
        "only the v1 pod runs, as it was"
    );
    let left = repo.stopped_containers();
    assert!(left.len() <= 1, "{left:?}");
    let drift = repo.berth(&["drift"]);
    assert_eq!(drift.code, 0, "{drift:?}");
}

#[test]
fn a_batch_is_created_and_gated_at_once_on_each_host_and_fails_no_request() {
    let repo = Repo::new("t-batch");
    // 9 pods on 3 hosts; a batch of 6 is two pods per host.
    let strategy = "{min_ready: 1s, health_timeout: 30s, max_surge: 6, max_unavailable: 0}";
    let v1 = web_everywhere(9, "v1", strategy);
    start_with_clients(&repo, &v1);
    repo.write("deployments/web.yaml", &v1.replace("web:v1", "web:v2"));
    repo.commit("web v2");
    let mark = answers(&repo);
    let r = repo.berth(&["apply", "--auto-approve", "-v"]);
    assert_eq!(r.code, 0, "{r:?}");
    let all = settle(&repo, &mark, 10);
    assert!(count(&all) > 200, "too few requests: {all:?}");
    assert_eq!(failures(&all), 0, "{}", failed_report(&all));
    // On h1, the first batch's two gates both start before either ends, and so do its two
    // creates (the log is in the order things happened).
    let log = format!("{}{}", r.stdout, r.stderr);
    for (started, done) in [
        ("create web-", "done: create web-"),
        ("wait for web-", "done: wait for web-"),
    ] {
        let h1: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" h1 web: "))
            .filter(|l| l.contains(started))
            .collect();
        let first_done = h1.iter().position(|l| l.contains(done));
        let before_done = h1[..first_done.unwrap_or(h1.len())].len();
        assert!(before_done >= 2, "{started}: {h1:#?}\n{log}");
    }
    let tail = last_versions(&all, 5);
    assert!(tail.iter().all(|l| l == "ok berth-lab web v2"), "{tail:?}");
}

/// `berth restart web`: every pod replaced by a new pod of the same revision, in rolling
/// batches, while clients on every host ask the service: no request fails, nothing is left
/// to do after, and the history says it was a restart. A restart while Git names a revision
/// not rolled out yet is refused and changes nothing.
#[test]
fn a_restart_replaces_every_pod_without_a_failed_request_and_leaves_nothing_to_do() {
    let repo = Repo::new("t-restart");
    let v1 = web_everywhere(
        4,
        "v1",
        "{min_ready: 500ms, health_timeout: 30s, max_surge: 1, max_unavailable: 0}",
    );
    start_with_clients(&repo, &v1);
    let web = |repo: &Repo| -> Vec<Container> {
        let mut v: Vec<Container> = repo
            .all_containers()
            .into_iter()
            .filter(|c| c.name.starts_with("web-") && c.state == "running")
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    };
    let before = web(&repo);
    assert_eq!(before.len(), 4, "{before:?}");
    let mark = answers(&repo);
    let r = repo.berth(&["restart", "web"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("4 to replace (4 restarts)"), "{r:?}");
    let all = settle(&repo, &mark, 10);
    let heard = since(&mark, &all);
    assert!(
        heard.len() > 60,
        "too few requests to prove anything: {heard:?}"
    );
    assert_eq!(failures(&all), 0, "{}", failed_report(&all));
    let after = web(&repo);
    assert_eq!(after.len(), 4, "{after:?}");
    let revision = |c: &Container| c.name.split('-').nth(1).unwrap_or_default().to_string();
    for c in &after {
        assert!(
            before.iter().all(|b| b.id != c.id),
            "a new container: {c:?}"
        );
        assert_eq!(
            revision(c),
            revision(&before[0]),
            "the same revision: {c:?}"
        );
    }
    let plan = repo.berth(&["plan", "--exit-code"]);
    assert_eq!(plan.code, 0, "nothing to do after a restart: {plan:?}");
    let history = repo.berth(&["history"]);
    assert!(history.stdout.contains("(4 restarts)"), "{history:?}");

    repo.write("deployments/web.yaml", &v1.replace("web:v1", "web:v2"));
    repo.commit("web v2");
    let refused = repo.berth(&["restart", "web"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.said().contains("web has a rollout under way"),
        "{refused:?}"
    );
    let unchanged = web(&repo);
    assert!(
        unchanged.iter().zip(&after).all(|(u, a)| u.id == a.id),
        "a refused restart changes nothing: {unchanged:?}"
    );
}
