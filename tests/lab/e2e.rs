//! End-to-end tests against the lab: real dockerd and sshd hosts (scripts/lab up 3).

use crate::common::*;

fn running(cs: &[Container]) -> usize {
    cs.iter().filter(|c| c.state == "running").count()
}

#[test]
fn apply_the_example_then_nothing_changes() {
    let repo = Repo::new("shop");
    let example = root().join("examples/repo-layout");
    for entry in [
        "berth.yaml",
        "inventory.yaml",
        "deployments/web.yaml",
        "deployments/edge.yaml",
        "deployments/worker.yaml",
    ] {
        repo.write(
            entry,
            &std::fs::read_to_string(example.join(entry)).unwrap(),
        );
    }
    repo.commit("example");
    repo.apply_ok(&[]);
    // web: 3 over h1/h2 (max 2 per host); edge: 2 pods of 2 containers on h1/h2, and an edge
    // proxy on each; worker: 2 on h3.
    let h1 = repo.containers("h1");
    let h2 = repo.containers("h2");
    let h3 = repo.containers("h3");
    assert_eq!(running(&h1) + running(&h2), 3 + 4 + 2, "{h1:?} {h2:?}");
    assert_eq!(running(&h3), 2, "{h3:?}");
    assert!(h1
        .iter()
        .any(|c| c.name.starts_with("edge-") && c.name.ends_with("-sidecar")));
    // The edge's ingress: port 80 of the host, through its edge proxy.
    let body = docker(
        "h1",
        &[
            "exec",
            &h1.iter()
                .find(|c| c.name.ends_with("-sidecar"))
                .unwrap()
                .name,
            "wget",
            "-q",
            "-O-",
            "http://198.18.0.11:80/",
        ],
    );
    assert!(body.contains("berth-lab web v1"), "{body}");
    // Ready web pods answer to their service name; the edge pods have no service.
    let web_pod = h1.iter().find(|c| c.name.starts_with("web-")).unwrap();
    let aliases = docker(
        "h1",
        &[
            "inspect",
            "--format",
            "{{json (index .NetworkSettings.Networks \"berth-shop\").Aliases}}",
            &web_pod.name,
        ],
    );
    assert!(aliases.contains("\"web\""), "{aliases}");
    let client = &h1
        .iter()
        .find(|c| c.name.ends_with("-sidecar"))
        .unwrap()
        .name;
    let answer = docker(
        "h1",
        &["exec", client, "wget", "-q", "-O-", "http://web:8080/"],
    );
    assert!(answer.contains("berth-lab web v1"), "{answer}");

    let again = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("No changes"), "{again:?}");
    assert_eq!(
        repo.all_containers(),
        [h1, h2, h3].concat(),
        "the second apply changed something"
    );
    let plan = repo.berth(&["plan", "--exit-code"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let drift = repo.berth(&["drift"]);
    assert_eq!(drift.code, 0, "{drift:?}");
}

#[test]
fn an_image_change_replaces_pods_behind_the_health_gate() {
    let repo = Repo::new("t-update");
    repo.write("deployments/web.yaml", &web("web", 2, "v1", "role=web"));
    repo.commit("v1");
    repo.apply_ok(&[]);
    let before = repo.all_containers();
    assert_eq!(before.len(), 2);

    repo.write("deployments/web.yaml", &web("web", 2, "v2", "role=web"));
    repo.commit("v2");
    let plan = repo.berth(&["plan", "--exit-code"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout.contains("replace")
            && plan.stdout.contains("berth-lab/web:v1 → berth-lab/web:v2"),
        "{plan:?}"
    );
    assert!(
        plan.stdout.contains("-  \"image\": \"berth-lab/web:v1\""),
        "text diff missing: {plan:?}"
    );
    let md = repo.berth(&["plan", "--format", "markdown"]);
    assert!(
        md.stdout.contains("| `~` | replace |") && md.stdout.contains("<details>"),
        "{md:?}"
    );

    let r = repo.apply_ok(&[]);
    // The closing line splits the time: two pods, each gated for at least min_ready (1s).
    let gates: f64 = r
        .stderr
        .split(" in health gates")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|s| s.trim_end_matches('s').parse().ok())
        .unwrap_or_else(|| panic!("no health gate time in {r:?}"));
    assert!(gates >= 2.0, "{gates}s in health gates: {r:?}");
    let after = repo.running_containers();
    assert_eq!(after.len(), 2, "{after:?}");
    // The v1 pods stay, stopped, for `berth rollback --to`.
    let kept = repo.stopped_containers();
    assert!(
        kept.len() == 2 && kept.iter().all(|c| c.image == "berth-lab/web:v1"),
        "{kept:?}"
    );
    assert!(
        after
            .iter()
            .all(|c| c.image == "berth-lab/web:v2" && c.state == "running"),
        "{after:?}"
    );
    assert!(
        after
            .iter()
            .all(|c| !before.iter().any(|b| b.name == c.name)),
        "old pods still there: {after:?}"
    );
    // The commit is recorded on every container.
    let head = repo.git(&["rev-parse", "HEAD"]);
    let labels = docker(
        "h1",
        &[
            "inspect",
            "--format",
            "{{index .Config.Labels \"berth.commit\"}}",
            &repo.running_on("h1")[0].name,
        ],
    );
    assert_eq!(labels.trim(), head);
}

#[test]
fn scale_up_down_and_prune() {
    let repo = Repo::new("t-scale");
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "role=web"));
    repo.write("deployments/old.yaml", &web("old", 1, "v1", "role=worker"));
    repo.commit("one each");
    repo.apply_ok(&[]);

    repo.write("deployments/web.yaml", &web("web", 4, "v1", "role=web"));
    repo.commit("scale up");
    repo.apply_ok(&[]);
    assert_eq!(running(&repo.containers("h1")), 2);
    assert_eq!(running(&repo.containers("h2")), 2);

    repo.write("deployments/web.yaml", &web("web", 2, "v1", "role=web"));
    repo.remove("deployments/old.yaml");
    repo.commit("scale down, drop old");
    let r = repo.apply_ok(&[]);
    assert_eq!(
        running(&repo.containers("h1")) + running(&repo.containers("h2")),
        2
    );
    assert_eq!(
        repo.containers("h3").len(),
        1,
        "without --prune the old deployment stays"
    );
    assert!(r.stdout.contains("--prune"), "{r:?}");

    // `sync` (cron, CI) converges without asking, and exits 0 when there is nothing to do.
    let r = repo.berth(&["sync", "--prune"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        repo.containers("h3").is_empty(),
        "prune left {:?}",
        repo.containers("h3")
    );
    let r = repo.berth(&["sync", "--prune"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("No changes"), "{r:?}");
}

#[test]
fn drift_is_reported_and_repaired() {
    let repo = Repo::new("t-drift");
    repo.write("deployments/web.yaml", &web("web", 4, "v1", "role=web"));
    repo.commit("web");
    repo.apply_ok(&[]);
    {
        let r = repo.berth(&["drift"]);
        assert_eq!(r.code, 0, "{r:?}");
    }

    let h1 = repo.containers("h1");
    let h2 = repo.containers("h2");
    docker("h1", &["stop", "-t", "1", &h1[0].name]);
    docker("h2", &["rm", "-f", &h2[0].name]);
    docker(
        "h3",
        &[
            "run",
            "-d",
            "--name",
            "t-drift-intruder",
            "-l",
            "berth.project=t-drift",
            "berth-lab/web:v1",
        ],
    );

    let d = repo.berth(&["drift"]);
    assert_eq!(d.code, 2, "{d:?}");
    assert!(
        d.stdout
            .contains(&format!("h1 web {}", h1[0].name.trim_end_matches("-app")))
            && d.stdout.contains("stopped"),
        "{d:?}"
    );
    assert!(
        d.stdout.contains("h2 web") && d.stdout.contains("removed by hand"),
        "{d:?}"
    );
    assert!(d.stdout.contains("t-drift-intruder"), "{d:?}");

    let r = repo.berth(&["apply", "--auto-approve", "--prune"]);
    assert_eq!(r.code, 0, "{r:?}");
    let d = repo.berth(&["drift"]);
    assert_eq!(d.code, 0, "{d:?}");
    assert_eq!(
        running(&repo.containers("h1")) + running(&repo.containers("h2")),
        4
    );
    assert!(repo.containers("h3").is_empty());
}

#[test]
fn a_failing_health_check_rolls_back_and_keeps_the_old_pod() {
    let repo = Repo::new("t-fail");
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "zone=b"));
    repo.commit("v1");
    repo.apply_ok(&[]);
    let before = repo.containers("h2");
    assert_eq!(before.len(), 1);

    let broken = web("web", 1, "v2", "zone=b").replace(
        "http://127.0.0.1:8080/healthz",
        "http://127.0.0.1:8080/missing",
    );
    repo.write("deployments/web.yaml", &broken);
    repo.commit("broken health check");
    let r = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("failed its health gate") && r.stderr.contains("health check output"),
        "{r:?}"
    );
    assert_eq!(
        repo.containers("h2"),
        before,
        "the old pod must keep serving, alone"
    );
    assert_eq!(before[0].state, "running");
}

