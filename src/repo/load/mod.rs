//! From repository files to a validated [`DesiredState`]. Pure: the files, the commit and the
//! secret values come in as plain values. Every problem becomes a diagnostic pointing at its
//! file, line and column, and all of them are reported together.

use super::diag::{Diagnostics, SourceFile};
use super::schema::*;
use super::units;
use crate::model::labels::{check_key, check_object_name, check_value};
use crate::model::names;
use crate::model::policy::{Policy, Refusal, SecretUser};
use crate::model::secret::SecretValues;
use crate::model::*;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, HashMap};

mod checks;
mod deployment;
mod env;
mod environments;
mod files;
mod hosts;
mod ingress;
mod jobs;
mod registries;
mod strategy;
use checks::{check_placement, check_services};
use deployment::load_deployment;
pub use files::{referenced_files, repo_path};
use hosts::load_hosts;
use registries::load_registries;

pub const PROJECT_FILE: &str = "berth.yaml";
pub const DEFAULT_INVENTORY: &str = "inventory.yaml";
pub const DEPLOYMENTS_DIR: &str = "deployments/";

/// The files of a repository at one commit (path relative to the root → text).
#[derive(Debug, Clone, Default)]
pub struct RepoFiles {
    pub commit: Option<String>,
    /// The YAML files.
    pub files: BTreeMap<String, String>,
    /// Other files the deployments name (`files:`, `env_file:`), as bytes.
    pub blobs: BTreeMap<String, Vec<u8>>,
}

/// Looks up a secret's value by name; the shell reads them from the environment.
pub type SecretLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

const DEFAULT_MIN_READY_MS: u64 = 2_000;
const DEFAULT_HEALTH_TIMEOUT_MS: u64 = 60_000;

struct Loader<'a> {
    diags: Diagnostics,
    /// `None`: secret values are not needed (render, validate).
    secrets: Option<SecretLookup<'a>>,
    /// Only deployments this selector matches need their secrets set (`-l`).
    needs_secrets: Option<&'a Selector>,
    values: SecretValues,
    repo: &'a RepoFiles,
    /// The operator's policy, when one is given: each value it limits is checked where it
    /// is written.
    policy: Option<&'a Policy>,
    /// Who reads the secrets named now (the deployment being loaded, a registry login, the
    /// edge), for the policy's `secrets:` rules.
    secret_user: SecretUser,
}

