//! Observing a host: one container list and, in parallel on the same connection, the
//! project's volume list (its data volumes, rollout states and lock leases) and its apply
//! lock, turned into plain values.
//! Optionally an inspect per managed container (deep).

use super::HostError;
use crate::model::clock::parse_rfc3339;
use crate::model::rollout::ROLLOUT_LABEL;
use crate::model::{
    label, Health, ObservedContainer, ObservedHost, ObservedLock, ObservedVolume, Resources,
    Rollout,
};
use bollard::models::ContainerSummary;
use bollard::query_parameters::{
    InspectContainerOptions, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
};
use bollard::Docker;
use futures_util::future::join_all;
use std::collections::{BTreeMap, HashMap};

/// What to observe beyond the container list.
#[derive(Debug, Clone, Default)]
pub struct ObserveOptions {
    /// The project whose containers a deep observation inspects.
    pub project: String,
    /// List berth's volumes (for `--prune-volumes`).
    pub volumes: bool,
    /// Inspect every managed container for resources changed out of band.
    pub deep: bool,
    /// Images to look for: whether the host has each, and the registry digests it has them
    /// by (for resolving tags, `plan::digests`).
    pub images: Vec<String>,
    /// The project's edges' admin port: ask the host's edge which configuration it runs.
    pub edge_admin_port: Option<u16>,
}

/// Reads the health from the status text (`Up 3 seconds (healthy)`), which the list call
/// returns, so no inspect per container is needed.
pub fn health_from_status(status: &str) -> Option<Health> {
    if status.contains("(healthy)") {
        Some(Health::Healthy)
    } else if status.contains("(unhealthy)") {
        Some(Health::Unhealthy)
    } else if status.contains("(health: starting)") {
        Some(Health::Starting)
    } else {
        None
    }
}

/// Podman's words for container states Docker has other words for (its compatible API passes
/// some of its own through); any other word stays as the engine said it.
fn docker_state(word: &str) -> &str {
    match word {
        "configured" => "created",
        "stopped" => "exited",
        other => other,
    }
}

/// The host's containers from the engine's list, read leniently: the state is taken as a word
/// (Podman says `configured`, `stopped`, `unknown`, which bollard's model refuses, and one
/// such container would fail the whole host).
fn containers_of(list: serde_json::Value) -> Result<Vec<ObservedContainer>, HostError> {
    let serde_json::Value::Array(items) = list else {
        return Err(HostError::Engine(format!(
            "the container list is not a list: {list}"
        )));
    };
    items
        .into_iter()
        .map(|mut item| {
            let state = (item.as_object_mut())
                .and_then(|o| o.remove("State"))
                .and_then(|s| s.as_str().map(str::to_string))
                .unwrap_or_default();
            let summary: ContainerSummary = serde_json::from_value(item)
                .map_err(|e| HostError::Engine(format!("reading a container: {e}")))?;
            Ok(container(summary, docker_state(&state)))
        })
        .collect()
}

fn container(c: ContainerSummary, state: &str) -> ObservedContainer {
    let mut host_ports: Vec<(u16, String)> = c
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
            p.public_port.map(|pp| (pp, proto))
        })
        .collect();
    host_ports.sort();
    host_ports.dedup();
    let mut volumes: Vec<String> = c
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.typ.as_ref().map(|t| t.to_string()).as_deref() == Some("volume"))
        .filter_map(|m| m.name)
        .collect();
    volumes.sort();
    ObservedContainer {
        id: c.id.unwrap_or_default(),
        name: c
            .names
            .unwrap_or_default()
            .first()
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        image: c.image.unwrap_or_default(),
        state: state.into(),
        health: c.status.as_deref().and_then(health_from_status),
        labels: c.labels.unwrap_or_default().into_iter().collect(),
        host_ports,
        volumes,
        resources: None,
        created: c.created.unwrap_or_default(),
    }
}

/// Why the lock on a host could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LockRead {
    /// Two networks of the lock's name, for an instant: two applies created it at once, and
    /// one of them is giving its own up (see `apply::lock`).
    #[error("two apply locks of one name on the host (two applies racing for it)")]
    Ambiguous,
    #[error("reading the apply lock: {0}")]
    Engine(HostError),
}