#[test]
fn a_broken_repository_changes_nothing() {
    let repo = Repo::new("t-broken");
    repo.write(
        "deployments/a.yaml",
        &(web("a", 1, "v1", "role=web") + "colour: blue\n"),
    );
    repo.write("deployments/b.yaml", &web("b", 1, "v1", "role in (web"));
    repo.write("deployments/c.yaml", &web("b", 1, "v1", "role=web"));
    repo.write(
        "deployments/d.yaml",
        "name: d\nname: d\npod: {containers: []}\n",
    );
    repo.write(
        "deployments/e.yaml",
        &web("e", 9, "v1", "role=web").replace("placement: {", "placement: {max_per_host: 1, "),
    );
    repo.commit("broken");
    let r = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 1, "{r:?}");
    for needle in [
        "deployments/a.yaml",
        "colour",
        "deployments/b.yaml",
        "selector",
        "deployments/c.yaml",
        "two deployments",
        "deployments/d.yaml",
        "deployments/e.yaml",
        "cannot be placed",
    ] {
        assert!(r.stderr.contains(needle), "missing {needle:?} in {r:?}");
    }
    assert!(
        r.stderr.contains("deployments/b.yaml:4:33"),
        "no line:column for the selector: {r:?}"
    );
    assert!(repo.all_containers().is_empty());
}

