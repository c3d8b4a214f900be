//! A container's `files:` and `env_file:`: repository files checked and hashed, templates
//! checked for the secrets they fill in, env files read into the container's env. Pure:
//! the files' bytes are in [`RepoFiles::blobs`], read by the shell beforehand
//! ([`referenced_files`] says which).

use super::*;
use crate::model::files::{self, FileSpec};
use serde::Deserialize;
use std::collections::BTreeSet;

/// A path in the repository as written in a deployment: relative, inside, `/`-separated.
/// `./config/a.conf` is `config/a.conf`.
pub fn repo_path(text: &str) -> Result<String, String> {
    if text.starts_with('/') {
        return Err("a path in the repository is relative to its root, not absolute".into());
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("a path with `..` can lead out of the repository".into()),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("the path names no file".into());
    }
    Ok(parts.join("/"))
}

/// The repository files the deployments name in `files:` and `env_file:` (only as far as
/// they parse): what the shell reads beside the YAML.
pub fn referenced_files(repo: &RepoFiles) -> BTreeSet<String> {
    #[derive(Deserialize)]
    struct Deployment {
        pod: Pod,
    }
    #[derive(Deserialize)]
    struct Pod {
        containers: Vec<Container>,
    }
    #[derive(Deserialize)]
    struct Container {
        #[serde(default)]
        files: Vec<Source>,
        #[serde(default)]
        env_file: Option<EnvFiles>,
    }
    #[derive(Deserialize)]
    struct Source {
        source: String,
    }
    let mut out = BTreeSet::new();
    for (path, text) in &repo.files {
        if !path.starts_with(DEPLOYMENTS_DIR) {
            continue;
        }
        let Ok(d) = serde_saphyr::from_str::<Deployment>(text) else {
            continue;
        };
        for c in d.pod.containers {
            let env_files = c.env_file.iter().flat_map(|e| {
                e.entries()
                    .into_iter()
                    .filter_map(|r| match r {
                        EnvFileRef::Path(p) => Some(p.clone()),
                        EnvFileRef::Secret(_) => None,
                    })
                    .collect::<Vec<_>>()
            });
            let sources = c.files.into_iter().map(|f| f.source).chain(env_files);
            out.extend(sources.filter_map(|p| repo_path(&p).ok()));
        }
    }
    out
}

/// A repository file's text, or a diagnostic at `at` saying why there is none.
fn blob<'r>(
    l: &mut Loader<'r>,
    src: &SourceFile,
    at: &Spanned<String>,
) -> Option<(String, &'r [u8])> {
    let path = match repo_path(&at.value) {
        Ok(p) => p,
        Err(why) => {
            l.report(src.error(at, format!("invalid path {:?}", at.value), why));
            return None;
        }
    };
    match l.repo.blobs.get(&path) {
        Some(bytes) => Some((path, bytes.as_slice())),
        None => {
            l.report(
                src.error(
                    at,
                    format!("{path} is not in the repository"),
                    "no such file",
                )
                .with_help(match &l.repo.commit {
                    Some(c) => format!(
                        "berth reads commit {}: add the file and commit it",
                        &c[..c.len().min(12)]
                    ),
                    None => "paths are relative to the repository's root".to_string(),
                }),
            );
            None
        }
    }
}

fn target_problem(target: &str) -> Option<&'static str> {
    if !target.starts_with('/') {
        Some("a target is an absolute path in the container")
    } else if target.ends_with('/') {
        Some("a target names a file, not a directory")
    } else if target.split('/').any(|p| p == ".." || p == ".") {
        Some("a target has no `.` or `..` in it")
    } else {
        None
    }
}

/// The mode as written (`0644` is octal, whatever YAML makes of the number).
fn mode(l: &mut Loader, src: &SourceFile, m: &Option<Spanned<Scalar>>) -> String {
    let Some(m) = m else {
        return files::mode_text(0o644);
    };
    let start = src.content_start(&m.referenced);
    let raw: String = src.text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    match files::parse_mode(&raw) {
        Ok(bits) => files::mode_text(bits),
        Err(why) => {
            l.report(src.error(m, "invalid file mode", why));
            files::mode_text(0o644)
        }
    }
}

pub(super) fn load_files(
    l: &mut Loader,
    src: &SourceFile,
    c: &ContainerFile,
    needs_secrets: bool,
) -> Vec<FileSpec> {
    let mut out: Vec<FileSpec> = Vec::new();
    for f in &c.files {
        let entry = &f.value;
        if let Some(why) = target_problem(&entry.target.value) {
            l.report(src.error(&entry.target, "invalid file target", why));
        }
        if out.iter().any(|o| o.target == entry.target.value) {
            l.report(src.error(
                &entry.target,
                format!("two files are placed at {}", entry.target.value),
                "again here",
            ));
        }
        let mode = mode(l, src, &entry.mode);
        let template = entry.template.unwrap_or(false);
        let Some((path, bytes)) = blob(l, src, &entry.source) else {
            continue;
        };
        let secrets = if template {
            template_secrets(l, src, &entry.source, &path, bytes, needs_secrets)
        } else {
            vec![]
        };
        out.push(FileSpec {
            target: entry.target.value.clone(),
            source: path,
            mode,
            sha256: crate::model::sha256_hex(bytes),
            secrets,
            template,
        });
    }
    out
}

