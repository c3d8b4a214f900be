//! The apply lock on the hosts (see `model::lock` for its shape): taking it, taking over one
//! whose holder died, and releasing it; its lease, renewed while the apply runs, is in
//! `lease`, and what the executor asks of it before each wave and step in `fence`.
//!
//! A lock whose lease has expired is removed by its network id, not its name, before this
//! apply creates its own: if two applies both find the same dead lock, the first removal
//! wins, the second finds nothing to remove, and only one of them can create the new lock.

use crate::here;
use crate::hosts::observe::{engine_now, lock_network, LockRead};
use crate::hosts::{Connected, Fleet, HostError, HostErrors};
use crate::model::label;
use crate::model::lock::{self, Holder, Record};
use crate::model::names;
use futures_util::future::join_all;
use serde_json::json;
use std::time::Duration;
use tokio::sync::watch;

mod fence;
mod lease;
use fence::Stamp;
pub use fence::{Fence, LockLost};
use lease::{leases, renew, write_lease, HeldHost};

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

fn status_of(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Who holds the lock on a host now (`None` when it is free), with the engine's time then.
pub async fn holder(
    c: &Connected,
    project: &str,
    lease_s: u64,
) -> Result<Option<(Holder, u64)>, HostError> {
    // The engine's time first: a lease renewed after this is never judged run out by it.
    let now = engine_now(&c.docker).await.map_err(|e| c.kind_of(e))?;
    let Some((_, lock)) = (lock_network(&c.docker, project).await).map_err(lock_unread)? else {
        return Ok(None);
    };
    let found = match lock.labels.get(lock::ID_LABEL) {
        Some(id) => leases(&c.docker, project, Some(id)).await?,
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

async fn create(c: &Connected, claim: &Claim<'_>) -> Result<Option<String>, HostError> {
    let mut body = json!({
        "Name": names::lock_name(claim.project),
        "CheckDuplicate": true,
        "Labels": {
            label::PROJECT: claim.project,
            lock::ID_LABEL: claim.id,
            lock::OWNER_LABEL: claim.owner,
            lock::SINCE_LABEL: claim.now.to_string(),
            lock::LEASE_LABEL: claim.lease_s.to_string(),
        },
    });
    if let Some(process) = here::this_process() {
        body["Labels"][lock::PROCESS_LABEL] = json!(process);
    }
    let (status, reply) = c
        .raw_json(hyper::Method::POST, "/networks/create", body)
        .await?;
    match status {
        201 => {
            let id = reply["Id"].as_str().unwrap_or_default().to_string();
            // An engine's duplicate check is not atomic: two creates at the same instant can
            // both succeed. So look after writing: whoever sees another lock of the name
            // gives its own up. Of two racing creators at most one can miss the other (the
            // later one's look comes after both creates), so at most one keeps a lock.
            match lock_network(&c.docker, claim.project).await {
                Err(LockRead::Ambiguous) => {
                    match c.docker.remove_network(&id).await {
                        Err(e) if status_of(&e) != Some(404) => {
                            return Err(HostError::from(e).within("giving up a duplicate lock"))
                        }
                        _ => {}
                    }
                    Ok(None)
                }
                Err(e) => Err(lock_unread(e)),
                Ok(_) => Ok(Some(id)),
            }
        }
        409 => Ok(None),
        other => Err(HostError::Engine(format!(
            "the engine answered {other}: {reply}"
        ))),
    }
}

/// A short random pause, so that two applies that tied do not tie again.
async fn jitter() {
    let mut b = [0u8; 2];
    let _ = getrandom::getrandom(&mut b);
    let ms = 50 + u64::from(u16::from_le_bytes(b)) % 400;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn take(c: &Connected, claim: &Claim<'_>) -> Result<Taken, LockError> {
    let host = c.host.name.clone();
    let failed = |error: HostError| LockError::Failed {
        host: host.clone(),
        error: c.kind_of(error),
    };
    // A few times: the lock may be released, found dead and removed, or given up after a
    // tie between two calls.
    for attempt in 0..4 {
        if attempt > 0 {
            jitter().await;
        }
        if let Some(id) = create(c, claim).await.map_err(failed)? {
            return Ok(Taken::Fresh(id));
        }
        // The engine's time before the lock and its leases are read: a lease the holder
        // renews after this moment cannot be judged run out by it (see `lock`).
        let now = engine_now(&c.docker).await.map_err(failed)?;
        let Some((network_id, found)) = (match lock_network(&c.docker, claim.project).await {
            Ok(found) => found,
            // Two locks of one name for an instant (a tie being undone): look again.
            Err(LockRead::Ambiguous) => continue,
            Err(e) => return Err(failed(lock_unread(e))),
        }) else {
            continue;
        };
        let their_leases = match found.labels.get(lock::ID_LABEL) {
            Some(id) => leases(&c.docker, claim.project, Some(id))
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
        match c.docker.remove_network(&network_id).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => {
                return Err(failed(
                    HostError::from(e).within("removing the expired lock"),
                ))
            }
        }
        if let Some(id) = create(c, claim).await.map_err(failed)? {
            for (name, _) in &their_leases {
                let _ = crate::apply::docker_ops::remove_volume(&c.docker, name).await;
            }
            return Ok(Taken::TakenOver(id, holder));
        }
    }
    match holder(c, claim.project, claim.lease_s).await {
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
    hosts: Vec<(Connected, String)>,
    project: String,
    /// This apply's lock id.
    id: String,
    stop: watch::Sender<bool>,
    renewal: tokio::task::JoinHandle<()>,
    fence: Fence,
}

/// One attempt on every host in parallel; on any failure the ones taken are released.
async fn acquire_once(
    fleet: &Fleet,
    claim: &Claim<'_>,
    hosts: &[String],
    notice: &(dyn Fn(String) + Sync),
) -> Result<Vec<(Connected, String)>, LockError> {
    let mut connected: Vec<&Connected> = hosts
        .iter()
        .filter_map(|h| fleet.connected.get(h))
        .collect();
    connected.sort_by(|a, b| a.host.name.cmp(&b.host.name));
    // The first host decides between applies started together: whoever takes it goes on to
    // the others (in parallel), so two contenders never each hold a part and both give up.
    let mut results = Vec::with_capacity(connected.len());
    if let Some(first) = connected.first() {
        results.push(take(first, claim).await);
    }
    if results.iter().all(Result::is_ok) {
        results.extend(join_all(connected.iter().skip(1).map(|c| take(c, claim))).await);
    }
    let mut taken = Vec::new();
    let mut first_error = None;
    for (c, r) in connected.iter().zip(results) {
        match r {
            Ok(Taken::Fresh(id)) => taken.push(((*c).clone(), id)),
            Ok(Taken::TakenOver(id, old)) => {
                notice(format!(
                    "took over the apply lock on {} from {} (taken {}, {}): that apply is gone; this one checks and repairs what it left",
                    c.host.name,
                    old.owner,
                    time(old.since),
                    if old.process.as_deref().is_some_and(here::has_ended) {
                        "its process has ended".into()
                    } else {
                        format!("lease expired {}", old.expires.map_or("?".into(), time))
                    }
                ));
                taken.push(((*c).clone(), id));
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
        match acquire_once(fleet, &claim, hosts, notice).await {
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
            .map(|(c, _)| write_lease(c, project, &id, 0, lease_s)),
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
async fn release_hosts(project: &str, id: &str, hosts: &[(Connected, String)]) -> HostErrors {
    let errors = join_all(hosts.iter().map(|(c, network_id)| async move {
        let mut errors = Vec::new();
        let mut failed = |e: HostError| errors.push((c.host.name.clone(), c.kind_of(e)));
        let holder_now = match lock_network(&c.docker, project).await {
            Ok(found) => found.and_then(|(_, lock)| lock.labels.get(lock::ID_LABEL).cloned()),
            Err(e) => {
                failed(lock_unread(e));
                return errors;
            }
        };
        match leases(&c.docker, project, None).await {
            Ok(found) => {
                let found: Vec<_> = found.into_iter().map(|(n, r)| (n, r.labels)).collect();
                for name in lock::leases_to_release(id, holder_now.as_deref(), &found) {
                    if let Err(e) = crate::apply::docker_ops::remove_volume(&c.docker, name).await {
                        failed(HostError::Engine(e.to_string()));
                    }
                }
            }
            Err(e) => failed(e),
        }
        match c.docker.remove_network(network_id).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => failed(e.into()),
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
    let connected: Vec<&Connected> = hosts
        .iter()
        .filter_map(|h| fleet.connected.get(h))
        .collect();
    let errors = join_all(connected.iter().map(|c| async move {
        let mut errors = Vec::new();
        match c.docker.remove_network(&names::lock_name(project)).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => errors.push((c.host.name.clone(), c.kind_of(e.into()))),
        }
        if let Ok(found) = leases(&c.docker, project, None).await {
            for (name, _) in found {
                let _ = crate::apply::docker_ops::remove_volume(&c.docker, &name).await;
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
