//! The Git source on real (local) repositories: a checkout, a folder inside one, a plain
//! directory, and a URL that is cached and fetched incrementally.

use crate::common::{git, git_init as init};
use berth::repo::source::{read, SourceRequest};
use std::path::Path;

fn request<'a>(repo: &'a str, git_ref: Option<&'a str>, cache: &Path) -> SourceRequest<'a> {
    SourceRequest {
        repo,
        git_ref,
        cache_dir: cache.to_path_buf(),
        known_hosts: cache.join("known_hosts"),
        credentials: Default::default(),
        fetch_timeout: std::time::Duration::from_secs(60),
    }
}

#[test]
fn a_checkout_is_read_at_its_commit_and_uncommitted_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    init(dir.path());
    std::fs::create_dir_all(dir.path().join("deploy/deployments")).unwrap();
    std::fs::write(dir.path().join("deploy/berth.yaml"), "project: one\n").unwrap();
    std::fs::write(dir.path().join("deploy/deployments/a.yaml"), "name: a\n").unwrap();
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "one"]);
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    std::fs::write(dir.path().join("deploy/berth.yaml"), "project: two\n").unwrap();

    let sub = dir.path().join("deploy");
    let src = read(&request(sub.to_str().unwrap(), None, cache.path())).unwrap();
    assert_eq!(src.files.commit.as_deref(), Some(head.as_str()));
    assert_eq!(
        src.files.files["berth.yaml"], "project: one\n",
        "the committed text, not the worktree"
    );
    assert!(src.files.files.contains_key("deployments/a.yaml"));
    assert_eq!(src.warnings.len(), 1);
    assert!(
        src.warnings[0].contains("deploy/berth.yaml"),
        "{:?}",
        src.warnings
    );
}

#[test]
fn a_plain_directory_is_read_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("berth.yaml"), "project: plain\n").unwrap();
    let src = read(&request(dir.path().to_str().unwrap(), None, cache.path())).unwrap();
    assert_eq!(src.files.commit, None);
    assert_eq!(src.files.files["berth.yaml"], "project: plain\n");
    assert!(read(&request(
        dir.path().to_str().unwrap(),
        Some("main"),
        cache.path()
    ))
    .is_err());
}

#[test]
fn a_url_is_cached_and_fetched_incrementally_at_a_branch_tag_or_commit() {
    let origin = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    init(origin.path());
    std::fs::write(origin.path().join("berth.yaml"), "project: v1\n").unwrap();
    git(origin.path(), &["add", "-A"]);
    git(origin.path(), &["commit", "-qm", "v1"]);
    git(origin.path(), &["tag", "release-1"]);
    let first = git(origin.path(), &["rev-parse", "HEAD"]);
    let url = format!("file://{}", origin.path().display());

    let src = read(&request(&url, None, cache.path())).unwrap();
    assert_eq!(src.files.commit.as_deref(), Some(first.as_str()));
    let cached = std::fs::read_dir(cache.path().join("repos"))
        .unwrap()
        .count();
    assert_eq!(cached, 1);

    std::fs::write(origin.path().join("berth.yaml"), "project: v2\n").unwrap();
    git(origin.path(), &["commit", "-qam", "v2"]);
    let second = git(origin.path(), &["rev-parse", "HEAD"]);
    let src = read(&request(&url, Some("main"), cache.path())).unwrap();
    assert_eq!(src.files.commit.as_deref(), Some(second.as_str()));
    assert_eq!(src.files.files["berth.yaml"], "project: v2\n");
    assert_eq!(
        std::fs::read_dir(cache.path().join("repos"))
            .unwrap()
            .count(),
        1,
        "the same cache is reused"
    );

    let tagged = read(&request(&url, Some("release-1"), cache.path())).unwrap();
    assert_eq!(tagged.files.files["berth.yaml"], "project: v1\n");
    let by_commit = read(&request(&url, Some(&first), cache.path())).unwrap();
    assert_eq!(by_commit.files.commit.as_deref(), Some(first.as_str()));
    assert!(read(&request(&url, Some("no-such-ref"), cache.path())).is_err());

    // A full commit id the cache holds is read without a fetch: with the origin gone, it
    // still reads, and a branch (which must be fetched) does not.
    drop(origin);
    let offline = read(&request(&url, Some(&second), cache.path())).unwrap();
    assert_eq!(offline.files.files["berth.yaml"], "project: v2\n");
    assert!(read(&request(&url, Some("main"), cache.path())).is_err());
}

/// The test's smart-HTTP server, stopped (by its PID) when dropped.
struct HttpServer(std::process::Child, u16);

