//! Reads a repository's files at one commit, without a worktree: a local Git checkout (or a
//! folder inside one), a bare repository, a remote URL (cached on disk and fetched
//! incrementally), or a plain directory.

use super::load::RepoFiles;
use git2::{ObjectType, Repository, StatusOptions, TreeWalkMode, TreeWalkResult};
use miette::{miette, Result};
use std::path::{Path, PathBuf};

mod remote;
use remote::read_remote;
pub use remote::{ssh_port, GitCredentials};

pub struct SourceRequest<'a> {
    pub repo: &'a str,
    pub git_ref: Option<&'a str>,
    pub cache_dir: PathBuf,
    /// known_hosts for ssh URLs.
    pub known_hosts: PathBuf,
    pub credentials: GitCredentials,
    /// A fetch is given up when the server sends nothing for this long.
    pub fetch_timeout: std::time::Duration,
}

pub struct Source {
    pub files: RepoFiles,
    /// Warnings for the user, such as uncommitted changes that are not applied.
    pub warnings: Vec<String>,
    /// The commit read, when the repository is a Git one: its signature and time, for the
    /// policy's `allowed_signers`.
    pub commit: Option<CommitFacts>,
}

/// What the policy needs of the commit read.
#[derive(Debug, Clone)]
pub struct CommitFacts {
    pub id: String,
    /// The committer's time (seconds since the epoch).
    pub time: i64,
    /// `None`: the commit is unsigned.
    pub signature: Option<super::signers::CommitSignature>,
}

fn commit_facts(repo: &Repository, commit: &git2::Commit) -> Result<CommitFacts> {
    let signature = match repo.extract_signature(&commit.id(), None) {
        Ok((sig, signed)) => Some(super::signers::CommitSignature {
            armored: String::from_utf8_lossy(&sig).into_owned(),
            signed: signed.to_vec(),
        }),
        Err(e) if e.code() == git2::ErrorCode::NotFound => None,
        Err(e) => {
            return Err(miette!(
                "cannot read the signature of commit {}: {}",
                commit.id(),
                e.message()
            ))
        }
    };
    Ok(CommitFacts {
        id: commit.id().to_string(),
        time: commit.committer().when().seconds(),
        signature,
    })
}

/// Whether the repository is fetched (a URL) rather than read from a local path.
pub fn is_url(repo: &str) -> bool {
    repo.contains("://") || (repo.contains('@') && repo.contains(':') && !Path::new(repo).exists())
}

/// The files berth reads as text: YAML, and the JSON SOPS files under `secrets/`.
fn wanted(path: &str) -> bool {
    path.ends_with(".yaml")
        || path.ends_with(".yml")
        || (path.starts_with("secrets/") && path.ends_with(".json"))
}

/// The files as they are on disk under a local path (a checkout's working tree, with what is
/// not committed yet), for `validate`: no commit, so no signature.
pub fn read_worktree(repo: &str) -> Result<Source> {
    let path = Path::new(repo);
    if !path.exists() {
        return Err(miette!("repository {repo} does not exist"));
    }
    let mut files = RepoFiles::default();
    let root = path
        .canonicalize()
        .map_err(|e| miette!("cannot read {repo}: {e}"))?;
    walk_dir(&root, &root, &mut files)?;
    for wanted in crate::repo::load::referenced_files(&files) {
        if let Some(bytes) = read_dir_blob(&root, &wanted)? {
            files.blobs.insert(wanted, bytes);
        }
    }
    Ok(Source {
        files,
        warnings: vec![],
        commit: None,
    })
}

pub fn read(req: &SourceRequest) -> Result<Source> {
    if is_url(req.repo) {
        return read_remote(req);
    }
    let path = Path::new(req.repo);
    if !path.exists() {
        return Err(miette!("repository {} does not exist", req.repo));
    }
    match Repository::discover(path) {
        Ok(repo) => read_local_git(&repo, path, req.git_ref),
        Err(_) => {
            if req.git_ref.is_some() {
                return Err(miette!(
                    "--ref needs a Git repository, and {} is a plain directory",
                    req.repo
                ));
            }
            read_worktree(req.repo)
        }
    }
}

