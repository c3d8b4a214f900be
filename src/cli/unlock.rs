use super::common::*;
use super::exit;
use crate::apply::lock;
use crate::hosts;
use clap::Args;
use miette::{miette, Result};

/// Remove the project's apply lock from every host, whoever holds it: for a lock left behind
/// by an apply that was killed. Make sure no apply is running first.
///
/// Example: berth unlock --repo ./deploy
#[derive(Args, Debug)]
pub struct UnlockArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
}

pub fn run(a: UnlockArgs) -> Result<u8> {
    let desired = load_repo(&a.repo, Some(&a.ssh))?;
    runtime().block_on(async {
        let fleet =
            hosts::connect_all(&desired.hosts, &a.ssh.options(), a.ssh.max_handshakes).await;
        let names: Vec<String> = fleet.connected.keys().cloned().collect();
        lock::force_release(&fleet, &desired.project, &names)
            .await
            .map_err(|e| miette!("{e}"))?;
        eprintln!(
            "apply lock of {} removed on {} host(s)",
            desired.project,
            names.len()
        );
        for (h, e) in &fleet.failed {
            eprintln!("warning: {h} is unreachable: {e}");
        }
        Ok(if fleet.failed.is_empty() {
            exit::OK
        } else {
            exit::ERROR
        })
    })
}
