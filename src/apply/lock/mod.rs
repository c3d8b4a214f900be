//! The apply lock on the hosts (see `model::lock` for its shape): taking it, taking over one
//! whose holder died, and releasing it; its lease, renewed while the apply runs, is in
//! `lease`, and what the executor asks of it before each wave and step in `fence`.
//!
//! A lock whose lease has expired is removed by its network id, not its name, before this
//! apply creates its own: if two applies both find the same dead lock, the first removal
//! wins, the second finds nothing to remove, and only one of them can create the new lock.

use crate::here;
use crate::hosts::lock_store::LockStore;
use crate::hosts::observe::LockRead;
use crate::hosts::{Fleet, HostError, HostErrors};
use crate::model::label;
use crate::model::lock::{self, Holder, Record};
use crate::model::names;
use futures_util::future::join_all;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

mod fence;
mod lease;
use fence::Stamp;
pub use fence::{Fence, LockLost};
use lease::{leases, renew, write_lease, HeldHost};

/// One host's engine as the lock uses it.
type Store = Arc<dyn LockStore>;

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the apply lock on {host} is held by {} since {}, {}; \
         wait with --lock-wait; if that apply is gone, the lease ends by itself, or `berth unlock` removes the lock now",
        holder.owner, time(holder.since), lease_words(holder, *engine_now)
    )]
    Held {
        host: String,
        holder: Holder,
        /// The host's engine time when the lock was read.
        engine_now: Option<u64>,
    },
    #[error("cannot take the apply lock on {host}: {error}")]
    Failed { host: String, error: HostError },
}

fn time(secs: u64) -> String {
    crate::model::clock::rfc3339(secs)
}

/// How long a holder's lease has left, by its host's engine clock.
pub fn lease_words(holder: &Holder, engine_now: Option<u64>) -> String {
    match (holder.expires, engine_now) {
        (None, _) => "with no time on it (it never ends by itself)".into(),
        (Some(expires), Some(now)) => format!(
            "its lease runs until {} ({}s left by the host's clock)",
            time(expires),
            expires.saturating_sub(now)
        ),
        (Some(expires), None) => {
            format!("its lease runs until {} by the host's clock", time(expires))
        }
    }
}

/// How to take the lock.
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// How long the lock stays ours without a renewal.
    pub lease: Duration,
    /// How long to wait for a lock someone else holds (zero: do not wait).
    pub wait: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            lease: Duration::from_secs(lock::DEFAULT_LEASE_S),
            wait: Duration::ZERO,
        }
    }
}

/// Whether the holder of a lock is gone: its lease ran out, or it ran on this machine and
/// its process has ended (then there is no need to wait for its lease).
pub fn gone(holder: &Holder, now: u64) -> bool {
    holder.expired(now) || holder.process.as_deref().is_some_and(here::has_ended)
}

/// A lock id no other apply will have: this process, this instant, this machine.
fn new_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{} {} {nanos}", here::machine(), std::process::id());
    crate::model::desired::sha256_hex(seed.as_bytes())[..16].to_string()
}

/// Who holds the lock on a host now (`None` when it is free), with the engine's time then.
pub async fn holder(
    store: &dyn LockStore,
    project: &str,
    lease_s: u64,
) -> Result<Option<(Holder, u64)>, HostError> {
    // The engine's time first: a lease renewed after this is never judged run out by it.
    let now = store.now().await?;
    let Some((_, lock)) = store.read_lock(project).await.map_err(lock_unread)? else {
        return Ok(None);
    };
    let found = match lock.labels.get(lock::ID_LABEL) {
        Some(id) => leases(store, project, Some(id)).await?,
        None => vec![],
    };
    let found: Vec<Record> = found.into_iter().map(|(_, l)| l).collect();
    Ok(Some((Holder::read(&lock, &found, lease_s), now)))
}

