//! Each plan step as Docker API calls. Every operation is idempotent: creating what exists or
//! removing what is gone succeeds, so a re-run converges.

use crate::model::{ContainerSpec, EnvValue};
use crate::plan::PodPlan;
use bollard::errors::Error as DockerError;
use bollard::models::*;
use bollard::query_parameters::*;
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};

/// Why a Docker operation failed, in words for the user.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The engine answered with an error while berth was doing something.
    #[error("{doing}: {source}")]
    Engine { doing: String, source: DockerError },
    /// The engine answered with an error that says enough by itself.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// Something else: a name held by what berth does not manage, a secret without a value.
    #[error("{0}")]
    Refused(String),
    /// An operation that failed inside a larger one.
    #[error("{doing}: {source}")]
    Within { doing: String, source: Box<OpError> },
}

impl From<String> for OpError {
    fn from(why: String) -> OpError {
        OpError::Refused(why)
    }
}

/// Wraps an operation's error with the larger one it was part of.
fn within(what: impl Into<String>) -> impl FnOnce(OpError) -> OpError {
    let what = what.into();
    move |source| OpError::Within {
        doing: what,
        source: Box::new(source),
    }
}

/// Wraps the engine's error with what berth was doing.
fn doing(what: impl Into<String>) -> impl FnOnce(DockerError) -> OpError {
    let what = what.into();
    move |source| OpError::Engine {
        doing: what,
        source,
    }
}

fn status_of(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Success when the engine's error is one of `codes` (already there, already gone).
fn ignore(e: DockerError, codes: &[u16]) -> Result<(), DockerError> {
    match status_of(&e) {
        Some(c) if codes.contains(&c) => Ok(()),
        _ => Err(e),
    }
}

/// The ownership label on networks and volumes berth creates.
fn project_labels(project: &str) -> HashMap<String, String> {
    HashMap::from([(
        crate::model::label::PROJECT.to_string(),
        project.to_string(),
    )])
}

/// Creates the project network if it is missing. Its subnet is pinned (Docker picks a free
/// one for a throwaway network, then the real one is created with it), because only a network
/// with a configured subnet lets a container be reconnected at the same address, which is how
/// a pod leaves its service without breaking the connections it is serving.
pub async fn ensure_network(docker: &Docker, name: &str, project: &str) -> Result<(), OpError> {
    match docker
        .inspect_network(name, None::<InspectNetworkOptions>)
        .await
    {
        Ok(_) => return Ok(()),
        Err(e) if status_of(&e) == Some(404) => {}
        Err(e) => return Err(doing(format!("inspecting network {name}"))(e)),
    }
    let subnet = free_subnet(docker, name, project).await?;
    let create = |ipam| bridge(name, project, ipam);
    let pinned = subnet.map(|subnet| Ipam {
        config: Some(vec![IpamConfig {
            subnet: Some(subnet),
            ..Default::default()
        }]),
        ..Default::default()
    });
    let result = match docker.create_network(create(pinned.clone())).await {
        // Another network took the subnet meanwhile: fall back to Docker's choice.
        Err(e) if pinned.is_some() && status_of(&e) != Some(409) => {
            docker.create_network(create(None)).await
        }
        other => other,
    };
    result
        .map(|_| ())
        .or_else(|e| ignore(e, &[409]))
        .map_err(doing(format!("creating network {name}")))
}

/// A bridge network of the project, with the given address management or Docker's own.
fn bridge(name: &str, project: &str, ipam: Option<Ipam>) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: name.to_string(),
        driver: Some("bridge".into()),
        labels: Some(project_labels(project)),
        ipam,
        ..Default::default()
    }
}

/// The subnet Docker would give a new network on this host, found with a throwaway network.
async fn free_subnet(
    docker: &Docker,
    name: &str,
    project: &str,
) -> Result<Option<String>, OpError> {
    let probe = format!("{name}-probe");
    docker
        .create_network(bridge(&probe, project, None))
        .await
        .map_err(doing(format!("creating network {probe}")))?;
    let subnet = docker
        .inspect_network(&probe, None::<InspectNetworkOptions>)
        .await
        .ok()
        .and_then(|n| n.ipam)
        .and_then(|i| i.config)
        .and_then(|c| c.into_iter().find_map(|c| c.subnet));
    docker
        .remove_network(&probe)
        .await
        .or_else(|e| ignore(e, &[404]))
        .map_err(doing(format!("removing network {probe}")))?;
    Ok(subnet)
}

