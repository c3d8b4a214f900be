//! The lock's lease: a volume per renewal, labelled with the lock's id and when it expires.
//! A new lease volume is written before the previous one goes, so a held lock always has
//! one; a holder that cannot renew stops its apply before another may take the lock over.

use crate::hosts::observe::labelled_volumes;
use crate::hosts::Connected;
use crate::model::label;
use crate::model::lock;
use crate::model::names;
use crate::model::Labels;
use bollard::Docker;
use futures_util::future::join_all;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;

/// The lease volumes of the lock with this id (all of the project's when `id` is `None`).
pub(super) async fn leases(
    docker: &Docker,
    project: &str,
    id: Option<&str>,
) -> Result<Vec<(String, Labels)>, String> {
    let mut wanted = vec![format!("{}={project}", label::PROJECT)];
    wanted.push(match id {
        Some(id) => format!("{}={id}", lock::ID_LABEL),
        None => lock::ID_LABEL.to_string(),
    });
    let found = labelled_volumes(docker, wanted)
        .await
        .map_err(|e| format!("{e} (the lock's leases)"))?;
    Ok(found.into_iter().map(|v| (v.name, v.labels)).collect())
}

pub(super) async fn write_lease(
    c: &Connected,
    project: &str,
    id: &str,
    n: u64,
    expires: u64,
) -> Result<(), String> {
    let labels = HashMap::from([
        (label::PROJECT.to_string(), project.to_string()),
        (lock::ID_LABEL.to_string(), id.to_string()),
        (lock::EXPIRES_LABEL.to_string(), expires.to_string()),
    ]);
    let req = bollard::models::VolumeCreateRequest {
        name: Some(names::lease_name(project, id, n)),
        labels: Some(labels),
        ..Default::default()
    };
    c.docker
        .create_volume(req)
        .await
        .map(|_| ())
        .map_err(|e| format!("{}: writing the lock lease: {e}", c.host.name))
}

/// Renews the lease on every locked host until told to stop: a new lease volume first, then
/// the previous one goes, so a lease is always there.
pub(super) async fn renew(
    hosts: Vec<Connected>,
    project: String,
    id: String,
    lease: Duration,
    mut stop: watch::Receiver<bool>,
    lost: watch::Sender<Option<String>>,
) {
    let mut n = 0u64;
    let mut renewed: Vec<std::time::Instant> = vec![std::time::Instant::now(); hosts.len()];
    loop {
        tokio::select! {
            _ = tokio::time::sleep(lease / 3) => {}
            _ = stop.changed() => return,
        }
        let expires = crate::apply::unix_now() + lease.as_secs();
        let written = join_all(hosts.iter().map(|c| async {
            let ok = write_lease(c, &project, &id, n + 1, expires).await.is_ok();
            if ok {
                let old = names::lease_name(&project, &id, n);
                let _ = crate::apply::docker_ops::remove_volume(&c.docker, &old).await;
            }
            ok
        }))
        .await;
        n += 1;
        for (i, ok) in written.into_iter().enumerate() {
            if ok {
                renewed[i] = std::time::Instant::now();
            } else if renewed[i].elapsed() > lease * 2 / 3 {
                // Soon another apply may take this host's lock over: stop before it can.
                let _ = lost.send(Some(format!(
                    "the apply lock's lease on {} could not be renewed for {}s, so another apply may take it over: stopping",
                    hosts[i].host.name,
                    renewed[i].elapsed().as_secs()
                )));
                return;
            }
        }
    }
}