#[test]
fn a_saved_plan_applies_exactly_or_refuses_when_stale() {
    let repo = Repo::new("t-saved");
    repo.write("deployments/web.yaml", &web("web", 2, "v1", "role=web"));
    repo.commit("web");
    let file = repo.path().join("plan.json");
    let file = file.to_str().unwrap();
    let p = repo.berth(&["plan", "-o", file]);
    assert_eq!(p.code, 0, "{p:?}");
    // Git moves on after the plan was saved: applying the file does what it says (two v1
    // pods), not what Git says now (three v2 pods), even with the repository at hand.
    repo.write("deployments/web.yaml", &web("web", 3, "v2", "role=web"));
    repo.commit("v2 on 3");
    let r = repo.berth(&["apply", file, "--auto-approve"]);
    assert_eq!(r.code, 0, "{r:?}");
    let all = repo.all_containers();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all.iter()
            .all(|c| c.image == "berth-lab/web:v1" && c.state == "running"),
        "{all:?}"
    );

    let p = repo.berth(&["plan", "-o", file]);
    assert_eq!(p.code, 0);
    docker("h1", &["stop", "-t", "1", &repo.containers("h1")[0].name]);
    let r = berth(&["apply", file, "--auto-approve"]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("h1 changed since the plan"), "{r:?}");

    // A plan with work to do is checked again under the lock, before any step runs.
    docker("h1", &["start", &repo.containers("h1")[0].name]);
    repo.write("deployments/web.yaml", &web("web", 3, "v1", "role=web"));
    repo.commit("scale to 3");
    let p = repo.berth(&["plan", "-o", file]);
    assert!(p.stdout.contains("1 to create"), "{p:?}");
    docker("h2", &["stop", "-t", "1", &repo.containers("h2")[0].name]);
    let r = berth(&["apply", file, "--auto-approve"]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("h2 changed since the plan"), "{r:?}");
    assert_eq!(repo.all_containers().len(), 2, "a stale plan must not run");
}