pub async fn ensure_volume(docker: &Docker, name: &str, project: &str) -> Result<(), OpError> {
    let req = VolumeCreateRequest {
        name: Some(name.to_string()),
        labels: Some(project_labels(project)),
        ..Default::default()
    };
    docker
        .create_volume(req)
        .await
        .map(|_| ())
        .map_err(doing(format!("creating volume {name}")))
}

/// Replaces a deployment's rollout state (an empty volume whose label holds it), stamped with
/// the time now; `None` clears it.
pub async fn record_rollout(
    docker: &Docker,
    project: &str,
    deployment: &str,
    state: Option<&crate::model::Rollout>,
) -> Result<(), OpError> {
    use crate::model::{names::rollout_volume, rollout::ROLLOUT_LABEL};
    let name = rollout_volume(project, deployment);
    remove_volume(docker, &name).await?;
    let Some(state) = state else { return Ok(()) };
    let mut state = state.clone();
    state.since = super::unix_now();
    let mut labels = project_labels(project);
    labels.insert(
        ROLLOUT_LABEL.to_string(),
        serde_json::to_string(&state).expect("rollout serialises"),
    );
    let req = VolumeCreateRequest {
        name: Some(name.clone()),
        labels: Some(labels),
        ..Default::default()
    };
    docker
        .create_volume(req)
        .await
        .map(|_| ())
        .map_err(doing(format!(
            "recording the rollout state of {deployment}"
        )))
}

/// A container's address on a network.
pub async fn address(docker: &Docker, container: &str, network: &str) -> Result<String, OpError> {
    endpoint(docker, container, network)
        .await?
        .and_then(|e| e.ip_address)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| OpError::Refused(format!("{container} has no address on {network}")))
}

pub async fn remove_volume(docker: &Docker, name: &str) -> Result<(), OpError> {
    docker
        .remove_volume(name, None::<RemoveVolumeOptions>)
        .await
        .or_else(|e| ignore(e, &[404]))
        .map_err(doing(format!("removing volume {name}")))
}

/// Pulls the image unless the engine has it already.
pub async fn ensure_image(docker: &Docker, image: &str) -> Result<(), OpError> {
    if docker.inspect_image(image).await.is_ok() {
        return Ok(());
    }
    let options = CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let mut stream = docker.create_image(Some(options), None, None);
    while let Some(item) = stream.next().await {
        item.map_err(doing(format!("pulling {image}")))?;
    }
    Ok(())
}

/// A random salt (16 bytes, hex) for one secret of one container.
fn new_salt() -> Result<String, OpError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| format!("no randomness for a secret's salt: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Resolves env values (secrets from the environment) and seals each secret for the
/// container's label: a new random salt and an HMAC of the value keyed with it.
pub fn env_list(
    spec: &ContainerSpec,
    secrets: &(dyn Fn(&str) -> Option<String> + Send + Sync),
) -> Result<(Vec<String>, BTreeMap<String, String>), OpError> {
    let mut env = Vec::new();
    let mut sealed = BTreeMap::new();
    for (k, v) in &spec.env {
        match v {
            EnvValue::Plain(s) => env.push(format!("{k}={s}")),
            EnvValue::Secret { secret } => {
                let value =
                    secrets(secret).ok_or_else(|| format!("secret {secret} has no value"))?;
                sealed.insert(
                    secret.clone(),
                    crate::model::secret::seal(&new_salt()?, &value),
                );
                env.push(format!("{k}={value}"));
            }
        }
    }
    Ok((env, sealed))
}

fn create_body(
    pod: &PodPlan,
    index: usize,
    project: &str,
    env: Vec<String>,
) -> ContainerCreateBody {
    let c = &pod.containers[index];
    let spec = &c.spec;
    let first = &pod.containers[0].name;
    let ports: Vec<&crate::model::Port> = if index == 0 {
        // The first container owns the network, so it publishes every port of the pod.
        pod.containers
            .iter()
            .flat_map(|c| c.spec.ports.iter())
            .collect()
    } else {
        vec![]
    };
    let mut bindings: PortMap = HashMap::new();
    for p in &ports {
        let key = format!("{}/{}", p.container, p.protocol);
        let entry = bindings.entry(key).or_insert_with(|| Some(vec![]));
        if let (Some(h), Some(list)) = (p.host, entry.as_mut()) {
            list.push(PortBinding {
                host_ip: None,
                host_port: Some(h.to_string()),
            });
        }
    }
    let mut binds = Vec::new();
    for m in &spec.volumes {
        let source = if m.is_named_volume() {
            crate::model::names::volume_name(project, &m.source)
        } else {
            m.source.clone()
        };
        binds.push(format!(
            "{source}:{}{}",
            m.target,
            if m.read_only { ":ro" } else { "" }
        ));
    }
    let restart = match spec.restart.as_str() {
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => RestartPolicyNameEnum::NO,
    };
    let network_mode = if index == 0 {
        pod.network.clone()
    } else {
        format!("container:{first}")
    };
    let host_config = HostConfig {
        binds: (!binds.is_empty()).then_some(binds),
        port_bindings: (index == 0 && !bindings.is_empty()).then_some(bindings),
        restart_policy: Some(RestartPolicy {
            name: Some(restart),
            maximum_retry_count: None,
        }),
        network_mode: Some(network_mode),
        memory: spec.memory.map(|m| m as i64),
        nano_cpus: spec.millicpus.map(|m| (m as i64) * 1_000_000),
        init: spec.init.then_some(true),
        ..Default::default()
    };
    let networking_config = (index == 0).then(|| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            pod.network.clone(),
            // No service alias yet: the pod joins its service once it is ready.
            EndpointSettings::default(),
        )])),
    });
    let ms_to_ns = |ms: u64| (ms as i64) * 1_000_000;
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        hostname: (index == 0).then(|| pod.name.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(env),
        labels: Some(c.labels.clone().into_iter().collect()),
        exposed_ports: (!ports.is_empty()).then(|| {
            ports
                .iter()
                .map(|p| format!("{}/{}", p.container, p.protocol))
                .collect()
        }),
        healthcheck: spec.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: Some(ms_to_ns(h.interval_ms)),
            timeout: Some(ms_to_ns(h.timeout_ms)),
            retries: Some(h.retries as i64),
            start_period: Some(ms_to_ns(h.start_period_ms)),
            start_interval: None,
        }),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

