//! The operator's policy on the lab: the repository is untrusted input. Commits must carry
//! an SSH signature by a listed key (made here by real git and ssh-keygen), values the policy
//! does not allow are refused before any host is contacted (a trap host in the inventory, a
//! listener of this test's, counts the connections), and a pull request's plan sends no
//! registry login to a server the policy does not list (this test's listener stands in for
//! that server at 198.18.0.1:5009, which the lab's engines speak plain HTTP to).

use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A listener that records every connection's first bytes, and answers an HTTP request with
/// a registry's demand for a password (so an engine that has one sends it).
struct Listener {
    addr: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Listener {
    fn start(bind: &str) -> Listener {
        let listener = TcpListener::bind(bind)
            .unwrap_or_else(|e| panic!("cannot listen on {bind}: {e} (is the lab up?)"));
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let record = record.clone();
                std::thread::spawn(move || {
                    stream
                        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                        .ok();
                    let mut buf = vec![0u8; 16 * 1024];
                    let n = stream.read(&mut buf).unwrap_or(0);
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    record.lock().unwrap().push(text.clone());
                    if text.starts_with("GET ") || text.starts_with("HEAD ") {
                        let _ = stream.write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"registry\"\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                });
            }
        });
        Listener { addr, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// An SSH key pair made by ssh-keygen, and an allowed_signers line for it.
fn key(dir: &Path, name: &str, principal: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen (openssh-client) is installed");
    assert!(out.status.success(), "{out:?}");
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    let key: Vec<&str> = public.split_whitespace().take(2).collect();
    (path, format!("{principal} {}\n", key.join(" ")))
}

/// A commit signed with `key` (git's gpg.format=ssh).
fn signed_commit(repo: &Repo, key: &Path, message: &str) {
    repo.git(&["add", "-A"]);
    let signing = format!("user.signingkey={}", key.display());
    repo.git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &signing,
        "commit",
        "-q",
        "--allow-empty",
        "-S",
        "-m",
        message,
    ]);
}

/// A policy (and its allowed_signers) in a directory of its own, outside the repository.
struct PolicyDir {
    dir: tempfile::TempDir,
}

impl PolicyDir {
    fn new(policy: &str, signers: &str) -> PolicyDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
        std::fs::write(dir.path().join("allowed_signers"), signers).unwrap();
        PolicyDir { dir }
    }

    fn path(&self) -> String {
        self.dir.path().join("policy.yaml").display().to_string()
    }
}

fn trap_inventory(trap: &Listener) -> String {
    let port = trap.addr.rsplit(':').next().unwrap();
    format!("hosts:\n  - {{name: trap, address: 127.0.0.1, port: {port}, labels: {{role: web}}}}\n")
}

#[test]
fn unsigned_unknown_and_disallowed_commits_are_refused_before_any_host_is_contacted() {
    let keys = tempfile::tempdir().unwrap();
    let (alice, alice_line) = key(keys.path(), "alice", "alice@example.com");
    let (mallory, _) = key(keys.path(), "mallory", "mallory@example.com");
    let policy = PolicyDir::new(
        "commits: {allowed_signers: allowed_signers}\nbind_mounts: [/srv/shop]\n",
        &alice_line,
    );
    let trap = Listener::start("127.0.0.1:0");
    let repo = Repo::new("policy-trap");
    repo.write("inventory.yaml", &trap_inventory(&trap));
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "role=web"));
    repo.commit("unsigned");
    let p = policy.path();
    for args in [
        vec!["plan", "--policy", &p],
        vec!["apply", "--auto-approve", "--policy", &p],
        vec!["sync", "--policy", &p],
    ] {
        let r = repo.berth(&args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(
            r.said()
                .contains("is refused by the policy: it is unsigned"),
            "{args:?}: {r:?}"
        );
    }
    // validate reads the files on disk, which carry no signature: it checks the other
    // rules and says where the signature is checked; with --ref it reads the commit.
    let r = repo.berth(&["validate", "--policy", &p]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.said().contains("the files on disk carry no signature"),
        "{r:?}"
    );
    let r = repo.berth(&["validate", "--policy", &p, "--ref", "HEAD"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.said().contains("it is unsigned"), "{r:?}");
    signed_commit(&repo, &mallory, "signed by a key the policy does not list");
    let r = repo.berth(&["plan", "--policy", &p]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.said().contains("which allowed_signers does not list"),
        "{r:?}"
    );
    // Signed by alice, but it mounts the engine's socket: refused at the line that asks.
    repo.write(
        "deployments/web.yaml",
        "name: web\nreplicas: 1\npod:\n  containers:\n    - name: app\n      image: berth-lab/web:v1\n      volumes: [/var/run/docker.sock:/var/run/docker.sock]\n",
    );
    signed_commit(&repo, &alice, "mount the docker socket");
    let r = repo.berth(&["apply", "--auto-approve", "--policy", &p]);
    assert_eq!(r.code, 1, "{r:?}");
    let said = r.said();
    assert!(
        said.contains("bind mount of host path /var/run/docker.sock is not allowed by the policy"),
        "{r:?}"
    );
    assert!(
        said.contains("deployments/web.yaml:7:"),
        "names the file and line: {r:?}"
    );
    assert!(
        said.contains("policy.yaml line 2): allows host paths under /srv/shop"),
        "names the rule: {r:?}"
    );
    assert!(
        trap.seen().is_empty(),
        "no host may be contacted for a refused commit: {:?}",
        trap.seen()
    );
    // The same policy lets alice's commit of an allowed repository through: now berth goes
    // to the host (the trap, which is no SSH server) and the plan names the signer.
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "role=web"));
    signed_commit(&repo, &alice, "v1");
    let r = repo.berth(&["plan", "--policy", &p, "--connect-timeout", "3s"]);
    assert!(
        r.stdout
            .contains("commit signed by alice@example.com (SHA256:"),
        "{r:?}"
    );
    assert!(
        !trap.seen().is_empty(),
        "an allowed commit reaches its hosts"
    );
}