impl Loader<'_> {
    /// A secret's value, when values are read and this deployment `needs` them; a missing
    /// one is reported with `error` and the help that says where to set it.
    fn need_secret(
        &mut self,
        name: &str,
        needs: bool,
        error: impl FnOnce() -> super::diag::SpecError,
    ) -> Option<String> {
        if let Some(why) = secret_name_problem(name) {
            let mut e = error();
            e.message = format!("invalid secret name {name:?}");
            e.label = why.into();
            self.report(
                e.with_help("a secret name is letters, digits, `-`, `_` and `.`: db-password"),
            );
            return None;
        }
        if let Some(Err(refusal)) = self.policy.map(|p| p.check_secret(&self.secret_user, name)) {
            // Refused before its value is looked up: it is never read.
            let mut e = error();
            e.message = refusal.message;
            e.label = "refused by the policy".into();
            self.report(e.with_help(refusal.rule));
            return None;
        }
        let lookup = self.secrets.filter(|_| needs)?;
        match lookup(name) {
            Some(value) => {
                self.values.insert(name, value.clone());
                Some(value)
            }
            None => {
                self.report(error().with_help(secret_help(name)));
                None
            }
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(&mut self, file: &SourceFile) -> Option<T> {
        file.parse().map_err(|report| self.diags.push(report)).ok()
    }

    /// Asks the policy (when there is one) about a value, and reports a refusal at it.
    fn check_policy<T>(
        &mut self,
        file: &SourceFile,
        at: &Spanned<T>,
        check: impl FnOnce(&Policy) -> Result<(), Refusal>,
    ) {
        if let Some(Err(refusal)) = self.policy.map(check) {
            let e = file.error(at, refusal.message, "refused by the policy");
            self.report(e.with_help(refusal.rule));
        }
    }

    fn report(&mut self, e: super::diag::SpecError) {
        self.diags.push(miette::Report::new(e));
    }

    fn name(&mut self, file: &SourceFile, name: &Spanned<String>, what: &str) {
        if let Err(why) = check_object_name(&name.value) {
            self.report(file.error(name, format!("invalid {what} name"), why));
        }
    }

    fn labels(&mut self, file: &SourceFile, map: &SpannedMap) -> Labels {
        let mut out = Labels::new();
        for (k, v) in map {
            if let Err((at, why)) = check_key(&k.value) {
                let start = file.content_start(&k.referenced) + at;
                self.report(file.error_at((start, 1).into(), "invalid label key", why));
            }
            if let Err((at, why)) = check_value(&v.value) {
                let start = file.content_start(&v.referenced) + at;
                self.report(file.error_at((start, 1).into(), "invalid label value", why));
            }
            out.insert(k.value.clone(), v.value.clone());
        }
        out
    }

    fn selector(&mut self, file: &SourceFile, text: &Spanned<String>) -> Selector {
        match Selector::parse(&text.value) {
            Ok(s) => s,
            Err(e) => {
                let start = file.content_start(&text.referenced) + e.offset;
                self.report(file.error_at((start, 1).into(), "invalid label selector", e.message));
                Selector::everything()
            }
        }
    }

    fn duration(
        &mut self,
        file: &SourceFile,
        value: &Option<Spanned<String>>,
        default: u64,
    ) -> u64 {
        let Some(v) = value else { return default };
        units::duration_ms(&v.value).unwrap_or_else(|why| {
            self.report(file.error(v, "invalid duration", why));
            default
        })
    }

    fn amount(
        &mut self,
        file: &SourceFile,
        value: &Option<Spanned<Scalar>>,
        default: Amount,
    ) -> Amount {
        let Some(v) = value else { return default };
        Amount::parse(&v.value.to_string()).unwrap_or_else(|why| {
            self.report(file.error(v, "invalid amount", why));
            default
        })
    }
}

fn source(files: &RepoFiles, path: &str) -> Option<SourceFile> {
    files.files.get(path).map(|text| SourceFile {
        path: path.to_string(),
        text: text.clone(),
    })
}

fn args(a: &Args) -> Vec<String> {
    match a {
        Args::List(v) => v.clone(),
        Args::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
    }
}

/// Loads and validates a repository. On any error nothing is returned but the diagnostics.
pub fn load(files: &RepoFiles, secrets: SecretLookup) -> Result<DesiredState, Diagnostics> {
    load_with(files, Some(secrets), None)
}

/// Loads the repository; `secrets` looks up the values of the secrets that the deployments
/// `needs_secrets` selects name (all of them when `None`); without `secrets`, no value is read
/// and none is needed.
pub fn load_with<'a>(
    files: &RepoFiles,
    secrets: Option<SecretLookup<'a>>,
    needs_secrets: Option<&'a Selector>,
) -> Result<DesiredState, Diagnostics> {
    load_for(files, None, secrets, needs_secrets)
}

/// As [`load_with`], for one of the environments berth.yaml declares (`-e`).
pub fn load_for<'a>(
    files: &RepoFiles,
    environment: Option<&str>,
    secrets: Option<SecretLookup<'a>>,
    needs_secrets: Option<&'a Selector>,
) -> Result<DesiredState, Diagnostics> {
    load_under(files, environment, secrets, needs_secrets, None)
}

