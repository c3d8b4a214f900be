//! Files from the repository placed in a container before it starts, the templates among
//! them (filled from secrets when the container is created), and env files (`KEY=VALUE`
//! lines). Pure: contents come in as bytes, secret values through a lookup.

use serde::{Deserialize, Serialize};

/// One file a container gets (`files:` in a deployment). The content is not here, only its
/// hash: the spec is stored in a label and compared, and changing the file in Git is a new
/// revision. The bytes travel beside the plan, by hash (`FileContents`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct FileSpec {
    /// Absolute path in the container.
    pub target: String,
    /// Path in the repository, from its root.
    pub source: String,
    /// Permission bits, as octal text (`0644`) so the spec and plans read as `ls` does.
    pub mode: String,
    /// SHA-256 of the file in Git (for a template: of the template, not of what it becomes).
    pub sha256: String,
    /// The secrets a template fills in, by name; empty for a plain file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub template: bool,
}

impl FileSpec {
    /// The permission bits as a number (the loader checked the text).
    pub fn mode_bits(&self) -> u32 {
        parse_mode(&self.mode).unwrap_or(0o644)
    }
}

/// File contents by their SHA-256 (hex): what a pod's `FileSpec`s are filled from when it is
/// created. Keyed by hash, so a saved plan applied with the repository at another commit
/// finds out instead of placing other bytes.
pub type FileContents = std::collections::BTreeMap<String, Vec<u8>>;

/// The contents of repository files (path → bytes), by hash.
pub fn by_hash(files: &std::collections::BTreeMap<String, Vec<u8>>) -> FileContents {
    files
        .values()
        .map(|bytes| (crate::model::sha256_hex(bytes), bytes.clone()))
        .collect()
}

/// The bytes a container gets for `file`: the content, a template filled from `secret`.
pub fn materialize(
    file: &FileSpec,
    contents: &FileContents,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<u8>, String> {
    let bytes = contents.get(&file.sha256).ok_or_else(|| {
        format!(
            "{} (sha256 {}) is not in the repository at hand; apply with the repository at the commit the plan was made from",
            file.source,
            &file.sha256[..12.min(file.sha256.len())]
        )
    })?;
    if !file.template {
        return Ok(bytes.clone());
    }
    let text =
        std::str::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", file.source))?;
    fill_template(text, secret)
        .map(String::into_bytes)
        .map_err(|why| format!("{}: {why}", file.source))
}

/// Parses `0644`, `644` or `0o644` as octal permission bits (at most `07777`).
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    let bits = u32::from_str_radix(digits, 8)
        .map_err(|_| format!("{text:?} is not an octal mode like 0644"))?;
    if digits.is_empty() || bits > 0o7777 {
        return Err(format!("{text:?} is not a file mode (0000 to 7777, octal)"));
    }
    Ok(bits)
}

/// Octal text for permission bits, four digits.
pub fn mode_text(bits: u32) -> String {
    format!("{bits:04o}")
}

/// A place in a template that is not a well-formed `${{ secrets.NAME }}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset of the problem in the template.
    pub offset: usize,
    pub len: usize,
    pub message: String,
}

/// A template's pieces: text, and the secrets that go between them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Secret { name: &'a str, offset: usize },
}

const OPEN: &str = "${{";
const CLOSE: &str = "}}";

fn pieces(text: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(found) = text[rest..].find(OPEN) {
        let open = rest + found;
        out.push(Piece::Text(&text[rest..open]));
        let inner_start = open + OPEN.len();
        let Some(close) = text[inner_start..].find(CLOSE) else {
            return Err(TemplateError {
                offset: open,
                len: OPEN.len(),
                message: "`${{` is not closed by `}}`".into(),
            });
        };
        let inner = &text[inner_start..inner_start + close];
        let lead = inner.len() - inner.trim_start().len();
        let expr = inner.trim();
        let name = expr.strip_prefix("secrets.").filter(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
        match name {
            Some(name) => out.push(Piece::Secret {
                name,
                offset: inner_start + lead,
            }),
            None => {
                return Err(TemplateError {
                    offset: inner_start + lead,
                    len: expr.len().max(1),
                    message: format!(
                        "`{expr}` is not a secret reference; a template fills in `${{{{ secrets.NAME }}}}` only"
                    ),
                })
            }
        }
        rest = inner_start + close + CLOSE.len();
    }
    out.push(Piece::Text(&text[rest..]));
    Ok(out)
}

/// The secrets a template names, in order of first use, each with the offset of its first
/// use.
pub fn template_secrets(text: &str) -> Result<Vec<(String, usize)>, TemplateError> {
    let mut names: Vec<(String, usize)> = Vec::new();
    for p in pieces(text)? {
        if let Piece::Secret { name, offset } = p {
            if !names.iter().any(|(n, _)| n == name) {
                names.push((name.to_string(), offset));
            }
        }
    }
    Ok(names)
}

/// The template with each `${{ secrets.NAME }}` replaced by the secret's value; the name of
/// the first secret without a value otherwise.
pub fn fill_template(text: &str, value: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for p in pieces(text).map_err(|e| e.message)? {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Secret { name, .. } => {
                out.push_str(&value(name).ok_or_else(|| format!("secret {name} has no value"))?)
            }
        }
    }
    Ok(out)
}

