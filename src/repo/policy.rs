//! The operator's policy file (`--policy`, `BERTH_POLICY`): YAML kept outside the
//! repository, read into a [`Policy`]. Pure: the text comes in, every problem comes back at
//! its line and column. docs/policy.md describes each rule; `berth schema policy` prints the
//! JSON Schema of these types.

use super::diag::{Diagnostics, SourceFile};
use crate::model::policy::{is_clean_path, Policy, Rule, SecretRule, SecretUsers};
use crate::model::registry::normalize_server;
use crate::model::Selector;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// What a commit of the repository may ask of the hosts. A rule left out allows anything,
/// except `bind_mounts` (none), `host_network` (false) and `edge_images` (berth's default).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Which commits may deploy.
    #[serde(default)]
    pub commits: Option<CommitsFile>,
    /// The registries images and `registries:` logins may come from, as images name them
    /// (`ghcr.io`, `registry.example.com:5000`, `docker.io`). `plan` sends the repository's
    /// login for a registry only when it is listed here.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub registries: Option<Spanned<Vec<String>>>,
    /// Patterns (`*` for any run of characters) the images' names must match, without tag
    /// or digest, as Docker names them: `ghcr.io/acme/*`, `docker.io/library/redis`.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub images: Option<Spanned<Vec<String>>>,
    /// Host directories bind mounts may come from (the directory and what is under it).
    /// None when left out or empty.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub bind_mounts: Option<Spanned<Vec<String>>>,
    /// Whether containers may run on the host's network: berth's edge proxies do (an
    /// `ingress:` needs it). False when left out.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub host_network: Option<Spanned<bool>>,
    /// Patterns the edge proxies' image must match (default: berth's own, haproxy).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub edge_images: Option<Spanned<Vec<String>>>,
    /// Which secrets each deployment, registry login and the edge may read. When set, a
    /// secret no rule allows its user is refused.
    #[serde(default)]
    #[schemars(with = "Option<Vec<SecretRuleFile>>")]
    pub secrets: Option<Spanned<Vec<Spanned<SecretRuleFile>>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitsFile {
    /// A file in git's allowed_signers format (`gpg.ssh.allowedSignersFile`): the commit
    /// berth reads must carry an SSH signature by one of its keys. Relative to the policy
    /// file.
    #[schemars(with = "String")]
    pub allowed_signers: Spanned<String>,
}

/// One rule: who (exactly one of `deployments`, `selector`, `registries`, `edge`) and which
/// secrets (`allow`, names or patterns with `*`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRuleFile {
    /// Deployments by name.
    #[serde(default)]
    pub deployments: Option<Vec<String>>,
    /// Deployments whose labels match this selector (`tier=backend`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub selector: Option<Spanned<String>>,
    /// The logins berth.yaml declares for these registries.
    #[serde(default)]
    pub registries: Option<Vec<String>>,
    /// The edge proxies (ingress TLS certificates).
    #[serde(default)]
    pub edge: Option<bool>,
    /// The secrets they may read.
    pub allow: Vec<String>,
}

fn rule<T>(value: &Spanned<T>, map: impl FnOnce(&T) -> T) -> Rule<T> {
    Rule {
        value: map(&value.value),
        line: Some(value.referenced.line() as usize),
    }
}

/// Reads a policy; `name` is how messages name the file.
pub fn parse(name: &str, text: &str) -> Result<Policy, Diagnostics> {
    let src = SourceFile {
        path: name.to_string(),
        text: text.to_string(),
    };
    let mut diags = Diagnostics::default();
    let raw: PolicyFile = match src.parse() {
        Ok(raw) => raw,
        Err(report) => {
            diags.push(report);
            return Err(diags);
        }
    };
    let mut policy = Policy::new(name);
    let mut report = |e: super::diag::SpecError| diags.push(miette::Report::new(e));
    if let Some(c) = &raw.commits {
        if c.allowed_signers.value.trim().is_empty() {
            report(src.error(&c.allowed_signers, "allowed_signers names no file", "empty"));
        }
        policy.allowed_signers = Some(rule(&c.allowed_signers, Clone::clone));
    }
    if let Some(r) = &raw.registries {
        for server in &r.value {
            let n = normalize_server(server);
            if n.is_empty() || n.contains(['/', ' ', '*']) {
                report(src.error(r, format!("invalid registry {server:?}"), "not a registry host")
                    .with_help("name registries as images name them: ghcr.io, registry.example.com:5000, docker.io"));
            }
        }
        policy.registries = Some(rule(r, |v| v.iter().map(|s| normalize_server(s)).collect()));
    }
    if let Some(i) = &raw.images {
        policy.images = Some(rule(i, |v| {
            v.iter()
                .map(|p| crate::model::policy::full_name(p))
                .collect()
        }));
    }
    if let Some(b) = &raw.bind_mounts {
        for path in &b.value {
            if !is_clean_path(path) {
                report(
                    src.error(b, format!("invalid host directory {path:?}"), "here")
                        .with_help("a bind_mounts entry is an absolute path without `.`, `..` or `//`: /srv/shop"),
                );
            }
        }
        policy.bind_mounts = rule(b, Clone::clone);
    }
    if let Some(h) = &raw.host_network {
        policy.host_network = rule(h, |v| *v);
    }
    if let Some(e) = &raw.edge_images {
        policy.edge_images = rule(e, Clone::clone);
    }
    if let Some(s) = &raw.secrets {
        let mut rules = Vec::new();
        for r in &s.value {
            if let Some(users) = secret_users(&src, r, &mut report) {
                rules.push(SecretRule {
                    users,
                    allow: r.value.allow.clone(),
                    line: r.referenced.line() as usize,
                });
            }
        }
        policy.secrets = Some(Rule {
            value: rules,
            line: Some(s.referenced.line() as usize),
        });
    }
    if diags.is_empty() {
        Ok(policy)
    } else {
        Err(diags)
    }
}

