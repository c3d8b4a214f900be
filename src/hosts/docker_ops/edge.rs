//! The edge proxies on a host: their configuration written into the volume they share, and
//! a reload (SIGUSR2 to HAProxy's master: a new worker takes the listeners, the old one
//! finishes its requests) that counts as done once the edge reports the new generation.

use super::*;
use crate::hosts::ssh::Session;
use crate::model::haproxy::{file_bytes, generation, with_generation, EdgeFile};
use crate::model::ingress::{EDGE_CONFIG, EDGE_DEPLOYMENT, EDGE_DIR};
use crate::model::label;
use std::time::{Duration, Instant};

/// How long an edge may take to load a new configuration.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an edge may show its old configuration before it is asked to reload again.
const RESIGNAL_AFTER: Duration = Duration::from_secs(2);

/// What an edge is given: its configuration, with the generation filled in, and the files
/// it names, with their bytes.
pub struct EdgeSetup {
    pub generation: String,
    /// Absolute path in the edge → bytes (the configuration first).
    pub files: Vec<(String, Vec<u8>)>,
}

/// Reads the secrets the edge's files hold and fills in the generation.
pub fn materialize(
    config: &str,
    files: &[EdgeFile],
    secret: &(dyn Fn(&str) -> Option<String> + Send + Sync),
) -> Result<EdgeSetup, OpError> {
    let mut files = file_bytes(files, secret)?;
    let generation = generation(config, &files);
    let config = with_generation(config, &generation);
    files.insert(
        0,
        (format!("{EDGE_DIR}/{EDGE_CONFIG}"), config.into_bytes()),
    );
    Ok(EdgeSetup { generation, files })
}

/// A tar archive of the edge's files, to upload at `/` (certificates readable by root only).
fn archive(setup: &EdgeSetup) -> Result<Vec<u8>, OpError> {
    let mut archive = tar::Builder::new(Vec::new());
    for (path, bytes) in &setup.files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(if path.ends_with(".pem") { 0o600 } else { 0o644 });
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        archive
            .append_data(&mut header, path.trim_start_matches('/'), bytes.as_slice())
            .map_err(|e| format!("packing {path}: {e}"))?;
    }
    archive
        .into_inner()
        .map_err(|e| OpError::Refused(format!("packing the edge configuration: {e}")))
}

/// Writes the edge's files through `container` (into the volume the edges share).
pub(super) async fn write_config(
    docker: &Docker,
    container: &str,
    setup: &EdgeSetup,
) -> Result<(), OpError> {
    let options = UploadToContainerOptionsBuilder::default().path("/").build();
    docker
        .upload_to_container(
            container,
            Some(options),
            bollard::body_full(archive(setup)?.into()),
        )
        .await
        .map_err(doing("writing the edge configuration"))
}

/// The edge containers running on this host.
async fn running_edges(docker: &Docker, project: &str) -> Result<Vec<String>, OpError> {
    let wanted = vec![
        format!("{}={project}", label::PROJECT),
        format!("{}={EDGE_DEPLOYMENT}", label::DEPLOYMENT),
    ];
    let filters = HashMap::from([("label", wanted.clone())]);
    let options = ListContainersOptionsBuilder::default()
        .filters(&filters)
        .build();
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(doing("listing the edges"))?;
    Ok(list
        .into_iter()
        .filter(|c| {
            let labels = c.labels.as_ref();
            crate::model::labels::pass_all(|k| labels?.get(k).map(String::as_str), &wanted)
        })
        .filter_map(|c| {
            c.names?
                .first()
                .map(|n| n.trim_start_matches('/').to_string())
        })
        .collect())
}

/// Gives the running edges a new configuration and waits until they serve with it.
pub async fn reload(
    docker: &Docker,
    session: &Session,
    project: &str,
    setup: &EdgeSetup,
    admin_port: u16,
) -> Result<(), OpError> {
    let edges = running_edges(docker, project).await?;
    let Some(first) = edges.first() else {
        return Ok(());
    };
    write_config(docker, first, setup).await?;
    signal_reload(docker, &edges).await?;
    let want = format!("generation {}", setup.generation);
    let started = Instant::now();
    let mut signalled = Instant::now();
    loop {
        let seen = crate::hosts::http::get(session, "127.0.0.1", admin_port, "/").await;
        match seen {
            Ok((200, body)) if body.trim() == want => return Ok(()),
            // HAProxy's master can miss a reload asked while it is still finishing the one
            // before: ask again (the configuration is written, so a second reload is the same).
            _ if signalled.elapsed() > RESIGNAL_AFTER && started.elapsed() <= RELOAD_TIMEOUT => {
                signal_reload(docker, &edges).await?;
                signalled = Instant::now();
            }
            _ if started.elapsed() > RELOAD_TIMEOUT => {
                let logs = last_logs(docker, first, 10).await;
                return Err(OpError::Refused(format!(
                    "the edge did not load its new configuration within {}s (it says {seen:?}); its log:\n{logs}",
                    RELOAD_TIMEOUT.as_secs()
                )));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Asks each edge's HAProxy master to reload its configuration (SIGUSR2).
async fn signal_reload(docker: &Docker, edges: &[String]) -> Result<(), OpError> {
    for e in edges {
        let options = KillContainerOptionsBuilder::default()
            .signal("SIGUSR2")
            .build();
        docker
            .kill_container(e, Some(options))
            .await
            .or_else(|err| ignore(err, &[404, 409]))
            .map_err(doing(format!("reloading {e}")))?;
    }
    Ok(())
}
