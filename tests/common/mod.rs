//! Helpers for the end-to-end tests: real lab hosts (scripts/lab), temporary Git
//! repositories, and the berth binary.
#![allow(dead_code)]

pub mod clients;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs git in `dir` and returns its trimmed output; a failing git fails the test.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A new repository on branch main with a committer identity.
pub fn git_init(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.email", "test@berth"]);
    git(dir, &["config", "user.name", "berth test"]);
}

/// Fails (never skips) when the lab is not up.
pub fn require_lab() {
    require_hosts(&HOSTS);
}

/// The lab's podman hosts (`scripts/lab up 3 --podman 2`): Debian's podman behind its
/// Docker-compatible API instead of dockerd.
pub const PODMAN_HOSTS: [&str; 2] = ["h4", "h5"];

/// The lab's fault hosts (`scripts/lab up 3 --podman 2 --fault-hosts 3`): Docker hosts that
/// only tests/chaos/faults.rs uses, as it cuts their links and stops their engines.
pub const FAULT_HOSTS: [&str; 3] = ["h6", "h7", "h8"];

/// Fails, saying how to bring them up, unless these lab hosts answer.
pub fn require_hosts(hosts: &[&str]) {
    for var in ["BERTH_IDENTITY", "BERTH_KNOWN_HOSTS"] {
        if std::env::var_os(var).is_none() {
            panic!("{var} is not set: the e2e tests need the lab. Run `scripts/test` (or `scripts/lab up 3 --bastion --podman 2 --fault-hosts 3` and source .lab/env)");
        }
    }
    for h in hosts {
        let i: u32 = h[1..].parse().unwrap();
        let addr: SocketAddr = format!("198.18.0.{}:22", 10 + i).parse().unwrap();
        if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
            panic!("lab host {h} ({addr}) does not answer: run `scripts/lab up 3 --bastion --podman 2 --fault-hosts 3`");
        }
    }
}

pub fn inventory() -> String {
    "hosts:\n  - {name: h1, address: 198.18.0.11, labels: {role: web, zone: a}}\n  - {name: h2, address: 198.18.0.12, labels: {role: web, zone: b}}\n  - {name: h3, address: 198.18.0.13, labels: {role: worker, zone: a}}\n".to_string()
}

