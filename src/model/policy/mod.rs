//! The operator's policy: what a commit of the repository may ask of the hosts. The
//! repository is untrusted input (a pull request is planned with production credentials at
//! hand, `sync` applies what the remote says); the policy lives outside it and says which
//! registries, images, host paths, host network and secrets a commit may use. Pure: the
//! loader asks it about each value where the value is written, so a refusal points at the
//! file, line and column, and names the rule that refused it.

use super::registry::{registry_of, DOCKER_HUB};
use super::{image_name, Labels, Selector};

/// A rule's value and the line of the policy file that set it (`None`: the default).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule<T> {
    pub value: T,
    pub line: Option<usize>,
}

impl<T> Rule<T> {
    pub fn default_value(value: T) -> Self {
        Rule { value, line: None }
    }
}

/// Which secrets one kind of user may read: `allow` holds names or patterns with `*`.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRule {
    pub users: SecretUsers,
    pub allow: Vec<String>,
    pub line: usize,
}

/// Who a secret rule is for.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretUsers {
    /// Deployments by name.
    Deployments(Vec<String>),
    /// Deployments whose labels match.
    Selector(Selector),
    /// The logins (`registries:` in berth.yaml) for these servers.
    Registries(Vec<String>),
    /// berth's edge proxies (the certificates of `ingress.tls`).
    Edge,
}

/// Who asks for a secret.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretUser {
    Deployment { name: String, labels: Labels },
    Registry(String),
    Edge,
}

impl std::fmt::Display for SecretUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretUser::Deployment { name, .. } => write!(f, "deployment {name}"),
            SecretUser::Registry(server) => write!(f, "the login for registry {server}"),
            SecretUser::Edge => write!(f, "the edge proxies"),
        }
    }
}

/// The policy as loaded (see `repo::policy` for the file, and docs/policy.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The policy file as named where berth runs, for messages.
    pub file: String,
    /// The allowed_signers file (git's format): the commit read must carry an SSH signature
    /// by one of its keys. Relative paths are relative to the policy file.
    pub allowed_signers: Option<Rule<String>>,
    /// The registries images and logins may come from (any when unset).
    pub registries: Option<Rule<Vec<String>>>,
    /// Patterns the images' names must match (`ghcr.io/acme/*`; any when unset).
    pub images: Option<Rule<Vec<String>>>,
    /// Host directories a bind mount may come from (none by default).
    pub bind_mounts: Rule<Vec<String>>,
    /// Whether containers may run on the host's network (the edge proxies do; no by default).
    pub host_network: Rule<bool>,
    /// Patterns the edge proxies' image name must match (berth's default image by default).
    pub edge_images: Rule<Vec<String>>,
    /// Which secrets each user may read (any when unset).
    pub secrets: Option<Rule<Vec<SecretRule>>>,
}

/// Why the policy refuses a value: the refusal, and the rule behind it with its line.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub message: String,
    pub rule: String,
}

impl Policy {
    /// A policy with nothing set: only the defaults (no bind mounts, no host network, the
    /// default edge image).
    pub fn new(file: impl Into<String>) -> Self {
        Policy {
            file: file.into(),
            allowed_signers: None,
            registries: None,
            images: None,
            bind_mounts: Rule::default_value(vec![]),
            host_network: Rule::default_value(false),
            edge_images: Rule::default_value(vec![
                image_name(super::ingress::DEFAULT_EDGE_IMAGE).to_string()
            ]),
            secrets: None,
        }
    }

    /// `NAME (policy.yaml line 4)`, or `NAME (the default of policy.yaml)`.
    fn rule_name<T>(&self, name: &str, rule: &Rule<T>) -> String {
        match rule.line {
            Some(line) => format!("{name} ({} line {line})", self.file),
            None => format!("{name} (unset in {}, so its default)", self.file),
        }
    }

    fn refusal<T>(&self, message: String, name: &str, rule: &Rule<T>, allows: String) -> Refusal {
        Refusal {
            message,
            rule: format!("the policy's {}: {allows}", self.rule_name(name, rule)),
        }
    }

    /// An image a container runs: its registry and its name.
    pub fn check_image(&self, image: &str) -> Result<(), Refusal> {
        self.check_registry(image)?;
        if let Some(rule) = &self.images {
            let name = full_name(image);
            if !rule.value.iter().any(|p| glob(p, &name)) {
                return Err(self.refusal(
                    format!("image {name} is not allowed by the policy"),
                    "images",
                    rule,
                    allows_list("allows images named", &rule.value),
                ));
            }
        }
        Ok(())
    }

    fn check_registry(&self, image: &str) -> Result<(), Refusal> {
        let server = registry_of(image);
        self.check_server(server, || {
            format!("registry {server} (of image {image}) is not allowed by the policy")
        })
    }

    /// A registry against `registries:`, refused with `message`.
    fn check_server(&self, server: &str, message: impl FnOnce() -> String) -> Result<(), Refusal> {
        match &self.registries {
            Some(rule) if !rule.value.iter().any(|r| r == server) => Err(self.refusal(
                message(),
                "registries",
                rule,
                allows_list("allows", &rule.value),
            )),
            _ => Ok(()),
        }
    }

