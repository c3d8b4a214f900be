//! Inputs that used to panic or reach outside the repository, checked offline (no lab host is
//! contacted: each fails before connecting): plan files that are broken or hold non-ASCII
//! text, a closed output pipe, files that are not UTF-8, symbolic links out of the repository;
//! and an SSH server on loopback that takes the connection and says nothing.

use crate::common::*;
use std::io::Read;
use std::process::{Command, Stdio};

fn run(args: &[&str]) -> Run {
    berth(args)
}

fn no_panic(r: &Run) {
    assert!(!r.all().contains("panicked"), "{r:?}");
}

/// A plan with no waves whose text fields are not ASCII, in the JSON form `plan -o` writes.
fn plan_json(commit: &str, version: u32) -> String {
    serde_json::json!({
        "version": version,
        "project": "prøject-ß",
        "commit": commit,
        "desired_hash": "ünïcödé",
        "selector": "app=wéb",
        "prune": false,
        "hosts": {},
        "changes": [],
        "issues": [{"kind": "notice", "host": null, "deployment": "wéb", "pod": null, "message": "ℹ️ naïve café — 日本語"}],
        "waves": []
    })
    .to_string()
}

#[test]
fn plan_files_that_are_broken_or_not_ascii_are_named_and_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    // Non-ASCII everywhere, a commit cut inside a character: shown, not a panic.
    let unicode = write(
        "unicode.json",
        plan_json("ééééééééééééééééééééé", berth::plan::PLAN_VERSION).as_bytes(),
    );
    let r = run(&["apply", &unicode, "--auto-approve"]);
    no_panic(&r);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("éééééééééééé"), "{r:?}");

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.json", vec![], "it ends too early"),
        (
            "truncated.json",
            plan_json("abc", berth::plan::PLAN_VERSION).as_bytes()[..40].to_vec(),
            "it ends too early",
        ),
        (
            "latin1.json",
            b"{\"version\": 1, \"project\": \"caf\xe9\"}".to_vec(),
            "is not UTF-8 text",
        ),
        (
            "other.json",
            b"{\"a\": 1}".to_vec(),
            "it is not a berth plan",
        ),
        ("list.json", b"[1, 2, 3]".to_vec(), "it is not a berth plan"),
        (
            "yaml.json",
            b"version: 1\n".to_vec(),
            "it is not valid JSON",
        ),
        (
            "future.json",
            plan_json("abc", 99).into_bytes(),
            "has format version 99",
        ),
    ];
    for (name, bytes, says) in cases {
        let path = write(name, &bytes);
        let r = run(&["apply", &path, "--auto-approve"]);
        no_panic(&r);
        assert_eq!(r.code, 1, "{name}: {r:?}");
        assert!(
            r.said().contains(name),
            "{name}: the message names the file: {r:?}"
        );
        assert!(r.said().contains(says), "{name}: {r:?}");
    }
    let r = run(&["apply", "/nonexistent/plan.json", "--auto-approve"]);
    assert_eq!(r.code, 1);
    assert!(
        r.said()
            .contains("cannot read the plan file /nonexistent/plan.json"),
        "{r:?}"
    );
}

/// A plain-directory repository of the lab's shape, with a deployment per name in `names`.
fn plain_repo(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("deployments")).unwrap();
    std::fs::write(p.join("berth.yaml"), "project: t-robust\n").unwrap();
    std::fs::write(p.join("inventory.yaml"), inventory()).unwrap();
    for n in names {
        std::fs::write(
            p.join(format!("deployments/{n}.yaml")),
            web(n, 1, "v1", "zone=a"),
        )
        .unwrap();
    }
    dir
}

