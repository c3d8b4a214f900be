//! Secret values and how berth recognises a changed one without keeping anything that would
//! let someone guess it: each container records, per secret, a random salt and an HMAC of the
//! value keyed with that salt. A plan compares by re-hashing the current value with the live
//! salt. Plans, plan files, logs and specs carry only the secret's name. Pure.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;

/// On containers: JSON object, secret name → `salt:hmac` (hex).
pub const SECRETS_LABEL: &str = "berth.secrets";

/// Secret values by name, as read when the repository was loaded. Never serialised and never
/// printed: `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct SecretValues(BTreeMap<String, String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SecretValues {
    pub fn insert(&mut self, name: &str, value: String) {
        self.0.insert(name.to_string(), value);
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 of `message` keyed with `key`, as hex.
pub fn mac(key: &str, message: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    m.update(message.as_bytes());
    hex(&m.finalize().into_bytes())
}

/// What a container records for one secret: `salt:hmac`. The salt comes from the shell (the
/// core has no randomness) and must be random, at least 16 bytes as hex.
pub fn seal(salt: &str, value: &str) -> String {
    format!("{salt}:{}", mac(salt, value))
}

/// Whether `sealed` (from a container's label) was made from `value`.
pub fn matches(sealed: &str, value: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_matches_only_itself_and_differs_per_salt() {
        let a = seal("00112233445566778899aabbccddeeff", "hunter2");
        let b = seal("ffeeddccbbaa99887766554433221100", "hunter2");
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
