//! The first hour: `berth init` writes a starter repository that `validate` passes and that
//! plans on a fresh lab host; `validate` reports every problem offline; completion scripts.

use crate::common::*;

#[test]
fn init_then_validate_then_plan_on_the_lab() {
    require_lab();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("deploy");
    let path = repo.to_str().unwrap();
    let r = berth(&["init", path, "--project", "t-init", "--host", "198.18.0.11"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("wrote") && r.stdout.contains("deployments/web.yaml"),
        "{r:?}"
    );
    // A second init writes nothing over what is there.
    let again = berth(&["init", path]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.said().contains("already has berth.yaml"), "{again:?}");

    git_init(&repo);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "start"]);
    let v = berth(&["validate", "--repo", path]);
    assert_eq!(v.code, 0, "{v:?}");
    assert!(
        v.stdout
            .contains("valid: project t-init, 1 host(s), 1 deployment(s), 1 pod(s)"),
        "{v:?}"
    );
    let plan = berth(&["plan", "--repo", path]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.contains("+ create   web-1"), "{plan:?}");
    assert!(
        !plan.stdout.contains('\x1b'),
        "no colour off a terminal: {plan:?}"
    );
    let painted = berth(&["plan", "--color", "always", "--repo", path]);
    assert!(painted.stdout.contains("\x1b[1m"), "{painted:?}");
    let refused = berth(&["status", "--format", "markdown", "--repo", path]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.said().contains("possible values: text, json"),
        "{refused:?}"
    );

    // validate: every problem at once, offline, exit 1.
    std::fs::write(
        repo.join("deployments/web.yaml"),
        "name: web\nreplicas: two\npod:\n  containers:\n    - {name: app, image: nginx, ports: [\"99999:80\"]}\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("deployments/api.yaml"),
        "name: Bad Name\npod: {containers: []}\n",
    )
    .unwrap();
    git(&repo, &["commit", "-qam", "broken"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "more"]);
    let v = berth(&["validate", "--repo", path]);
    assert_eq!(v.code, 1, "{v:?}");
    for words in ["web.yaml", "api.yaml", "invalid deployment name"] {
        assert!(v.said().contains(words), "{words}: {v:?}");
    }
}

#[test]
fn completion_scripts_name_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let r = berth(&["completion", shell]);
        assert_eq!(r.code, 0, "{shell}: {r:?}");
        for command in ["plan", "apply", "logs", "exec", "validate"] {
            assert!(r.stdout.contains(command), "{shell} lacks {command}");
        }
    }
    // Every command's help ends with the exit codes.
    for command in [
        &["apply", "--help"][..],
        &["logs", "--help"],
        &["lock", "status", "--help"],
    ] {
        let r = berth(command);
        assert!(
            r.stdout.contains("Exit codes: 0 success"),
            "{command:?}: {r:?}"
        );
    }
    let r = berth(&["completion", "tcsh"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.said().contains("possible values: bash"), "{r:?}");
}

#[test]
fn a_quiet_apply_prints_its_result_only() {
    let repo = Repo::new("t-quiet");
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "zone=b"));
    repo.commit("v1");
    let r = repo.berth(&["apply", "--auto-approve", "-q"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "", "no plan: {r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.starts_with("apply complete: 1 to create"), "{r:?}");
    // A saved plan was reviewed when it was made: it applies without --auto-approve.
    repo.write("deployments/web.yaml", &web("web", 1, "v2", "zone=b"));
    repo.commit("v2");
    let saved = repo.path().join("plan.json");
    let r = repo.berth(&["plan", "-o", saved.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = berth(&["apply", "-q", saved.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .starts_with("apply complete: 0 to create, 1 to replace"),
        "{r:?}"
    );
    let again = repo.berth(&["apply", "--auto-approve", "-q"]);
    assert_eq!(
        (again.stdout.as_str(), again.stderr.as_str()),
        ("", "apply: no changes to make\n"),
        "{again:?}"
    );
}