#[test]
fn unknown_host_keys_are_refused_unless_accepted() {
    let repo = Repo::new("t-keys");
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "role=web"));
    repo.commit("web");
    let kh = repo.path().join("known_hosts");
    std::fs::write(&kh, "").unwrap();
    let kh = kh.to_str().unwrap();
    let r = repo.berth(&["plan", "--known-hosts", kh]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.all().contains("unknown host key") && r.all().contains("SHA256:"),
        "{r:?}"
    );
    let r = repo.berth(&["plan", "--known-hosts", kh, "--accept-new-host-keys"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(kh)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count(),
        3
    );
    let r = repo.berth(&["plan", "--known-hosts", kh]);
    assert_eq!(r.code, 0, "{r:?}");
    let learned = std::fs::read_to_string(kh).unwrap();
    let h1 = learned
        .lines()
        .find(|l| l.contains("198.18.0.11"))
        .unwrap()
        .to_string();

    // h1 recorded under a key of another algorithm (an ECDSA key it does not have): changed,
    // refused even with --accept-new-host-keys, and the file is left alone.
    let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNSRBrMulbCQ04x+SnC8xlksU3VLO2njYQbVKuFK8cGSMXGeQNfxK6dDWVEUHwUQIhGz+yL2Z//XFvJB5OkSK78=";
    let other = learned.replace(&h1, &format!("198.18.0.11 {ecdsa}"));
    std::fs::write(kh, &other).unwrap();
    let r = repo.berth(&["plan", "--known-hosts", kh, "--accept-new-host-keys"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.all().contains("HOST KEY CHANGED for 198.18.0.11:22"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read_to_string(kh).unwrap(),
        other,
        "nothing learned"
    );

    // h1's own key marked @revoked: refused although another line knows it.
    let key = h1.split_whitespace().skip(1).collect::<Vec<_>>().join(" ");
    std::fs::write(kh, format!("{learned}@revoked * {key}\n")).unwrap();
    let r = repo.berth(&["plan", "--known-hosts", kh]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.all().contains("REVOKED host key for 198.18.0.11:22"),
        "{r:?}"
    );
}

#[test]
fn an_unreachable_host_is_named_and_the_others_are_planned() {
    let repo = Repo::new("t-unreach");
    repo.write(
        "inventory.yaml",
        &(inventory() + "  - {name: h9, address: 198.18.0.99, labels: {role: web}}\n"),
    );
    repo.write("deployments/web.yaml", &web("web", 2, "v1", "role=web"));
    repo.commit("web");
    let r = repo.berth(&["plan", "--connect-timeout", "2"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.all().contains("h9 is unreachable"), "{r:?}");
    assert!(r.stdout.contains("+ create   h1"), "{r:?}");
    let r = repo.berth(&["plan", "--connect-timeout", "2", "--allow-unreachable"]);
    assert_eq!(r.code, 0, "{r:?}");
    repo.apply_ok(&["--connect-timeout", "2", "--allow-unreachable"]);
    // Logs that leave a host out fail, naming it; one host's logs do not need h9.
    let r = repo.berth(&["logs", "web", "--connect-timeout", "2"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.said()
            .contains("leave out host(s) that could not be reached: h9 is unreachable"),
        "{r:?}"
    );
    let r = repo.berth(&["logs", "web", "--host", "h1", "--connect-timeout", "2"]);
    assert_eq!(r.code, 0, "{r:?}");

    // No host answers at all: nothing is green, --allow-unreachable or not.
    repo.write(
        "inventory.yaml",
        "hosts:\n  - {name: h9, address: 198.18.0.99, labels: {role: web}}\n",
    );
    repo.commit("only h9");
    for args in [
        &["plan", "--connect-timeout", "2", "--allow-unreachable"][..],
        &[
            "plan",
            "--connect-timeout",
            "2",
            "--exit-code",
            "--allow-unreachable",
            "--format",
            "markdown",
        ],
        &["drift", "--connect-timeout", "2", "--allow-unreachable"],
        &["sync", "--connect-timeout", "2", "--allow-unreachable"],
    ] {
        let r = repo.berth(args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(
            r.said().contains("no host answered (0 of 1 observed)"),
            "{args:?}: {r:?}"
        );
        for green in ["No changes", "no changes", "matches Git", "no drift"] {
            assert!(!r.all().contains(green), "{args:?} says {green:?}: {r:?}");
        }
    }
}

#[test]
fn volumes_are_pruned_only_with_prune_volumes() {
    let repo = Repo::new("t-volumes");
    let with_volume = web("data", 1, "v1", "zone=b").replace(
        "      healthcheck:",
        "      volumes: [\"store:/store\"]\n      healthcheck:",
    );
    repo.write("deployments/data.yaml", &with_volume);
    repo.commit("data");
    repo.apply_ok(&[]);
    assert_eq!(repo.volumes("h2"), ["t-volumes-store"]);

    repo.remove("deployments/data.yaml");
    repo.commit("drop data");
    let r = repo.berth(&["apply", "--auto-approve", "--prune"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(repo.containers("h2").is_empty());
    assert_eq!(
        repo.volumes("h2"),
        ["t-volumes-store"],
        "--prune alone keeps volumes"
    );

    let r = repo.berth(&["plan", "--prune", "--prune-volumes"]);
    assert!(r.stdout.contains("volume t-volumes-store"), "{r:?}");
    let r = repo.berth(&["apply", "--auto-approve", "--prune", "--prune-volumes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(repo.volumes("h2").is_empty());
    let r = repo.berth(&["plan", "--prune-volumes"]);
    assert_eq!(r.code, 1, "--prune-volumes needs --prune: {r:?}");
}

#[test]
fn resources_changed_by_hand_are_drift_and_a_plain_apply_repairs_them() {
    let repo = Repo::new("t-deep");
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "zone=b"));
    repo.commit("web");
    repo.apply_ok(&[]);
    let name = repo.containers("h2")[0].name.clone();
    docker("h2", &["update", "--restart", "no", &name]);
    let d = repo.berth(&["drift"]);
    assert_eq!(d.code, 2, "{d:?}");
    assert!(d.stdout.contains("resources changed by hand"), "{d:?}");
    let fast = repo.berth(&["plan", "--exit-code", "--fast"]);
    assert_eq!(fast.code, 0, "a --fast plan does not inspect: {fast:?}");
    let plain = repo.berth(&["plan", "--exit-code"]);
    assert_eq!(plain.code, 2, "a plain plan inspects: {plain:?}");
    assert!(
        plain.stdout.contains("app.restart: no → unless-stopped"),
        "{plain:?}"
    );
    let r = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{r:?}");
    let d = repo.berth(&["drift"]);
    assert_eq!(d.code, 0, "{d:?}");
    assert_ne!(repo.containers("h2")[0].name, name);
}

#[test]
fn a_name_taken_after_planning_is_neither_adopted_nor_removed() {
    let repo = Repo::new("t-taken");
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "zone=b"));
    repo.commit("web");
    let file = repo.path().join("plan.json");
    let file = file.to_str().unwrap();
    let p = repo.berth(&["plan", "-o", file]);
    assert_eq!(p.code, 0, "{p:?}");
    let plan: berth::plan::Plan =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let name = plan
        .waves
        .iter()
        .flat_map(|w| w.steps.values().flatten())
        .find_map(|s| match s {
            berth::plan::Step::CreatePod { pod } => Some(pod.containers[0].name.clone()),
            _ => None,
        })
        .expect("the plan creates a pod");
    docker("h2", &["create", "--name", &name, "berth-lab/web:v1"]);
    let r = berth(&["apply", file, "--auto-approve"]);
    docker("h2", &["inspect", &name]); // still there (fails the test if removed)
    docker("h2", &["rm", "-f", &name]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("does not belong"), "{r:?}");
}

#[test]
fn a_missing_image_is_pulled_from_its_registry() {
    let repo = Repo::new("t-pull");
    let image = "198.18.0.1:5000/berth-lab/web:v2";
    let deployment = web("web", 1, "v1", "zone=b").replace("berth-lab/web:v1", image);
    repo.write("deployments/web.yaml", &deployment);
    repo.commit("from the registry");
    let has_image = || docker("h2", &["images", "-q", image]).trim().to_string();
    if !has_image().is_empty() {
        docker("h2", &["rmi", "-f", image]);
    }
    assert!(has_image().is_empty());
    let r = repo.apply_ok(&["-v"]);
    // -v: one timestamped line per step, the pull among them.
    assert!(
        r.stderr.contains(&format!("h2: image {image}")) && r.stderr.contains("s] [1/"),
        "{r:?}"
    );
    assert!(!has_image().is_empty(), "the image was not pulled");
    let c = repo.containers("h2");
    assert_eq!(
        (c.len(), c[0].image.as_str(), c[0].state.as_str()),
        (1, image, "running")
    );
}

#[test]
fn a_held_lock_stops_apply_with_exit_4_until_unlocked() {
    let repo = Repo::new("t-lock");
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "zone=b"));
    repo.commit("web");
    // Another apply (on another machine) holds the lock on h2, taken just now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    docker(
        "h2",
        &[
            "network",
            "create",
            "--label",
            "berth.project=t-lock",
            "--label",
            "berth.lock.owner=alice@ci pid 7",
            "--label",
            &format!("berth.lock.since={now}"),
            "berth-lock-t-lock",
        ],
    );
    let r = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("alice@ci pid 7") && r.stderr.contains("berth unlock"),
        "{r:?}"
    );
    assert!(
        repo.all_containers().is_empty(),
        "nothing may run without the lock"
    );
    // The hosts where the lock was free were released again.
    assert!(docker(
        "h1",
        &["network", "ls", "-q", "--filter", "name=berth-lock-t-lock"]
    )
    .trim()
    .is_empty());

    let u = repo.berth(&["unlock"]);
    assert_eq!(u.code, 0, "{u:?}");
    repo.apply_ok(&[]);
    assert_eq!(repo.containers("h2").len(), 1);
    for h in HOSTS {
        assert!(
            docker(
                h,
                &["network", "ls", "-q", "--filter", "name=berth-lock-t-lock"]
            )
            .trim()
            .is_empty(),
            "lock left on {h}"
        );
    }
}

#[test]
fn a_repository_is_fetched_over_ssh_with_its_host_key_checked() {
    let repo = Repo::new("t-gitssh");
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "zone=b"));
    repo.commit("web");
    // The lab's hosts share this machine's filesystem, so h1's sshd serves the repository.
    let url = format!("ssh://root@198.18.0.11{}", repo.path().display());
    let cache = repo.path().join("cache");
    let cache = cache.to_str().unwrap();
    let key = std::env::var("BERTH_IDENTITY").unwrap();
    let env = [("BERTH_GIT_SSH_KEY_FILE", key.as_str())];
    let r = berth_env(&["render", "--repo", &url, "--cache-dir", cache], &env);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("name: web") && r.stdout.contains(&repo.git(&["rev-parse", "HEAD"])),
        "{r:?}"
    );

    let empty = repo.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let env = [
        ("BERTH_GIT_SSH_KEY_FILE", key.as_str()),
        ("BERTH_KNOWN_HOSTS", empty.to_str().unwrap()),
    ];
    let other_cache = repo.path().join("cache2");
    let r = berth_env(
        &[
            "render",
            "--repo",
            &url,
            "--cache-dir",
            other_cache.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("unknown host key"), "{r:?}");
}

