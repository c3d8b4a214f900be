//! A repository read by URL: fetched into a bare cache (incrementally), with a token for
//! https or a key for ssh, the server's host key checked on the URL's port, given up when
//! the server goes quiet for `--git-timeout`.

use super::{commit_facts, git_error, read_tree, Source, SourceRequest};
use git2::{Cred, FetchOptions, RemoteCallbacks, Repository};
use miette::{miette, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to authenticate to a remote repository (read from the environment by the CLI).
#[derive(Debug, Clone, Default)]
pub struct GitCredentials {
    /// An https token (`BERTH_GIT_TOKEN`), sent as the password.
    pub token: Option<String>,
    /// The user name that goes with the token (`BERTH_GIT_USER`, default x-access-token).
    pub user: Option<String>,
    /// A private key file for ssh URLs (`BERTH_GIT_SSH_KEY_FILE`); otherwise ssh-agent.
    pub ssh_key_file: Option<PathBuf>,
}

impl GitCredentials {
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        GitCredentials {
            token: var("BERTH_GIT_TOKEN"),
            user: var("BERTH_GIT_USER"),
            ssh_key_file: var("BERTH_GIT_SSH_KEY_FILE").map(PathBuf::from),
        }
    }
}

/// The SSH port a repository URL names: `ssh://host:2222/path` → 2222; 22 otherwise
/// (`git@host:path` has no port).
pub fn ssh_port(url: &str) -> u16 {
    let Some(rest) = url
        .strip_prefix("ssh://")
        .or_else(|| url.strip_prefix("git+ssh://"))
    else {
        return 22;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match host.strip_prefix('[') {
        Some(v6) => v6.split_once("]:").map(|(_, p)| p),
        None => host.rsplit_once(':').map(|(_, p)| p),
    };
    port.and_then(|p| p.parse().ok()).unwrap_or(22)
}

/// A ref in the cache of a repository fetched by URL, where the remote's branches are
/// `refs/remotes/origin/*`: `HEAD` is the remote's default branch, `main` its branch.
fn resolve_fetched<'r>(repo: &'r Repository, spec: &str) -> Result<git2::Commit<'r>> {
    let candidates = [
        format!("refs/remotes/origin/{spec}"),
        format!("refs/tags/{spec}"),
        spec.to_string(),
    ];
    for c in &candidates {
        if let Ok(obj) = repo.revparse_single(c) {
            if let Ok(commit) = obj.peel_to_commit() {
                return Ok(commit);
            }
        }
    }
    Err(miette!(
        "ref {spec:?} is not a branch, tag or commit of the repository"
    ))
}

pub(super) fn read_remote(req: &SourceRequest) -> Result<Source> {
    let key = crate::model::short_hash(req.repo.as_bytes());
    let dir = req.cache_dir.join("repos").join(key);
    let fetch = Fetch {
        url: req.repo.to_string(),
        dir: dir.clone(),
        known_hosts: req.known_hosts.clone(),
        credentials: req.credentials.clone(),
    };
    // A full commit id the cache already holds needs no fetch: a commit never changes (and
    // `sync` reads again the very commit its policy check fetched).
    if !req.git_ref.is_some_and(|r| cached_commit(&dir, r)) {
        fetch_watched(fetch, req.fetch_timeout)?;
    }
    let repo = Repository::open_bare(&dir)
        .map_err(|e| git_error(&format!("cannot open the cache {}", dir.display()), &e))?;
    let commit = resolve_fetched(&repo, req.git_ref.unwrap_or("HEAD"))?;
    let files = read_tree(&repo, &commit, Path::new(""))?;
    Ok(Source {
        files,
        warnings: vec![],
        commit: Some(commit_facts(&repo, &commit)?),
    })
}

/// Whether `spec` is a full commit id that the cache at `dir` holds.
fn cached_commit(dir: &Path, spec: &str) -> bool {
    let full = spec.len() == 40 && spec.bytes().all(|b| b.is_ascii_hexdigit());
    full && Repository::open_bare(dir)
        .is_ok_and(|repo| git2::Oid::from_str(spec).is_ok_and(|oid| repo.find_commit(oid).is_ok()))
}

/// What a fetch into the cache needs, owned: it runs on a thread of its own.
struct Fetch {
    url: String,
    dir: PathBuf,
    known_hosts: PathBuf,
    credentials: GitCredentials,
}

/// Signs of life from a fetch: the milliseconds since it began at the last one, and whether
/// the caller gave up on it.
#[derive(Default)]
struct Watch {
    heard_ms: AtomicU64,
    given_up: AtomicBool,
}

impl Watch {
    /// Notes a sign of life; false once the caller gave up (libgit2 then cancels).
    fn heard(&self, began: Instant) -> bool {
        let ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heard_ms.store(ms, Ordering::Relaxed);
        !self.given_up.load(Ordering::Relaxed)
    }
}