#[test]
fn a_signed_commit_deploys_and_sync_every_holds_the_last_good_commit_when_the_next_is_unsigned() {
    let keys = tempfile::tempdir().unwrap();
    let (alice, alice_line) = key(keys.path(), "alice", "alice@example.com");
    let policy = PolicyDir::new("commits: {allowed_signers: allowed_signers}\n", &alice_line);
    let p = policy.path();
    let repo = Repo::new("policy-signed");
    repo.write("deployments/web.yaml", &web("web", 2, "v1", "role=web"));
    signed_commit(&repo, &alice, "v1");
    let r = repo.apply_ok(&["--policy", &p]);
    assert!(
        r.stdout.contains("commit signed by alice@example.com"),
        "{r:?}"
    );
    let mut sync = Watched::start(&repo, &["sync", "--every", "5s", "--policy", &p]);
    sync.wait_for("round 1 ended with exit 0");
    // An unsigned v2 on top, and a pod stopped by hand: the rounds keep v1 and repair it.
    repo.write("deployments/web.yaml", &web("web", 2, "v2", "role=web"));
    repo.commit("v2, unsigned");
    let host = HOSTS
        .into_iter()
        .find(|h| !repo.running_on(h).is_empty())
        .expect("a host runs web");
    docker(host, &["stop", "-t", "1", &repo.running_on(host)[0].name]);
    sync.wait_for("the fleet stays at the last good commit");
    sync.wait_for("ended with exit 0");
    sync.interrupt();
    let (_, rest) = sync.finish();
    let running = repo.running_containers();
    assert_eq!(running.len(), 2, "{:?}", [sync_seen(&rest)]);
    assert!(
        running.iter().all(|c| c.image.ends_with(":v1")),
        "still v1 and repaired: {running:?}"
    );
    repo.cleanup();
}

#[test]
fn a_pull_request_plan_sends_no_login_to_a_registry_the_policy_does_not_list() {
    // The lab's engines speak plain HTTP to this address (scripts/lab, STANDIN_REGISTRY).
    let standin = Listener::start("198.18.0.1:5009");
    let secret = "prod-db-password-4f1e";
    let repo = Repo::new("policy-pr-plan");
    repo.write(
        "berth.yaml",
        "project: policy-pr-plan\nregistries:\n  - {server: '198.18.0.1:5009', username: thief, password: {secret: db-password}}\n",
    );
    repo.write(
        "deployments/web.yaml",
        &web("web", 1, "v1", "role=web").replace("berth-lab/web:v1", "198.18.0.1:5009/loot/web:v1"),
    );
    repo.commit("a pull request");
    let env = [("BERTH_SECRET_DB_PASSWORD", secret)];
    let path = repo.path().display().to_string();
    let plan = |extra: &[&str]| berth_env(&[&["plan", "--repo", &path], extra].concat(), &env);
    let leaked = |seen: &[String]| {
        let basic = base64(&format!("thief:{secret}"));
        seen.iter().any(|t| {
            t.contains(secret)
                || t.contains(&basic)
                || t.to_ascii_lowercase().contains("authorization:")
        })
    };

    // No policy: plan uses no login from the repository; the engine asks anonymously.
    let r = plan(&[]);
    assert!(r.code == 0 || r.code == 2, "{r:?}");
    assert!(
        r.all()
            .contains("the login berth.yaml declares for registry 198.18.0.1:5009 was not sent"),
        "{r:?}"
    );
    assert!(!leaked(&standin.seen()), "{:?}", standin.seen());

    // A policy that does not list the server: refused before any host, nothing sent at all.
    let before = standin.seen().len();
    let policy = PolicyDir::new("registries: ['198.18.0.1:5000']\n", "");
    let r = plan(&["--policy", &policy.path()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.said().contains("registry 198.18.0.1:5009 (of image 198.18.0.1:5009/loot/web:v1) is not allowed by the policy"),
        "{r:?}"
    );
    assert_eq!(standin.seen().len(), before, "{:?}", standin.seen());

    // The control: a policy that lists it sends the login, and the listener sees it. So the
    // listener would have seen a leak above.
    let listed = PolicyDir::new("registries: ['198.18.0.1:5009']\n", "");
    let _ = plan(&["--policy", &listed.path()]);
    assert!(
        leaked(&standin.seen()),
        "the login reaches a listed registry: {:?}",
        standin.seen()
    );
}

fn sync_seen(rest: &[String]) -> String {
    rest.join("\n")
}

fn base64(text: &str) -> String {
    let out = Command::new("base64")
        .args(["-w0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
