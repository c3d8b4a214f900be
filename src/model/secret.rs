//! Secret values and how berth recognises a changed one without keeping what would make
//! guessing cheap: each container records, per secret, a random salt and the value's scrypt
//! hash with that salt (`scrypt:LOG_N:R:P:SALT:HASH`, see [`RECORD_COST`]). Whoever can read
//! a container's labels (anyone with the Docker socket) can still test guesses offline, but
//! each guess costs one scrypt: 32 MiB of memory and tens of milliseconds, not one HMAC. A
//! long random secret cannot be found that way; a short or common one still can, so the
//! README says: use long random secrets.
//!
//! A plan compares by hashing the current value with the live salt, once per record
//! ([`SecretValues::matches`] remembers), and an apply seals each secret once and gives all
//! the containers it creates the same record. Records older berths wrote (`SALT:HMAC`) are
//! still read. Plans, plan files, logs and specs carry only the secret's name. Pure.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// On containers: JSON object, secret name → `salt:hmac` (hex).
pub const SECRETS_LABEL: &str = "berth.secrets";

/// Secret values by name, as read when the repository was loaded. Never serialised and never
/// printed: `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct SecretValues {
    values: BTreeMap<String, String>,
    /// (name, record) → whether the record was made from the value: a record is hashed once
    /// however many containers carry it.
    checked: Arc<Mutex<HashMap<(String, String), bool>>>,
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl SecretValues {
    pub fn insert(&mut self, name: &str, value: String) {
        self.values.insert(name.to_string(), value);
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether a container's record of secret `name` was made from its value here (`None`
    /// when there is no value to judge by).
    pub fn matches(&self, name: &str, record: &str) -> Option<bool> {
        let value = self.get(name)?;
        let key = (name.to_string(), record.to_string());
        if let Some(known) = self.checked.lock().expect("not poisoned").get(&key) {
            return Some(*known);
        }
        let verdict = matches(record, value);
        self.checked
            .lock()
            .expect("not poisoned")
            .insert(key, verdict);
        Some(verdict)
    }
}

/// The cost of a record: scrypt with N = 2^15, r = 8, p = 1 (32 MiB of memory per guess),
/// and a 32-byte hash.
pub const RECORD_COST: (u8, u32, u32) = (15, 8, 1);
const RECORD_LEN: usize = 32;
/// The most a record read from a label may ask for (a label is input: one asking for
/// gigabytes must not stall a plan).
const MAX_LOG_N: u8 = 20;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 of `message` keyed with `key`, as hex.
pub fn mac(key: &str, message: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    m.update(message.as_bytes());
    hex(&m.finalize().into_bytes())
}

fn kdf(value: &str, salt: &str, (log_n, r, p): (u8, u32, u32)) -> Option<Vec<u8>> {
    let params = scrypt::Params::new(log_n, r, p, RECORD_LEN).ok()?;
    let mut out = vec![0u8; RECORD_LEN];
    scrypt::scrypt(value.as_bytes(), salt.as_bytes(), &params, &mut out).ok()?;
    Some(out)
}

/// What a container records for one secret: `scrypt:LOG_N:R:P:SALT:HASH`. The salt comes
/// from the shell (the core has no randomness) and must be random, at least 16 bytes as hex.
pub fn seal(salt: &str, value: &str) -> String {
    seal_with(salt, value, RECORD_COST)
}

/// [`seal`] at a given cost (tests use a small one).
pub fn seal_with(salt: &str, value: &str, cost: (u8, u32, u32)) -> String {
    let (log_n, r, p) = cost;
    let hash = kdf(value, salt, cost).expect("the record cost is valid");
    format!("scrypt:{log_n}:{r}:{p}:{salt}:{}", hex(&hash))
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether `sealed` (from a container's label) was made from `value`.
pub fn matches(sealed: &str, value: &str) -> bool {
    if let Some(rest) = sealed.strip_prefix("scrypt:") {
        let parts: Vec<&str> = rest.split(':').collect();
        let [log_n, r, p, salt, hash] = parts[..] else {
            return false;
        };
        let (Ok(log_n), Ok(r), Ok(p), Some(hash)) = (
            log_n.parse::<u8>(),
            r.parse::<u32>(),
            p.parse::<u32>(),
            unhex(hash),
        ) else {
            return false;
        };
        if log_n > MAX_LOG_N || r > 32 || p > 4 || salt.is_empty() {
            return false;
        }
        return kdf(value, salt, (log_n, r, p)).is_some_and(|ours| subtle_eq(&ours, &hash));
    }
    // A record an older berth wrote: SALT:HMAC.
    match sealed.split_once(':') {
        Some((salt, digest)) if !salt.is_empty() => {
            // Compared in constant time, as a MAC should be.
            let mut m = Hmac::<Sha256>::new_from_slice(salt.as_bytes()).expect("any key");
            m.update(value.as_bytes());
            let Ok(bytes) = (0..digest.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(digest.get(i..i + 2).unwrap_or("zz"), 16))
                .collect::<Result<Vec<u8>, _>>()
            else {
                return false;
            };
            m.verify_slice(&bytes).is_ok()
        }
        _ => false,
    }
}

/// Equal bytes, compared in constant time.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: (u8, u32, u32) = (4, 8, 1);

    #[test]
    fn a_record_is_an_scrypt_hash_that_states_its_cost() {
        let record = seal_with("00112233445566778899aabbccddeeff", "hunter2", CHEAP);
        assert!(
            record.starts_with("scrypt:4:8:1:00112233445566778899aabbccddeeff:"),
            "{record}"
        );
        assert!(matches(&record, "hunter2"));
        assert!(!matches(&record, "hunter3"));
        let tampered = record.replace("scrypt:4:", "scrypt:5:");
        assert!(
            !matches(&tampered, "hunter2"),
            "the cost is part of the record"
        );
        for broken in [
            "scrypt:",
            "scrypt:4:8:1:salt",
            "scrypt:99:8:1:s:00",
            "scrypt:4:8:1::00",
            "scrypt:4:8:1:s:zz",
        ] {
            assert!(!matches(broken, "hunter2"), "{broken}");
        }
        // The production cost, checked once: a record made with it matches.
        let strong = seal("ffeeddccbbaa99887766554433221100", "hunter2");
        assert!(strong.starts_with("scrypt:15:8:1:"), "{strong}");
        assert!(matches(&strong, "hunter2"));
    }

    #[test]
    fn a_record_is_hashed_once_per_plan() {
        let mut v = SecretValues::default();
        v.insert("db", "hunter2".into());
        let record = seal_with("00112233445566778899aabbccddeeff", "hunter2", CHEAP);
        assert_eq!(v.matches("db", &record), Some(true));
        assert_eq!(v.checked.lock().unwrap().len(), 1);
        assert_eq!(v.matches("db", &record), Some(true));
        assert_eq!(v.checked.lock().unwrap().len(), 1, "remembered");
        assert_eq!(v.matches("other", &record), None);
    }

    #[test]
    fn an_older_records_hmac_is_still_read() {
        let salt = "00112233445566778899aabbccddeeff";
        let a = format!("{salt}:{}", mac(salt, "hunter2"));
        let b = format!(
            "ffeeddccbbaa99887766554433221100:{}",
            mac("ffeeddccbbaa99887766554433221100", "hunter2")
        );
        assert_ne!(a, b, "the salt changes the record");
        assert!(matches(&a, "hunter2") && matches(&b, "hunter2"));
        assert!(!matches(&a, "hunter3"));
        assert!(!a.contains(&crate::model::sha256_hex(b"hunter2")));
        for broken in ["", ":", "nosalt", "salt:zz", "salt:0"] {
            assert!(!matches(broken, "hunter2"), "{broken}");
        }
    }

    #[test]
    fn debug_shows_names_only() {
        let mut v = SecretValues::default();
        v.insert("db", "hunter2".into());
        assert_eq!(format!("{v:?}"), "{\"db\"}");
    }
}
