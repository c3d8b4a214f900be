//! The lock's protocol on engines kept in memory (`LockStore`): taking, refusing, taking
//! over and releasing, without a host.

use super::*;
use crate::hosts::lock_store::LockStore;
use futures_util::future::{BoxFuture, FutureExt};
use std::sync::Mutex;

/// One engine's networks (id, name, record) and volumes, its clock, and a fault to play.
#[derive(Default)]
struct Memory {
    host: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    clock: u64,
    next_id: u32,
    networks: Vec<(String, String, Record)>,
    volumes: BTreeMap<String, Record>,
    /// Refuses to create any lock (an engine that answers with errors).
    broken: bool,
}

impl Memory {
    fn new(host: &str, clock: u64) -> Arc<Memory> {
        let memory = Memory {
            host: host.into(),
            ..Default::default()
        };
        memory.state.lock().unwrap().clock = clock;
        Arc::new(memory)
    }

    fn networks(&self) -> Vec<(String, Record)> {
        let state = self.state.lock().unwrap();
        (state.networks.iter())
            .map(|(id, _, r)| (id.clone(), r.clone()))
            .collect()
    }

    fn volumes(&self) -> Vec<String> {
        self.state.lock().unwrap().volumes.keys().cloned().collect()
    }
}

impl LockStore for Memory {
    fn host(&self) -> &str {
        &self.host
    }

    fn silent(&self) -> bool {
        false
    }

    fn now(&self) -> BoxFuture<'_, Result<u64, HostError>> {
        let now = self.state.lock().unwrap().clock;
        async move { Ok(now) }.boxed()
    }

    fn read_lock<'a>(
        &'a self,
        project: &'a str,
    ) -> BoxFuture<'a, Result<Option<(String, Record)>, LockRead>> {
        let name = names::lock_name(project);
        let state = self.state.lock().unwrap();
        let found: Vec<_> = (state.networks.iter())
            .filter(|(_, n, _)| *n == name)
            .map(|(id, _, r)| (id.clone(), r.clone()))
            .collect();
        let read = match found.len() {
            0 => Ok(None),
            1 => Ok(found.into_iter().next()),
            _ => Err(LockRead::Ambiguous),
        };
        async move { read }.boxed()
    }

    fn create_lock<'a>(
        &'a self,
        name: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Option<String>, HostError>> {
        let mut state = self.state.lock().unwrap();
        let created = if state.broken {
            Err(HostError::Engine("the engine answered 500".into()))
        } else if state.networks.iter().any(|(_, n, _)| n == name) {
            Ok(None)
        } else {
            state.next_id += 1;
            let id = format!("net{}", state.next_id);
            let record = Record {
                labels: labels.clone(),
                created: Some(state.clock),
            };
            state.networks.push((id.clone(), name.into(), record));
            Ok(Some(id))
        };
        async move { created }.boxed()
    }

    fn remove_lock<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), HostError>> {
        (self.state.lock().unwrap().networks).retain(|(i, n, _)| i != id && n != id);
        async { Ok(()) }.boxed()
    }

    fn leases(
        &self,
        filters: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<(String, Record)>, HostError>> {
        let state = self.state.lock().unwrap();
        let found = (state.volumes.iter())
            .filter(|(_, r)| {
                crate::model::labels::pass_all(|k| r.labels.get(k).map(String::as_str), &filters)
            })
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect();
        async move { Ok(found) }.boxed()
    }

    fn write_lease<'a>(
        &'a self,
        name: &'a str,
        labels: BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Option<u64>, HostError>> {
        let mut state = self.state.lock().unwrap();
        let created = Some(state.clock);
        (state.volumes).insert(name.into(), Record { labels, created });
        async move { Ok(created) }.boxed()
    }

    fn remove_lease<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), HostError>> {
        self.state.lock().unwrap().volumes.remove(name);
        async { Ok(()) }.boxed()
    }
}

const PROJECT: &str = "shop";

fn stores(memories: &[Arc<Memory>]) -> Vec<Store> {
    memories.iter().map(|m| m.clone() as Store).collect()
}