#[test]
fn a_failing_rolling_batch_stops_the_rollout_with_the_old_pods_at_full_count() {
    let repo = Repo::new("t-batch");
    let strategy =
        "strategy: {min_ready: 1s, health_timeout: 30s, max_surge: 1, max_unavailable: 1}";
    let v1 = web("web", 4, "v1", "role=web")
        .replace("strategy: {min_ready: 1s, health_timeout: 30s}", strategy);
    repo.write("deployments/web.yaml", &v1);
    repo.commit("v1");
    repo.apply_ok(&[]);
    let before: Vec<Container> = [repo.containers("h1"), repo.containers("h2")].concat();
    assert_eq!(running(&before), 4);

    let broken = v1
        .replace("berth-lab/web:v1", "berth-lab/web:v2")
        .replace("/healthz", "/missing");
    repo.write("deployments/web.yaml", &broken);
    repo.commit("v2 with a broken health check");
    let r = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("rolling batch 1/2"),
        "it stops at the first batch: {r:?}"
    );
    let after: Vec<Container> = [repo.containers("h1"), repo.containers("h2")].concat();
    assert_eq!(after, before, "the old pods, all running, and nothing else");

    // Flap protection: sync from cron does not try the failed revision again.
    for _ in 0..2 {
        let s = repo.berth(&["sync"]);
        assert_eq!(s.code, 0, "{s:?}");
        assert!(
            s.stdout.contains("failed at")
                && s.stdout.contains("not tried again until Git changes"),
            "{s:?}"
        );
        let now: Vec<Container> = [repo.containers("h1"), repo.containers("h2")].concat();
        assert_eq!(now, before, "sync left the failed revision alone");
    }
    let status = repo.berth(&["status"]);
    assert!(
        status.stdout.contains("failed and was rolled back"),
        "{status:?}"
    );
    let retry = repo.berth(&["sync", "--retry"]);
    assert_eq!(retry.code, 3, "--retry tries it again: {retry:?}");
    // Git moves on: the new revision rolls out and the failure is forgotten.
    repo.write(
        "deployments/web.yaml",
        &v1.replace("berth-lab/web:v1", "berth-lab/web:v2"),
    );
    repo.commit("v2 with a working health check");
    let fixed = repo.berth(&["sync"]);
    assert_eq!(fixed.code, 0, "{fixed:?}");
    let status = repo.berth(&["status"]);
    assert!(!status.stdout.contains("failed"), "{status:?}");
    let v2: Vec<Container> = [repo.running_on("h1"), repo.running_on("h2")].concat();
    assert_eq!(running(&v2), 4);
    assert!(v2.iter().all(|c| c.image == "berth-lab/web:v2"), "{v2:?}");
    // The v1 pods are kept, stopped, for `berth rollback --to`.
    let kept = repo.stopped_containers();
    assert!(
        kept.len() == 4 && kept.iter().all(|c| c.image == "berth-lab/web:v1"),
        "{kept:?}"
    );
}