/// What happened on one host.
enum Taken {
    Fresh(String),
    /// The lock of an apply that died was taken over.
    TakenOver(String, Holder),
}

struct Claim<'a> {
    project: &'a str,
    id: &'a str,
    owner: &'a str,
    /// This machine's time, only to show (`since`).
    now: u64,
    lease_s: u64,
}

/// A lock that could not be read, as a host error.
fn lock_unread(e: LockRead) -> HostError {
    match e {
        LockRead::Engine(e) => e.within("reading the apply lock"),
        ambiguous => HostError::Engine(ambiguous.to_string()),
    }
}

async fn create(store: &dyn LockStore, claim: &Claim<'_>) -> Result<Option<String>, HostError> {
    let mut labels = BTreeMap::from([
        (label::PROJECT.to_string(), claim.project.to_string()),
        (lock::ID_LABEL.to_string(), claim.id.to_string()),
        (lock::OWNER_LABEL.to_string(), claim.owner.to_string()),
        (lock::SINCE_LABEL.to_string(), claim.now.to_string()),
        (lock::LEASE_LABEL.to_string(), claim.lease_s.to_string()),
    ]);
    if let Some(process) = here::this_process() {
        labels.insert(lock::PROCESS_LABEL.to_string(), process);
    }
    let name = names::lock_name(claim.project);
    let Some(id) = store.create_lock(&name, &labels).await? else {
        return Ok(None);
    };
    // An engine's duplicate check is not atomic: two creates at the same instant can both
    // succeed. So look after writing: whoever sees another lock of the name gives its own
    // up. Of two racing creators at most one can miss the other (the later one's look comes
    // after both creates), so at most one keeps a lock.
    match store.read_lock(claim.project).await {
        Err(LockRead::Ambiguous) => {
            (store.remove_lock(&id).await).map_err(|e| e.within("giving up a duplicate lock"))?;
            Ok(None)
        }
        Err(e) => Err(lock_unread(e)),
        Ok(_) => Ok(Some(id)),
    }
}

