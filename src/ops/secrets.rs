//! Where secret values come from, in order: the environment (`BERTH_SECRET_NAME`), a file it
//! names (`BERTH_SECRET_NAME_FILE`), the file NAME in `$BERTH_SECRETS_DIR`, and the
//! repository's SOPS files (`secrets/*.yaml|yml|json`, encrypted for age keys; see
//! `repo::sops`), decrypted once, when a secret is first looked for there, with the keys sops
//! itself would use (`SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY`, `~/.config/sops/age/keys.txt`).

use super::source::home;
use crate::repo::{sops, RepoFiles};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The folder of the repository whose files are SOPS-encrypted secrets.
pub const SOPS_DIR: &str = "secrets/";

/// The secret values a run can read.
#[derive(Default)]
pub struct SecretSource {
    /// The repository's SOPS files: path and text.
    sops_files: Vec<(String, String)>,
    sops: OnceLock<Result<sops::Decrypted, String>>,
}

impl SecretSource {
    /// The environment and files only (a saved plan, without its repository).
    pub fn environment() -> SecretSource {
        SecretSource::default()
    }

    /// The environment, files, and the repository's SOPS files.
    pub fn with_repository(files: &RepoFiles) -> SecretSource {
        let sops_files = files
            .files
            .iter()
            .filter(|(path, _)| {
                path.starts_with(SOPS_DIR)
                    && [".yaml", ".yml", ".json"].iter().any(|e| path.ends_with(e))
            })
            .map(|(p, t)| (p.clone(), t.clone()))
            .collect();
        SecretSource {
            sops_files,
            sops: OnceLock::new(),
        }
    }

    pub fn lookup(&self, name: &str) -> Option<String> {
        secret_from(name, &|var| std::env::var_os(var))
            .or_else(|| Some(self.sops().ok()?.values.get(name)?.0.clone()))
    }

    /// Why the SOPS files could not be read, or which were skipped, if any (said with the
    /// first secret that has no value: it may be in a skipped file).
    pub fn sops_error(&self) -> Option<String> {
        if self.sops_files.is_empty() {
            return None;
        }
        match self.sops() {
            Err(why) => Some(why),
            Ok(d) if !d.skipped.is_empty() => Some(format!("skipped: {}", d.skipped.join("; "))),
            Ok(_) => None,
        }
    }

    /// The SOPS files skipped because no key at hand opens them, once they were read.
    pub fn sops_skipped(&self) -> Vec<String> {
        match self.sops.get() {
            Some(Ok(d)) => d.skipped.clone(),
            _ => vec![],
        }
    }

    fn sops(&self) -> Result<&sops::Decrypted, String> {
        self.sops
            .get_or_init(|| {
                let keys = age_keys()?;
                sops::decrypt_all(&self.sops_files, &keys)
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// The age keys sops would use: `SOPS_AGE_KEY` (the keys' text), `SOPS_AGE_KEY_FILE`, and
/// `$XDG_CONFIG_HOME/sops/age/keys.txt` (`~/.config/…`) when it exists.
fn age_keys() -> Result<Vec<age::x25519::Identity>, String> {
    let mut keys = Vec::new();
    if let Ok(text) = std::env::var("SOPS_AGE_KEY") {
        keys.extend(sops::identities(&text).map_err(|e| format!("SOPS_AGE_KEY: {e}"))?);
    }
    if let Some(path) = std::env::var_os("SOPS_AGE_KEY_FILE") {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("SOPS_AGE_KEY_FILE {}: {e}", path.to_string_lossy()))?;
        keys.extend(sops::identities(&text).map_err(|e| format!("SOPS_AGE_KEY_FILE: {e}"))?);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| home().join(".config"));
    let default = config.join("sops/age/keys.txt");
    if let Ok(text) = std::fs::read_to_string(&default) {
        keys.extend(sops::identities(&text).map_err(|e| format!("{}: {e}", default.display()))?);
    }
    Ok(keys)
}

/// A secret's value from where berth runs, in a given environment: the variable named after
/// it (`BERTH_SECRET_NAME`), else the file `BERTH_SECRET_NAME_FILE` names, else the file NAME
/// in `$BERTH_SECRETS_DIR` (kept outside the repository, e.g. a mounted CI secret). One line
/// break at the end of a file is not part of the value (`echo value > file` writes one). The
/// repository's SOPS files come after these (`ops::secrets`).
pub fn secret_from(name: &str, env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Option<String> {
    let var = crate::repo::load::secret_env_var(name);
    if let Some(value) = env(&var) {
        return value.into_string().ok();
    }
    let file = match env(&format!("{var}_FILE")) {
        Some(path) => PathBuf::from(path),
        // A name is a file in the directory, never a path out of it.
        None if !name.contains('/') && !name.starts_with('.') => {
            PathBuf::from(env("BERTH_SECRETS_DIR")?).join(name)
        }
        None => return None,
    };
    let text = std::fs::read_to_string(file).ok()?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Some(text.strip_suffix('\r').unwrap_or(text).to_string())
}
