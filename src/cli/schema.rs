use clap::{Args, ValueEnum};
use miette::Result;

/// Print a JSON Schema of a repository file, or of the JSON plan, made from the types berth
/// reads them with.
///
/// Point an editor's YAML language server at it with a first line in each file:
///   # yaml-language-server: $schema=../.berth/deployment.schema.json
///
/// Examples:
///   berth schema deployment > .berth/deployment.schema.json
///   berth schema project > .berth/project.schema.json
///   berth schema inventory > .berth/inventory.schema.json
///   berth schema policy > /etc/berth/policy.schema.json
///   berth schema --plan > plan.schema.json
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct SchemaArgs {
    /// Which file: a deployment (deployments/*.yaml), the project (berth.yaml), the
    /// inventory, or the operator's policy.
    #[arg(value_enum, default_value = "deployment", conflicts_with = "plan")]
    pub file: SchemaFile,
    /// The schema of `berth plan --format json` (and of saved plans) instead.
    #[arg(long)]
    pub plan: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaFile {
    Deployment,
    Project,
    Inventory,
    /// The operator's policy file (`--policy`), kept outside the repository.
    Policy,
}

pub fn run(a: SchemaArgs) -> Result<u8> {
    let text = if a.plan {
        pretty(schemars::schema_for!(crate::plan::Plan))
    } else {
        text(a.file)
    };
    crate::outln!("{text}");
    Ok(super::exit::OK)
}

/// The JSON Schema of one kind of repository file.
pub fn text(file: SchemaFile) -> String {
    use crate::repo::schema::{DeploymentFile, InventoryFile, ProjectFile};
    pretty(match file {
        SchemaFile::Deployment => schemars::schema_for!(DeploymentFile),
        SchemaFile::Project => schemars::schema_for!(ProjectFile),
        SchemaFile::Inventory => schemars::schema_for!(InventoryFile),
        SchemaFile::Policy => schemars::schema_for!(crate::repo::policy::PolicyFile),
    })
}

fn pretty(schema: schemars::Schema) -> String {
    serde_json::to_string_pretty(&schema).expect("a schema serialises")
}