/// Creates and starts the containers of a pod, the network owner first. A container that
/// exists already (a re-run) is started as it is.
pub async fn create_pod(
    docker: &Docker,
    pod: &PodPlan,
    project: &str,
    secrets: &(dyn Fn(&str) -> Option<String> + Send + Sync),
) -> Result<(), OpError> {
    for (i, c) in pod.containers.iter().enumerate() {
        let (env, sealed) = env_list(&c.spec, secrets)?;
        let mut body = create_body(pod, i, project, env);
        if !sealed.is_empty() {
            let labels = body.labels.get_or_insert_with(HashMap::new);
            labels.insert(
                crate::model::secret::SECRETS_LABEL.to_string(),
                serde_json::to_string(&sealed).expect("a map of strings serialises"),
            );
        }
        let options = CreateContainerOptionsBuilder::default()
            .name(&c.name)
            .build();
        match docker.create_container(Some(options), body).await {
            Ok(_) => {}
            // A re-run finds its own container; anything else with that name is not ours.
            Err(e) if status_of(&e) == Some(409) => {
                ensure_ours(docker, &c.name, project, &pod.name).await?
            }
            Err(e) => return Err(doing(format!("creating {}", c.name))(e)),
        }
        docker
            .start_container(&c.name, None::<StartContainerOptions>)
            .await
            .or_else(|e| ignore(e, &[304]))
            .map_err(doing(format!("starting {}", c.name)))?;
    }
    Ok(())
}

/// The labels of an existing container, or `None` when there is none by that name.
async fn labels_of(
    docker: &Docker,
    name: &str,
) -> Result<Option<HashMap<String, String>>, OpError> {
    match docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
    {
        Ok(info) => Ok(Some(info.config.and_then(|c| c.labels).unwrap_or_default())),
        Err(e) if status_of(&e) == Some(404) => Ok(None),
        Err(e) => Err(doing(format!("inspecting {name}"))(e)),
    }
}

fn label_is(labels: &HashMap<String, String>, key: &str, value: &str) -> bool {
    labels.get(key).map(String::as_str) == Some(value)
}

/// Checks that an existing container carries this project's and this pod's labels.
async fn ensure_ours(docker: &Docker, name: &str, project: &str, pod: &str) -> Result<(), OpError> {
    let labels = labels_of(docker, name).await?.unwrap_or_default();
    if label_is(&labels, crate::model::label::PROJECT, project)
        && label_is(&labels, crate::model::label::POD, pod)
    {
        Ok(())
    } else {
        Err(format!(
            "a container named {name} exists and does not belong to pod {pod} of project {project}; berth will not touch it"
        )
        .into())
    }
}

