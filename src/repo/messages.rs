//! The YAML reader's messages, said in the user's words: it speaks of Rust types ("invalid
//! u32", "use Option<String>", "untagged enum Args") and of its own options; a user needs the
//! key, what it should be, and how to fix it. Pure.

/// The key whose value is at `offset` in `text`: the last `key:` before it on its line.
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = text[line_start..offset].trim_end();
    let before = before.strip_suffix(':')?.trim_end();
    let start = before
        .rfind(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .map_or(0, |i| i + 1);
    let key = &before[start..];
    (!key.is_empty()).then_some(key)
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The closest of `known` to `word`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn backticked(text: &str) -> Option<&str> {
    let start = text.find('`')? + 1;
    let len = text[start..].find('`')?;
    Some(&text[start..start + len])
}

/// A key that is written somewhere else in the file (`key:` at the start of a line or after
/// `- `), with its line number: a hint that it is indented wrongly.
fn written_elsewhere(text: &str, key: &str) -> Option<usize> {
    text.lines().position(|l| {
        let t = l.trim_start().trim_start_matches("- ");
        t.starts_with(&format!("{key}:"))
    })
}

/// Rewrites one message of the YAML reader; returns the message and a help line.
pub fn humanize(message: &str, text: &str, offset: usize) -> (String, Option<String>) {
    let key = key_before(text, offset);
    let named = |what: &str| match key {
        Some(k) => format!("`{k}` {what}"),
        None => format!("this value {what}"),
    };
    let whole = |max: &str| named(&format!("must be a whole number from 0 to {max}"));
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let field = backticked(rest).unwrap_or(rest);
        let known: Vec<&str> = rest
            .split_once("expected one of ")
            .or_else(|| rest.split_once("expected "))
            .map(|(_, list)| list.split(", ").map(|k| k.trim_matches('`')).collect())
            .unwrap_or_default();
        let help = match did_you_mean(field, &known) {
            Some(k) => format!("did you mean `{k}`?"),
            None if known.is_empty() => "remove it".to_string(),
            None => format!("the keys here are {}", known.join(", ")),
        };
        return (format!("unknown key `{field}`"), Some(help));
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let k = rest.split(',').next().unwrap_or(rest).trim();
        return (
            format!("`{k}` appears twice in this mapping"),
            Some("keep one of them".into()),
        );
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        let field = backticked(rest).unwrap_or(rest);
        let help = match written_elsewhere(text, field) {
            Some(line) => format!(
                "line {} has `{field}:`, but not inside this mapping: check its indentation (keys of one mapping line up)",
                line + 1
            ),
            None => format!("add `{field}:` here"),
        };
        return (format!("missing key `{field}`"), Some(help));
    }
    if message.starts_with("multiple YAML documents") {
        return (
            "one YAML document per file".into(),
            Some(
                "remove the `---` and what follows it, or give that part a file of its own".into(),
            ),
        );
    }
    if message.contains("tabs disallowed") {
        return (
            "a tab in the indentation".into(),
            Some("YAML indents with spaces only".into()),
        );
    }
    if message.starts_with("unexpected end of input") {
        return if text.trim().is_empty() {
            (
                "the file is empty".into(),
                Some("see docs/repository.md for what this file holds".into()),
            )
        } else {
            ("the file ends in the middle of a value".into(), None)
        };
    }
    if message.starts_with("budget breached") {
        return (
            "the file is too large or too deeply nested to be read".into(),
            Some("a berth file has at most 250000 YAML nodes".into()),
        );
    }
    if message.contains("null") && message.contains("Option<") {
        let what = if message.contains("string") {
            "a string"
        } else {
            "a value"
        };
        return (
            named(&format!("must be {what}, not null")),
            Some("write a value after the colon, or leave the key out".into()),
        );
    }
    let replies: [(&str, String); 12] = [
        ("invalid u8", whole("255")),
        ("invalid u16", whole("65535")),
        ("invalid u32", whole("4294967295")),
        ("invalid u64", whole("18446744073709551615")),
        ("invalid i64", named("must be a whole number")),
        ("invalid f64", named("must be a number")),
        ("invalid bool", named("must be true or false")),
        ("expected mapping start", named("must be a mapping (`key: value` lines or `{key: value}`)")),
        ("expected sequence start", named("must be a list (`- item` lines or `[a, b]`)")),
        ("untagged enum Args", named("must be a list of strings or one string; quote items YAML reads as numbers or true/false")),
        ("untagged enum Scalar", named("must be a number or a string")),
        ("untagged enum", named("has the wrong form; see docs/repository.md")),
    ];
    for (pattern, reply) in replies {
        if message.contains(pattern) {
            return (reply, None);
        }
    }
    if message.starts_with("invalid type: ") {
        let found = message
            .trim_start_matches("invalid type: ")
            .split(", expected ")
            .collect::<Vec<_>>();
        if let [found, expected] = found.as_slice() {
            return (named(&format!("must be {expected}, not {found}")), None);
        }
    }
    (message.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, needle: &str) -> usize {
        text.find(needle).unwrap()
    }

    #[test]
    fn rust_words_become_the_users() {
        let t = "name: web\nreplicas: many\n";
        assert_eq!(
            humanize("invalid u32", t, at(t, "many")).0,
            "`replicas` must be a whole number from 0 to 4294967295"
        );
        let t = "    - {name: app, image: null}\n";
        assert_eq!(
            humanize(
                "cannot deserialize null into string; use Option<String>",
                t,
                at(t, "null")
            )
            .0,
            "`image` must be a string, not null"
        );
        let (m, help) = humanize(
            "unknown field `replica`, expected one of name, labels, replicas, placement",
            "",
            0,
        );
        assert_eq!(m, "unknown key `replica`");
        assert_eq!(help.as_deref(), Some("did you mean `replicas`?"));
        let (_, help) = humanize("unknown field `zzz`, expected one of name, labels", "", 0);
        assert_eq!(help.as_deref(), Some("the keys here are name, labels"));
        assert_eq!(
            humanize(
                "duplicate mapping key: replicas, set DuplicateKeyPolicy in Options if acceptable",
                "",
                0
            )
            .0,
            "`replicas` appears twice in this mapping"
        );
        assert_eq!(
            humanize(
                "multiple YAML documents detected; use from_str_multiple",
                "",
                0
            )
            .0,
            "one YAML document per file"
        );
        let t = "pod:\n  containers:\n    - name: app\n  image: x\n";
        let (m, help) = humanize("missing field `image`", t, at(t, "name"));
        assert_eq!(m, "missing key `image`");
        assert!(help.unwrap().contains("line 4 has `image:`"));
        let t = "test: [CMD, true]";
        assert!(humanize(
            "data did not match any variant of untagged enum Args",
            t,
            at(t, "[")
        )
        .0
        .starts_with("`test` must be a list of strings"));
        for m in [
            "invalid u16",
            "budget breached: Nodes { nodes: 250001 }",
            "tabs disallowed within this context (block indentation)",
        ] {
            let (said, _) = humanize(m, "port: 70000", 6);
            for rust in ["u16", "budget", "Nodes", "disallowed"] {
                assert!(!said.contains(rust), "{said}");
            }
        }
    }

    #[test]
    fn keys_are_found_before_values_on_their_line() {
        assert_eq!(key_before("a: 1\nport: 70000", 11), Some("port"));
        assert_eq!(key_before("- {name: x, image: null}", 19), Some("image"));
        assert_eq!(key_before("- item", 2), None);
        assert_eq!(key_before("é: ü", "é: ".len()), Some("é"));
    }
}
