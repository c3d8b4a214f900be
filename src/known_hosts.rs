//! Host key checking against OpenSSH known_hosts files: the user's (`--known-hosts`) and the
//! system's (`/etc/ssh/ssh_known_hosts`), read as OpenSSH reads them: host patterns with `*`,
//! `?` and `!`, hashed names (`|1|salt|hash`), `[host]:port` for other ports, and the
//! `@revoked` marker. `@cert-authority` lines are not used (berth does not take host
//! certificates).
//!
//! A host recorded under any key other than the one it presents is *changed*, whatever the
//! algorithm: refused always, even with `--accept-new-host-keys`. (OpenSSH negotiates the
//! recorded algorithm first; berth does too, see [`recorded_algorithms`].)

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{known_hosts::learn_known_hosts_path, Algorithm, HashAlg, PublicKey};
use sha1::Sha1;
use ssh_key::known_hosts::{Entry, HostPatterns, Marker};
use std::path::{Path, PathBuf};

/// The system-wide file OpenSSH reads beside the user's.
pub const SYSTEM_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";

/// One known_hosts file's text, and how messages name it.
pub struct KnownHostsFile {
    pub name: String,
    pub text: String,
}

/// What the files say of a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Known,
    Unknown,
    /// Recorded under another key (at this file and line).
    Changed {
        file: String,
        line: usize,
    },
    /// The key is marked `@revoked` (at this file and line).
    Revoked {
        file: String,
        line: usize,
    },
}

/// The name a host is recorded under: `host`, or `[host]:port` for another port.
fn recorded_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// OpenSSH's wildcard match: `*` any run, `?` one character.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            wildcard(&pattern[1..], text) || (!text.is_empty() && wildcard(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => wildcard(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p.eq_ignore_ascii_case(t) => wildcard(&pattern[1..], &text[1..]),
        _ => false,
    }
}

/// Whether a line's host patterns name this host: a negated pattern that matches rules the
/// line out, as in OpenSSH.
fn names(patterns: &HostPatterns, name: &str) -> bool {
    match patterns {
        HostPatterns::Patterns(list) => {
            let mut hit = false;
            for p in list {
                match p.strip_prefix('!') {
                    Some(neg) if wildcard(neg.as_bytes(), name.as_bytes()) => return false,
                    Some(_) => {}
                    None => hit |= wildcard(p.as_bytes(), name.as_bytes()),
                }
            }
            hit
        }
        HostPatterns::HashedName { salt, hash } => {
            let mut mac = Hmac::<Sha1>::new_from_slice(salt).expect("HMAC takes any key");
            mac.update(name.as_bytes());
            mac.verify_slice(hash).is_ok()
        }
    }
}

/// The entries of the files that name the host, with where each is: (file, line, entry).
fn entries_for<'a>(
    files: &'a [KnownHostsFile],
    host: &str,
    port: u16,
) -> Vec<(&'a str, usize, Entry)> {
    let name = recorded_name(host, port);
    let mut out = Vec::new();
    for f in files {
        for (i, line) in f.text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // A line berth cannot read (a key type it does not know) is skipped, as OpenSSH
            // skips it.
            let Ok(entry) = line.parse::<Entry>() else {
                continue;
            };
            if names(entry.host_patterns(), &name) {
                out.push((f.name.as_str(), i + 1, entry));
            }
        }
    }
    out
}

/// What the files say of `key` for `host:port`. Pure.
pub fn judge(files: &[KnownHostsFile], host: &str, port: u16, key: &PublicKey) -> Verdict {
    let entries = entries_for(files, host, port);
    let same = |e: &Entry| e.public_key().key_data() == key.key_data();
    for (file, line, e) in &entries {
        if e.marker() == Some(&Marker::Revoked) && same(e) {
            return Verdict::Revoked {
                file: file.to_string(),
                line: *line,
            };
        }
    }
    let plain: Vec<&(&str, usize, Entry)> = entries
        .iter()
        .filter(|(_, _, e)| e.marker().is_none())
        .collect();
    if plain.iter().any(|(_, _, e)| same(e)) {
        return Verdict::Known;
    }
    match plain.first() {
        Some((file, line, _)) => Verdict::Changed {
            file: file.to_string(),
            line: *line,
        },
        None => Verdict::Unknown,
    }
}

/// The host key algorithms the files record for the host, in file order: berth asks the
/// server for these first, so a host with a recorded key presents that one.
pub fn recorded_algorithms(files: &[KnownHostsFile], host: &str, port: u16) -> Vec<Algorithm> {
    let mut out: Vec<Algorithm> = Vec::new();
    for (_, _, e) in entries_for(files, host, port) {
        let alg = e.public_key().algorithm();
        if e.marker().is_none() && !out.contains(&alg) {
            out.push(alg);
        }
    }
    out
}

/// The user's file and the system's, as they are now (a missing file records nothing).
pub fn read_files(user: &Path) -> Vec<KnownHostsFile> {
    [user.to_path_buf(), PathBuf::from(SYSTEM_KNOWN_HOSTS)]
        .iter()
        .filter_map(|p| {
            Some(KnownHostsFile {
                name: p.display().to_string(),
                text: std::fs::read_to_string(p).ok()?,
            })
        })
        .collect()
}