/// The project's lock network on a host, if there is one: its id, labels and creation. A
/// list (the engine's name filter matches parts of names, so the exact name is picked here),
/// which also tells two locks of one name apart from one.
pub async fn lock_network(
    docker: &Docker,
    project: &str,
) -> Result<Option<(String, crate::model::lock::Record)>, LockRead> {
    let name = crate::model::names::lock_name(project);
    let filters = HashMap::from([("name".to_string(), vec![name.clone()])]);
    let options = ListNetworksOptionsBuilder::default()
        .filters(&filters)
        .build();
    let found = docker
        .list_networks(Some(options))
        .await
        .map_err(|e| LockRead::Engine(e.into()))?;
    let mut exact = found
        .into_iter()
        .filter(|n| n.name.as_deref() == Some(name.as_str()));
    match (exact.next(), exact.next()) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(LockRead::Ambiguous),
        (Some(n), None) => Ok(Some((
            n.id.unwrap_or_default(),
            crate::model::lock::Record {
                labels: n.labels.unwrap_or_default().into_iter().collect(),
                created: n.created.as_deref().and_then(parse_rfc3339),
            },
        ))),
    }
}

/// What time the engine says it is (Unix seconds): the lock is judged by the clock of the
/// engine that keeps it.
pub async fn engine_now(docker: &Docker) -> Result<u64, HostError> {
    let info = docker
        .info()
        .await
        .map_err(|e| HostError::from(e).within("asking the engine's time"))?;
    info.system_time
        .as_deref()
        .and_then(parse_rfc3339)
        .ok_or_else(|| {
            HostError::Engine(format!(
                "the engine's time reads {:?}, not an RFC 3339 time",
                info.system_time.unwrap_or_default()
            ))
        })
}

async fn list_volumes(docker: &Docker, project: &str) -> Result<Vec<ObservedVolume>, HostError> {
    labelled_volumes(docker, vec![format!("{}={project}", label::PROJECT)]).await
}

/// The volumes that carry every one of these label filters (`key` or `key=value`), by name.
pub async fn labelled_volumes(
    docker: &Docker,
    labels: Vec<String>,
) -> Result<Vec<ObservedVolume>, HostError> {
    let filters = HashMap::from([("label".to_string(), labels.clone())]);
    let options = ListVolumesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let list = docker
        .list_volumes(Some(options))
        .await
        .map_err(|e| HostError::from(e).within("listing volumes"))?;
    let mut volumes: Vec<ObservedVolume> = list
        .volumes
        .unwrap_or_default()
        .into_iter()
        .filter(|v| {
            crate::model::labels::pass_all(|k| v.labels.get(k).map(String::as_str), &labels)
        })
        .map(|v| ObservedVolume {
            name: v.name,
            labels: v.labels.into_iter().collect(),
            created: v.created_at.as_deref().and_then(parse_rfc3339),
        })
        .collect();
    volumes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(volumes)
}

async fn resources(docker: &Docker, id: &str, network: &str) -> Result<Resources, HostError> {
    let info = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .map_err(|e| HostError::from(e).within(&format!("inspecting {id}")))?;
    let hc = info.host_config.unwrap_or_default();
    let aliases = info
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|mut n| n.remove(network))
        .and_then(|e| e.aliases)
        .unwrap_or_default();
    Ok(Resources {
        memory: hc.memory.unwrap_or(0).max(0) as u64,
        millicpus: (hc.nano_cpus.unwrap_or(0).max(0) / 1_000_000) as u64,
        restart: hc
            .restart_policy
            .and_then(|r| r.name)
            .map(|n| n.to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "no".into()),
        aliases,
    })
}

