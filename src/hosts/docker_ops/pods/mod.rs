//! Pods: their containers created (env and sealed secrets), started, stopped and removed,
//! only ever those that carry this project's labels.

use super::PodInputs;
use super::*;

/// A random salt (16 bytes, hex) for one secret.
fn new_salt() -> Result<String, OpError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| format!("no randomness for a secret's salt: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The records of one apply's secrets: a secret is sealed (a new salt, one scrypt) the first
/// time a container needs it, and every container created after gets the same record, so
/// the next plan hashes each secret once.
#[derive(Default)]
pub struct Seals(std::sync::Mutex<BTreeMap<(String, String), String>>);

impl Seals {
    /// The record of `name` with `value`: made once per (name, value).
    fn record(&self, name: &str, value: &str) -> Result<String, OpError> {
        let key = (name.to_string(), crate::model::sha256_hex(value.as_bytes()));
        if let Some(r) = self.0.lock().expect("not poisoned").get(&key) {
            return Ok(r.clone());
        }
        let record = crate::model::secret::seal(&new_salt()?, value);
        Ok(self
            .0
            .lock()
            .expect("not poisoned")
            .entry(key)
            .or_insert(record)
            .clone())
    }
}

/// Resolves env values (secrets from the environment, then env files that are secrets, for
/// the keys `env` leaves unset) and the record of each secret the container is given, for
/// its label (see [`Seals`]).
pub fn env_list(
    spec: &ContainerSpec,
    secrets: &(dyn Fn(&str) -> Option<String> + Send + Sync),
    seals: &Seals,
) -> Result<(Vec<String>, BTreeMap<String, String>), OpError> {
    let value = |name: &str| secrets(name).ok_or_else(|| format!("secret {name} has no value"));
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &spec.env {
        let text = match v {
            EnvValue::Plain(s) => s.clone(),
            EnvValue::Secret { secret } => value(secret)?,
        };
        env.insert(k.clone(), text);
    }
    for name in &spec.env_secret_files {
        let pairs = crate::model::files::parse_env_file(&value(name)?).map_err(|e| {
            format!(
                "secret {name} is not an env file: line {} is not KEY=VALUE",
                e.line
            )
        })?;
        for (k, v) in pairs {
            env.entry(k).or_insert(v);
        }
    }
    let mut sealed = BTreeMap::new();
    for name in spec.secret_names() {
        sealed.insert(name.to_string(), seals.record(name, &value(name)?)?);
    }
    Ok((
        env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        sealed,
    ))
}

/// A tar archive of the container's files, named from the root (the engine creates missing
/// directories on the way), owned by root.
fn files_archive(spec: &ContainerSpec, inputs: &PodInputs) -> Result<Vec<u8>, OpError> {
    let mut archive = tar::Builder::new(Vec::new());
    for f in &spec.files {
        let bytes = crate::model::files::materialize(f, &inputs.files, inputs.secrets.as_ref())?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(f.mode_bits());
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        archive
            .append_data(
                &mut header,
                f.target.trim_start_matches('/'),
                bytes.as_slice(),
            )
            .map_err(|e| format!("packing {}: {e}", f.target))?;
    }
    archive
        .into_inner()
        .map_err(|e| OpError::Refused(format!("packing files: {e}")))
}

/// Places the container's files before it starts (the engine's archive upload: no host path
/// is bound).
pub(super) async fn place_files(
    docker: &Docker,
    name: &str,
    spec: &ContainerSpec,
    inputs: &PodInputs,
) -> Result<(), OpError> {
    if spec.files.is_empty() {
        return Ok(());
    }
    let archive = files_archive(spec, inputs)?;
    let options = UploadToContainerOptionsBuilder::default().path("/").build();
    docker
        .upload_to_container(name, Some(options), bollard::body_full(archive.into()))
        .await
        .map_err(doing(format!("placing files in {name}")))
}

pub(super) fn create_body(
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
    let ingress = pod
        .ingress
        .filter(|_| index == 0)
        .map(|b| crate::model::Port {
            host: Some(b.host_port),
            container: b.container_port,
            protocol: "tcp".into(),
        });
    let mut bindings: PortMap = HashMap::new();
    let ports: Vec<&crate::model::Port> = ports.into_iter().chain(ingress.as_ref()).collect();
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
    // The edge owns the host's public ports: it runs in the host's network.
    let host_network = pod.containers[0].spec.network_mode.as_deref() == Some("host");
    let network_mode = if index > 0 {
        format!("container:{first}")
    } else if host_network {
        "host".to_string()
    } else {
        pod.network.clone()
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
    let networking_config = (index == 0 && !host_network).then(|| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            pod.network.clone(),
            // No service alias yet: the pod joins its service once it is ready.
            EndpointSettings::default(),
        )])),
    });
    let ms_to_ns = |ms: u64| (ms as i64) * 1_000_000;
    ContainerCreateBody {
        // The digest the plan resolved, when it did: what was planned is what runs.
        image: Some(spec.pull_ref()),
        hostname: (index == 0 && !host_network).then(|| pod.name.clone()),
        stop_signal: spec.stop_signal.clone(),
        user: spec.user.clone(),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(env),
        labels: Some(c.labels.clone().into_iter().collect()),
        exposed_ports: (!ports.is_empty()).then(|| {
            let exposed: std::collections::BTreeSet<String> = (ports.iter())
                .map(|p| format!("{}/{}", p.container, p.protocol))
                .collect();
            exposed.into_iter().collect()
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
/// exists already (a re-run) is started as it is. An edge pod is given its configuration
/// (`edge`) before it starts.
pub async fn create_pod(
    docker: &Docker,
    pod: &PodPlan,
    project: &str,
    inputs: &PodInputs,
    edge: Option<&super::edge::EdgeSetup>,
    addresses: &super::Addresses,
) -> Result<(), OpError> {
    for (i, c) in pod.containers.iter().enumerate() {
        let (env, sealed) = env_list(&c.spec, inputs.secrets.as_ref(), &inputs.seals)?;
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
        place_files(docker, &c.name, &c.spec, inputs).await?;
        if let (0, Some(setup)) = (i, edge) {
            super::edge::write_config(docker, &c.name, setup).await?;
        }
        let _starting = addresses.starting().await;
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
    addresses: &super::Addresses,
) -> Result<(), OpError> {
    for n in ours(docker, names, project).await? {
        let _starting = addresses.starting().await;
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

#[cfg(test)]
mod tests;