/// A short random pause, so that two applies that tied do not tie again.
async fn jitter() {
    let mut b = [0u8; 2];
    let _ = getrandom::getrandom(&mut b);
    let ms = 50 + u64::from(u16::from_le_bytes(b)) % 400;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn take(store: &dyn LockStore, claim: &Claim<'_>) -> Result<Taken, LockError> {
    let host = store.host().to_string();
    let failed = |error: HostError| LockError::Failed {
        host: host.clone(),
        error,
    };
    // A few times: the lock may be released, found dead and removed, or given up after a
    // tie between two calls.
    for attempt in 0..4 {
        if attempt > 0 {
            jitter().await;
        }
        if let Some(id) = create(store, claim).await.map_err(failed)? {
            return Ok(Taken::Fresh(id));
        }
        // The engine's time before the lock and its leases are read: a lease the holder
        // renews after this moment cannot be judged run out by it (see `lock`).
        let now = store.now().await.map_err(failed)?;
        let Some((network_id, found)) = (match store.read_lock(claim.project).await {
            Ok(found) => found,
            // Two locks of one name for an instant (a tie being undone): look again.
            Err(LockRead::Ambiguous) => continue,
            Err(e) => return Err(failed(lock_unread(e))),
        }) else {
            continue;
        };
        let their_leases = match found.labels.get(lock::ID_LABEL) {
            Some(id) => leases(store, claim.project, Some(id))
                .await
                .map_err(failed)?,
            None => vec![],
        };
        let records: Vec<Record> = their_leases.iter().map(|(_, l)| l.clone()).collect();
        let holder = Holder::read(&found, &records, claim.lease_s);
        if !gone(&holder, now) {
            return Err(LockError::Held {
                host,
                holder,
                engine_now: Some(now),
            });
        }
        // Dead: remove exactly that lock (by id), then contend for a new one.
        (store.remove_lock(&network_id).await)
            .map_err(|e| failed(e.within("removing the expired lock")))?;
        if let Some(id) = create(store, claim).await.map_err(failed)? {
            for (name, _) in &their_leases {
                let _ = store.remove_lease(name).await;
            }
            return Ok(Taken::TakenOver(id, holder));
        }
    }
    match holder(store, claim.project, claim.lease_s).await {
        Ok(Some((holder, now))) => Err(LockError::Held {
            host,
            holder,
            engine_now: Some(now),
        }),
        Ok(None) => Err(failed(HostError::Engine(
            "the lock changed hands too often".into(),
        ))),
        Err(e) => Err(failed(e)),
    }
}

/// The locks taken on a set of hosts, kept alive until released.
pub struct Locks {
    hosts: Vec<(Store, String)>,
    project: String,
    /// This apply's lock id.
    id: String,
    stop: watch::Sender<bool>,
    renewal: tokio::task::JoinHandle<()>,
    fence: Fence,
}

/// One attempt on every host in parallel; on any failure the ones taken are released.
async fn acquire_once(
    stores: &[Store],
    claim: &Claim<'_>,
    notice: &(dyn Fn(String) + Sync),
) -> Result<Vec<(Store, String)>, LockError> {
    // The first host decides between applies started together: whoever takes it goes on to
    // the others (in parallel), so two contenders never each hold a part and both give up.
    let mut results = Vec::with_capacity(stores.len());
    if let Some(first) = stores.first() {
        results.push(take(first.as_ref(), claim).await);
    }
    if results.iter().all(Result::is_ok) {
        results.extend(join_all(stores.iter().skip(1).map(|c| take(c.as_ref(), claim))).await);
    }
    let mut taken = Vec::new();
    let mut first_error = None;
    for (c, r) in stores.iter().zip(results) {
        match r {
            Ok(Taken::Fresh(id)) => taken.push((c.clone(), id)),
            Ok(Taken::TakenOver(id, old)) => {
                notice(format!(
                    "took over the apply lock on {} from {} (taken {}, {}): that apply is gone; this one checks and repairs what it left",
                    c.host(),
                    old.owner,
                    time(old.since),
                    if old.process.as_deref().is_some_and(here::has_ended) {
                        "its process has ended".into()
                    } else {
                        format!("lease expired {}", old.expires.map_or("?".into(), time))
                    }
                ));
                taken.push((c.clone(), id));
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        None => Ok(taken),
        Some(e) => {
            release_hosts(claim.project, claim.id, &taken).await;
            Err(e)
        }
    }
}

/// Takes the lock on every given host; waits up to `options.wait` for a lock someone else
/// holds. Once taken, its lease is renewed in the background until `release`.
pub async fn acquire(
    fleet: &Fleet,
    project: &str,
    hosts: &[String],
    options: &LockOptions,
    notice: &(dyn Fn(String) + Sync),
) -> Result<Locks, LockError> {
    acquire_on(&stores(fleet, hosts), project, options, notice).await
}

/// The connected ones of these hosts, as the lock uses them, by name.
fn stores(fleet: &Fleet, hosts: &[String]) -> Vec<Store> {
    let mut stores: Vec<Store> = (hosts.iter())
        .filter_map(|h| fleet.connected.get(h))
        .map(|c| Arc::new(c.clone()) as Store)
        .collect();
    stores.sort_by(|a, b| a.host().cmp(b.host()));
    stores
}

/// `acquire` on these engines, sorted by host name (the first one decides between applies
/// started together).
async fn acquire_on(
    stores: &[Store],
    project: &str,
    options: &LockOptions,
    notice: &(dyn Fn(String) + Sync),
) -> Result<Locks, LockError> {
    let owner = here::owner();
    let id = new_id();
    let deadline = tokio::time::Instant::now() + options.wait;
    let mut told = false;
    let (taken, taken_at) = loop {
        let began = Stamp::now();
        let claim = Claim {
            project,
            id: &id,
            owner: &owner,
            now: crate::here::unix_now(),
            lease_s: options.lease.as_secs(),
        };
        match acquire_once(stores, &claim, notice).await {
            Ok(taken) => break (taken, began),
            Err(e @ LockError::Held { .. }) if tokio::time::Instant::now() < deadline => {
                if !told {
                    notice(format!("waiting for the apply lock: {e}"));
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(1000)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let lease_s = options.lease.as_secs().max(1);
    let written = join_all(
        taken
            .iter()
            .map(|(c, _)| write_lease(c.as_ref(), project, &id, 0, lease_s)),
    )
    .await;
    let held: Vec<HeldHost> = taken
        .iter()
        .zip(written)
        .map(|((c, network_id), created)| HeldHost {
            c: c.clone(),
            network_id: network_id.clone(),
            created: created.ok().flatten(),
            renewed: taken_at,
        })
        .collect();
    let fence = Fence::new(options.lease, taken_at);
    let (stop, stopped) = watch::channel(false);
    let renewal = tokio::spawn(renew(
        held,
        project.to_string(),
        id.clone(),
        options.lease,
        fence.clone(),
        stopped,
    ));
    Ok(Locks {
        hosts: taken,
        project: project.to_string(),
        id: id.clone(),
        stop,
        renewal,
        fence,
    })
}

/// Removes this apply's lock (by its network id) on each host, with its lease volumes and
/// any left by an apply killed while it released; never the leases of whoever holds the lock
/// there now, if another apply took it over (see `lock::leases_to_release`). The leases go
/// first, while the lock is still held; a kill in between leaves a lock whose holder is
/// plainly gone.
async fn release_hosts(project: &str, id: &str, hosts: &[(Store, String)]) -> HostErrors {
    let errors = join_all(hosts.iter().map(|(c, network_id)| async move {
        let mut errors = Vec::new();
        let mut failed = |e: HostError| errors.push((c.host().to_string(), e));
        let holder_now = match c.read_lock(project).await {
            Ok(found) => found.and_then(|(_, lock)| lock.labels.get(lock::ID_LABEL).cloned()),
            Err(e) => {
                failed(lock_unread(e));
                return errors;
            }
        };
        match leases(c.as_ref(), project, None).await {
            Ok(found) => {
                let found: Vec<_> = found.into_iter().map(|(n, r)| (n, r.labels)).collect();
                for name in lock::leases_to_release(id, holder_now.as_deref(), &found) {
                    if let Err(e) = c.remove_lease(name).await {
                        failed(e);
                    }
                }
            }
            Err(e) => failed(e),
        }
        if let Err(e) = c.remove_lock(network_id).await {
            failed(e);
        }
        errors
    }))
    .await;
    HostErrors(errors.into_iter().flatten().collect())
}

impl Locks {
    /// What the executor asks before each wave and step: is the lock still this apply's?
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    pub async fn release(self) -> Result<(), HostErrors> {
        let _ = self.stop.send(true);
        let _ = self.renewal.await;
        let errors = release_hosts(&self.project, &self.id, &self.hosts).await;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Removes the lock on the given hosts whoever holds it (`berth unlock`), with the leases
/// of whoever held it.
pub async fn force_release(
    fleet: &Fleet,
    project: &str,
    hosts: &[String],
) -> Result<(), HostErrors> {
    let stores = stores(fleet, hosts);
    let errors = join_all(stores.iter().map(|c| async move {
        let mut errors = Vec::new();
        if let Err(e) = c.remove_lock(&names::lock_name(project)).await {
            errors.push((c.host().to_string(), e));
        }
        if let Ok(found) = leases(c.as_ref(), project, None).await {
            for (name, _) in found {
                let _ = c.remove_lease(&name).await;
            }
        }
        errors
    }))
    .await;
    let errors = HostErrors(errors.into_iter().flatten().collect());
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests;
