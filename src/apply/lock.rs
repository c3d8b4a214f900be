//! The apply lock: one per project on every host an apply touches, so two applies never
//! interleave. A lock is a Docker network named `berth-lock-<project>`, created with
//! `CheckDuplicate` (engines refuse a second network of that name), labelled with its owner
//! and the time it was taken; releasing removes it. `berth unlock` removes a stale one.

use crate::hosts::{docker::raw_json, Connected, Fleet};
use crate::model::label;
use bollard::query_parameters::InspectNetworkOptions;
use futures_util::future::join_all;
use serde_json::json;

pub const OWNER_LABEL: &str = "berth.lock.owner";
pub const SINCE_LABEL: &str = "berth.lock.since";

pub fn lock_name(project: &str) -> String {
    format!("berth-lock-{project}")
}

/// Why a lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Someone else holds it.
    Held {
        host: String,
        owner: String,
        since: String,
    },
    Failed {
        host: String,
        error: String,
    },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { host, owner, since } => write!(
                f,
                "the apply lock on {host} is held by {owner} since {since} (unix time); if that apply is gone, run `berth unlock`"
            ),
            LockError::Failed { host, error } => write!(f, "cannot take the apply lock on {host}: {error}"),
        }
    }
}

/// Who is applying: user, machine and process, for the lock's label.
pub fn owner() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host} pid {}", std::process::id())
}

async fn take(c: &Connected, project: &str, owner: &str, since: u64) -> Result<(), LockError> {
    let name = lock_name(project);
    let body = json!({
        "Name": name,
        "CheckDuplicate": true,
        "Labels": { label::PROJECT: project, OWNER_LABEL: owner, SINCE_LABEL: since.to_string() },
    });
    let host = c.host.name.clone();
    let (status, reply) = raw_json(
        &c.session,
        &c.host.docker_socket,
        hyper::Method::POST,
        "/networks/create",
        body,
    )
    .await
    .map_err(|error| LockError::Failed {
        host: host.clone(),
        error,
    })?;
    match status {
        201 => Ok(()),
        409 => {
            let labels = c
                .docker
                .inspect_network(&name, None::<InspectNetworkOptions>)
                .await
                .ok()
                .and_then(|n| n.labels)
                .unwrap_or_default();
            let get = |k: &str| labels.get(k).cloned().unwrap_or_else(|| "unknown".into());
            Err(LockError::Held {
                host,
                owner: get(OWNER_LABEL),
                since: get(SINCE_LABEL),
            })
        }
        other => Err(LockError::Failed {
            host,
            error: format!("the engine answered {other}: {reply}"),
        }),
    }
}

async fn remove(c: &Connected, project: &str) -> Result<(), String> {
    match c.docker.remove_network(&lock_name(project)).await {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(format!("{}: {e}", c.host.name)),
    }
}

/// The locks taken on a set of hosts; release them when the apply is over.
pub struct Locks<'a> {
    fleet: &'a Fleet,
    project: String,
    hosts: Vec<String>,
}

/// Takes the lock on every given host in parallel; on any failure, releases the ones taken.
pub async fn acquire<'a>(
    fleet: &'a Fleet,
    project: &str,
    hosts: &[String],
    since: u64,
) -> Result<Locks<'a>, LockError> {
    let owner = owner();
    let connected: Vec<&Connected> = hosts
        .iter()
        .filter_map(|h| fleet.connected.get(h))
        .collect();
    let results = join_all(connected.iter().map(|c| take(c, project, &owner, since))).await;
    let mut taken = Vec::new();
    let mut first_error = None;
    for (c, r) in connected.iter().zip(results) {
        match r {
            Ok(()) => taken.push(c.host.name.clone()),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let locks = Locks {
        fleet,
        project: project.to_string(),
        hosts: taken,
    };
    match first_error {
        None => Ok(locks),
        Some(e) => {
            let _ = locks.release().await;
            Err(e)
        }
    }
}

impl Locks<'_> {
    pub async fn release(self) -> Result<(), String> {
        force_release(self.fleet, &self.project, &self.hosts).await
    }
}

/// Removes the lock on the given hosts whoever holds it (`berth unlock`).
pub async fn force_release(fleet: &Fleet, project: &str, hosts: &[String]) -> Result<(), String> {
    let connected: Vec<&Connected> = hosts
        .iter()
        .filter_map(|h| fleet.connected.get(h))
        .collect();
    let errors: Vec<String> = join_all(connected.iter().map(|c| remove(c, project)))
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}