fn relative(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

/// A link that points outside the repository: refused, never read.
fn outside(link: &str, target: &Path) -> miette::Report {
    miette!(
        help = "berth reads only files inside the repository; copy the file in, or point the link inside",
        "{link} is a symbolic link to {}, outside the repository",
        target.display()
    )
}

/// A file the deployments name, from a plain directory: `None` when there is none (the
/// loader says so, pointing at the deployment); a link out of the directory is refused.
fn read_dir_blob(root: &Path, rel: &str) -> Result<Option<Vec<u8>>> {
    let p = root.join(rel);
    let Ok(target) = std::fs::canonicalize(&p) else {
        return Ok(None);
    };
    if !target.starts_with(root) {
        return Err(outside(rel, &target));
    }
    if !target.is_file() {
        return Ok(None);
    }
    std::fs::read(&target)
        .map(Some)
        .map_err(|e| miette!("cannot read {rel}: {e}"))
}

/// Reads the YAML files under `dir` of a plain directory. Symbolic links are followed only
/// when they lead to a file inside `root` (already canonical).
fn walk_dir(root: &Path, dir: &Path, out: &mut RepoFiles) -> Result<()> {
    let io = |p: &Path, e: std::io::Error| miette!("cannot read {}: {e}", relative(root, p));
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let p = entry.path();
        let rel = relative(root, &p);
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(|e| io(&p, e))?;
        let file = if kind.is_symlink() {
            let target = std::fs::canonicalize(&p).map_err(|e| {
                miette!("{rel} is a symbolic link that leads nowhere readable: {e}")
            })?;
            if !target.starts_with(root) {
                if target.is_dir() || wanted(&rel) {
                    return Err(outside(&rel, &target));
                }
                continue;
            }
            if target.is_dir() {
                // The directory it names is inside and walked under its own name.
                continue;
            }
            target
        } else if kind.is_dir() {
            walk_dir(root, &p, out)?;
            continue;
        } else {
            p.clone()
        };
        if wanted(&rel) {
            let bytes = std::fs::read(&file).map_err(|e| io(&p, e))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| miette!("{rel} is not UTF-8 text; berth reads YAML in UTF-8"))?;
            out.files.insert(rel, text);
        }
    }
    Ok(())
}

fn read_local_git(repo: &Repository, path: &Path, git_ref: Option<&str>) -> Result<Source> {
    let subdir = match repo.workdir() {
        Some(wd) => {
            let wd = wd
                .canonicalize()
                .map_err(|e| miette!("cannot read {}: {e}", wd.display()))?;
            let p = path
                .canonicalize()
                .map_err(|e| miette!("cannot read {}: {e}", path.display()))?;
            p.strip_prefix(&wd)
                .map(Path::to_path_buf)
                .unwrap_or_default()
        }
        None => PathBuf::new(),
    };
    let commit = resolve(repo, git_ref.unwrap_or("HEAD"))?;
    let files = read_tree(repo, &commit, &subdir)?;
    let mut warnings = Vec::new();
    if git_ref.is_none() && repo.workdir().is_some() {
        let dirty = uncommitted(repo, &subdir, &files)?;
        if !dirty.is_empty() {
            warnings.push(format!(
                "uncommitted changes are not applied (berth reads commit {}): {}",
                &commit.id().to_string()[..12],
                dirty.join(", ")
            ));
        }
    }
    Ok(Source {
        files,
        warnings,
        commit: Some(commit_facts(repo, &commit)?),
    })
}

/// The changed files berth would read (YAML, and the files the deployments name).
fn uncommitted(repo: &Repository, subdir: &Path, files: &RepoFiles) -> Result<Vec<String>> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(true).recurse_untracked_dirs(true);
    let prefix = subdir.to_string_lossy().to_string();
    if !prefix.is_empty() {
        opts.pathspec(&prefix);
    }
    let statuses = repo
        .statuses(Some(&mut opts))
        .map_err(|e| git_error("cannot list the checkout's changes", &e))?;
    let mut out: Vec<String> = statuses
        .iter()
        .filter_map(|s| s.path().ok().map(str::to_string))
        .filter(|p| {
            let rel = p
                .strip_prefix(&prefix)
                .map_or(p.as_str(), |r| r.trim_start_matches('/'));
            wanted(p) || files.blobs.contains_key(rel)
        })
        .collect();
    out.sort();
    Ok(out)
}

/// A libgit2 error in the user's words: what berth was doing and libgit2's message, without
/// its class and code (`; class=Invalid (3)`).
fn git_error(doing: &str, e: &git2::Error) -> miette::Report {
    miette!("{doing}: {}", e.message())
}

/// A ref as git reads it in a checkout: `HEAD` is what is checked out, `main` the local
/// branch (git's own order: tags and branches before remote-tracking refs), `origin/main`
/// the remote-tracking one, or a commit.
fn resolve<'r>(repo: &'r Repository, spec: &str) -> Result<git2::Commit<'r>> {
    repo.revparse_single(spec)
        .ok()
        .and_then(|obj| obj.peel_to_commit().ok())
        .ok_or_else(|| miette!("ref {spec:?} is not a branch, tag or commit of the repository"))
}