/// Runs the fetch on a thread of its own and waits while it shows signs of life (the server's
/// answers, objects received, progress messages) at least every `idle`. libgit2 has no
/// deadline of its own on every transport: an SSH or HTTP server that stops answering would
/// hold the fetch, and `sync` with it, for ever. A fetch given up on is told to cancel at its
/// next callback; if it never gets one its thread is left to end with the process.
fn fetch_watched(fetch: Fetch, idle: Duration) -> Result<()> {
    let url = fetch.url.clone();
    let watch = Arc::new(Watch::default());
    let began = Instant::now();
    let (done, outcome) = std::sync::mpsc::channel();
    let watching = watch.clone();
    std::thread::Builder::new()
        .name("git-fetch".into())
        .spawn(move || {
            let _ = done.send(fetch_into_cache(&fetch, &watching, began));
        })
        .map_err(|e| miette!("fetching {url}: cannot start the fetch: {e}"))?;
    loop {
        match outcome.recv_timeout(Duration::from_millis(100)) {
            Ok(fetched) => return fetched,
            Err(RecvTimeoutError::Timeout) => {
                let heard = Duration::from_millis(watch.heard_ms.load(Ordering::Relaxed));
                if began.elapsed().saturating_sub(heard) > idle {
                    watch.given_up.store(true, Ordering::Relaxed);
                    return Err(miette!(
                        help = "is the Git server up and reachable? --git-timeout sets how long berth waits",
                        "fetching {url}: the Git server sent nothing for {}s (--git-timeout): gave up",
                        idle.as_secs()
                    ));
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(miette!("fetching {url}: the fetch ended without an answer"))
            }
        }
    }
}

fn fetch_into_cache(fetch: &Fetch, watch: &Watch, began: Instant) -> Result<()> {
    let dir = &fetch.dir;
    let repo = match Repository::open_bare(dir) {
        Ok(r) => r,
        Err(_) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| miette!("cannot create the cache {}: {e}", dir.display()))?;
            let r = Repository::init_bare(dir)
                .map_err(|e| git_error(&format!("cannot make the cache {}", dir.display()), &e))?;
            r.remote("origin", &fetch.url).map_err(|e| {
                git_error(
                    &format!("{} is not a repository URL git takes", fetch.url),
                    &e,
                )
            })?;
            r
        }
    };
    let mut remote = repo
        .find_remote("origin")
        .map_err(|e| git_error("the cached repository has no origin", &e))?;
    let mut callbacks = RemoteCallbacks::new();
    // libgit2 asks again after every refusal; one try per method, then give up.
    let mut tried_token = false;
    let mut tried_ssh = false;
    let creds = fetch.credentials.clone();
    callbacks.credentials(move |_url, user, allowed| {
        watch.heard(began);
        let user = user.unwrap_or("git");
        if allowed.is_user_pass_plaintext() {
            if let Some(token) = &creds.token {
                if std::mem::replace(&mut tried_token, true) {
                    return Err(git2::Error::from_str("the server refused BERTH_GIT_TOKEN"));
                }
                let name = creds.user.as_deref().unwrap_or("x-access-token");
                return Cred::userpass_plaintext(name, token);
            }
        }
        if allowed.is_ssh_key() {
            if std::mem::replace(&mut tried_ssh, true) {
                return Err(git2::Error::from_str("ssh authentication failed"));
            }
            if let Some(key) = &creds.ssh_key_file {
                return Cred::ssh_key(user, None, key, None);
            }
            return Cred::ssh_key_from_agent(user);
        }
        Err(git2::Error::from_str(
            "no credentials: set BERTH_GIT_TOKEN (https) or BERTH_GIT_SSH_KEY_FILE / an ssh agent",
        ))
    });
    let known_hosts = fetch.known_hosts.clone();
    let port = ssh_port(&fetch.url);
    let refused = std::rc::Rc::new(std::cell::RefCell::new(None::<String>));
    let refused_in_check = refused.clone();
    callbacks.certificate_check(move |cert, host| {
        watch.heard(began);
        let Some(hostkey) = cert.as_hostkey().and_then(|h| h.hostkey()) else {
            // TLS certificates are checked by libgit2 itself.
            return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
        };
        match crate::known_hosts::check_raw(&known_hosts, host, port, hostkey) {
            Ok(()) => Ok(git2::CertificateCheckStatus::CertificateOk),
            Err(e) => {
                // libgit2 replaces the callback's message with its own; keep ours.
                *refused_in_check.borrow_mut() = Some(e.clone());
                Err(git2::Error::from_str(&e))
            }
        }
    });
    callbacks.transfer_progress(|_| watch.heard(began));
    callbacks.sideband_progress(|_| watch.heard(began));
    callbacks.update_tips(|_, _, _| watch.heard(began));
    let mut fo = FetchOptions::new();
    fo.remote_callbacks(callbacks);
    remote
        .fetch(
            &[
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/tags/*",
                "+HEAD:refs/remotes/origin/HEAD",
            ],
            Some(&mut fo),
            None,
        )
        .map_err(|e| match refused.borrow_mut().take() {
            Some(why) => miette!("fetching {}: {why}", fetch.url),
            None => miette!("fetching {}: {}", fetch.url, e.message()),
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_repository_url_names_its_ssh_port() {
        use super::ssh_port;
        assert_eq!(ssh_port("ssh://git@198.18.0.11:2222/srv/deploy.git"), 2222);
        assert_eq!(ssh_port("ssh://git@198.18.0.11/srv/deploy.git"), 22);
        assert_eq!(ssh_port("ssh://[::1]:2200/x.git"), 2200);
        assert_eq!(ssh_port("git@github.com:acme/deploy.git"), 22);
        assert_eq!(ssh_port("https://git.example/x.git"), 22);
    }
}