#[test]
fn a_closed_output_pipe_ends_quietly() {
    let names: Vec<String> = (0..40).map(|i| format!("web{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let dir = plain_repo(&refs);
    for format in ["text", "json"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["render", "--format", format, "--repo"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read a little, as `head -c 100` would, then close the pipe.
        let mut first = [0u8; 100];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(!stderr.contains("panicked"), "{format}: {stderr}");
        assert_eq!(status.code(), Some(0), "{format}: {stderr}");
    }
}

#[test]
fn files_that_are_not_utf8_are_named() {
    let dir = plain_repo(&["web"]);
    std::fs::write(dir.path().join("deployments/bad.yaml"), b"name: caf\xe9\n").unwrap();
    let r = run(&["render", "--repo", dir.path().to_str().unwrap()]);
    no_panic(&r);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.said().contains("deployments/bad.yaml is not UTF-8 text"),
        "{r:?}"
    );

    // The same file committed to Git.
    let git_dir = plain_repo(&["web"]);
    git_init(git_dir.path());
    std::fs::write(
        git_dir.path().join("deployments/bad.yaml"),
        b"name: caf\xe9\n",
    )
    .unwrap();
    git(git_dir.path(), &["add", "-A"]);
    git(git_dir.path(), &["commit", "-qm", "latin-1"]);
    let r = run(&["render", "--repo", git_dir.path().to_str().unwrap()]);
    no_panic(&r);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.said().contains("deployments/bad.yaml is not UTF-8 text"),
        "{r:?}"
    );
}

#[test]
fn symbolic_links_out_of_the_repository_are_refused_and_never_read() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.yaml");
    std::fs::write(&secret, "name: stolen\nTOP-SECRET-CONTENT: 1\n").unwrap();

    // A plain directory: a file link and a directory link pointing out.
    let dir = plain_repo(&["web"]);
    std::os::unix::fs::symlink(&secret, dir.path().join("deployments/x.yaml")).unwrap();
    let r = run(&["render", "--repo", dir.path().to_str().unwrap()]);
    no_panic(&r);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.said()
            .contains("deployments/x.yaml is a symbolic link to"),
        "{r:?}"
    );
    assert!(r.said().contains("outside the repository"), "{r:?}");
    assert!(
        !r.all().contains("TOP-SECRET-CONTENT"),
        "the file was read: {r:?}"
    );
    std::fs::remove_file(dir.path().join("deployments/x.yaml")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("deployments/more")).unwrap();
    let r = run(&["render", "--repo", dir.path().to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.said().contains("deployments/more is a symbolic link to"),
        "{r:?}"
    );
    assert!(!r.all().contains("TOP-SECRET-CONTENT"), "{r:?}");

    // A link inside the repository is followed.
    std::fs::remove_file(dir.path().join("deployments/more")).unwrap();
    std::fs::create_dir_all(dir.path().join("shared")).unwrap();
    std::fs::write(
        dir.path().join("shared/api.yaml"),
        web("api", 1, "v1", "zone=a"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../shared/api.yaml",
        dir.path().join("deployments/api.yaml"),
    )
    .unwrap();
    let r = run(&["render", "--repo", dir.path().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("name: api"), "{r:?}");

    // Committed to Git: an absolute link and one that climbs out.
    for target in [secret.to_str().unwrap(), "../../outside.yaml"] {
        let g = plain_repo(&["web"]);
        git_init(g.path());
        std::os::unix::fs::symlink(target, g.path().join("deployments/x.yaml")).unwrap();
        git(g.path(), &["add", "-A"]);
        git(g.path(), &["commit", "-qm", "link"]);
        let r = run(&["render", "--repo", g.path().to_str().unwrap()]);
        no_panic(&r);
        assert_eq!(r.code, 1, "{target}: {r:?}");
        assert!(
            r.said()
                .contains("deployments/x.yaml is a symbolic link to"),
            "{r:?}"
        );
        assert!(r.said().contains("outside the repository"), "{r:?}");
        assert!(!r.all().contains("TOP-SECRET-CONTENT"), "{r:?}");
    }
}

#[test]
fn an_ssh_server_that_takes_the_connection_and_says_nothing_is_given_up_on() {
    // It takes the connection and never says a word.
    let port = crate::common::silent_server();
    let dir = plain_repo(&["web"]);
    std::fs::write(
        dir.path().join("inventory.yaml"),
        format!(
            "hosts:\n  - {{name: q1, address: 127.0.0.1, port: {port}, labels: {{zone: a}}}}\n"
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let r = run(&[
        "plan",
        "--repo",
        dir.path().to_str().unwrap(),
        "--connect-timeout",
        "1s",
    ]);
    let took = started.elapsed();
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.all().contains("q1") && r.all().contains("connection timed out after 1s"),
        "{r:?}"
    );
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    no_panic(&r);
}