/// Checks `key` for `host:port`. An unknown key is refused unless `accept_new`, in which case
/// it is recorded in the user's file; a changed or revoked key is always refused. Errors name
/// the key's fingerprint.
pub fn check(
    path: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
    accept_new: bool,
) -> Result<(), String> {
    let fingerprint = key.fingerprint(HashAlg::Sha256);
    let algorithm = key.algorithm();
    match judge(&read_files(path), host, port, key) {
        Verdict::Known => Ok(()),
        Verdict::Unknown if accept_new => learn_known_hosts_path(host, port, key, path)
            .map_err(|e| format!("could not record the host key in {}: {e}", path.display())),
        Verdict::Unknown => Err(format!(
            "unknown host key for {host}:{port} ({algorithm} {fingerprint}); not in {}. \
             Check the fingerprint, then add it or rerun with --accept-new-host-keys",
            path.display()
        )),
        Verdict::Changed { file, line } => Err(format!(
            "HOST KEY CHANGED for {host}:{port}: it now presents {algorithm} {fingerprint}, \
             but {file} line {line} records another key. Refusing to connect"
        )),
        Verdict::Revoked { file, line } => Err(format!(
            "REVOKED host key for {host}:{port}: {algorithm} {fingerprint} is marked @revoked \
             in {file} line {line}. Refusing to connect"
        )),
    }
}

/// The same check for a raw SSH wire-format key (as libgit2 hands it over).
pub fn check_raw(path: &Path, host: &str, port: u16, raw: &[u8]) -> Result<(), String> {
    let key =
        PublicKey::from_bytes(raw).map_err(|e| format!("unreadable host key from {host}: {e}"))?;
    check(path, host, port, &key, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHukf6nIXOA5FSRtueOVHJDHvNiHju/2UOrW6gmdD6fs";
    const OTHER_ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINwByhhEsFKNfevI3/0OCuI8c+C96nHmQ+rs2ITCGXTE";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNSRBrMulbCQ04x+SnC8xlksU3VLO2njYQbVKuFK8cGSMXGeQNfxK6dDWVEUHwUQIhGz+yL2Z//XFvJB5OkSK78=";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap()
    }

    fn file(text: &str) -> Vec<KnownHostsFile> {
        vec![KnownHostsFile {
            name: "known_hosts".into(),
            text: text.into(),
        }]
    }

    #[test]
    fn a_host_recorded_under_another_algorithm_is_changed_not_new() {
        let f = file(&format!("# a comment\n198.18.0.11 {ED}\n"));
        assert_eq!(judge(&f, "198.18.0.11", 22, &key(ED)), Verdict::Known);
        assert_eq!(
            judge(&f, "198.18.0.11", 22, &key(ECDSA)),
            Verdict::Changed {
                file: "known_hosts".into(),
                line: 2
            }
        );
        assert_eq!(judge(&f, "198.18.0.12", 22, &key(ECDSA)), Verdict::Unknown);
        assert_eq!(judge(&f, "198.18.0.11", 2222, &key(ED)), Verdict::Unknown);
    }

    #[test]
    fn a_revoked_key_is_refused_even_where_another_line_knows_it() {
        let f = file(&format!("198.18.0.11 {ED}\n@revoked * {ED}\n"));
        assert_eq!(
            judge(&f, "198.18.0.11", 22, &key(ED)),
            Verdict::Revoked {
                file: "known_hosts".into(),
                line: 2
            }
        );
        assert_eq!(
            judge(&f, "198.18.0.11", 22, &key(OTHER_ED)),
            Verdict::Changed {
                file: "known_hosts".into(),
                line: 1
            }
        );
    }

    #[test]
    fn patterns_ports_negation_and_hashed_names_match_as_openssh_does() {
        let f = file(&format!(
            "[198.18.0.11]:2222 {ED}\n*.example.com,!evil.example.com {OTHER_ED}\n"
        ));
        assert_eq!(judge(&f, "198.18.0.11", 2222, &key(ED)), Verdict::Known);
        assert_eq!(
            judge(&f, "web.example.com", 22, &key(OTHER_ED)),
            Verdict::Known
        );
        assert_eq!(
            judge(&f, "evil.example.com", 22, &key(OTHER_ED)),
            Verdict::Unknown
        );
        assert!(wildcard(b"h?.lab", b"h1.lab") && !wildcard(b"h?.lab", b"h10.lab"));
        // `ssh-keygen -H` of a line for 198.18.0.11.
        let hashed = file(&format!(
            "|1|uq8WwQrT9cLwSyjyRB/pkQjsWVk=|emsQxOCWs6ycGQflI7n7wqKQUX8= {ED}\n"
        ));
        assert_eq!(judge(&hashed, "198.18.0.11", 22, &key(ED)), Verdict::Known);
        assert_eq!(
            judge(&hashed, "198.18.0.12", 22, &key(ED)),
            Verdict::Unknown
        );
    }

    #[test]
    fn the_system_file_counts_and_recorded_algorithms_come_first() {
        let files = vec![
            KnownHostsFile {
                name: "user".into(),
                text: String::new(),
            },
            KnownHostsFile {
                name: "/etc/ssh/ssh_known_hosts".into(),
                text: format!("h1 {ECDSA}\nh1 {ED}\n"),
            },
        ];
        assert_eq!(judge(&files, "h1", 22, &key(ED)), Verdict::Known);
        assert_eq!(
            recorded_algorithms(&files, "h1", 22),
            [key(ECDSA).algorithm(), key(ED).algorithm()]
        );
    }
}
