//! SOPS files encrypted for age keys, read as secrets. A file's values are
//! `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`, each encrypted with the file's data key and
//! its path of keys (`db:password:`) as additional data; the data key itself is encrypted for
//! each age recipient under `sops.age`; `sops.mac` is the SHA-512 of every value, in order,
//! encrypted with the data key and `sops.lastmodified`, and is checked, so a value edited or
//! moved without the key is refused. Pure: the age identities are given.
//!
//! A secret's name is a top-level key, or the keys of a nested mapping joined with dots
//! (`db.password`); list items have no name.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use base64::Engine as _;
use sha2::{Digest, Sha512};
use std::collections::BTreeMap;
use std::io::Read;

/// AES-256-GCM with SOPS's 32-byte nonces.
type Cipher = AesGcm<Aes256, U32>;

/// A YAML or JSON document with its mappings in file order (the MAC depends on it).
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Map(Vec<(String, Node)>),
    List(Vec<Node>),
    /// A string, number or boolean, as text; and whether it was a boolean (SOPS hashes
    /// booleans as `True` and `False`).
    Scalar(String, bool),
    Null,
}

impl<'de> serde::Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Node;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a YAML or JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string(), true))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string(), false))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string(), false))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string(), false))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string(), false))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::Scalar(v, false))
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                serde::Deserialize::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::List(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Node>()? {
                    entries.push((k, v));
                }
                Ok(Node::Map(entries))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Whether a file is SOPS-encrypted (has SOPS metadata), judged from its text.
pub fn is_sops(path: &str, text: &str) -> bool {
    parse(path, text).is_ok_and(|root| match root {
        Node::Map(entries) => entries.iter().any(|(k, _)| k == "sops"),
        _ => false,
    })
}

fn parse(path: &str, text: &str) -> Result<Node, String> {
    if path.ends_with(".json") {
        serde_json::from_str(text).map_err(|e| format!("{path} is not JSON: {e}"))
    } else {
        serde_saphyr::from_str(text).map_err(|e| format!("{path} is not YAML: {e}"))
    }
}

/// Why a SOPS file gave no secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SopsError {
    /// None of the age keys at hand opens it (a file for another environment's key): the
    /// caller may skip it.
    NoKey(String),
    /// It is malformed, edited without sops, or breaks its own rules: never skipped.
    Invalid(String),
}

impl std::fmt::Display for SopsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SopsError::NoKey(why) | SopsError::Invalid(why) => f.write_str(why),
        }
    }
}

impl From<String> for SopsError {
    fn from(why: String) -> Self {
        SopsError::Invalid(why)
    }
}

/// Which values SOPS encrypts, from the file's metadata: by key suffix or regular
/// expression (`unencrypted_suffix` `_unencrypted` when none is given). A plain value these
/// say is encrypted was not written by sops.
enum Rule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(regex_lite::Regex),
    EncryptedRegex(regex_lite::Regex),
    /// Comment-based rules: which values are encrypted cannot be told from the values.
    Unknown,
}

impl Rule {
    fn of(path: &str, text_of: &dyn Fn(&str) -> Option<String>) -> Result<Rule, String> {
        let regex = |r: String| {
            regex_lite::Regex::new(&r).map_err(|e| {
                format!("{path}: its sops rule {r:?} is not a regular expression: {e}")
            })
        };
        Ok(if let Some(s) = text_of("unencrypted_suffix") {
            Rule::UnencryptedSuffix(s)
        } else if let Some(s) = text_of("encrypted_suffix") {
            Rule::EncryptedSuffix(s)
        } else if let Some(r) = text_of("unencrypted_regex") {
            Rule::UnencryptedRegex(regex(r)?)
        } else if let Some(r) = text_of("encrypted_regex") {
            Rule::EncryptedRegex(regex(r)?)
        } else if text_of("encrypted_comment_regex").is_some()
            || text_of("unencrypted_comment_regex").is_some()
        {
            Rule::Unknown
        } else {
            Rule::UnencryptedSuffix("_unencrypted".into())
        })
    }

    /// Whether sops encrypts the value at this path of keys.
    fn encrypts(&self, keys: &[String]) -> bool {
        match self {
            Rule::UnencryptedSuffix(s) => !keys.iter().any(|k| k.ends_with(s.as_str())),
            Rule::EncryptedSuffix(s) => keys.iter().any(|k| k.ends_with(s.as_str())),
            Rule::UnencryptedRegex(r) => !keys.iter().any(|k| r.is_match(k)),
            Rule::EncryptedRegex(r) => keys.iter().any(|k| r.is_match(k)),
            Rule::Unknown => false,
        }
    }
}