/// Lists every container of the host (managed or not: unmanaged ones matter for name and
/// port clashes) in one request; volumes are listed alongside when asked.
pub async fn observe(
    c: &super::Connected,
    opts: &ObserveOptions,
) -> Result<ObservedHost, HostError> {
    let (host, docker, session) = (&c.host.name, &c.docker, &c.session);
    let path = "/v1.41/containers/json?all=true";
    let list = c.raw_json(hyper::Method::GET, path, serde_json::Value::Null);
    let (list, volumes, lock, images, edge_generation) = tokio::join!(
        list,
        list_volumes(docker, &opts.project),
        lock_network(docker, &opts.project),
        images(docker, &opts.images),
        edge_generation(session, opts.edge_admin_port)
    );
    // The lock only tells whether a dead apply left it; a failure to read it (two of one name
    // for an instant) is not worth failing the host for.
    let mut lock = lock.ok().flatten().map(|(_, found)| ObservedLock {
        holder_gone: found
            .labels
            .get(crate::model::lock::PROCESS_LABEL)
            .is_some_and(|p| crate::here::has_ended(p)),
        labels: found.labels,
        created: found.created,
        engine_now: None,
    });
    // Only a locked host needs its engine's time (a second round trip, while an apply runs
    // or after one died): the lock's lease is judged by that engine's clock.
    if let Some(lock) = &mut lock {
        lock.engine_now = engine_now(docker).await.ok();
    }
    let mut volumes = volumes.map_err(|e| c.kind_of(e))?;
    let rollouts = rollouts_of(&mut volumes);
    let jobs = job_records_of(&mut volumes);
    let (leases, data): (Vec<ObservedVolume>, Vec<ObservedVolume>) = volumes
        .into_iter()
        .partition(|v| v.labels.contains_key(crate::model::lock::ID_LABEL));
    let mut volumes = data;
    if !opts.volumes {
        volumes.clear();
    }
    let list = match list {
        Ok((200, list)) => containers_of(list),
        Ok((status, said)) => Err(HostError::Engine(format!(
            "the engine answered {status}: {said}"
        ))),
        Err(e) => Err(e),
    };
    let mut containers = list.map_err(|e| e.within("listing containers"))?;
    if opts.deep {
        // Running ones only: a stopped container serves no name and its resources matter
        // only once it starts, and most stopped ones are old revisions kept for rollback.
        let managed: Vec<usize> = (0..containers.len())
            .filter(|&i| containers[i].label(label::PROJECT) == Some(opts.project.as_str()))
            .filter(|&i| containers[i].is_running())
            .collect();
        let network = crate::model::names::network_name(&opts.project);
        let found = join_all(
            managed
                .iter()
                .map(|&i| resources(docker, &containers[i].id, &network)),
        )
        .await;
        for (i, r) in managed.into_iter().zip(found) {
            containers[i].resources = Some(r.map_err(|e| c.kind_of(e))?);
        }
    }
    Ok(ObservedHost {
        host: host.to_string(),
        containers,
        volumes,
        rollouts,
        leases,
        lock,
        images,
        jobs,
        edge_generation,
    })
}

/// Which configuration the host's edge runs (`generation …` on its admin port), asked in
/// parallel with the container list; `None` when no edge answers.
async fn edge_generation(
    session: &crate::hosts::ssh::Session,
    admin_port: Option<u16>,
) -> Option<String> {
    let port = admin_port?;
    let asked = crate::hosts::http::get(session, "127.0.0.1", port, "/");
    let (code, body) = tokio::time::timeout(std::time::Duration::from_secs(5), asked)
        .await
        .ok()?
        .ok()?;
    let generation = body.trim().strip_prefix("generation ")?;
    (code == 200).then(|| generation.to_string())
}

/// The images the host has among those asked about, with their registry digests. An image
/// the engine cannot inspect is taken as absent (it is pulled when needed).
async fn images(docker: &Docker, wanted: &[String]) -> BTreeMap<String, Vec<String>> {
    let found = join_all(wanted.iter().map(|i| docker.inspect_image(i))).await;
    wanted
        .iter()
        .zip(found)
        .filter_map(|(image, found)| {
            let found = found.ok()?;
            Some((image.clone(), found.repo_digests.unwrap_or_default()))
        })
        .collect()
}

/// Takes the job records (labels on empty volumes) out of berth's volumes.
fn job_records_of(volumes: &mut Vec<ObservedVolume>) -> Vec<crate::model::JobRecord> {
    let mut records = Vec::new();
    volumes.retain(|v| match v.labels.get(label::JOB_RECORD) {
        Some(json) => {
            records.extend(serde_json::from_str(json).ok());
            false
        }
        None => true,
    });
    records
}

/// Splits berth's volumes into data volumes and rollout states (labels on empty volumes).
fn rollouts_of(volumes: &mut Vec<ObservedVolume>) -> Vec<Rollout> {
    let mut rollouts = Vec::new();
    volumes.retain(|v| match v.labels.get(ROLLOUT_LABEL) {
        Some(json) => {
            rollouts.extend(serde_json::from_str::<Rollout>(json).ok());
            false
        }
        None => true,
    });
    rollouts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_podman_list_with_its_own_state_words_is_read_whole() {
        let list = serde_json::json!([
            {"Id": "a", "Names": ["/web-1-app"], "Image": "web:1", "State": "running",
             "Status": "Up 3 seconds (healthy)", "Labels": {"berth.project": "shop"}},
            {"Id": "b", "Names": ["/web-2-app"], "Image": "web:1", "State": "configured"},
            {"Id": "c", "Names": ["/web-3-app"], "Image": "web:1", "State": "stopped"},
            {"Id": "d", "Names": ["/web-4-app"], "Image": "web:1", "State": "unknown"}
        ]);
        let found = containers_of(list).unwrap();
        let states: Vec<String> = found.iter().map(|c| c.state.to_string()).collect();
        assert_eq!(states, ["running", "created", "exited", "unknown"]);
        assert_eq!(found[0].name, "web-1-app");
        assert_eq!(found[0].health, Some(crate::model::Health::Healthy));
        assert!(containers_of(serde_json::json!({"message": "no"})).is_err());
    }
}
