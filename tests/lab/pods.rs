//! The daily commands on the lab: `berth logs` merges the pods of a deployment across hosts
//! in time order and follows them (new pods of a rollout too) until Ctrl-C; `berth ps` lists
//! every managed container; `berth exec` runs a command in a pod and exits with its code.

use crate::common::*;
use std::io::BufRead;
use std::process::{Command, Stdio};

/// Web pods on every web host that print a numbered line every 200 ms.
fn ticking(version: &str) -> String {
    web("web", 2, version, "role=web").replace(
        "      healthcheck:",
        &format!(
            "      command: [sh, -c, 'i=0; while true; do echo \"tick $i {version} $(hostname)\"; i=$((i+1)); sleep 0.2; done & exec httpd -f -p 8080 -h /www']\n      init: true\n      healthcheck:"
        ),
    )
}

fn run(repo: &Repo, args: &[&str]) -> Run {
    // Before the arguments: an exec's command follows `--`.
    let path = repo.path().to_str().unwrap().to_string();
    let mut full = vec![args[0], "--repo", &path];
    full.extend(&args[1..]);
    berth(&full)
}

#[test]
fn logs_merge_and_follow_ps_lists_and_exec_runs() {
    let repo = Repo::new("t-pods");
    repo.write("deployments/web.yaml", &ticking("v1"));
    repo.commit("ticking web");
    repo.apply_ok(&["-q"]);
    std::thread::sleep(std::time::Duration::from_secs(1));

    // logs: both hosts' pods, each line prefixed, in time order.
    let r = run(&repo, &["logs", "web", "--tail", "3", "--timestamps"]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{r:?}");
    for h in ["h1", "h2"] {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with(&format!("{h} web-")))
                .count(),
            3,
            "{r:?}"
        );
    }
    let times: Vec<&str> = lines
        .iter()
        .map(|l| l.split(" | ").nth(1).unwrap().split(' ').next().unwrap())
        .collect();
    let parsed: Vec<(String, u64)> = times
        .iter()
        .map(|t| {
            let (s, f) = t.trim_end_matches('Z').split_once('.').unwrap_or((t, "0"));
            let nanos: String = f.chars().chain(std::iter::repeat('0')).take(9).collect();
            (s.to_string(), nanos.parse().unwrap())
        })
        .collect();
    assert!(
        parsed.windows(2).all(|w| w[0] <= w[1]),
        "in time order: {times:?}"
    );
    let unknown = run(&repo, &["logs", "nope"]);
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(
        unknown.said().contains("there is no deployment named nope"),
        "{unknown:?}"
    );

    // ps: one line per container, with its deployment and state.
    let ps = run(&repo, &["ps"]);
    assert_eq!(ps.code, 0, "{ps:?}");
    let rows: Vec<&str> = ps.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{ps:?}");
    assert!(
        rows.iter().all(|r| r.contains(" web ")
            && r.contains("running")
            && r.contains("berth-lab/web:v1")),
        "{ps:?}"
    );

    // exec: in a ready pod, its output and exit code; input with -i; a wrong container said.
    let r = run(&repo, &["exec", "web", "--host", "h2", "--", "hostname"]);
    assert_eq!(r.code, 0, "{r:?}");
    let on_h2: Vec<String> = repo.containers("h2").into_iter().map(|c| c.name).collect();
    assert!(
        on_h2.iter().any(|n| n.starts_with(r.stdout.trim())),
        "{r:?} {on_h2:?}"
    );
    let r = run(
        &repo,
        &[
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ],
    );
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (7, "out\n", "err\n"),
        "{r:?}"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "exec",
            "web",
            "-i",
            "--repo",
            repo.path().to_str().unwrap(),
            "--",
            "cat",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through the pipe\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through the pipe\n");
    let r = run(&repo, &["exec", "web", "-c", "db", "--", "true"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.said().contains("has no container db"), "{r:?}");

    // logs -f: lines from both hosts as they come, then the pods of a rollout, until Ctrl-C.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "logs",
            "web",
            "-f",
            "--tail",
            "0",
            "--repo",
            repo.path().to_str().unwrap(),
        ])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (send, receive) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if send.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let wait_for = |what: &dyn Fn(&str) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut seen = Vec::new();
        while std::time::Instant::now() < deadline {
            if let Ok(line) = receive.recv_timeout(std::time::Duration::from_millis(500)) {
                if what(&line) {
                    return line;
                }
                seen.push(line);
            }
        }
        panic!("not seen; saw {seen:?}");
    };
    wait_for(&|l: &str| l.starts_with("h1 web-") && l.contains("tick"));
    wait_for(&|l: &str| l.starts_with("h2 web-") && l.contains("tick"));
    repo.write("deployments/web.yaml", &ticking("v2"));
    repo.commit("v2");
    repo.apply_ok(&["-q"]);
    wait_for(&|l: &str| l.contains(" v2 "));
    let kill = Command::new("kill")
        .args(["-INT", &follow.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = follow.wait().unwrap();
    assert_eq!(status.code(), Some(0), "Ctrl-C ends a follow quietly");
}