/// Another apply's lock on `memory`, taken at `taken` with a `lease_s` lease, and its
/// first lease volume.
fn held_by_another(memory: &Memory, taken: u64, lease_s: u64) {
    let mut state = memory.state.lock().unwrap();
    let labels = BTreeMap::from([
        (label::PROJECT.to_string(), PROJECT.to_string()),
        (lock::ID_LABEL.to_string(), "other".to_string()),
        (lock::OWNER_LABEL.to_string(), "ci@elsewhere".to_string()),
        (lock::LEASE_LABEL.to_string(), lease_s.to_string()),
    ]);
    let record = Record {
        labels: labels.clone(),
        created: Some(taken),
    };
    (state.networks).push(("old".into(), names::lock_name(PROJECT), record.clone()));
    (state.volumes).insert(names::lease_name(PROJECT, "other", 0), record);
}

fn options() -> LockOptions {
    LockOptions {
        lease: Duration::from_secs(60),
        wait: Duration::ZERO,
    }
}

#[tokio::test]
async fn an_apply_takes_the_lock_on_every_host_and_its_release_leaves_nothing() {
    let hosts = [Memory::new("h1", 1000), Memory::new("h2", 5000)];
    let locks = acquire_on(&stores(&hosts), PROJECT, &options(), &|_| {})
        .await
        .expect("free hosts");
    for h in &hosts {
        let networks = h.networks();
        assert_eq!(networks.len(), 1, "{}", h.host);
        let labels = &networks[0].1.labels;
        assert_eq!(
            labels.get(lock::LEASE_LABEL).map(String::as_str),
            Some("60")
        );
        // The first lease, written with the lock's id.
        assert_eq!(h.volumes(), [names::lease_name(PROJECT, &locks.id, 0)]);
    }
    locks.release().await.expect("released");
    for h in &hosts {
        assert!(
            h.networks().is_empty() && h.volumes().is_empty(),
            "{}",
            h.host
        );
    }
}

#[tokio::test]
async fn a_lock_whose_holder_renews_is_refused_and_left_as_it_is() {
    let hosts = [Memory::new("h1", 1000), Memory::new("h2", 1000)];
    held_by_another(&hosts[1], 990, 60);
    let refused = acquire_on(&stores(&hosts), PROJECT, &options(), &|_| {}).await;
    let Err(LockError::Held { host, holder, .. }) = refused else {
        panic!("not refused as held: {:?}", refused.err());
    };
    assert_eq!(
        (host.as_str(), holder.owner.as_str()),
        ("h2", "ci@elsewhere")
    );
    // Nothing of this apply is left on h1, which it took first; h2 still has the other's.
    assert!(hosts[0].networks().is_empty() && hosts[0].volumes().is_empty());
    assert_eq!(hosts[1].networks()[0].0, "old");
}

#[tokio::test]
async fn a_lock_whose_lease_ran_out_is_taken_over_with_its_leases() {
    let host = Memory::new("h1", 10_000);
    held_by_another(&host, 1000, 60);
    let told = Mutex::new(Vec::new());
    let locks = acquire_on(
        &stores(std::slice::from_ref(&host)),
        PROJECT,
        &options(),
        &|n| told.lock().unwrap().push(n),
    )
    .await
    .expect("taken over");
    let told = told.into_inner().unwrap();
    assert!(
        told.iter()
            .any(|n| n.contains("took over the apply lock on h1 from ci@elsewhere")),
        "{told:?}"
    );
    let networks = host.networks();
    assert_eq!(networks.len(), 1);
    assert_ne!(networks[0].0, "old", "the dead lock is removed by its id");
    assert_eq!(host.volumes(), [names::lease_name(PROJECT, &locks.id, 0)]);
    locks.release().await.expect("released");
}

#[tokio::test]
async fn a_host_that_cannot_be_locked_leaves_no_lock_on_the_others() {
    let hosts = [Memory::new("h1", 1000), Memory::new("h2", 1000)];
    hosts[1].state.lock().unwrap().broken = true;
    let failed = acquire_on(&stores(&hosts), PROJECT, &options(), &|_| {}).await;
    let Err(LockError::Failed { host, error }) = failed else {
        panic!("not a failure: {:?}", failed.err());
    };
    assert_eq!(host, "h2");
    assert_eq!(error, HostError::Engine("the engine answered 500".into()));
    assert!(hosts[0].networks().is_empty() && hosts[0].volumes().is_empty());
}
