use super::exit;
use clap::Args;
use miette::{miette, Result};
use std::path::PathBuf;

/// Write a starter repository: berth.yaml, an inventory with one host and one deployment,
/// each commented, and their JSON Schemas in .berth/ for editors (`berth schema`). It passes `berth validate` as it is; point the host at yours, commit,
/// and `berth plan`.
///
/// Examples:
///   berth init
///   berth init ./deploy --host 203.0.113.10 --user deploy
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct InitArgs {
    /// Where to write it (created if missing; files already there are never overwritten).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The project's name (default: the directory's).
    #[arg(long)]
    pub project: Option<String>,
    /// The host's address.
    #[arg(long, default_value = "192.0.2.10")]
    pub host: String,
    /// The SSH user on the host.
    #[arg(long, default_value = "root")]
    pub user: String,
}

const BERTH_YAML: &str = include_str!("init/berth.yaml");
const INVENTORY_YAML: &str = include_str!("init/inventory.yaml");
const WEB_YAML: &str = include_str!("init/web.yaml");

/// The starter files, filled in: (path, text). Each YAML file names its JSON Schema
/// (written beside them in `.berth/`) for editors with a YAML language server.
pub fn starter(project: &str, host: &str, user: &str) -> Vec<(&'static str, String)> {
    use super::schema::{text, SchemaFile};
    let with_schema =
        |schema: &str, body: String| format!("# yaml-language-server: $schema={schema}\n{body}");
    vec![
        (
            "berth.yaml",
            with_schema(
                ".berth/project.schema.json",
                BERTH_YAML.replace("PROJECT", project),
            ),
        ),
        (
            "inventory.yaml",
            with_schema(
                ".berth/inventory.schema.json",
                INVENTORY_YAML
                    .replace("ADDRESS", host)
                    .replace("USER", user),
            ),
        ),
        (
            "deployments/web.yaml",
            with_schema("../.berth/deployment.schema.json", WEB_YAML.to_string()),
        ),
        (".berth/project.schema.json", text(SchemaFile::Project)),
        (".berth/inventory.schema.json", text(SchemaFile::Inventory)),
        (
            ".berth/deployment.schema.json",
            text(SchemaFile::Deployment),
        ),
    ]
}

/// A project name from a directory's: lower case, letters, digits and `-`.
fn project_name(dir: &std::path::Path) -> String {
    let full = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let base = full
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "app".into()
    } else {
        name
    }
}

/// The starter files must pass `validate` as written: a `--host` or `--user` the loader
/// refuses stops init before it writes anything.
fn check_starter(files: &[(&str, String)]) -> Result<()> {
    let mut repo = crate::repo::load::RepoFiles::default();
    for (path, text) in files {
        repo.files.insert(path.to_string(), text.clone());
    }
    match crate::repo::load::load_with(&repo, None, None) {
        Ok(_) => Ok(()),
        Err(diags) => Err(miette!(
            "berth init would write a repository that does not validate; check --host and --user:\n{:?}",
            diags
        )),
    }
}

pub fn run(a: InitArgs) -> Result<u8> {
    std::fs::create_dir_all(&a.dir)
        .map_err(|e| miette!("cannot create {}: {e}", a.dir.display()))?;
    let project = a.project.clone().unwrap_or_else(|| project_name(&a.dir));
    if let Err(why) = crate::model::labels::check_object_name(&project) {
        return Err(miette!(
            help = format!(
                "for example --project {}",
                project_name(std::path::Path::new(&project))
            ),
            "invalid --project {project:?}: {why}"
        ));
    }
    let files = starter(&project, &a.host, &a.user);
    check_starter(&files)?;
    let taken: Vec<String> = files
        .iter()
        .filter(|(p, _)| a.dir.join(p).exists())
        .map(|(p, _)| p.to_string())
        .collect();
    if !taken.is_empty() {
        return Err(miette!(
            help = "berth init writes a new repository; edit the files that are there instead",
            "{} already has {}; nothing was written",
            a.dir.display(),
            taken.join(", ")
        ));
    }
    for (path, text) in &files {
        let p = a.dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| miette!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&p, text).map_err(|e| miette!("cannot write {}: {e}", p.display()))?;
        crate::outln!("wrote {}", p.display());
    }
    crate::outln!(
        "next: edit inventory.yaml, then `git init && git add -A && git commit -m start`, `berth validate` and `berth plan`"
    );
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_repository_loads_without_a_problem() {
        let mut files = crate::repo::load::RepoFiles::default();
        for (path, text) in starter("shop", "203.0.113.10", "deploy") {
            files.files.insert(path.to_string(), text);
        }
        let state = crate::repo::load::load_with(&files, None, None).expect("valid");
        assert_eq!(state.project, "shop");
        assert_eq!(state.hosts[0].address, "203.0.113.10");
        assert_eq!(state.hosts[0].user, "deploy");
        assert_eq!(state.deployments[0].name, "web");
        assert_eq!(
            project_name(std::path::Path::new("/tmp/My Shop!")),
            "my-shop"
        );
        assert!(check_starter(&starter("shop", "bad address", "deploy")).is_err());
    }
}