impl HttpServer {
    fn start(root: &Path, token: &str) -> HttpServer {
        use std::io::BufRead;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/git_http_server.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .arg(root)
            .arg(token)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs the test's git server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the server prints its port");
        HttpServer(child, port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_http_url_is_read_with_a_token_and_refused_without_one() {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let origin = root.path().join("deploy");
    std::fs::create_dir(&origin).unwrap();
    init(&origin);
    std::fs::write(origin.join("berth.yaml"), "project: web\n").unwrap();
    git(&origin, &["add", "-A"]);
    git(&origin, &["commit", "-qm", "one"]);
    let head = git(&origin, &["rev-parse", "HEAD"]);
    let server = HttpServer::start(root.path(), "s3cret-token");
    let url = format!("http://127.0.0.1:{}/deploy", server.1);

    let mut req = request(&url, None, cache.path());
    let refused = read(&req).err().expect("no token, no access");
    assert!(
        format!("{refused:?}").contains("BERTH_GIT_TOKEN"),
        "{refused:?}"
    );

    req.credentials.token = Some("wrong".into());
    let refused = read(&req).err().expect("a wrong token is refused");
    assert!(
        format!("{refused:?}").contains("refused BERTH_GIT_TOKEN"),
        "{refused:?}"
    );

    req.credentials.token = Some("s3cret-token".into());
    let src = read(&req).unwrap();
    assert_eq!(src.files.commit.as_deref(), Some(head.as_str()));
    assert_eq!(src.files.files["berth.yaml"], "project: web\n");
}

/// In a clone with a commit not pushed yet, HEAD, `--ref HEAD` and `--ref main` read that
/// commit (what is checked out, the local branch); `origin/main` reads the remote's.
#[test]
fn a_clone_reads_its_own_commits_and_remote_refs_only_when_named() {
    let upstream = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    init(upstream.path());
    std::fs::write(upstream.path().join("berth.yaml"), "project: pushed\n").unwrap();
    git(upstream.path(), &["add", "-A"]);
    git(upstream.path(), &["commit", "-qm", "pushed"]);
    let clone = tempfile::tempdir().unwrap();
    let url = upstream.path().to_str().unwrap();
    git(clone.path(), &["clone", "-q", url, "."]);
    git(clone.path(), &["config", "user.email", "test@berth"]);
    git(clone.path(), &["config", "user.name", "berth test"]);
    std::fs::write(clone.path().join("berth.yaml"), "project: local\n").unwrap();
    git(clone.path(), &["commit", "-qam", "not pushed"]);
    let local = git(clone.path(), &["rev-parse", "HEAD"]);
    let path = clone.path().to_str().unwrap();
    for git_ref in [None, Some("HEAD"), Some("main")] {
        let src = read(&request(path, git_ref, cache.path())).unwrap();
        assert_eq!(
            src.files.commit.as_deref(),
            Some(local.as_str()),
            "{git_ref:?}"
        );
        assert_eq!(
            src.files.files["berth.yaml"], "project: local\n",
            "{git_ref:?}"
        );
    }
    let src = read(&request(path, Some("origin/main"), cache.path())).unwrap();
    assert_eq!(src.files.files["berth.yaml"], "project: pushed\n");
    // A ref that names a tree, not a commit: said so, without libgit2's class and code.
    let e = read(&request(path, Some("HEAD^{tree}"), cache.path()))
        .err()
        .unwrap();
    let e = format!("{e:?}");
    assert!(
        e.contains("is not a branch, tag or commit") && !e.contains("class="),
        "{e}"
    );
}

/// `validate` checks the files on disk (a pre-commit hook's question); `--ref` a commit.
#[test]
fn validate_reads_the_files_on_disk_and_ref_reads_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    project_and_host(dir.path());
    let write = |rel: &str, text: &str| write(dir.path(), rel, text);
    write(
        "deployments/web.yaml",
        "name: web\npod:\n  containers:\n    - {name: app, image: 'web:1'}\n",
    );
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "valid"]);
    // A typo not committed yet.
    write(
        "deployments/web.yaml",
        "name: web\nreplica: 2\npod:\n  containers:\n    - {name: app, image: 'web:1'}\n",
    );
    let path = dir.path().to_str().unwrap();
    let r = crate::common::berth(&["validate", "--repo", path]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.said().contains("deployments/web.yaml:2:1"), "{r:?}");
    let r = crate::common::berth(&["validate", "--repo", path, "--ref", "HEAD"]);
    assert_eq!(r.code, 0, "the commit is valid: {r:?}");
}

/// A 5 MB one-line value with an error in it: the report shows the part around the error.
#[test]
fn an_error_in_a_huge_line_prints_a_few_lines() {
    let dir = tempfile::tempdir().unwrap();
    project_and_host(dir.path());
    let write = |rel: &str, text: &str| write(dir.path(), rel, text);
    let huge = format!(
        "name: web\npod:\n  containers:\n    - {{name: app, image: 'web:1', env: {{A: '{}'}}, bad: 1}}\n",
        "x".repeat(5_000_000)
    );
    write("deployments/web.yaml", &huge);
    let r = crate::common::berth(&["validate", "--repo", dir.path().to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", &r.stderr[..r.stderr.len().min(2000)]);
    assert!(
        r.stderr.len() < 20_000,
        "{} bytes of output",
        r.stderr.len()
    );
    assert!(
        r.said().contains("unknown key `bad`"),
        "{}",
        &r.stderr[..r.stderr.len().min(2000)]
    );
}

/// Writes `text` at `rel` under `dir`, making its folders.
fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// berth.yaml and an inventory of one host: all a repository needs besides deployments.
fn project_and_host(dir: &Path) {
    write(dir, "berth.yaml", "project: shop\n");
    write(
        dir,
        "inventory.yaml",
        "hosts:\n  - {name: h1, address: 198.18.0.11}\n",
    );
}

#[test]
fn a_git_server_that_goes_quiet_is_given_up_on_at_the_git_timeout() {
    // It takes the connection and never says a word.
    let port = crate::common::silent_server();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/deploy.git");
    let mut req = request(&url, None, cache.path());
    req.fetch_timeout = std::time::Duration::from_secs(1);
    let started = std::time::Instant::now();
    let e = read(&req).err().expect("a silent server is an error");
    let took = started.elapsed();
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "fetching {url}: the Git server sent nothing for 1s"
        )),
        "{text}"
    );
    assert!(
        took < std::time::Duration::from_secs(10),
        "gave up after {took:?}"
    );
}
