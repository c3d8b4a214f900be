//! Where the repository is (`Source`) and reading it at its commit; where this user's files
//! are (home, known_hosts).

use super::error::Result;
use crate::repo::source;
use std::path::PathBuf;

/// Where the repository is and which of its deployments a run covers.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// A local path or a URL.
    pub repo: String,
    /// Branch, tag or commit (default: HEAD, or the remote's default branch).
    pub git_ref: Option<String>,
    /// Only deployments whose labels match this selector (text as the user gave it).
    pub selector: Option<String>,
    /// Where remote repositories are cached (default: $XDG_CACHE_HOME/berth).
    pub cache_dir: Option<PathBuf>,
    /// known_hosts for ssh:// repositories (default: ~/.ssh/known_hosts).
    pub known_hosts: Option<PathBuf>,
    /// The environment (`-e`), when berth.yaml declares environments.
    pub environment: Option<String>,
    /// The operator's policy file (`--policy`), outside the repository.
    pub policy: Option<PathBuf>,
    /// Read the files as they are on disk, not a commit (`validate` without `--ref`).
    pub worktree: bool,
    /// How long a Git server may go quiet during a fetch (`--git-timeout`; default 60 s).
    pub git_timeout: Option<std::time::Duration>,
}

/// How long a Git server may go quiet during a fetch, unless `--git-timeout` says.
pub const GIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// This user's home directory (`$HOME`, else /root).
pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// The known_hosts file berth checks host keys against (default: ~/.ssh/known_hosts).
pub fn known_hosts_path(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| home().join(".ssh").join("known_hosts"))
}

/// The repository's files at the commit the source names.
pub fn read_source(from: &Source) -> Result<source::Source> {
    if from.worktree && from.git_ref.is_none() && !source::is_url(&from.repo) {
        return Ok(source::read_worktree(&from.repo)?);
    }
    let cache_dir = from.cache_dir.clone().unwrap_or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home().join(".cache"))
            .join("berth")
    });
    let req = source::SourceRequest {
        repo: &from.repo,
        git_ref: from.git_ref.as_deref(),
        cache_dir,
        known_hosts: known_hosts_path(from.known_hosts.clone()),
        credentials: source::GitCredentials::from_env(),
        fetch_timeout: from.git_timeout.unwrap_or(GIT_TIMEOUT),
    };
    Ok(source::read(&req)?)
}