/// As [`load_for`], with every value the operator's policy limits checked against it: a
/// refusal is a diagnostic at the value, naming the rule.
pub fn load_under<'a>(
    files: &RepoFiles,
    environment: Option<&str>,
    secrets: Option<SecretLookup<'a>>,
    needs_secrets: Option<&'a Selector>,
    policy: Option<&'a Policy>,
) -> Result<DesiredState, Diagnostics> {
    let mut l = Loader {
        diags: Diagnostics::default(),
        secrets,
        needs_secrets,
        values: SecretValues::default(),
        repo: files,
        policy,
        secret_user: SecretUser::Edge,
    };
    let Some(project_src) = source(files, PROJECT_FILE) else {
        l.diags.push(if files.files.contains_key("berth.yml") {
            miette::miette!(
                help = "berth reads berth.yaml: rename berth.yml to berth.yaml (git mv berth.yml berth.yaml)",
                "no {PROJECT_FILE} in the repository, but a berth.yml"
            )
        } else {
            miette::miette!(
                help = "a berth repository has berth.yaml at its root (see docs/repository.md)",
                "no {PROJECT_FILE} in the repository"
            )
        });
        return Err(l.diags);
    };
    let project: Option<ProjectFile> = l.parse(&project_src);
    if let Some(p) = &project {
        l.name(&project_src, &p.project, "project");
    }
    let chosen = match &project {
        Some(p) => environments::choose(&mut l, &project_src, p, environment),
        None => None,
    };
    let defaults = project.as_ref().map(|p| &p.defaults);
    let base_strategy = Strategy {
        stop_timeout_s: crate::model::DEFAULT_STOP_TIMEOUT_S,
        max_surge: Amount::Count(1),
        max_unavailable: Amount::Count(0),
        kind: StrategyKind::Rolling,
        min_ready_ms: DEFAULT_MIN_READY_MS,
        health_timeout_ms: DEFAULT_HEALTH_TIMEOUT_MS,
        drain_ms: 1000,
        steps: vec![],
        auto_promote: false,
        scale_down_delay_ms: 30_000,
        history_limit: crate::model::DEFAULT_HISTORY_LIMIT,
    };
    let default_strategy = l.strategy(
        &project_src,
        defaults.and_then(|d| d.strategy.as_ref()),
        &base_strategy,
    );
    let default_restart = match defaults.and_then(|d| d.restart.as_ref()) {
        Some(r) => check_restart(&mut l, &project_src, r),
        None => "unless-stopped".to_string(),
    };
    let default_max_per_host = defaults.and_then(|d| d.max_per_host);

    let inventory_path = chosen
        .as_ref()
        .and_then(|(_, e)| e.inventory.clone())
        .or_else(|| project.as_ref().and_then(|p| p.inventory.clone()))
        .unwrap_or_else(|| DEFAULT_INVENTORY.to_string());
    let before_inventory = l.diags.reports.len();
    let hosts = match source(files, &inventory_path) {
        Some(src) => load_hosts(&mut l, &src),
        None => {
            l.diags.push(miette::miette!(
                "inventory file {inventory_path} not found in the repository"
            ));
            vec![]
        }
    };
    let inventory_failed = hosts.is_empty() && l.diags.reports.len() > before_inventory;

    let mut deployments: Vec<(Deployment, SourceFile, DeploymentFile)> = Vec::new();
    for path in files.files.keys() {
        let is_yaml = path.ends_with(".yaml") || path.ends_with(".yml");
        if !path.starts_with(DEPLOYMENTS_DIR) || !is_yaml {
            continue;
        }
        let src = source(files, path).expect("listed file exists");
        let Some(raw) = l.parse::<DeploymentFile>(&src) else {
            continue;
        };
        let d = load_deployment(
            &mut l,
            &src,
            &raw,
            &default_strategy,
            &default_restart,
            default_max_per_host,
        );
        if let Some((_, first_src, first)) = deployments.iter().find(|(d0, _, _)| d0.name == d.name)
        {
            let e = src
                .error(
                    &raw.name,
                    format!("two deployments are named {:?}", d.name),
                    "declared again here",
                )
                .with_help(format!(
                    "first declared in {} line {}",
                    first_src.path,
                    first.name.referenced.line()
                ));
            l.report(e);
            continue;
        }
        deployments.push((d, src, raw));
    }

    if let Some((_, env)) = &chosen {
        environments::apply_overrides(&mut l, &project_src, env, &mut deployments);
    }
    // The project as the hosts know it: an environment's own name, so that two environments
    // on one host never touch each other's containers.
    let project_name = match (&project, &chosen) {
        (Some(_), Some((_, e))) if e.project.is_some() => {
            let p = e.project.as_ref().expect("checked");
            l.name(&project_src, p, "project");
            p.value.clone()
        }
        (Some(p), Some((name, _))) => format!("{}-{name}", p.project.value),
        (Some(p), None) => p.project.value.clone(),
        (None, _) => String::new(),
    };
    let environment = chosen.as_ref().map(|(name, _)| name.clone());
    // Only the deployments that will be planned need their registry's password set.
    let planned: Vec<Deployment> = deployments
        .iter()
        .map(|(d, _, _)| d)
        .filter(|d| l.needs_secrets.is_none_or(|s| s.matches(&d.labels)))
        .cloned()
        .collect();
    let registries = match &project {
        Some(p) => load_registries(&mut l, &project_src, &p.registries, &planned),
        None => vec![],
    };
    let edge = ingress::edge_deployment(
        &mut l,
        &project_src,
        project.as_ref().and_then(|p| p.edge.as_ref()),
        &hosts,
        &deployments,
        &default_strategy,
    );
    let mut state = DesiredState {
        project: project_name,
        environment,
        commit: files.commit.clone(),
        hosts,
        deployments: deployments.iter().map(|(d, _, _)| d.clone()).collect(),
        registries,
        secrets: std::mem::take(&mut l.values),
        files: crate::model::files::by_hash(&files.blobs),
        edge: None,
    };
    // Without a readable inventory every placement would fail too: say the cause only.
    if !inventory_failed {
        check_placement(&mut l, &state, &deployments);
    }
    check_services(&mut l, &deployments);
    if let Some((d, settings)) = edge {
        state.deployments.push(d);
        state.edge = Some(settings);
    }
    if l.diags.is_empty() {
        Ok(state)
    } else {
        Err(l.diags)
    }
}

