//! Each plan step as Docker API calls. Every operation is idempotent: creating what exists or
//! removing what is gone succeeds, so a re-run converges. Here: errors, networks, volumes,
//! images and rollout records; pods in `pods`, service names in `service`, health in `probe`.

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
    /// A job that ran past its timeout (and was stopped): a verdict on its revision.
    #[error("job {job} did not finish within {secs}s and was stopped")]
    JobTimedOut { job: String, secs: u64 },
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

pub(in crate::hosts) fn status_of(e: &DockerError) -> Option<u16> {
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
    state.since = crate::here::unix_now();
    let mut labels = project_labels(project);
    labels.insert(
        ROLLOUT_LABEL.to_string(),
        serde_json::to_string(&state).expect("rollout serialises"),
    );
    record_volume(
        docker,
        &name,
        labels,
        format!("recording the rollout state of {deployment}"),
    )
    .await
}

/// Creates an empty volume whose labels are a record (rollout states, job runs, applies).
pub(super) async fn record_volume(
    docker: &Docker,
    name: &str,
    labels: HashMap<String, String>,
    doing_what: String,
) -> Result<(), OpError> {
    let req = VolumeCreateRequest {
        name: Some(name.to_string()),
        labels: Some(labels),
        ..Default::default()
    };
    docker
        .create_volume(req)
        .await
        .map(|_| ())
        .map_err(doing(doing_what))
}

pub async fn remove_volume(docker: &Docker, name: &str) -> Result<(), OpError> {
    docker
        .remove_volume(name, None::<RemoveVolumeOptions>)
        .await
        .or_else(|e| ignore(e, &[404]))
        .map_err(doing(format!("removing volume {name}")))
}

/// Pulls the image unless the engine has it already, with the registry's credentials when
/// berth has some. A registry that refuses is named, with where credentials come from.
pub async fn ensure_image(
    docker: &Docker,
    image: &str,
    login: Option<&crate::model::registry::Credentials>,
) -> Result<(), OpError> {
    if docker.inspect_image(image).await.is_err() {
        pull(docker, image, login).await?;
    }
    // By digest (`name:tag@sha256:…`): the tag names that image on the host too, as a pull
    // of the tag would have.
    if let Some((tagged, _digest)) = image.split_once('@') {
        let name = crate::model::image_name(tagged);
        if let Some(tag) = tagged.strip_prefix(name).and_then(|t| t.strip_prefix(':')) {
            let options = TagImageOptionsBuilder::default()
                .repo(name)
                .tag(tag)
                .build();
            docker
                .tag_image(image, Some(options))
                .await
                .map_err(doing(format!("tagging {image} as {tagged}")))?;
        }
    }
    Ok(())
}

/// Pulls an image, with the registry's credentials when berth has some.
async fn pull(
    docker: &Docker,
    image: &str,
    login: Option<&crate::model::registry::Credentials>,
) -> Result<(), OpError> {
    let had_login = login.is_some();
    let login = login.map(crate::hosts::docker::credentials);
    let options = CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let mut stream = docker.create_image(Some(options), None, login);
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            if refused_access(&e) {
                return Err(OpError::Refused(access_refused(image, had_login, &e)));
            }
            return Err(doing(format!("pulling {image}"))(e));
        }
    }
    Ok(())
}

/// Whether the engine's pull error says the registry wants (other) credentials.
fn refused_access(e: &DockerError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    [
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "access denied",
        "access to the resource is denied",
        "requested access to the resource is denied",
    ]
    .iter()
    .any(|t| text.contains(t))
}

fn access_refused(image: &str, had_login: bool, e: &DockerError) -> String {
    let registry = crate::model::registry::registry_of(image);
    let what = if had_login {
        format!("the registry {registry} refused the credentials berth sent for it")
    } else {
        format!("the registry {registry} wants credentials and berth has none for it")
    };
    format!(
        "pulling {image}: {what} ({e}); give berth a login for {registry}: `docker login {registry}` \
         where berth runs (or a credential helper in ~/.docker/config.json), or a `registries:` \
         entry in berth.yaml with the password as a secret"
    )
}

/// A host's network addresses while pods move between service names. Joining or leaving
/// reconnects a pod at its own address, which is free between the disconnect and the
/// connect; a container started in that moment (by this apply's other steps, or another
/// deployment's lane) could be given it, and the pod could not get its address back.
/// Reconnects hold the guard alone; starts share it.
#[derive(Clone, Default)]
pub struct Addresses(std::sync::Arc<tokio::sync::RwLock<()>>);

impl Addresses {
    /// Held while containers start: they may be given any free address.
    pub async fn starting(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.0.clone().read_owned().await
    }

    /// Held while a pod is reconnected at its own address.
    pub async fn moving(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.0.clone().write_owned().await
    }
}

pub mod analysis;
pub mod edge;
mod engine;
pub mod history;
pub mod jobs;
mod pods;
mod probe;
mod service;

pub use engine::{engines, DockerEngine};

/// Where secret values come from, by name.
pub type Secrets = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What pods are created with beside their plan: secret values, and the repository's files
/// by hash (never in the plan: a template filled in holds secrets).
#[derive(Clone)]
pub struct PodInputs {
    pub secrets: Secrets,
    pub files: std::sync::Arc<crate::model::files::FileContents>,
    /// Each secret's record, sealed once per apply and given to every container it creates.
    pub seals: std::sync::Arc<Seals>,
}
pub use pods::*;
pub use probe::*;
pub use service::*;