/// The secrets of a SOPS file, by name, decrypted with the first identity that opens its
/// data key.
pub fn decrypt(
    path: &str,
    text: &str,
    identities: &[age::x25519::Identity],
) -> Result<BTreeMap<String, String>, SopsError> {
    let Node::Map(mut entries) = parse(path, text)? else {
        return Err(format!("{path} is not a mapping").into());
    };
    let Some(at) = entries.iter().position(|(k, _)| k == "sops") else {
        return Err(format!(
            "{path} is not encrypted with sops (it has no `sops` metadata): a plain secret in Git is refused"
        ).into());
    };
    let (_, metadata) = entries.remove(at);
    let meta = |key: &str| -> Option<&Node> {
        match &metadata {
            Node::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    };
    let text_of = |key: &str| match meta(key) {
        Some(Node::Scalar(s, _)) => Some(s.clone()),
        _ => None,
    };
    let data_key = data_key(path, meta("age"), identities).map_err(SopsError::NoKey)?;
    let rule = Rule::of(path, &text_of)?;
    let mac_only = text_of("mac_only_encrypted").is_some_and(|v| v == "true");
    let mut hash = Sha512::new();
    if mac_only {
        hash.update(MAC_ONLY_ENCRYPTED);
    }
    let mut secrets = BTreeMap::new();
    let mut walk = Walk {
        path,
        key: &data_key,
        hash: &mut hash,
        mac_only,
        rule: &rule,
        secrets: &mut secrets,
    };
    for (k, v) in &entries {
        walk.node(v, &mut vec![k.clone()], Some(k.clone()))?;
    }
    let expected: String = hash.finalize().iter().map(|b| format!("{b:02X}")).collect();
    let (Some(mac), Some(lastmodified)) = (text_of("mac"), text_of("lastmodified")) else {
        return Err(format!("{path}: its sops metadata has no mac or lastmodified").into());
    };
    let (found, _) = open(&data_key, &mac, &lastmodified)
        .map_err(|e| format!("{path}: its MAC cannot be read ({e})"))?;
    if found != expected {
        return Err(format!(
            "{path}: the MAC does not match its values (edited without sops?); refusing it"
        )
        .into());
    }
    Ok(secrets)
}

/// SOPS's first bytes of the MAC of a file whose MAC covers encrypted values only.
const MAC_ONLY_ENCRYPTED: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

struct Walk<'a> {
    path: &'a str,
    key: &'a [u8],
    hash: &'a mut Sha512,
    mac_only: bool,
    rule: &'a Rule,
    secrets: &'a mut BTreeMap<String, String>,
}

impl Walk<'_> {
    /// Decrypts and hashes the values under `node`; `name` is the secret name of a value
    /// reached through mappings only.
    fn node(
        &mut self,
        node: &Node,
        keys: &mut Vec<String>,
        name: Option<String>,
    ) -> Result<(), String> {
        match node {
            Node::Map(entries) => {
                for (k, v) in entries {
                    keys.push(k.clone());
                    let name = name.as_ref().map(|n| format!("{n}.{k}"));
                    self.node(v, keys, name)?;
                    keys.pop();
                }
            }
            Node::List(items) => {
                for item in items {
                    self.node(item, keys, None)?;
                }
            }
            Node::Null => {}
            Node::Scalar(text, is_bool) => {
                let encrypted = text.starts_with("ENC[");
                let (value, hashed) = if encrypted {
                    let aad = format!("{}:", keys.join(":"));
                    open(self.key, text, &aad).map_err(|e| {
                        format!(
                            "{}: the value at {} cannot be decrypted ({e})",
                            self.path,
                            keys.join(".")
                        )
                    })?
                } else if self.rule.encrypts(keys) {
                    // With mac_only_encrypted the MAC does not cover plain values, so one
                    // added by hand would pass it: the file's own rules catch it.
                    return Err(format!(
                        "{}: the value at {} is plain, but the file's sops rules encrypt it (added without sops?); refusing it",
                        self.path,
                        keys.join(".")
                    ));
                } else if *is_bool {
                    let go = if text == "true" { "True" } else { "False" };
                    (text.clone(), go.to_string())
                } else {
                    (text.clone(), text.clone())
                };
                if encrypted || !self.mac_only {
                    self.hash.update(hashed.as_bytes());
                }
                if let Some(name) = name {
                    self.secrets.insert(name, value);
                }
            }
        }
        Ok(())
    }
}