fn read_tree(repo: &Repository, commit: &git2::Commit, subdir: &Path) -> Result<RepoFiles> {
    let mut tree = commit.tree().map_err(|e| {
        git_error(
            &format!("cannot read the files of commit {}", commit.id()),
            &e,
        )
    })?;
    if !subdir.as_os_str().is_empty() {
        let entry = tree
            .get_path(subdir)
            .map_err(|_| miette!("{} is not in commit {}", subdir.display(), commit.id()))?;
        tree = repo.find_tree(entry.id()).map_err(|_| {
            miette!(
                "{} is not a folder in commit {}",
                subdir.display(),
                commit.id()
            )
        })?;
    }
    let mut files = RepoFiles {
        commit: Some(commit.id().to_string()),
        ..Default::default()
    };
    let mut failure = None;
    tree.walk(TreeWalkMode::PreOrder, |root, entry| {
        let path = format!("{root}{}", entry.name().unwrap_or(""));
        if entry.kind() != Some(ObjectType::Blob) || !wanted(&path) {
            return TreeWalkResult::Ok;
        }
        let read = if entry.filemode() == SYMLINK_MODE {
            link_target(repo, &tree, root, entry).and_then(|id| {
                repo.find_blob(id)
                    .map_err(|e| miette!("{path}: {}", e.message()))
            })
        } else {
            repo.find_blob(entry.id())
                .map_err(|e| miette!("{path}: {}", e.message()))
        };
        match read.map(|blob| String::from_utf8(blob.content().to_vec())) {
            Ok(Ok(text)) => {
                files.files.insert(path, text);
                TreeWalkResult::Ok
            }
            Ok(Err(_)) => {
                failure = Some(miette!(
                    "{path} is not UTF-8 text; berth reads YAML in UTF-8"
                ));
                TreeWalkResult::Abort
            }
            Err(e) => {
                failure = Some(e);
                TreeWalkResult::Abort
            }
        }
    })
    .or_else(|e| if failure.is_some() { Ok(()) } else { Err(e) })
    .map_err(|e| {
        git_error(
            &format!("cannot read the files of commit {}", commit.id()),
            &e,
        )
    })?;
    if let Some(f) = failure {
        return Err(f);
    }
    for wanted in crate::repo::load::referenced_files(&files) {
        if let Some(bytes) = read_tree_blob(repo, &tree, &wanted)? {
            files.blobs.insert(wanted, bytes);
        }
    }
    Ok(files)
}

/// A file the deployments name, from the tree: `None` when there is none (the loader says
/// so); a symbolic link is followed while it stays inside the tree.
fn read_tree_blob(repo: &Repository, tree: &git2::Tree, rel: &str) -> Result<Option<Vec<u8>>> {
    let Ok(entry) = tree.get_path(Path::new(rel)) else {
        return Ok(None);
    };
    if entry.kind() != Some(ObjectType::Blob) {
        return Ok(None);
    }
    let id = if entry.filemode() == SYMLINK_MODE {
        let dir = rel
            .rsplit_once('/')
            .map_or(String::new(), |(d, _)| format!("{d}/"));
        link_target(repo, tree, &dir, &entry)?
    } else {
        entry.id()
    };
    let blob = repo
        .find_blob(id)
        .map_err(|e| miette!("{rel}: {}", e.message()))?;
    Ok(Some(blob.content().to_vec()))
}

/// Git's file mode for a symbolic link (its blob holds the target path).
const SYMLINK_MODE: i32 = 0o120000;

/// The blob a symbolic link in the tree leads to, when it stays inside the tree.
fn link_target(
    repo: &Repository,
    tree: &git2::Tree,
    dir: &str,
    entry: &git2::TreeEntry,
) -> Result<git2::Oid> {
    let link = format!("{dir}{}", entry.name().unwrap_or(""));
    let blob = repo
        .find_blob(entry.id())
        .map_err(|e| miette!("{link}: {}", e.message()))?;
    let target = String::from_utf8_lossy(blob.content()).to_string();
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    if target.starts_with('/') {
        return Err(outside(&link, Path::new(&target)));
    }
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(outside(&link, Path::new(&target)));
                }
            }
            other => parts.push(other),
        }
    }
    let inside = parts.join("/");
    let found = tree.get_path(Path::new(&inside)).map_err(|_| {
        miette!("{link} is a symbolic link to {target}, which is not in the commit")
    })?;
    if found.kind() != Some(ObjectType::Blob) || found.filemode() == SYMLINK_MODE {
        return Err(miette!(
            "{link} is a symbolic link to {target}, which is not a plain file"
        ));
    }
    Ok(found.id())
}
