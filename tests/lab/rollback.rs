//! Rollback to any kept revision on the lab, for each strategy: old revisions stay on the
//! hosts stopped, `berth rollback --to` starts the very same containers again (no create, no
//! pull) while clients on every host ask the service, and a rolled-back deployment is held
//! (plan, sync, drift) until Git changes or a rollback goes back to Git's revision.

use crate::common::clients::*;
use crate::common::*;
use std::time::Instant;

/// The revision of a web container, from its name (`web-<revision>-<ordinal>-app`).
fn revision(c: &Container) -> String {
    c.name.split('-').nth(1).unwrap_or_default().to_string()
}

/// The web containers running `version`, by id.
fn web_ids(repo: &Repo, version: &str, state: &str) -> Vec<String> {
    let mut ids: Vec<String> = repo
        .all_containers()
        .into_iter()
        .filter(|c| c.name.starts_with("web-") && c.image.ends_with(version) && c.state == state)
        .map(|c| c.id)
        .collect();
    ids.sort();
    ids
}

fn revision_of(repo: &Repo, version: &str) -> String {
    repo.all_containers()
        .iter()
        .find(|c| c.name.starts_with("web-") && c.image.ends_with(version))
        .map(revision)
        .unwrap_or_else(|| panic!("no web pod of {version}: {:?}", repo.all_containers()))
}

/// Rolls out v2 then v3 over v1 (clients asking all along), then rolls back to v1 by a
/// prefix of its revision and checks: the same containers serve again, in seconds, and no
/// request failed.
fn roll_out_twice_then_back_to_the_first(
    repo: &Repo,
    v1: &str,
    then: &[&str],
    promote: bool,
) -> String {
    start_with_clients(repo, v1);
    for v in then {
        repo.write(
            "deployments/web.yaml",
            &v1.replace("web:v1", &format!("web:{v}")),
        );
        repo.commit(v);
        repo.apply_ok(&[]);
        if promote {
            let r = repo.berth(&["promote", "web"]);
            assert_eq!(r.code, 0, "{r:?}");
        }
    }
    let kept = web_ids(repo, "v1", "exited");
    assert_eq!(
        kept.len(),
        3,
        "v1 is kept stopped: {:?}",
        repo.all_containers()
    );
    let status = repo.berth(&["status"]);
    let r1 = revision_of(repo, "v1");
    assert!(
        status.stdout.contains("kept for `berth rollback --to`") && status.stdout.contains(&r1),
        "{status:?}"
    );

    let mark = answers(repo);
    let started = Instant::now();
    let r = repo.berth(&["rollback", "web", "--to", &r1[..6]]);
    eprintln!(
        "rollback --to took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        web_ids(repo, "v1", "running"),
        kept,
        "the kept containers themselves run again"
    );
    let back = heard_after(repo, &mark, 30);
    let tail = last_versions(&settle(repo, &mark, 10), 5);
    assert!(tail.iter().all(|l| l.ends_with("v1")), "{tail:?}");
    assert!(!back.is_empty());
    let all = answers(repo);
    assert_eq!(failures(&all), 0, "{}", failed_report(&all));
    r1
}

/// Git still declares the last revision: plan and sync leave the rollback alone, drift
/// reports it; a rollback to Git's revision ends it.
fn held_until_rolled_forward(repo: &Repo, last: &str) {
    let plan = repo.berth(&["plan"]);
    assert!(
        plan.stdout.contains("rolled back") && plan.stdout.contains("Git declares"),
        "{plan:?}"
    );
    let sync = repo.berth(&["sync"]);
    assert_eq!(sync.code, 0, "{sync:?}");
    assert_eq!(web_ids(repo, "v1", "running").len(), 3, "sync kept v1");
    let drift = repo.berth(&["drift"]);
    assert_eq!(drift.code, 2, "{drift:?}");
    assert!(drift.stdout.contains("rolled back"), "{drift:?}");

    let r = repo.berth(&["rollback", "web", "--to", &revision_of(repo, last)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(web_ids(repo, last, "running").len(), 3);
    let drift = repo.berth(&["drift"]);
    assert_eq!(drift.code, 0, "{drift:?}");
    let all = answers(repo);
    assert_eq!(failures(&all), 0, "{}", failed_report(&all));
}

#[test]
fn rolling_rollback_to_any_kept_revision_and_forward_again() {
    let repo = Repo::new("t-rb-rolling");
    let strategy = "{min_ready: 1s, health_timeout: 30s, max_surge: 1, max_unavailable: 0}";
    let v1 = web_everywhere(3, "v1", strategy)
        .replace("replicas: 3", "replicas: 3\nplacement: {max_per_host: 1}");
    roll_out_twice_then_back_to_the_first(&repo, &v1, &["v2", "v3"], false);
    // history_limit 2: v2 and v3 are kept now, nothing older.
    assert_eq!(web_ids(&repo, "v2", "exited").len(), 3);
    assert_eq!(web_ids(&repo, "v3", "exited").len(), 3);
    held_until_rolled_forward(&repo, "v3");
}

#[test]
fn canary_rollback_to_a_kept_revision_gates_it_out_of_service_then_switches() {
    let repo = Repo::new("t-rb-canary");
    let strategy = "\n  type: canary\n  min_ready: 1s\n  health_timeout: 30s\n  steps:\n    - weight: 50\n    - pause: {}";
    let v1 = web_everywhere(3, "v1", strategy)
        .replace("replicas: 3", "replicas: 3\nplacement: {max_per_host: 1}");
    roll_out_twice_then_back_to_the_first(&repo, &v1, &["v2"], true);
    held_until_rolled_forward(&repo, "v2");
}

#[test]
fn blue_green_rollback_after_the_old_set_was_stopped_brings_it_back() {
    let repo = Repo::new("t-rb-bluegreen");
    let strategy =
        "{type: blue-green, min_ready: 1s, health_timeout: 30s, auto_promote: true, scale_down_delay: 0s}";
    let v1 = web_everywhere(3, "v1", strategy)
        .replace("replicas: 3", "replicas: 3\nplacement: {max_per_host: 1}");
    roll_out_twice_then_back_to_the_first(&repo, &v1, &["v2"], false);
    held_until_rolled_forward(&repo, "v2");
}
