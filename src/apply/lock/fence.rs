//! The fence between the lock and the steps: no step runs unless this apply has lately
//! proved, on the engines, that the lock is still its own.
//!
//! The renewal (see `lease`) proves it every third of the lease: the lock network this apply
//! created is still there, and its new lease volume came before the last one ran out by the
//! engine's clock. Before each step the executor asks `ready`: when the last proof is older
//! than two thirds of the lease by any of this machine's clocks (a process suspended with
//! SIGSTOP, a laptop asleep, a paused CI machine: the monotonic clock stops during a
//! suspend, the boot clock does not), the step waits for a fresh proof, and a lost lock
//! ends the apply before that step. Before each wave the executor asks `confirm`, a proof
//! made after the wave was reached: the lock's generation (its network id) is checked on the
//! engines once per wave whatever the clocks say.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// A moment by this machine's monotonic and boot clocks (the boot clock counts a suspend).
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamp {
    monotonic: Instant,
    boot: Option<Duration>,
}

fn boot_clock() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        Some(Duration::new(
            u64::try_from(t.tv_sec).ok()?,
            u32::try_from(t.tv_nsec).ok()?,
        ))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

impl Stamp {
    pub(super) fn now() -> Stamp {
        Stamp {
            monotonic: Instant::now(),
            boot: boot_clock(),
        }
    }

    /// The time since, by whichever clock counted the most.
    pub(super) fn elapsed(&self) -> Duration {
        let by_boot = match (self.boot, boot_clock()) {
            (Some(then), Some(now)) => now.saturating_sub(then),
            _ => Duration::ZERO,
        };
        self.monotonic.elapsed().max(by_boot)
    }
}

/// What the executor asks before each wave and each step. Clones share one state.
#[derive(Clone)]
pub struct Fence {
    inner: Arc<Inner>,
}

/// The lock is not (or may not be) this apply's any more: why, in words. What the executor
/// stops on (an interruption, not a verdict on the revision).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LockLost(pub String);

struct Inner {
    /// No lock behind it: nothing to prove.
    open: bool,
    /// A step may run while the newest proof is younger than this.
    fresh_for: Duration,
    /// When the newest proof on every host began (a proof counts from before it was asked).
    proved: watch::Sender<Option<Stamp>>,
    lost: watch::Sender<Option<String>>,
    /// Wakes the renewal for a proof now.
    wake: Notify,
}

impl Fence {
    /// A fence for a lock with this lease, proved as of `taken` (when the lock was taken).
    pub(super) fn new(lease: Duration, taken: Stamp) -> Fence {
        Fence::with(false, lease * 2 / 3, Some(taken))
    }

    fn with(open: bool, fresh_for: Duration, proved: Option<Stamp>) -> Fence {
        Fence {
            inner: Arc::new(Inner {
                open,
                fresh_for,
                proved: watch::channel(proved).0,
                lost: watch::channel(None).0,
                wake: Notify::new(),
            }),
        }
    }

    /// A fence around no lock: nothing to prove, only `lose` stops it (an apply run on
    /// engines in memory).
    pub fn open() -> Fence {
        Fence::with(true, Duration::ZERO, None)
    }

    /// Says why the apply must stop when set (the lock was lost, or could not be renewed).
    pub fn lost(&self) -> watch::Receiver<Option<String>> {
        self.inner.lost.subscribe()
    }

    pub fn lost_why(&self) -> Option<String> {
        self.inner.lost.borrow().clone()
    }

    /// Ends the apply: the lock is not (or may not be) its own any more. The first reason
    /// given stays.
    pub fn lose(&self, why: String) {
        self.inner.lost.send_if_modified(|now| {
            if now.is_some() {
                return false;
            }
            *now = Some(why);
            true
        });
    }

    /// The renewal proved the lock on every host, with a proof begun at `began`.
    pub(super) fn proved(&self, began: Stamp) {
        self.inner.proved.send_replace(Some(began));
    }

    /// Resolves when someone wants a proof now.
    pub(super) async fn woken(&self) {
        self.inner.wake.notified().await;
    }

    fn newest(&self) -> Option<Stamp> {
        *self.inner.proved.borrow()
    }

    fn fresh(&self) -> bool {
        self.newest()
            .is_some_and(|p| p.elapsed() < self.inner.fresh_for)
    }

    /// Waits for a proof begun after this call; an error says why the lock is lost.
    async fn next_proof(&self) -> Result<(), LockLost> {
        let asked = Instant::now();
        let mut proofs = self.inner.proved.subscribe();
        let mut lost = self.lost();
        self.inner.wake.notify_one();
        loop {
            if let Some(why) = lost.borrow_and_update().clone() {
                return Err(LockLost(why));
            }
            if proofs
                .borrow_and_update()
                .is_some_and(|p| p.monotonic >= asked)
            {
                return Ok(());
            }
            tokio::select! {
                changed = proofs.changed() => if changed.is_err() { return Err(gone()) },
                changed = lost.changed() => if changed.is_err() { return Err(gone()) },
            }
        }
    }

    /// Before a step: Ok once the lock is known to be this apply's as of lately.
    pub async fn ready(&self) -> Result<(), LockLost> {
        if let Some(why) = self.lost_why() {
            return Err(LockLost(why));
        }
        if self.inner.open {
            return Ok(());
        }
        if self.fresh() {
            return Ok(());
        }
        self.next_proof().await
    }

    /// Before a wave: a proof made from now on, on every host.
    pub async fn confirm(&self) -> Result<(), LockLost> {
        if let Some(why) = self.lost_why() {
            return Err(LockLost(why));
        }
        if self.inner.open {
            return Ok(());
        }
        self.next_proof().await
    }
}

fn gone() -> LockLost {
    LockLost("the apply lock's renewal ended".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_open_fence_never_stops_anything() {
        let fence = Fence::open();
        assert_eq!(fence.ready().await, Ok(()));
        assert_eq!(fence.confirm().await, Ok(()));
    }

    #[tokio::test]
    async fn a_stale_proof_waits_for_a_new_one_and_a_lost_lock_stops() {
        let fence = Fence::new(Duration::from_millis(30), Stamp::now());
        assert_eq!(fence.ready().await, Ok(()), "just taken");
        std::thread::sleep(Duration::from_millis(25));
        // Too old: the step asks for a proof, which the renewal (here a task) makes.
        let renewal = {
            let fence = fence.clone();
            tokio::spawn(async move {
                fence.woken().await;
                fence.proved(Stamp::now());
                fence.woken().await;
                fence.lose("taken over by b2".into());
            })
        };
        assert_eq!(fence.ready().await, Ok(()));
        assert_eq!(
            fence.ready().await,
            Ok(()),
            "fresh again, no new proof asked"
        );
        assert_eq!(
            fence.confirm().await,
            Err(LockLost("taken over by b2".into()))
        );
        assert_eq!(
            fence.ready().await,
            Err(LockLost("taken over by b2".into()))
        );
        renewal.await.unwrap();
        fence.lose("another reason".into());
        assert_eq!(fence.lost_why().as_deref(), Some("taken over by b2"));
    }
}
