//! What the apply lock needs of one host's engine (its protocol is in `apply::lock`): the
//! lock is a network named for the project, each lease a volume labelled with the lock's id.
//! `apply::lock` runs on this trait only; a connected Docker host (`Connected`) is one
//! implementation, the lock's tests keep another in memory.

use super::docker_ops::status_of;
use super::observe::{engine_now, labelled_volumes, lock_network, LockRead};
use super::{Connected, HostError};
use crate::model::lock::Record;
use bollard::query_parameters::RemoveVolumeOptions;
use futures_util::future::{BoxFuture, FutureExt};
use std::collections::BTreeMap;

/// One host's engine, as the apply lock uses it.
pub trait LockStore: Send + Sync {
    /// The host's name, for messages.
    fn host(&self) -> &str;
    /// Whether the engine missed a deadline in this run (then it is not asked again).
    fn silent(&self) -> bool;
    /// The engine's clock (Unix seconds): a lease is judged by the clock of the engine that
    /// keeps it.
    fn now(&self) -> BoxFuture<'_, Result<u64, HostError>>;
    /// The project's lock, if there is one: its id and what it records.
    fn read_lock<'a>(
        &'a self,
        project: &'a str,
    ) -> BoxFuture<'a, Result<Option<(String, Record)>, LockRead>>;
    /// Creates the lock `name` with `labels` unless one of that name exists: its id, or
    /// `None` when the name is taken. (An engine's duplicate check is not atomic: the caller
    /// looks again after.)
    fn create_lock<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Option<String>, HostError>>;
    /// Removes the lock with this id (or name); one already gone is removed.
    fn remove_lock<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), HostError>>;
    /// The lease volumes that carry every one of these label filters (`key` or `key=value`).
    fn leases(
        &self,
        filters: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<(String, Record)>, HostError>>;
    /// Writes lease volume `name`; when the engine created it, by its clock, if it says.
    fn write_lease<'a>(
        &'a self,
        name: &'a str,
        labels: BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Option<u64>, HostError>>;
    /// Removes a lease volume; one already gone is removed.
    fn remove_lease<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), HostError>>;
}

impl LockStore for Connected {
    fn host(&self) -> &str {
        &self.host.name
    }

    fn silent(&self) -> bool {
        self.silence.said().is_some()
    }

    fn now(&self) -> BoxFuture<'_, Result<u64, HostError>> {
        async move { engine_now(&self.docker).await.map_err(|e| self.kind_of(e)) }.boxed()
    }

    fn read_lock<'a>(
        &'a self,
        project: &'a str,
    ) -> BoxFuture<'a, Result<Option<(String, Record)>, LockRead>> {
        async move {
            lock_network(&self.docker, project)
                .await
                .map_err(|e| match e {
                    LockRead::Engine(e) => LockRead::Engine(self.kind_of(e)),
                    ambiguous => ambiguous,
                })
        }
        .boxed()
    }

    fn create_lock<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Option<String>, HostError>> {
        async move {
            let body = serde_json::json!({
                "Name": name,
                "CheckDuplicate": true,
                "Labels": labels,
            });
            let (status, reply) = self
                .raw_json(hyper::Method::POST, "/networks/create", body)
                .await?;
            match status {
                201 => Ok(Some(reply["Id"].as_str().unwrap_or_default().to_string())),
                409 => Ok(None),
                other => Err(HostError::Engine(format!(
                    "the engine answered {other}: {reply}"
                ))),
            }
        }
        .boxed()
    }

    fn remove_lock<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), HostError>> {
        async move {
            match self.docker.remove_network(id).await {
                Err(e) if status_of(&e) != Some(404) => Err(self.kind_of(e.into())),
                _ => Ok(()),
            }
        }
        .boxed()
    }

    fn leases(
        &self,
        filters: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<(String, Record)>, HostError>> {
        async move {
            let found = labelled_volumes(&self.docker, filters)
                .await
                .map_err(|e| self.kind_of(e))?;
            Ok(found
                .into_iter()
                .map(|v| {
                    let record = Record {
                        labels: v.labels,
                        created: v.created,
                    };
                    (v.name, record)
                })
                .collect())
        }
        .boxed()
    }

    fn write_lease<'a>(
        &'a self,
        name: &'a str,
        labels: BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Option<u64>, HostError>> {
        async move {
            let req = bollard::models::VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(labels.into_iter().collect()),
                ..Default::default()
            };
            let volume = (self.docker.create_volume(req).await)
                .map_err(|e| self.kind_of(HostError::from(e)))?;
            Ok(volume
                .created_at
                .as_deref()
                .and_then(crate::model::clock::parse_rfc3339))
        }
        .boxed()
    }

    fn remove_lease<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), HostError>> {
        async move {
            match (self.docker)
                .remove_volume(name, None::<RemoveVolumeOptions>)
                .await
            {
                Err(e) if status_of(&e) != Some(404) => Err(self.kind_of(e.into())),
                _ => Ok(()),
            }
        }
        .boxed()
    }
}