#[test]
fn deployments_roll_out_side_by_side_and_one_failing_does_not_stop_another() {
    let repo = Repo::new("t-lanes");
    let good = web("good", 2, "v1", "role=web");
    let bad = web("bad", 1, "v1", "role=worker");
    repo.write("deployments/good.yaml", &good);
    repo.write("deployments/bad.yaml", &bad);
    repo.commit("v1");
    repo.apply_ok(&[]);
    let bad_before = repo.containers("h3");
    repo.write("deployments/good.yaml", &good.replace("web:v1", "web:v2"));
    repo.write(
        "deployments/bad.yaml",
        &bad.replace("web:v1", "web:v2")
            .replace("/healthz", "/missing"),
    );
    repo.commit("v2 for both; bad's health check fails");
    let r = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("apply failed in \"bad:"), "{r:?}");
    assert!(!r.stderr.contains("apply failed in \"good:"), "{r:?}");
    let good_now: Vec<Container> = [repo.running_on("h1"), repo.running_on("h2")].concat();
    assert_eq!(good_now.len(), 2, "{good_now:?}");
    assert!(
        good_now
            .iter()
            .all(|c| c.image == "berth-lab/web:v2" && c.state == "running"),
        "good finished its rollout beside bad's failure: {good_now:?}"
    );
    assert_eq!(
        repo.containers("h3"),
        bad_before,
        "bad's old pod is untouched"
    );
}

