//! Label keys and values with the Kubernetes syntax rules.

use std::collections::BTreeMap;

/// Labels on a host or a deployment. Ordered so that output and hashes are stable.
pub type Labels = BTreeMap<String, String>;

/// Labels from literal pairs (tests and fixtures).
pub fn from_pairs(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Checks a label key: an optional DNS subdomain prefix and `/`, then a name of at most 63
/// characters that starts and ends with an alphanumeric and has `-`, `_`, `.` inside.
/// Returns the byte offset (within `key`) and reason of the first problem.
/// Whether labels pass every one of an engine's label filters (`key` present, or
/// `key=value`). Docker lists what passes them all; Podman 4.3 what passes any, so a list
/// asked with several is checked again here.
pub fn pass_all<'a>(labels: impl Fn(&str) -> Option<&'a str>, filters: &[String]) -> bool {
    filters.iter().all(|f| match f.split_once('=') {
        Some((key, value)) => labels(key) == Some(value),
        None => labels(f).is_some(),
    })
}

pub fn check_key(key: &str) -> Result<(), (usize, String)> {
    let (prefix, name, name_at) = match key.rfind('/') {
        Some(i) => (Some(&key[..i]), &key[i + 1..], i + 1),
        None => (None, key, 0),
    };
    if let Some(prefix) = prefix {
        check_dns_subdomain(prefix).map_err(|(at, why)| (at, format!("label key prefix {why}")))?;
    }
    if name.is_empty() {
        return Err((name_at, "label key name must not be empty".into()));
    }
    check_name(name, "label key name").map_err(|(at, why)| (name_at + at, why))
}

/// Checks a label value: empty, or at most 63 characters of the name alphabet.
pub fn check_value(value: &str) -> Result<(), (usize, String)> {
    if value.is_empty() {
        return Ok(());
    }
    check_name(value, "label value")
}

fn check_name(s: &str, what: &str) -> Result<(), (usize, String)> {
    if s.len() > 63 {
        return Err((63, format!("{what} is longer than 63 characters")));
    }
    for (i, c) in s.char_indices() {
        let edge = i == 0 || i + c.len_utf8() == s.len();
        let ok = c.is_ascii_alphanumeric() || (!edge && matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err((
                i,
                format!("{what} must start and end with a letter or digit and contain only letters, digits, '-', '_' and '.' (found {c:?})"),
            ));
        }
    }
    Ok(())
}

fn check_dns_subdomain(s: &str) -> Result<(), (usize, String)> {
    if s.is_empty() || s.len() > 253 {
        return Err((0, "must be a DNS subdomain of 1 to 253 characters".into()));
    }
    let mut at = 0;
    for part in s.split('.') {
        let ok = !part.is_empty()
            && part.len() <= 63
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !part.starts_with('-')
            && !part.ends_with('-');
        if !ok {
            return Err((
                at,
                format!(
                    "must be a DNS subdomain (lower-case letters, digits, '-' and '.'), not {s:?}"
                ),
            ));
        }
        at += part.len() + 1;
    }
    Ok(())
}

/// Checks a name used for deployments, hosts, containers, services and volumes: a DNS label
/// (lower-case letters, digits and '-', at most 63 characters), since it ends up in container
/// names and network aliases.
pub fn check_object_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name {s:?}: use 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn label_filters_pass_only_when_every_one_does() {
        let labels = from_pairs(&[("berth.project", "shop"), ("berth.lease", "5")]);
        let get = |k: &str| labels.get(k).map(String::as_str);
        let f = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(pass_all(get, &f(&["berth.project=shop", "berth.lease"])));
        assert!(!pass_all(get, &f(&["berth.project=shop", "berth.id"])));
        assert!(!pass_all(get, &f(&["berth.project=other", "berth.lease"])));
        assert!(pass_all(get, &[]));
    }

    use super::*;

    #[test]
    fn keys() {
        assert!(check_key("app").is_ok());
        assert!(check_key("example.com/app-name_1.x").is_ok());
        assert_eq!(check_key("-app").unwrap_err().0, 0);
        assert_eq!(check_key("Example.com/app").unwrap_err().0, 0);
        assert_eq!(check_key("example.com/").unwrap_err().0, 12);
        assert!(check_key(&"a".repeat(64)).is_err());
        assert!(check_key(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn values() {
        assert!(check_value("").is_ok());
        assert!(check_value("v1.2_3-x").is_ok());
        assert_eq!(check_value("bad value").unwrap_err().0, 3);
        assert!(check_value("x-").is_err());
    }

    #[test]
    fn object_names() {
        assert!(check_object_name("web-1").is_ok());
        assert!(check_object_name("Web").is_err());
        assert!(check_object_name("web_1").is_err());
        assert!(check_object_name("").is_err());
    }
}
