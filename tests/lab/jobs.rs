//! Jobs before a rollout on the lab: a migration runs on the host its selector picks, with
//! the new revision's image, env and volumes, before any new pod; its output is in the apply's
//! output; it runs once per revision; a failing one stops the rollout with exit 3 while the
//! old pods keep serving, and is not retried by the next sync.

use crate::common::*;

/// The web deployment on h1 (zone a) with a job that runs on h3 (role worker): it writes a
/// line into the pod's named volume and prints its env.
fn with_job(version: &str, script: &str) -> String {
    web("web", 1, version, "zone=a,role=web").replace(
        "      healthcheck:",
        "      env: {STAGE: prod}\n      volumes: [\"data:/data\"]\n      healthcheck:",
    ) + &format!(
        "jobs:\n  - name: migrate\n    hosts: role=worker\n    env: {{TARGET: \"{version}\"}}\n    command: [sh, -c, '{script}']\n    timeout: 30s\n"
    )
}

const MIGRATE: &str = "echo migrating $STAGE to $TARGET; echo $TARGET >> /data/migrations";

#[test]
fn a_job_runs_once_before_the_new_pods_and_a_failing_one_keeps_the_old_pods() {
    let repo = Repo::new("t-jobs");
    repo.write("deployments/web.yaml", &with_job("v1", MIGRATE));
    repo.commit("web v1 with a migration");

    let plan = repo.berth(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout
            .contains("run job migrate on h3 before the new pods of web"),
        "the plan shows the job as a step: {plan:?}"
    );
    let r = repo.berth(&["apply", "--auto-approve", "-v"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.said().contains("h3 job migrate | migrating prod to v1"),
        "the job's output streams into the apply's: {r:?}"
    );
    let job_at = r.said().find("run job migrate").unwrap();
    let create_at = r.said().find("create web-").unwrap();
    assert!(
        job_at < create_at,
        "the job ran before the pod was created: {r:?}"
    );
    // It ran on h3, in the project's volume there, and its container is gone.
    assert!(
        repo.volumes("h3").contains(&"t-jobs-data".to_string()),
        "{:?}",
        repo.volumes("h3")
    );
    assert!(
        repo.containers("h3").is_empty(),
        "{:?}",
        repo.containers("h3")
    );
    let migrated = docker(
        "h3",
        &[
            "run",
            "--rm",
            "-v",
            "t-jobs-data:/data",
            "berth-lab/web:v1",
            "cat",
            "/data/migrations",
        ],
    );
    assert_eq!(migrated, "v1\n");
    let running = repo.containers("h1");
    assert_eq!(running.len(), 1, "{running:?}");

    // Once per revision: the next sync has nothing to do and runs no job.
    let again = repo.berth(&["apply", "--auto-approve", "-v"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(!again.said().contains("job migrate"), "{again:?}");

    // A failing migration for v2: exit 3, no new pod, the v1 pod serves on.
    repo.write(
        "deployments/web.yaml",
        &with_job("v2", "echo cannot migrate; exit 3"),
    );
    repo.commit("web v2 with a failing migration");
    let failed = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(failed.code, 3, "{failed:?}");
    assert!(
        failed.said().contains("job migrate exited with code 3")
            && failed.said().contains("cannot migrate"),
        "{failed:?}"
    );
    let now = repo.containers("h1");
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(
        (now[0].name.as_str(), now[0].state.as_str()),
        (running[0].name.as_str(), "running")
    );
    assert!(
        repo.containers("h3").is_empty(),
        "{:?}",
        repo.containers("h3")
    );
    // Not retried by the next sync: the revision failed.
    let next = repo.berth(&["plan"]);
    assert_eq!(next.code, 0, "{next:?}");
    assert!(next.stdout.contains("failed at"), "{next:?}");
}