#[test]
fn a_recreate_update_stops_the_old_pods_first_and_a_failure_starts_them_again() {
    let repo = Repo::new("t-recreate");
    let recreate = |version: &str| {
        web("web", 2, version, "role=web").replace(
            "strategy: {min_ready: 1s, health_timeout: 30s}",
            "strategy: {type: recreate, min_ready: 1s, health_timeout: 10s}",
        )
    };
    repo.write("deployments/web.yaml", &recreate("v1"));
    repo.commit("v1");
    repo.apply_ok(&[]);
    let v1 = repo.all_containers();

    repo.write("deployments/web.yaml", &recreate("v2"));
    repo.commit("v2");
    let r = repo.apply_ok(&["-v"]);
    let said = r.all();
    let stop = said.find("stop the old pods (recreate)");
    let start = said.find("start the new pods");
    assert!(stop.is_some() && stop < start, "{r:?}");
    let v2 = repo.running_containers();
    assert_eq!(v2.len(), 2, "{v2:?}");
    assert!(
        v2.iter()
            .all(|c| c.image == "berth-lab/web:v2" && c.state == "running"),
        "{v2:?}"
    );
    assert!(v2.iter().all(|c| !v1.iter().any(|o| o.id == c.id)));

    // v3 never gets healthy: its pods go and the very v2 pods run again.
    repo.write(
        "deployments/web.yaml",
        &recreate("v3").replace("/healthz", "/missing"),
    );
    repo.commit("v3, never healthy");
    let r = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(
        repo.running_containers(),
        v2,
        "the v2 pods, running again, and no v3 pod"
    );
    assert!(
        repo.stopped_containers()
            .iter()
            .all(|c| c.image == "berth-lab/web:v1"),
        "only v1 is kept stopped: {:?}",
        repo.all_containers()
    );
    let drift = repo.berth(&["drift"]);
    assert_eq!(drift.code, 0, "{drift:?}");
}