/// The named containers that exist and carry this project's label. berth acts on names from
/// its plan; this check keeps it from touching a container someone else created under such a
/// name since (a rollback removing a pod whose create failed on a name clash, for example).
async fn ours(docker: &Docker, names: &[String], project: &str) -> Result<Vec<String>, OpError> {
    let mut out = Vec::new();
    for n in names {
        if let Some(labels) = labels_of(docker, n).await? {
            if label_is(&labels, crate::model::label::PROJECT, project) {
                out.push(n.clone());
            }
        }
    }
    Ok(out)
}

pub async fn start_containers(
    docker: &Docker,
    names: &[String],
    project: &str,
) -> Result<(), OpError> {
    for n in ours(docker, names, project).await? {
        let started = docker
            .start_container(&n, None::<StartContainerOptions>)
            .await
            .or_else(|e| ignore(e, &[304]));
        match started {
            // A stopped container keeps the address it was pinned to when it last left its
            // service; another pod may hold it now. Let the network give it a free one.
            Err(e)
                if e.to_string()
                    .to_lowercase()
                    .contains("address already in use") =>
            {
                unpin_addresses(docker, &n).await?;
                docker
                    .start_container(&n, None::<StartContainerOptions>)
                    .await
                    .or_else(|e| ignore(e, &[304]))
                    .map_err(doing(format!("starting {n}")))?;
            }
            other => other.map_err(doing(format!("starting {n}")))?,
        }
    }
    Ok(())
}

/// Connects a stopped container again, with the same aliases, to every network where it
/// asks for a fixed address, without asking for one.
async fn unpin_addresses(docker: &Docker, container: &str) -> Result<(), OpError> {
    let info = docker
        .inspect_container(container, None::<InspectContainerOptions>)
        .await
        .map_err(doing(format!("inspecting {container}")))?;
    let networks = info
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default();
    for (network, endpoint) in networks {
        let pinned = endpoint
            .ipam_config
            .as_ref()
            .and_then(|c| c.ipv4_address.as_deref())
            .is_some_and(|a| !a.is_empty());
        if !pinned {
            continue;
        }
        let disconnect = NetworkDisconnectRequest {
            container: container.to_string(),
            force: Some(true),
        };
        docker
            .disconnect_network(&network, disconnect)
            .await
            .or_else(|e| ignore(e, &[404]))?;
        let connect = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(EndpointSettings {
                aliases: endpoint.aliases.filter(|a| !a.is_empty()),
                ..Default::default()
            }),
        };
        docker
            .connect_network(&network, connect)
            .await
            .map_err(doing(format!("connecting {container} to {network} again")))?;
    }
    Ok(())
}

/// Stops containers, sidecars first (they share the first container's network).
async fn stop_owned(docker: &Docker, names: &[String], timeout_s: u32) -> Result<(), OpError> {
    for n in names.iter().rev() {
        let options = StopContainerOptionsBuilder::default()
            .t(timeout_s as i32)
            .build();
        docker
            .stop_container(n, Some(options))
            .await
            .or_else(|e| ignore(e, &[304, 404]))
            .map_err(doing(format!("stopping {n}")))?;
    }
    Ok(())
}

pub async fn stop_containers(
    docker: &Docker,
    names: &[String],
    project: &str,
    timeout_s: u32,
) -> Result<(), OpError> {
    stop_owned(docker, &ours(docker, names, project).await?, timeout_s).await
}

pub async fn remove_containers(
    docker: &Docker,
    names: &[String],
    project: &str,
    timeout_s: u32,
) -> Result<(), OpError> {
    let names = ours(docker, names, project).await?;
    stop_owned(docker, &names, timeout_s).await?;
    for n in names.iter().rev() {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        docker
            .remove_container(n, Some(options))
            .await
            .or_else(|e| ignore(e, &[404]))
            .map_err(doing(format!("removing {n}")))?;
    }
    Ok(())
}

/// Puts a container behind service names on a network, unless it is already there (a re-run
/// must not disturb a serving pod).
pub async fn join_service(
    docker: &Docker,
    container: &str,
    network: &str,
    aliases: &[String],
) -> Result<(), OpError> {
    let current = endpoint(docker, container, network).await?;
    let have = current
        .as_ref()
        .and_then(|e| e.aliases.clone())
        .unwrap_or_default();
    if current.is_some() && aliases.iter().all(|a| have.contains(a)) {
        return Ok(());
    }
    reconnect_whole(docker, container, network, current, aliases)
        .await
        .map_err(within(format!(
            "putting {container} behind {}",
            aliases.join(", ")
        )))
}

