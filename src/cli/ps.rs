use super::common::*;
use crate::model::{label, ObservedHost};
use crate::ops::context::{load_repo, observe_hosts, Depth, Secrets};
use clap::Args;
use miette::Result;
use serde::Serialize;
use std::collections::BTreeMap;

/// List every container berth manages for the project, one line each: host, name,
/// deployment, revision, role, state, health and image.
///
/// Examples:
///   berth ps
///   berth ps --host h1 --format json
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct PsArgs {
    /// Only containers on this host.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// text or json.
    #[arg(long, value_enum, default_value = "text")]
    pub format: StateFormat,
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
}

/// One managed container as `berth ps` shows it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Row {
    pub host: String,
    pub name: String,
    pub deployment: String,
    pub revision: String,
    /// stable, canary, blue, green, or job.
    pub role: String,
    pub state: String,
    pub health: String,
    pub image: String,
}

/// The project's containers in an observation, by host and name.
pub fn rows(observed: &BTreeMap<String, Result<ObservedHost, String>>, project: &str) -> Vec<Row> {
    let mut out = Vec::new();
    for (host, o) in observed {
        let Ok(o) = o else { continue };
        for c in o
            .containers
            .iter()
            .filter(|c| c.label(label::PROJECT) == Some(project))
        {
            let text = |k: &str| c.label(k).unwrap_or("-").to_string();
            out.push(Row {
                host: host.clone(),
                name: c.name.clone(),
                deployment: text(label::DEPLOYMENT),
                revision: text(label::REVISION),
                role: if c.label(label::JOB).is_some() {
                    "job".into()
                } else {
                    text(label::ROLE)
                },
                state: c.state.as_str().to_string(),
                health: c
                    .health
                    .as_ref()
                    .map_or("-".into(), |h| format!("{h:?}").to_lowercase()),
                image: c.image.clone(),
            });
        }
    }
    out
}

pub fn table(rows: &[Row]) -> String {
    let header = [
        "HOST",
        "NAME",
        "DEPLOYMENT",
        "REVISION",
        "ROLE",
        "STATE",
        "HEALTH",
        "IMAGE",
    ];
    let cells: Vec<[&str; 8]> = rows
        .iter()
        .map(|r| {
            [
                &r.host,
                &r.name,
                &r.deployment,
                &r.revision,
                &r.role,
                &r.state,
                &r.health,
                &r.image,
            ]
            .map(String::as_str)
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |row: [&str; 8]| {
        let mut s: String = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}  "))
            .collect();
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    std::iter::once(line(header))
        .chain(cells.into_iter().map(line))
        .collect()
}

pub fn run(a: PsArgs) -> Result<u8> {
    let desired = load_repo(&a.repo.source(Some(&a.ssh)), Secrets::NotNeeded)?;
    super::logs::check_host(&desired, a.host.as_deref())?;
    let to = a.ssh.connection()?;
    let (_, observed) = runtime().block_on(observe_hosts(&desired, &to, Depth::Shallow));
    let mut unreachable = false;
    for (h, o) in &observed {
        if let Err(e) = o {
            eprintln!("warning: {h} is unreachable: {e}");
            unreachable = true;
        }
    }
    let rows: Vec<Row> = rows(&observed, &desired.project)
        .into_iter()
        .filter(|r| a.host.as_ref().is_none_or(|h| h == &r.host))
        .collect();
    match a.format {
        StateFormat::Json => {
            crate::outln!("{}", serde_json::to_string_pretty(&rows).expect("json"))
        }
        StateFormat::Text => crate::out!("{}", table(&rows)),
    }
    Ok(if unreachable && !a.ssh.allow_unreachable {
        super::exit::ERROR
    } else {
        super::exit::OK
    })
}