#[test]
fn init_passes_sigterm_on_and_slow_stops_are_counted_and_explained() {
    let repo = Repo::new("t-init");
    let worker = |version: &str, init: bool| {
        format!(
            "name: worker\nreplicas: 1\nplacement: {{hosts: role=worker}}\npod:\n  containers:\n    - name: main\n      image: berth-lab/web:v1\n      command: [sh, -c, \"while true; do sleep 1; done\"]\n      env: {{VERSION: {version}}}\n      restart: \"no\"\n{}strategy: {{min_ready: 1s, stop_timeout: 6s}}\n",
            if init { "      init: true\n" } else { "" }
        )
    };
    repo.write("deployments/worker.yaml", &worker("1", false));
    repo.commit("v1");
    repo.apply_ok(&[]);

    // A shell as PID 1 ignores SIGTERM: the old pod is killed after its stop timeout, and the
    // summary counts that time and says why.
    repo.write("deployments/worker.yaml", &worker("2", false));
    repo.commit("v2");
    let r = repo.apply_ok(&[]);
    let stopping: f64 = r
        .stderr
        .split("; ")
        .nth(1)
        .and_then(|s| s.split("s stopping old pods").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no stopping time in the summary: {r:?}"));
    assert!(stopping >= 6.0, "{r:?}");
    assert!(
        r.stderr.contains("note: old pods took") && r.stderr.contains("`init: true`"),
        "{r:?}"
    );

    // With init: Docker's init is PID 1 and passes SIGTERM on: the process ends on it.
    repo.write("deployments/worker.yaml", &worker("3", true));
    repo.commit("v3 with init");
    repo.apply_ok(&[]);
    let c = repo.running_on("h3");
    assert_eq!(c.len(), 1, "{c:?}");
    let name = &c[0].name;
    assert_eq!(
        docker("h3", &["inspect", "-f", "{{.HostConfig.Init}}", name]).trim(),
        "true"
    );
    assert_eq!(
        docker("h3", &["exec", name, "cat", "/proc/1/comm"]).trim(),
        "docker-init"
    );
    docker("h3", &["kill", "--signal", "TERM", name]);
    let start = std::time::Instant::now();
    while docker("h3", &["inspect", "-f", "{{.State.Running}}", name]).trim() == "true" {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "SIGTERM did not end the process behind init"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        docker("h3", &["inspect", "-f", "{{.State.ExitCode}}", name]).trim(),
        "143",
        "ended by SIGTERM, not killed"
    );
}
