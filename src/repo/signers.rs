//! Signed commits: git's allowed_signers file and the SSH signature a commit carries
//! (`git commit -S` with `gpg.format=ssh`). Pure: the file's text, the signature and the
//! signed bytes come in; the signer or the reason for refusing comes out.
//!
//! As `git verify-commit` does with `gpg.ssh.allowedSignersFile`: the signature must be in
//! the `git` namespace, made by a key the file lists for that namespace (a `namespaces=`
//! option that leaves out `git` does not count), within the key's `valid-after` /
//! `valid-before` window judged at the commit's committer time. `cert-authority` lines
//! (certificates) are refused when the file is read: berth does not verify certificates.

use ssh_key::{HashAlg, PublicKey, SshSig};

/// The namespace git signs commits in.
const GIT_NAMESPACE: &str = "git";

/// One allowed key.
#[derive(Debug, Clone)]
struct Entry {
    principals: String,
    key: PublicKey,
    namespaces: Option<Vec<String>>,
    valid_after: Option<i64>,
    valid_before: Option<i64>,
    line: usize,
}

/// The keys an allowed_signers file lists.
#[derive(Debug, Clone)]
pub struct AllowedSigners {
    entries: Vec<Entry>,
}

/// What a commit carries: the armoured signature and the bytes it signs (the commit object
/// without its `gpgsig` header), as libgit2 extracts them.
#[derive(Debug, Clone)]
pub struct CommitSignature {
    pub armored: String,
    pub signed: Vec<u8>,
}

/// Who signed a commit: the principals of the allowed_signers line, and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub principals: String,
    pub fingerprint: String,
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.principals, self.fingerprint)
    }
}

/// Splits a line into words; double quotes keep spaces and commas inside one word.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                word.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Splits `a,b="x,y",c` at the commas outside quotes.
fn options(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut part = String::new();
    let mut quoted = false;
    let mut push = |part: &mut String| {
        let p = std::mem::take(part);
        match p.split_once('=') {
            Some((k, v)) => out.push((k.to_ascii_lowercase(), Some(v.trim_matches('"').into()))),
            None => out.push((p.to_ascii_lowercase(), None)),
        }
    };
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                part.push(c);
            }
            ',' if !quoted => push(&mut part),
            c => part.push(c),
        }
    }
    if !part.is_empty() {
        push(&mut part);
    }
    out
}

fn is_key_type(word: &str) -> bool {
    word.starts_with("ssh-") || word.starts_with("ecdsa-") || word.starts_with("sk-")
}

