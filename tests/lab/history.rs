//! The audit log on the lab: applies from two machines are recorded on every host they
//! touched, and `berth history` merges them, newest first, with who, where, the commit, what
//! changed and how it ended (a rolled-back apply too).

use crate::common::*;

fn apply_as(repo: &Repo, user: &str, machine: &str) -> Run {
    berth_env(
        &[
            "apply",
            "--auto-approve",
            "-q",
            "--repo",
            repo.path().to_str().unwrap(),
        ],
        &[("BERTH_USER", user), ("BERTH_MACHINE", machine)],
    )
}

#[test]
fn applies_from_two_machines_are_in_the_history_of_every_host_they_touched() {
    let repo = Repo::new("t-history");
    repo.write("deployments/web.yaml", &web("web", 2, "v1", "role=web"));
    repo.commit("v1");
    assert_eq!(apply_as(&repo, "ana", "laptop").code, 0);
    repo.write("deployments/web.yaml", &web("web", 2, "v2", "role=web"));
    repo.commit("v2");
    assert_eq!(apply_as(&repo, "ben", "ci-runner").code, 0);
    // A revision that fails its health gate: rolled back, and recorded so.
    repo.write(
        "deployments/web.yaml",
        &web("web", 2, "v2", "role=web").replace("/healthz", "/missing"),
    );
    repo.commit("broken health check");
    let failed = apply_as(&repo, "ana", "laptop");
    assert_eq!(failed.code, 3, "{failed:?}");

    let r = repo.berth(&["history"]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{r:?}");
    assert!(
        lines[0].contains("rolled back") && lines[0].contains("ana@laptop"),
        "{r:?}"
    );
    assert!(
        lines[1].contains("applied")
            && lines[1].contains("ben@ci-runner")
            && lines[1].contains("web: 0 to create, 2 to replace"),
        "{r:?}"
    );
    assert!(
        lines[2].contains("ana@laptop") && lines[2].contains("2 to create"),
        "{r:?}"
    );
    let head = repo.git(&["rev-parse", "HEAD~1"]);
    assert!(lines[1].contains(&head.trim()[..12]), "the commit: {r:?}");

    // Kept on each host it touched, not on this machine only.
    for h in ["h1", "h2"] {
        let vols = docker(
            h,
            &[
                "volume",
                "ls",
                "-q",
                "--filter",
                "label=berth.history-project=t-history",
            ],
        );
        assert_eq!(vols.lines().count(), 3, "{h}: {vols}");
    }
    let json = repo.berth(&["history", "web", "--limit", "1", "--format", "json"]);
    assert_eq!(json.code, 0, "{json:?}");
    let records: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 1);
    assert_eq!(records[0]["result"], "rolled back");
    assert_eq!(records[0]["hosts"], serde_json::json!(["h1", "h2"]));
}
