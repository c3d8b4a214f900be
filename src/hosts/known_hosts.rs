//! Host key checking against an OpenSSH known_hosts file.

use russh::keys::{
    check_known_hosts_path, known_hosts::learn_known_hosts_path, HashAlg, PublicKey,
};
use std::path::Path;

/// Checks `key` for `host:port`. An unknown key is refused unless `accept_new`, in which case
/// it is recorded; a changed key is always refused. Errors name the key's fingerprint.
pub fn check(
    path: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
    accept_new: bool,
) -> Result<(), String> {
    let fingerprint = key.fingerprint(HashAlg::Sha256);
    let algorithm = key.algorithm();
    match check_known_hosts_path(host, port, key, path) {
        Ok(true) => Ok(()),
        Ok(false) if accept_new => learn_known_hosts_path(host, port, key, path)
            .map_err(|e| format!("could not record the host key in {}: {e}", path.display())),
        Ok(false) => Err(format!(
            "unknown host key for {host}:{port} ({algorithm} {fingerprint}); not in {}. \
             Check the fingerprint, then add it or rerun with --accept-new-host-keys",
            path.display()
        )),
        Err(russh::keys::Error::KeyChanged { line }) => Err(format!(
            "HOST KEY CHANGED for {host}:{port}: it now presents {algorithm} {fingerprint}, \
             but {} line {line} records another key. Refusing to connect",
            path.display()
        )),
        Err(e) => Err(format!(
            "cannot check {host}:{port} against {}: {e}",
            path.display()
        )),
    }
}

/// The same check for a raw SSH wire-format key (as libgit2 hands it over).
pub fn check_raw(path: &Path, host: &str, port: u16, raw: &[u8]) -> Result<(), String> {
    let key =
        PublicKey::from_bytes(raw).map_err(|e| format!("unreadable host key from {host}: {e}"))?;
    check(path, host, port, &key, false)
}