/// A web deployment of the lab image, with a healthcheck.
pub fn web(name: &str, replicas: u32, version: &str, selector: &str) -> String {
    format!(
        r#"name: {name}
labels: {{app: {name}}}
replicas: {replicas}
placement: {{hosts: "{selector}"}}
pod:
  containers:
    - name: app
      image: berth-lab/web:{version}
      healthcheck:
        test: [CMD, wget, -q, -O, /dev/null, http://127.0.0.1:8080/healthz]
        interval: 2s
        retries: 2
strategy: {{min_ready: 1s, health_timeout: 30s}}
"#
    )
}

/// A temporary Git repository for one project; its containers are removed on drop.
pub struct Repo {
    pub dir: tempfile::TempDir,
    pub project: String,
    /// The lab hosts its inventory names (h1, h2, h3 unless `Repo::on`).
    pub hosts: Vec<&'static str>,
}

impl Repo {
    pub fn new(project: &str) -> Repo {
        Repo::on(project, &HOSTS, &inventory())
    }

    /// A repository whose inventory (`inventory`) names these lab hosts.
    pub fn on(project: &str, hosts: &[&'static str], inventory: &str) -> Repo {
        require_hosts(hosts);
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo {
            dir,
            project: project.to_string(),
            hosts: hosts.to_vec(),
        };
        git_init(repo.path());
        repo.write("berth.yaml", &format!("project: {project}\n"));
        repo.write("inventory.yaml", inventory);
        // What an earlier, interrupted run of this test left is named, then removed.
        let left = repo.leftovers(&["ps", "-a"]);
        if !left.is_empty() {
            eprintln!("{project}: an earlier run left {left:?}; removing it");
        }
        repo.cleanup();
        repo
    }

    /// This project's objects of one kind (`ps -a`, `network ls`, `volume ls`) on every
    /// host, as `host name`.
    pub fn leftovers(&self, list: &[&str]) -> Vec<String> {
        let filter = format!("label=berth.project={}", self.project);
        let mut found = Vec::new();
        for h in &self.hosts {
            let mut args = list.to_vec();
            args.extend(["--filter", filter.as_str(), "--format", "{{.Name}}"]);
            if list[0] == "ps" {
                args.pop();
                args.push("{{.Names}}");
            }
            let names = docker(h, &args);
            found.extend(names.split_whitespace().map(|n| format!("{h} {n}")));
        }
        found
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) -> String {
        git(self.path(), args)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path().join(rel)).unwrap();
    }

    pub fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
    }

    /// `berth apply --auto-approve` (plus `extra`), which must succeed.
    pub fn apply_ok(&self, extra: &[&str]) -> Run {
        let r = self.berth(&[&["apply", "--auto-approve"], extra].concat());
        assert_eq!(r.code, 0, "{r:?}");
        r
    }

    /// Runs berth with `--repo` pointing here.
    pub fn berth(&self, args: &[&str]) -> Run {
        let mut full: Vec<&str> = args.to_vec();
        let repo = self.path().to_str().unwrap().to_string();
        full.push("--repo");
        full.push(&repo);
        berth(&full)
    }

    /// Names of this project's containers on a host, with their state, sorted.
    pub fn containers(&self, host: &str) -> Vec<Container> {
        let out = docker(
            host,
            &[
                "ps",
                "-a",
                "--filter",
                &format!("label=berth.project={}", self.project),
                "--format",
                "{{.Names}}\t{{.Image}}\t{{.State}}\t{{.ID}}",
            ],
        );
        let mut v: Vec<Container> = out
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                Container {
                    name: f[0].into(),
                    image: f[1].into(),
                    state: f[2].into(),
                    id: f[3].into(),
                }
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn all_containers(&self) -> Vec<Container> {
        self.hosts.iter().flat_map(|h| self.containers(h)).collect()
    }

    /// This project's running containers on a host: without the old revisions a rollout
    /// keeps stopped for `berth rollback --to`.
    pub fn running_on(&self, host: &str) -> Vec<Container> {
        let mut v = self.containers(host);
        v.retain(|c| c.state == "running");
        v
    }

    /// This project's running containers on every lab host.
    pub fn running_containers(&self) -> Vec<Container> {
        self.hosts.iter().flat_map(|h| self.running_on(h)).collect()
    }

    /// The stopped containers on every lab host (kept revisions, or stopped by hand).
    pub fn stopped_containers(&self) -> Vec<Container> {
        let mut v = self.all_containers();
        v.retain(|c| c.state != "running");
        v
    }

    /// This project's volumes on a host, sorted.
    pub fn volumes(&self, host: &str) -> Vec<String> {
        let out = docker(
            host,
            &[
                "volume",
                "ls",
                "-q",
                "--filter",
                &format!("label=berth.project={}", self.project),
            ],
        );
        let mut v: Vec<String> = out
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }

    /// Removes every container, network and volume labelled with this project, in that
    /// order (networks and volumes are in use until their containers are gone).
    pub fn cleanup(&self) {
        let filter = format!("label=berth.project={}", self.project);
        // The apply history is labelled apart (it stays out of the project's volumes).
        let history = format!("label=berth.history-project={}", self.project);
        let kinds: [(&[&str], &[&str], &str); 4] = [
            (&["ps", "-aq"], &["rm", "-f"], &filter),
            (&["network", "ls", "-q"], &["network", "rm"], &filter),
            (&["volume", "ls", "-q"], &["volume", "rm", "-f"], &filter),
            (&["volume", "ls", "-q"], &["volume", "rm", "-f"], &history),
        ];
        for (list, remove, filter) in kinds {
            for h in &self.hosts {
                let mut args = list.to_vec();
                args.extend(["--filter", filter]);
                let found = docker(h, &args);
                let ids: Vec<&str> = found.split_whitespace().collect();
                if !ids.is_empty() {
                    docker(h, &[remove, &ids].concat());
                }
            }
        }
    }
}

impl Drop for Repo {
    /// A test that passed must not leave an apply lock behind: that would be a bug berth's
    /// users meet as exit 4. Then everything of the project is removed.
    fn drop(&mut self) {
        let locks: Vec<String> = [
            self.leftovers(&["network", "ls"]),
            self.leftovers(&["volume", "ls"]),
        ]
        .concat()
        .into_iter()
        .filter(|n| n.contains(" berth-lock-") || n.contains(" berth-lease-"))
        .collect();
        self.cleanup();
        if !locks.is_empty() && !std::thread::panicking() {
            panic!(
                "{}: the test left an apply lock behind: {locks:?}",
                self.project
            );
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub name: String,
    /// The engine's id: a pod removed and created again under its old name has a new one.
    pub id: String,
    pub image: String,
    pub state: String,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Standard error with miette's line wrapping and frame undone: words joined by single
    /// spaces, so a test can look for a sentence wherever the terminal width broke it.
    pub fn said(&self) -> String {
        self.stderr
            .replace(['│', '×', '╭', '╰', '─', '┬', '┴', '·'], " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            // miette may wrap a path after any of its slashes.
            .replace("/ ", "/")
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn berth(args: &[&str]) -> Run {
    berth_env(args, &[])
}

/// Runs berth with extra environment variables.
pub fn berth_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// Starts berth (with `--repo` pointing at the repository) without waiting for it.
pub fn spawn_berth(repo: &Repo, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .arg("--repo")
        .arg(repo.path())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a berth started by `spawn_berth`.
pub fn finish(child: std::process::Child) -> Run {
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// The docker CLI on one lab host, as `scripts/lab docker HOST` runs it, but straight at the
/// engine's socket in the host's mount namespace (`/proc/KEEPER/root/run/docker.sock`): the
/// tests ask the hosts thousands of times, and a bash and an nsenter for each cost this
/// 2-core machine a few percent of the whole suite.
pub fn docker(host: &str, args: &[&str]) -> String {
    let lab = std::env::var_os("BERTH_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".lab"));
    let keeper = std::fs::read_to_string(lab.join(host).join("keeper.pid"))
        .unwrap_or_else(|e| panic!("lab host {host} has no keeper.pid ({e}): is the lab up?"));
    let socket = format!("unix:///proc/{}/root/run/docker.sock", keeper.trim());
    let out = Command::new("docker")
        .args(["-H", &socket])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?} on {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into()
}

/// A berth run in the background whose stderr is read line by line as it comes (to act at a
/// moment of its run: interrupt it during a pause, or during a rollback).
pub struct Watched {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
    /// The lines read so far.
    pub seen: Vec<String>,
}

impl Watched {
    /// Starts berth with `args` and `--repo` pointing at the repository; stdout is dropped.
    pub fn start(repo: &Repo, args: &[&str]) -> Watched {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .arg("--repo")
            .arg(repo.path())
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        Watched {
            child,
            lines,
            seen: vec![],
        }
    }

    /// Reads until a line contains `marker`; fails with what it read if berth ends first.
    pub fn wait_for(&mut self, marker: &str) {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            self.seen.push(line.clone());
            if line.contains(marker) {
                return;
            }
        }
        panic!("berth ended without printing {marker:?}: {:?}", self.seen);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        let kill = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
    }

    /// Waits for berth to end: its exit code, and the lines it printed after those seen.
    pub fn finish(mut self) -> (Option<i32>, Vec<String>) {
        let rest: Vec<String> = self.lines.map(|l| l.unwrap()).collect();
        (self.child.wait().unwrap().code(), rest)
    }
}

/// A TCP server on loopback that takes every connection and never says a word (a hung
/// server, a firewall that drops the packets after the handshake); its port.
pub fn silent_server() -> u16 {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in server.incoming() {
            held.push(conn);
        }
    });
    port
}

/// One plain HTTP/1.0 GET from this machine (an edge through the lab's bridge); the body of
/// a 200 answer, or why not.
pub fn get(addr: SocketAddr) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: shop.test\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or_default().to_string());
    }
    Ok(body.trim().to_string())
}