fn secret_users(
    src: &SourceFile,
    r: &Spanned<SecretRuleFile>,
    report: &mut impl FnMut(super::diag::SpecError),
) -> Option<SecretUsers> {
    let v = &r.value;
    let given = [
        v.deployments.is_some(),
        v.selector.is_some(),
        v.registries.is_some(),
        v.edge == Some(true),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        report(
            src.error(r, "a secrets rule is for one kind of user", "this rule")
                .with_help("give exactly one of deployments: [...], selector: ..., registries: [...] or edge: true"),
        );
        return None;
    }
    if let Some(names) = &v.deployments {
        return Some(SecretUsers::Deployments(names.clone()));
    }
    if let Some(text) = &v.selector {
        return match Selector::parse(&text.value) {
            Ok(s) => Some(SecretUsers::Selector(s)),
            Err(e) => {
                let start = src.content_start(&text.referenced) + e.offset;
                report(src.error_at((start, 1).into(), "invalid label selector", e.message));
                None
            }
        };
    }
    if let Some(servers) = &v.registries {
        return Some(SecretUsers::Registries(
            servers.iter().map(|s| normalize_server(s)).collect(),
        ));
    }
    Some(SecretUsers::Edge)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "\
commits:
  allowed_signers: signers
registries: [ghcr.io, 'https://Registry.example.com:5000/']
images: ['ghcr.io/acme/*', nginx]
bind_mounts:
  - /srv/shop
host_network: true
secrets:
  - deployments: [web]
    allow: [db-password]
  - selector: tier=backend
    allow: ['api-*']
  - registries: [ghcr.io]
    allow: [ghcr-token]
";

    #[test]
    fn a_policy_file_becomes_rules_with_their_lines() {
        let p = parse("policy.yaml", POLICY).expect("valid");
        assert_eq!(p.allowed_signers.as_ref().unwrap().value, "signers");
        let r = p.registries.as_ref().unwrap();
        assert_eq!(r.value, ["ghcr.io", "registry.example.com:5000"]);
        assert_eq!(r.line, Some(3));
        assert_eq!(
            p.images.as_ref().unwrap().value,
            ["ghcr.io/acme/*", "docker.io/library/nginx"]
        );
        assert_eq!(p.bind_mounts.value, ["/srv/shop"]);
        assert_eq!(p.bind_mounts.line, Some(6));
        assert!(p.host_network.value);
        let s = p.secrets.as_ref().unwrap();
        assert_eq!(s.value.len(), 3);
        assert_eq!(s.value[1].line, 11);
        assert!(matches!(s.value[2].users, SecretUsers::Registries(_)));
    }

    #[test]
    fn a_bad_policy_is_refused_at_its_line() {
        let text = "bind_mounts: [/srv/../etc]\nsecrets:\n  - {deployments: [web], edge: true, allow: [x]}\n  - {selector: 'a in (', allow: [x]}\nregistries: ['ghcr.io/acme']\n";
        let e = parse("policy.yaml", text).unwrap_err();
        let messages: Vec<String> = e.reports.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            messages,
            [
                "invalid registry \"ghcr.io/acme\"",
                "invalid host directory \"/srv/../etc\"",
                "a secrets rule is for one kind of user",
                "invalid label selector",
            ]
        );
        let typo = parse("policy.yaml", "registry: [ghcr.io]\n").unwrap_err();
        let shown = format!("{:?}", typo.reports[0]);
        assert!(shown.contains("registry"), "{shown}");
    }

    #[test]
    fn an_empty_policy_has_the_strict_defaults() {
        let p = parse("p.yaml", "{}\n").expect("valid");
        assert_eq!(p, Policy::new("p.yaml"));
        assert!(p.check_bind_mount("/srv").is_err());
        assert!(p.check_host_network("the edge").is_err());
    }
}
