//! The operator's policy where berth runs: the file read (`--policy`, `BERTH_POLICY`), kept
//! out of the repository it governs, and the commit read checked against its
//! `allowed_signers` before anything else happens (no host is contacted for a commit the
//! policy refuses).

use crate::model::policy::Policy;
use crate::repo::signers::{AllowedSigners, Signer};
use crate::repo::source::{self, CommitFacts};
use miette::{miette, Diagnostic};
use std::path::{Path, PathBuf};

/// A commit the policy does not let deploy.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("commit {commit} is refused by the policy: {why}")]
#[diagnostic(help(
    "the policy {policy} (allowed_signers, line {line}) lets only commits signed by the keys in {signers} deploy; sign with `git commit -S` (gpg.format=ssh) using one of them"
))]
pub struct UntrustedCommit {
    /// The commit's id, or a description when there is none (a plain directory).
    pub commit: String,
    pub why: String,
    pub policy: String,
    pub line: usize,
    pub signers: String,
}

/// Reads the policy file, when one is given; a policy inside the repository it governs is
/// refused (a commit could change it).
pub fn load(path: Option<&Path>, repo: &str) -> miette::Result<Option<Policy>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| miette!("cannot read the policy {}: {e}", path.display()))?;
    if !source::is_url(repo) {
        if let (Ok(policy), Some(root)) = (path.canonicalize(), checkout_root(repo)) {
            if policy.starts_with(&root) {
                return Err(miette!(
                    help = "keep the policy where the operator keeps it (e.g. /etc/berth/policy.yaml, or a CI secret file), outside the repository",
                    "the policy {} is inside the repository {} it governs: a commit could change it",
                    path.display(),
                    root.display()
                ));
            }
        }
    }
    let policy = crate::repo::policy::parse(&path.display().to_string(), &text)
        .map_err(miette::Report::new)?;
    Ok(Some(policy))
}

/// The top of the checkout (or the directory) a local repository path is in.
fn checkout_root(repo: &str) -> Option<PathBuf> {
    let path = Path::new(repo).canonicalize().ok()?;
    match git2::Repository::discover(&path) {
        Ok(r) => r.workdir().unwrap_or_else(|| r.path()).canonicalize().ok(),
        Err(_) => Some(path),
    }
}

/// The commit's signer when the policy asks for signed commits (`None` when it does not),
/// or the refusal.
pub fn check_commit(
    policy: Option<&Policy>,
    policy_path: Option<&Path>,
    commit: Option<&CommitFacts>,
) -> crate::ops::Result<Option<Signer>> {
    let Some((policy, rule)) = policy.and_then(|p| Some((p, p.allowed_signers.as_ref()?))) else {
        return Ok(None);
    };
    let base = policy_path
        .and_then(Path::parent)
        .unwrap_or_else(|| Path::new("."));
    let file = base.join(&rule.value);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        miette!(
            "cannot read the allowed signers {} (allowed_signers in {}): {e}",
            file.display(),
            policy.file
        )
    })?;
    let signers = AllowedSigners::parse(&file.display().to_string(), &text)
        .map_err(|why| miette!("the allowed signers file is not valid: {why}"))?;
    let refuse = |commit: String, why: String| UntrustedCommit {
        commit,
        why,
        policy: policy.file.clone(),
        line: rule.line.unwrap_or(0),
        signers: file.display().to_string(),
    };
    let Some(commit) = commit else {
        let e = refuse(
            "(none)".into(),
            "the repository is a plain directory, not a Git commit that can carry a signature"
                .into(),
        );
        return Err(miette::Report::new(e).into());
    };
    signers
        .verify(commit.signature.as_ref(), commit.time)
        .map(Some)
        .map_err(|why| miette::Report::new(refuse(commit.id.clone(), why)).into())
}

/// The commit a run would read, when the policy asks for signed commits and lets it deploy
/// (`None` without such a policy); an error otherwise ([`is_untrusted`] tells a refusal).
pub fn trusted_commit(source: &crate::ops::source::Source) -> crate::ops::Result<Option<String>> {
    let policy = load(source.policy.as_deref(), &source.repo)?;
    if policy.as_ref().is_none_or(|p| p.allowed_signers.is_none()) {
        return Ok(None);
    }
    let src = crate::ops::source::read_source(source)?;
    check_commit(
        policy.as_ref(),
        source.policy.as_deref(),
        src.commit.as_ref(),
    )?;
    Ok(src.commit.map(|c| c.id))
}

/// Whether an operation stopped because the policy refused the commit.
pub fn is_untrusted(e: &crate::ops::Error) -> bool {
    matches!(e, crate::ops::Error::Refused(r) if r.downcast_ref::<UntrustedCommit>().is_some())
}