/// The secrets a template names, each checked for a value when values are needed; problems
/// point into the template itself.
fn template_secrets(
    l: &mut Loader,
    src: &SourceFile,
    at: &Spanned<String>,
    path: &str,
    bytes: &[u8],
    needs_secrets: bool,
) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        l.report(
            src.error(at, format!("{path} is not UTF-8 text"), "a template")
                .with_help("a template is text; leave `template` out to place the file as it is"),
        );
        return vec![];
    };
    let template = SourceFile {
        path: path.to_string(),
        text: text.to_string(),
    };
    match files::template_secrets(text) {
        Ok(names) => {
            for (name, offset) in &names {
                let span = (*offset, "secrets.".len() + name.len()).into();
                l.need_secret(name, needs_secrets, || {
                    template.error_at(
                        span,
                        format!("secret {name:?} has no value"),
                        "secret not set",
                    )
                });
            }
            names.into_iter().map(|(n, _)| n).collect()
        }
        Err(e) => {
            l.report(template.error_at((e.offset, e.len).into(), "invalid template", e.message));
            vec![]
        }
    }
}

/// Reads the container's env files into `env` (keys `env:` sets win, and a later file wins
/// over an earlier one) and returns the secrets that are whole env files, in order.
pub(super) fn load_env_files(
    l: &mut Loader,
    src: &SourceFile,
    c: &ContainerFile,
    needs_secrets: bool,
    env: &mut BTreeMap<String, EnvValue>,
) -> Vec<String> {
    let Some(list) = &c.env_file else {
        return vec![];
    };
    let mut from_files: BTreeMap<String, String> = BTreeMap::new();
    let mut secret_files = Vec::new();
    for entry in list.value.entries() {
        match entry {
            EnvFileRef::Path(p) => {
                let at = Spanned::new(p.clone(), list.referenced, list.defined);
                let Some((path, bytes)) = blob(l, src, &at) else {
                    continue;
                };
                let text = String::from_utf8_lossy(bytes).to_string();
                match files::parse_env_file(&text) {
                    Ok(pairs) => from_files.extend(pairs),
                    Err(e) => {
                        let file = SourceFile { path, text };
                        let len = file.text[e.offset..]
                            .find('\n')
                            .unwrap_or(file.text.len() - e.offset);
                        l.report(file.error_at(
                            (e.offset, len).into(),
                            "invalid env file line",
                            e.message,
                        ));
                    }
                }
            }
            EnvFileRef::Secret(SecretRef { secret }) => {
                let value = l.need_secret(secret, needs_secrets, || {
                    src.error(
                        list,
                        format!("secret {secret:?} has no value"),
                        "secret not set",
                    )
                });
                if let Some(Err(e)) = value.map(|v| files::parse_env_file(&v)) {
                    // The line's number only: its text is the secret's.
                    l.report(
                        src.error(
                            list,
                            format!(
                                "secret {secret:?} is not an env file: line {} is not KEY=VALUE",
                                e.line
                            ),
                            "this env file",
                        )
                        .with_help("a secret used as an env file holds KEY=VALUE lines"),
                    );
                }
                if !secret_files.contains(secret) {
                    secret_files.push(secret.clone());
                }
            }
        }
    }
    for (k, v) in from_files {
        env.entry(k).or_insert(EnvValue::Plain(v));
    }
    secret_files
}

#[cfg(test)]
mod tests {
    use super::super::tests::{errors, files};
    use super::*;

    const WEB: &str = "name: web\npod:\n  containers:\n    - name: app\n      image: nginx\n      env: {MODE: env}\n      env_file: [./config/app.env, {secret: more}]\n      files:\n        - {source: config/nginx.conf, target: /etc/nginx/nginx.conf, mode: 0600}\n        - {source: config/db.conf, target: /etc/db.conf, template: true}\n";

    fn repo() -> RepoFiles {
        let mut f = files(&[("web.yaml", WEB)]);
        for (path, text) in [
            ("config/nginx.conf", "worker_processes 1;\n"),
            ("config/db.conf", "a\npassword=${{ secrets.db }}\n"),
            ("config/app.env", "MODE=file\nLEVEL=debug\n"),
        ] {
            f.blobs.insert(path.into(), text.as_bytes().to_vec());
        }
        f
    }

    #[test]
    fn the_files_a_deployment_names_are_listed_for_the_shell() {
        let wanted: Vec<String> = referenced_files(&repo()).into_iter().collect();
        assert_eq!(
            wanted,
            ["config/app.env", "config/db.conf", "config/nginx.conf"]
        );
    }

    #[test]
    fn files_and_env_files_become_the_spec() {
        let values = |n: &str| Some(format!("value of {n}").replace("value of more", "EXTRA=1"));
        let state = load(&repo(), &values).expect("valid");
        let c = &state.deployments[0].pod.containers[0];
        assert_eq!(c.env["MODE"], EnvValue::Plain("env".into()));
        assert_eq!(c.env["LEVEL"], EnvValue::Plain("debug".into()));
        assert_eq!(c.env_secret_files, ["more"]);
        assert_eq!(c.files[0].mode, "0600");
        assert_eq!(
            c.files[0].sha256,
            crate::model::sha256_hex(b"worker_processes 1;\n")
        );
        assert_eq!(
            (c.files[1].template, c.files[1].secrets.clone()),
            (true, vec!["db".to_string()])
        );
        assert_eq!(c.secret_names(), ["more", "db"]);
        assert_eq!(state.files.len(), 3, "the contents travel by hash");
    }

    #[test]
    fn a_bad_template_is_pointed_at_inside_the_template() {
        let mut f = repo();
        f.blobs
            .insert("config/db.conf".into(), b"a\nb=${{ vault.x }}\n".to_vec());
        let errs = errors(&f);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("config/db.conf:2:7 invalid template")),
            "{errs:?}"
        );
    }
}