/// Takes a container out from behind service names: new connections stop coming (Docker's
/// DNS drops it at once) while the ones it serves go on, as it keeps its address.
pub async fn leave_service(
    docker: &Docker,
    container: &str,
    network: &str,
    aliases: &[String],
) -> Result<bool, OpError> {
    let current = endpoint(docker, container, network).await?;
    let have = current
        .as_ref()
        .and_then(|e| e.aliases.clone())
        .unwrap_or_default();
    if current.is_none() || !aliases.iter().any(|a| have.contains(a)) {
        return Ok(false);
    }
    reconnect_whole(docker, container, network, current, &[])
        .await
        .map_err(within(format!(
            "taking {container} out of {}",
            aliases.join(", ")
        )))?;
    Ok(true)
}

async fn endpoint(
    docker: &Docker,
    container: &str,
    network: &str,
) -> Result<Option<EndpointSettings>, OpError> {
    match docker
        .inspect_container(container, None::<InspectContainerOptions>)
        .await
    {
        Ok(info) => Ok(info
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))),
        Err(e) if status_of(&e) == Some(404) => {
            Err(OpError::Refused(format!("{container} does not exist")))
        }
        Err(e) => Err(doing(format!("inspecting {container}"))(e)),
    }
}

/// `reconnect`, run to its end even when the apply stops waiting (Ctrl-C, SIGTERM): a pod
/// must never be left disconnected between the two calls, which would break the
/// connections it serves.
async fn reconnect_whole(
    docker: &Docker,
    container: &str,
    network: &str,
    current: Option<EndpointSettings>,
    aliases: &[String],
) -> Result<(), OpError> {
    let (docker, container, network, aliases) = (
        docker.clone(),
        container.to_string(),
        network.to_string(),
        aliases.to_vec(),
    );
    tokio::spawn(async move { reconnect(&docker, &container, &network, current, &aliases).await })
        .await
        .map_err(|e| OpError::Refused(format!("reconnecting: {e}")))?
}

/// Disconnects and connects again with new aliases, at the same address where the network
/// allows it (a pinned subnet), so established connections survive the switch.
async fn reconnect(
    docker: &Docker,
    container: &str,
    network: &str,
    current: Option<EndpointSettings>,
    aliases: &[String],
) -> Result<(), OpError> {
    let address = current
        .as_ref()
        .and_then(|e| e.ip_address.clone())
        .filter(|a| !a.is_empty());
    if current.is_some() {
        let disconnect = NetworkDisconnectRequest {
            container: container.to_string(),
            force: Some(true),
        };
        docker
            .disconnect_network(network, disconnect)
            .await
            .or_else(|e| ignore(e, &[404]))?;
    }
    let connect = |address: Option<String>| NetworkConnectRequest {
        container: container.to_string(),
        endpoint_config: Some(EndpointSettings {
            aliases: (!aliases.is_empty()).then(|| aliases.to_vec()),
            ipam_config: address.map(|a| EndpointIpamConfig {
                ipv4_address: Some(a),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    match docker
        .connect_network(network, connect(address.clone()))
        .await
    {
        // A network without a configured subnet (made before berth pinned them) takes no
        // address: connect with a new one.
        Err(e) if address.is_some() && status_of(&e) == Some(400) => docker
            .connect_network(network, connect(None))
            .await
            .map_err(OpError::from),
        other => other.map_err(OpError::from),
    }
}

/// The state of one container as a short inspect sees it.
pub struct Probe {
    pub running: bool,
    pub restarting: bool,
    pub health: Option<HealthStatusEnum>,
    pub exit_code: Option<i64>,
    pub health_log: Vec<String>,
}

pub async fn probe(docker: &Docker, name: &str) -> Result<Probe, OpError> {
    let info = docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .map_err(doing(format!("inspecting {name}")))?;
    let state = info.state.unwrap_or_default();
    let health = state.health.clone();
    Ok(Probe {
        running: state.running.unwrap_or(false),
        restarting: state.restarting.unwrap_or(false),
        health: health.as_ref().and_then(|h| h.status),
        exit_code: state.exit_code,
        health_log: health
            .and_then(|h| h.log)
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                format!(
                    "exit {}: {}",
                    r.exit_code.unwrap_or(-1),
                    r.output.unwrap_or_default().trim()
                )
            })
            .collect(),
    })
}

/// The last lines of a container's output, for failure reports.
pub async fn last_logs(docker: &Docker, name: &str, lines: usize) -> String {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    let mut stream = docker.logs(name, Some(options));
    let mut out = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&chunk.to_string());
    }
    out
}