fn check_restart(l: &mut Loader, src: &SourceFile, r: &Spanned<String>) -> String {
    const POLICIES: [&str; 4] = ["no", "always", "unless-stopped", "on-failure"];
    if !POLICIES.contains(&r.value.as_str()) {
        l.report(
            src.error(
                r,
                format!("unknown restart policy {:?}", r.value),
                "not a restart policy",
            )
            .with_help("use no, always, unless-stopped or on-failure"),
        );
    }
    r.value.clone()
}

/// Why a secret name cannot be used: it names an environment variable
/// (`BERTH_SECRET_<NAME>`) and a file in `$BERTH_SECRETS_DIR`.
pub fn secret_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty");
    }
    if name.starts_with('.') {
        return Some("it starts with a dot");
    }
    (!name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    .then_some("only letters, digits, -, _ and .")
}

/// The environment variable a secret's value is read from: `BERTH_SECRET_<NAME>`, upper case,
/// with `-` and `.` as `_`.
/// What to set for a secret that has no value: its variable, or a file that holds it.
pub fn secret_help(name: &str) -> String {
    let var = secret_env_var(name);
    format!(
        "set the environment variable {var} (or {var}_FILE to a file that holds the value, or put it in a file named {name} in $BERTH_SECRETS_DIR)"
    )
}

pub fn secret_env_var(name: &str) -> String {
    format!(
        "BERTH_SECRET_{}",
        name.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}

/// `nginx` and `nginx:latest` are the same image; so are `docker.io/library/nginx` and `nginx`.
pub fn normalise_image(image: &str) -> String {
    let mut s = image.trim().to_string();
    for prefix in [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.to_string();
        }
    }
    let last = s.rsplit('/').next().unwrap_or(&s);
    if !last.contains(':') && !s.contains('@') {
        s.push_str(":latest");
    }
    s
}

#[cfg(test)]
mod policy_tests;
#[cfg(test)]
pub(super) mod tests;