/// Decrypts one `ENC[AES256_GCM,…]` value: its text, and the text SOPS hashes for it.
fn open(key: &[u8], value: &str, aad: &str) -> Result<(String, String), String> {
    let inner = value
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|v| v.strip_suffix(']'))
        .ok_or("not an ENC[AES256_GCM,…] value")?;
    let field = |name: &str| {
        inner
            .split(',')
            .find_map(|part| part.strip_prefix(name).and_then(|p| p.strip_prefix(':')))
            .ok_or(format!("no {name} in the value"))
    };
    let b64 = |name: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(field(name)?)
            .map_err(|e| format!("{name} is not base64: {e}"))
    };
    let (mut data, iv, tag) = (b64("data")?, b64("iv")?, b64("tag")?);
    let kind = field("type")?;
    if iv.len() != 32 {
        return Err(format!("an IV of {} bytes (SOPS writes 32)", iv.len()));
    }
    data.extend_from_slice(&tag);
    let cipher = Cipher::new_from_slice(key).map_err(|_| "a data key that is not 32 bytes")?;
    let nonce = aes_gcm::Nonce::<U32>::from_slice(&iv);
    let plain = cipher
        .decrypt(
            nonce,
            Payload {
                msg: &data,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| "it does not open with the data key (wrong key, or edited)".to_string())?;
    let text = String::from_utf8(plain).map_err(|_| "a value that is not UTF-8 text")?;
    // SOPS writes a boolean as `True` or `False` (and hashes that); a secret reads `true`.
    let value = match kind {
        "bool" => text.to_ascii_lowercase(),
        _ => text.clone(),
    };
    Ok((value, text))
}

/// The file's data key, from the first `sops.age` entry one of the identities opens.
fn data_key(
    path: &str,
    age_entries: Option<&Node>,
    identities: &[age::x25519::Identity],
) -> Result<Vec<u8>, String> {
    let Some(Node::List(entries)) = age_entries else {
        return Err(format!(
            "{path} is not encrypted for any age key (no sops.age)"
        ));
    };
    if identities.is_empty() {
        return Err(format!(
            "{path} needs an age key: set SOPS_AGE_KEY_FILE (or SOPS_AGE_KEY) as for sops"
        ));
    }
    let mut recipients = Vec::new();
    for entry in entries {
        let Node::Map(fields) = entry else { continue };
        let get = |k: &str| {
            fields
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| match v {
                    Node::Scalar(s, _) => Some(s.as_str()),
                    _ => None,
                })
        };
        recipients.extend(get("recipient").map(str::to_string));
        let Some(enc) = get("enc") else { continue };
        let Ok(decryptor) = age::Decryptor::new(age::armor::ArmoredReader::new(enc.as_bytes()))
        else {
            continue;
        };
        let ids = identities.iter().map(|i| i as &dyn age::Identity);
        if let Ok(mut reader) = decryptor.decrypt(ids) {
            let mut key = Vec::new();
            if reader.read_to_end(&mut key).is_ok() && key.len() == 32 {
                return Ok(key);
            }
        }
    }
    Err(format!(
        "{path}: none of the age keys given opens it (it is encrypted for {})",
        recipients.join(", ")
    ))
}

/// What a repository's SOPS files hold for the keys at hand.
#[derive(Debug, Default)]
pub struct Decrypted {
    /// Secret name → (value, the file it is in).
    pub values: BTreeMap<String, (String, String)>,
    /// Files no key at hand opens (another environment's), with why: skipped.
    pub skipped: Vec<String>,
}

/// Every file's secrets, for a repository with several (one per environment, say): a file
/// no key opens is skipped (and listed); one that is malformed or edited, or a name in two
/// files, is an error naming them.
pub fn decrypt_all(
    files: &[(String, String)],
    identities: &[age::x25519::Identity],
) -> Result<Decrypted, String> {
    let mut all = Decrypted::default();
    for (path, text) in files {
        match decrypt(path, text, identities) {
            Ok(values) => {
                for (name, value) in values {
                    if let Some((_, first)) = all.values.get(&name) {
                        return Err(format!(
                            "secret {name:?} is in both {first} and {path}: a name may be in one SOPS file only"
                        ));
                    }
                    all.values.insert(name, (value, path.clone()));
                }
            }
            Err(SopsError::NoKey(why)) => all.skipped.push(why),
            Err(SopsError::Invalid(why)) => return Err(why),
        }
    }
    Ok(all)
}

/// The age identities in a key file's text (`AGE-SECRET-KEY-…` lines; comments skipped).
pub fn identities(text: &str) -> Result<Vec<age::x25519::Identity>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.parse::<age::x25519::Identity>()
                .map_err(|_| "a line that is not an age secret key (AGE-SECRET-KEY-…)".to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests;