/// A line of an env file that is not `KEY=VALUE`, a comment or blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileError {
    /// 1-based line number.
    pub line: usize,
    /// Byte offset of the line's start in the text.
    pub offset: usize,
    pub message: String,
}

/// Reads an env file: `KEY=VALUE` lines, `#` comments and blank lines, an optional `export `
/// before the key, and values optionally in single quotes (taken as they are) or double
/// quotes (with `\n`, `\"` and `\\` escapes). Nothing is substituted: `$HOME` stays
/// `$HOME`, as in Docker's own `--env-file`.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, EnvFileError> {
    let mut out = Vec::new();
    let mut offset = 0;
    for (i, raw) in text.split('\n').enumerate() {
        let line_offset = offset;
        offset += raw.len() + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |message: String| EnvFileError {
            line: i + 1,
            offset: line_offset,
            message,
        };
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err(bad("a line of an env file is KEY=VALUE".into()));
        };
        let key = key.trim();
        let valid_key = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid_key {
            return Err(bad(format!("{key:?} is not a variable name")));
        }
        let value = unquote(value.trim()).map_err(bad)?;
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn unquote(v: &str) -> Result<String, String> {
    let quoted = |q: char| v.len() >= 2 && v.starts_with(q) && v.ends_with(q);
    if quoted('\'') {
        return Ok(v[1..v.len() - 1].to_string());
    }
    if quoted('"') {
        let mut out = String::new();
        let mut chars = v[1..v.len() - 1].chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(c @ ('"' | '\\' | '$')) => out.push(c),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        }
        return Ok(out);
    }
    if v.starts_with(['"', '\'']) {
        return Err("a quoted value is not closed on its line".into());
    }
    // An unquoted value ends at ` #` (a comment after it).
    Ok(match v.find(" #") {
        Some(at) => v[..at].trim_end().to_string(),
        None => v.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal_text() {
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0o755"), Ok(0o755));
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("17777").is_err());
        assert!(parse_mode("").is_err());
        assert_eq!(mode_text(0o600), "0600");
    }

    #[test]
    fn a_template_names_its_secrets_and_is_filled() {
        let t = "user=app\npassword=${{ secrets.db-password }}\nagain=${{secrets.db-password}}\nkey=${{ secrets.api }}";
        let names = template_secrets(t).unwrap();
        assert_eq!(
            names.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["db-password", "api"]
        );
        assert_eq!(&t[names[0].1..names[0].1 + 8], "secrets.");
        let value = |n: &str| match n {
            "db-password" => Some("hunter2".to_string()),
            "api" => Some("k".to_string()),
            _ => None,
        };
        assert_eq!(
            fill_template(t, &value).unwrap(),
            "user=app\npassword=hunter2\nagain=hunter2\nkey=k"
        );
        assert_eq!(
            fill_template("${{ secrets.nope }}", &value),
            Err("secret nope has no value".into())
        );
        // Text without placeholders, and other dollar signs, stay as they are.
        assert_eq!(
            fill_template("$host ${x} {{ y }}", &value).unwrap(),
            "$host ${x} {{ y }}"
        );
    }

    #[test]
    fn a_bad_placeholder_says_where() {
        let e = template_secrets("a\n${{ env.HOME }}").unwrap_err();
        assert_eq!(e.offset, 6);
        assert!(
            e.message.contains("`env.HOME` is not a secret reference"),
            "{}",
            e.message
        );
        let e = template_secrets("x ${{ secrets.a").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(template_secrets("${{ secrets. }}").is_err());
    }

    #[test]
    fn env_files_read_as_docker_does() {
        let text = "# comment\n\nA=1\nexport B = two words \nC='single $x'\nD=\"a\\nb \\\"q\\\"\"\nE=\nF=v # note\r\n";
        let got = parse_env_file(text).unwrap();
        assert_eq!(
            got,
            [
                ("A", "1"),
                ("B", "two words"),
                ("C", "single $x"),
                ("D", "a\nb \"q\""),
                ("E", ""),
                ("F", "v")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn a_bad_env_line_has_its_number() {
        let e = parse_env_file("A=1\nnot a pair\n").unwrap_err();
        assert_eq!((e.line, e.offset), (2, 4));
        assert_eq!(parse_env_file("1X=2").unwrap_err().line, 1);
        assert!(parse_env_file("A=\"open")
            .unwrap_err()
            .message
            .contains("not closed"));
    }
}