/// `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, with an optional `Z`: seconds since the
/// epoch, read as UTC (ssh-keygen reads a time without `Z` as local time; write `Z` to be
/// sure both agree).
fn timestamp(text: &str) -> Option<i64> {
    let digits = text.strip_suffix(['Z', 'z']).unwrap_or(text);
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| digits.get(r).map_or(Some(0), |s| s.parse::<i64>().ok());
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(8..10)?, num(10..12)?, num(12..14)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = crate::model::clock::days_from_civil(y, m, d);
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

impl AllowedSigners {
    /// Reads the file's text; `name` is how messages name it. A line berth cannot use is an
    /// error naming its line: a key silently skipped would be a signer silently refused.
    pub fn parse(name: &str, text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("{name} line {n}: {why}");
            let w = words(line);
            let (principals, rest) = w.split_first().ok_or_else(|| bad("empty"))?;
            let (opts, rest) = match rest.first() {
                Some(first) if !is_key_type(first) => (options(first), &rest[1..]),
                _ => (vec![], rest),
            };
            let (Some(kind), Some(data)) = (rest.first(), rest.get(1)) else {
                return Err(bad("expected `PRINCIPALS [OPTIONS] KEYTYPE KEY`"));
            };
            let key = PublicKey::from_openssh(&format!("{kind} {data}"))
                .map_err(|e| bad(&format!("not a public key ({e})")))?;
            let mut entry = Entry {
                principals: principals.trim_matches('"').to_string(),
                key,
                namespaces: None,
                valid_after: None,
                valid_before: None,
                line: n,
            };
            for (k, v) in opts {
                let time = |v: &Option<String>| {
                    v.as_deref().and_then(timestamp).ok_or_else(|| {
                        bad(&format!(
                            "{k} needs a time like 20260101 or 20260101123000Z"
                        ))
                    })
                };
                match k.as_str() {
                    "namespaces" => {
                        let list = v.unwrap_or_default();
                        entry.namespaces = Some(list.split(',').map(|s| s.trim().into()).collect())
                    }
                    "valid-after" => entry.valid_after = Some(time(&v)?),
                    "valid-before" => entry.valid_before = Some(time(&v)?),
                    "cert-authority" => return Err(bad(
                        "cert-authority (certificates) is not supported; list the signers' keys",
                    )),
                    other => return Err(bad(&format!("unknown option {other}"))),
                }
            }
            entries.push(entry);
        }
        Ok(AllowedSigners { entries })
    }

    /// The signer of a commit whose committer time is `time`, or why it is refused.
    pub fn verify(&self, signature: Option<&CommitSignature>, time: i64) -> Result<Signer, String> {
        let Some(signature) = signature else {
            return Err("it is unsigned".into());
        };
        if !signature.armored.contains("BEGIN SSH SIGNATURE") {
            return Err(
                "it carries a GPG or X.509 signature, and the policy accepts SSH signatures only"
                    .into(),
            );
        }
        let sig = SshSig::from_pem(signature.armored.trim())
            .map_err(|e| format!("its signature cannot be read ({e})"))?;
        let offered = PublicKey::from(sig.public_key().clone());
        let fingerprint = offered.fingerprint(HashAlg::Sha256).to_string();
        if sig.namespace() != GIT_NAMESPACE {
            return Err(format!(
                "its signature is for namespace {:?}, not git",
                sig.namespace()
            ));
        }
        let listed: Vec<&Entry> = (self.entries.iter())
            .filter(|e| e.key.key_data() == sig.public_key())
            .collect();
        if listed.is_empty() {
            return Err(format!(
                "it is signed by key {fingerprint}, which allowed_signers does not list"
            ));
        }
        let mut why = String::new();
        for e in listed {
            if let Some(ns) = &e.namespaces {
                if !ns.iter().any(|n| n == GIT_NAMESPACE) {
                    why = format!(
                        "key {fingerprint} (line {}) is not allowed to sign in the git namespace",
                        e.line
                    );
                    continue;
                }
            }
            if e.valid_after.is_some_and(|t| time < t) || e.valid_before.is_some_and(|t| time > t) {
                why = format!(
                    "key {fingerprint} (line {}) was not valid at the commit's time",
                    e.line
                );
                continue;
            }
            return match e.key.verify(GIT_NAMESPACE, &signature.signed, &sig) {
                Ok(()) => Ok(Signer {
                    principals: e.principals.clone(),
                    fingerprint,
                }),
                Err(err) => Err(format!(
                    "its signature by key {fingerprint} does not match the commit ({err})"
                )),
            };
        }
        Err(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_utc() {
        assert_eq!(timestamp("19700101"), Some(0));
        assert_eq!(timestamp("20260101Z"), Some(1_767_225_600));
        assert_eq!(timestamp("202601011230"), Some(1_767_225_600 + 45_000));
        assert_eq!(timestamp("20261301"), None);
        assert_eq!(timestamp("2026"), None);
    }

    #[test]
    fn lines_with_options_and_quotes_are_read() {
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHukf6nIXOA5FSRtueOVHJDHvNiHju/2UOrW6gmdD6fs";
        let text = format!(
            "# who may deploy\nalice@example.com {key} laptop\n\"bob@example.com,ci@example.com\" namespaces=\"git,file\",valid-after=\"20260101\" {key}\n"
        );
        let s = AllowedSigners::parse("signers", &text).expect("valid");
        assert_eq!(s.entries.len(), 2);
        assert_eq!(s.entries[1].principals, "bob@example.com,ci@example.com");
        assert_eq!(
            s.entries[1].namespaces.as_deref(),
            Some(&["git".to_string(), "file".to_string()][..])
        );
        assert_eq!(s.entries[1].valid_after, Some(1_767_225_600));
        let e = AllowedSigners::parse("signers", &format!("x cert-authority {key}\n")).unwrap_err();
        assert!(e.starts_with("signers line 1: cert-authority"), "{e}");
        let e = AllowedSigners::parse("signers", "x ssh-ed25519 AAAA\n").unwrap_err();
        assert!(e.starts_with("signers line 1: not a public key"), "{e}");
    }

    #[test]
    fn an_unsigned_or_gpg_signed_commit_is_refused() {
        let s = AllowedSigners::parse("signers", "").unwrap();
        assert_eq!(s.verify(None, 0).unwrap_err(), "it is unsigned");
        let gpg = CommitSignature {
            armored: "-----BEGIN PGP SIGNATURE-----\n...".into(),
            signed: vec![],
        };
        assert!(s.verify(Some(&gpg), 0).unwrap_err().contains("GPG"));
    }

    fn fixture(name: &str) -> String {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/signed-commit/");
        std::fs::read_to_string(format!("{dir}{name}")).expect("fixture")
    }

    /// The fixtures were made with `ssh-keygen -Y sign -n git` (and `-n file`) of `payload`.
    #[test]
    fn a_signature_by_a_listed_key_in_the_git_namespace_verifies() {
        let allowed =
            AllowedSigners::parse("allowed_signers", &fixture("allowed_signers")).unwrap();
        let payload = fixture("payload").into_bytes();
        let signed = |sig: &str| CommitSignature {
            armored: fixture(sig),
            signed: payload.clone(),
        };
        let time = 1_767_225_600;
        let signer = allowed
            .verify(Some(&signed("payload.git.sig")), time)
            .expect("verifies");
        assert_eq!(signer.principals, "alice@example.com");
        assert!(signer.fingerprint.starts_with("SHA256:"), "{signer}");
        let file_ns = allowed.verify(Some(&signed("payload.file.sig")), time);
        assert_eq!(
            file_ns.unwrap_err(),
            "its signature is for namespace \"file\", not git"
        );
        let mut tampered = signed("payload.git.sig");
        tampered.signed.extend_from_slice(b"one more line\n");
        let e = allowed.verify(Some(&tampered), time).unwrap_err();
        assert!(e.contains("does not match the commit"), "{e}");
        let others = AllowedSigners::parse("other", &fixture("other_signers")).unwrap();
        let e = others
            .verify(Some(&signed("payload.git.sig")), time)
            .unwrap_err();
        assert_eq!(
            e,
            format!(
                "it is signed by key {}, which allowed_signers does not list",
                signer.fingerprint
            )
        );
        let line = fixture("allowed_signers");
        let (who, key) = line.trim().split_once(' ').unwrap();
        let limited =
            |opts: &str| AllowedSigners::parse("s", &format!("{who} {opts} {key}\n")).unwrap();
        let not_git = limited("namespaces=\"file\"").verify(Some(&signed("payload.git.sig")), time);
        assert!(not_git
            .unwrap_err()
            .contains("not allowed to sign in the git namespace"));
        let expired =
            limited("valid-before=\"20251231Z\"").verify(Some(&signed("payload.git.sig")), time);
        assert!(expired
            .unwrap_err()
            .contains("was not valid at the commit's time"));
        assert!(limited("valid-after=\"20251231Z\"")
            .verify(Some(&signed("payload.git.sig")), time)
            .is_ok());
    }
}