    /// The edge proxies' image: its registry, and the edge's own image patterns.
    pub fn check_edge_image(&self, image: &str) -> Result<(), Refusal> {
        self.check_registry(image)?;
        let name = full_name(image);
        let rule = &self.edge_images;
        let wanted: Vec<String> = rule.value.iter().map(|p| full_name(p)).collect();
        if !wanted.iter().any(|p| glob(p, &name)) {
            return Err(self.refusal(
                format!("edge image {name} is not allowed by the policy (the edge runs as root on the host network)"),
                "edge_images",
                rule,
                allows_list("allows", &wanted),
            ));
        }
        Ok(())
    }

    /// A login berth.yaml declares for a registry.
    pub fn check_login(&self, server: &str) -> Result<(), Refusal> {
        self.check_server(server, || {
            format!("a login for registry {server} is not allowed by the policy")
        })
    }

    /// Whether `plan` (made for review, e.g. of a pull request) may send the repository's
    /// login for this registry: only when the policy lists it.
    pub fn lists_registry(&self, server: &str) -> bool {
        (self.registries.as_ref()).is_some_and(|r| r.value.iter().any(|s| s == server))
    }

    /// A host path mounted into a container.
    pub fn check_bind_mount(&self, source: &str) -> Result<(), Refusal> {
        let rule = &self.bind_mounts;
        let allows = || {
            if rule.value.is_empty() {
                "allows no host path".to_string()
            } else {
                allows_list("allows host paths under", &rule.value)
            }
        };
        if !is_clean_path(source) {
            return Err(self.refusal(
                format!("host path {source} is not a plain absolute path (no `.`, `..` or `//`), so the policy cannot judge it"),
                "bind_mounts",
                rule,
                allows(),
            ));
        }
        let under = |prefix: &String| {
            let prefix = prefix.trim_end_matches('/');
            source == prefix
                || prefix.is_empty()
                || source
                    .strip_prefix(prefix)
                    .is_some_and(|r| r.starts_with('/'))
        };
        if !rule.value.iter().any(under) {
            return Err(self.refusal(
                format!("bind mount of host path {source} is not allowed by the policy"),
                "bind_mounts",
                rule,
                allows(),
            ));
        }
        Ok(())
    }

    /// A container on the host's network namespace (berth's edge proxies).
    pub fn check_host_network(&self, who: &str) -> Result<(), Refusal> {
        let rule = &self.host_network;
        if rule.value {
            return Ok(());
        }
        Err(self.refusal(
            format!("{who} would run on the host's network, which the policy does not allow"),
            "host_network",
            rule,
            "is false".into(),
        ))
    }

    /// A secret a deployment, a registry login or the edge reads.
    pub fn check_secret(&self, user: &SecretUser, name: &str) -> Result<(), Refusal> {
        let Some(rule) = &self.secrets else {
            return Ok(());
        };
        let mine: Vec<&SecretRule> = rule.value.iter().filter(|r| r.users.has(user)).collect();
        if mine.iter().any(|r| r.allow.iter().any(|p| glob(p, name))) {
            return Ok(());
        }
        let why = if mine.is_empty() {
            format!("no rule is for {user}")
        } else {
            let lines: Vec<String> = mine.iter().map(|r| r.line.to_string()).collect();
            format!(
                "the rules for {user} (line {}) do not list it",
                lines.join(", ")
            )
        };
        Err(Refusal {
            message: format!("{user} may not read secret {name:?} under the policy"),
            rule: format!("the policy's {}: {why}", self.rule_name("secrets", rule)),
        })
    }
}

impl SecretUsers {
    fn has(&self, user: &SecretUser) -> bool {
        match (self, user) {
            (SecretUsers::Deployments(names), SecretUser::Deployment { name, .. }) => {
                names.contains(name)
            }
            (SecretUsers::Selector(s), SecretUser::Deployment { labels, .. }) => s.matches(labels),
            (SecretUsers::Registries(servers), SecretUser::Registry(server)) => {
                servers.contains(server)
            }
            (SecretUsers::Edge, SecretUser::Edge) => true,
            _ => false,
        }
    }
}

fn allows_list(verb: &str, items: &[String]) -> String {
    if items.is_empty() {
        return "allows none".into();
    }
    format!("{verb} {}", items.join(", "))
}

/// An image's name as Docker pulls it, without tag or digest: `nginx:1` →
/// `docker.io/library/nginx`, `acme/web` → `docker.io/acme/web`, `ghcr.io/a/b:2` →
/// `ghcr.io/a/b`.
pub fn full_name(image: &str) -> String {
    let name = image_name(image.trim());
    let server = registry_of(name);
    if server != DOCKER_HUB {
        return name.to_string();
    }
    let path = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) => rest,
        _ => name,
    };
    if path.contains('/') {
        format!("{DOCKER_HUB}/{path}")
    } else {
        format!("{DOCKER_HUB}/library/{path}")
    }
}

/// An absolute path without `.`, `..` or empty components (a trailing `/` aside): one whose
/// prefix says where it is.
pub fn is_clean_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.is_empty()
        || rest
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// `*` matches any run of characters (`/` too); everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text.ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests;
