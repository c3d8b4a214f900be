//! The CI and scheduler examples, checked: the GitHub Actions workflow parses and its berth
//! commands (plan as Markdown for the pull request, sync on main) run against the lab as
//! written; so do the cron lines and the systemd unit's command (which ends cleanly on
//! SIGTERM).

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn example(rel: &str) -> String {
    std::fs::read_to_string(root().join("examples").join(rel)).unwrap()
}

/// A workspace whose `deploy/` is the lab repository, and the environment the examples'
/// secrets provide (the key's text, known_hosts), with berth first on PATH.
fn workspace(repo: &Repo) -> (tempfile::TempDir, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo.path(), dir.path().join("deploy")).unwrap();
    let key = std::fs::read_to_string(std::env::var("BERTH_IDENTITY").unwrap()).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap()
    );
    let env = vec![
        ("PATH".to_string(), path),
        ("BERTH_SSH_KEY".to_string(), key),
        (
            "BERTH_KNOWN_HOSTS".to_string(),
            std::env::var("BERTH_KNOWN_HOSTS").unwrap(),
        ),
        ("NO_COLOR".to_string(), "1".to_string()),
    ];
    (dir, env)
}

fn shell(dir: &Path, env: &[(String, String)], script: &str) -> Run {
    let out = Command::new("bash")
        .args(["-e", "-c", script])
        .current_dir(dir)
        .env_remove("BERTH_IDENTITY")
        .envs(
            env.iter()
                .filter(|(k, _)| k != "BERTH_IDENTITY")
                .map(|(k, v)| (k, v)),
        )
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// The berth lines of a job's `run:` steps.
fn berth_lines(workflow: &serde_json::Value, job: &str) -> Vec<String> {
    workflow["jobs"][job]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .flat_map(|run| {
            run.lines()
                .map(str::trim)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.starts_with("berth "))
        .collect()
}

#[test]
fn the_github_actions_workflow_plans_a_pull_request_and_syncs_main() {
    let workflow: serde_json::Value =
        serde_saphyr::from_str(&example("github-actions/berth.yml")).unwrap();
    assert_eq!(workflow["permissions"]["pull-requests"], "write");
    let plan = berth_lines(&workflow, "plan");
    let sync = berth_lines(&workflow, "sync");
    assert_eq!((plan.len(), sync.len()), (1, 1), "{plan:?} {sync:?}");

    let repo = Repo::new("t-ci");
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "zone=b"));
    repo.commit("v1");
    let (dir, mut env) = workspace(&repo);
    // Both jobs run under the operator's policy, written from a secret outside the checkout.
    for job in ["plan", "sync"] {
        let steps = workflow["jobs"][job]["steps"].as_array().unwrap();
        assert!(
            steps.iter().any(|s| s["env"]["BERTH_POLICY"].is_string()),
            "the {job} job sets BERTH_POLICY"
        );
    }
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "registries: [docker.io]\nimages: ['docker.io/berth-lab/*']\n",
    )
    .unwrap();
    env.push(("BERTH_POLICY".into(), policy.display().to_string()));
    let r = shell(dir.path(), &env, &plan[0]);
    assert_eq!(r.code, 0, "{}: {r:?}", plan[0]);
    let comment = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    assert!(
        comment.contains("web") && comment.contains("create"),
        "{comment}"
    );
    let r = shell(dir.path(), &env, &sync[0]);
    assert_eq!(r.code, 0, "{}: {r:?}", sync[0]);
    assert_eq!(repo.containers("h2").len(), 1);
    // Nothing left to plan: the comment's command exits 0 as well.
    let r = shell(dir.path(), &env, &plan[0]);
    assert_eq!(r.code, 0, "{r:?}");
}

/// A cron line's command, with the example's repository URL replaced by `repo` and its log
/// and lock files by ones in `dir`.
fn cron_command(line: &str, repo: &Path, dir: &Path) -> String {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let command = fields[6..].join(" ");
    command
        .replace(
            "https://git.example.com/ops/deploy.git",
            repo.to_str().unwrap(),
        )
        .replace("--ref main ", "")
        .replace("/var/log/", &format!("{}/", dir.display()))
        .replace("/run/lock/", &format!("{}/", dir.display()))
}

#[test]
fn the_cron_lines_and_the_systemd_unit_run_as_written() {
    let repo = Repo::new("t-cron");
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "zone=b"));
    repo.commit("v1");
    let (dir, env) = workspace(&repo);
    let lines: Vec<String> = example("cron/berth.cron")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains('=') && !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        let command = cron_command(line, repo.path(), dir.path());
        let r = shell(dir.path(), &env, &command);
        assert_eq!(r.code, 0, "{command}: {r:?}");
    }
    assert_eq!(repo.containers("h2").len(), 1, "the sync line converged");
    let log = std::fs::read_to_string(dir.path().join("berth-drift.log")).unwrap();
    assert!(log.contains("no drift"), "{log}");

    // The unit's command: a reconciler that SIGTERM ends with exit 0.
    let unit = example("systemd/berth-sync.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap()
        .replace("/usr/local/bin/berth", env!("CARGO_BIN_EXE_berth"))
        .replace(
            "https://git.example.com/ops/deploy.git",
            repo.path().to_str().unwrap(),
        )
        .replace("--ref main ", "")
        // A free port, whatever else this machine runs.
        .replace("127.0.0.1:9187", &free_port());
    let parts: Vec<&str> = exec.split_whitespace().collect();
    let mut child = Command::new(parts[0])
        .args(&parts[1..])
        .envs(
            env.iter()
                .filter(|(k, _)| k != "BERTH_IDENTITY")
                .map(|(k, v)| (k, v)),
        )
        .env_remove("BERTH_IDENTITY")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the service did not stop on SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(status.code(), Some(0));
}

fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}
