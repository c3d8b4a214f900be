//! The apply lock as plain values: who holds it, and until when. Pure.
//!
//! On each host the lock is a Docker network `berth-lock-<project>` (an engine refuses a
//! second network of one name, so only one apply can create it) labelled with the holder's
//! id, who they are and its lease. Network labels cannot change, so the holder proves it is
//! alive with lease volumes `berth-lease-<project>-<id>-<n>`: a running apply writes a new
//! one every third of the lease. A lock whose newest lease has run out belongs to an apply
//! that died (or stopped, or lost its way); the next apply may take it over.
//!
//! Every time here is the clock of the engine that keeps the lock: when it created the
//! network and each lease volume, and what it says the time is now. No machine's clock is
//! compared with another's, so a taker whose clock runs ahead cannot take a live lock, and a
//! holder whose clock runs behind cannot keep a dead one.

use super::Labels;

pub const ID_LABEL: &str = "berth.lock.id";
pub const OWNER_LABEL: &str = "berth.lock.owner";
/// On the lock: when it was taken, by its taker's clock (shown, never compared).
pub const SINCE_LABEL: &str = "berth.lock.since";
/// On lease volumes, for berth before 0.2 only: Unix seconds after which the holder counts
/// as gone, by the writer's clock. Written, never read.
pub const EXPIRES_LABEL: &str = "berth.lock.expires";
/// On the lock and on each lease volume: the holder's lease in seconds, counted from when
/// the engine created the lock or the lease volume.
pub const LEASE_LABEL: &str = "berth.lock.lease";
/// On the lock: the holder's process as the machine it ran on can recognise it (see
/// `here`), so that an apply there can tell at once that the holder died.
pub const PROCESS_LABEL: &str = "berth.lock.process";

/// How long a lease lasts unless renewed.
pub const DEFAULT_LEASE_S: u64 = 30;

/// Engines show a lease volume's creation to the second, cut down: a lease counts as run
/// out only this long after its end, so that the cut never ends a live one early.
pub const SLACK_S: u64 = 1;

/// A lock network or lease volume as its engine shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub labels: Labels,
    /// When the engine created it, Unix seconds by the engine's clock; `None` when it does
    /// not say.
    pub created: Option<u64>,
}

/// Who holds a lock on one host, read from the lock and its lease volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub id: Option<String>,
    pub owner: String,
    /// When the engine created the lock (Unix seconds, its clock); 0 when unknown.
    pub since: u64,
    /// When the lease runs out by the engine's clock, `None` when it cannot be told (a lock
    /// without any time on it: only `berth unlock` removes it).
    pub expires: Option<u64>,
    /// The holder's process record, when it left one.
    pub process: Option<String>,
}

fn lease_of(labels: &Labels) -> Option<u64> {
    labels.get(LEASE_LABEL)?.parse().ok()
}

impl Holder {
    /// `leases` are the lease volumes found with the lock's id; `lease_s` is the lease
    /// assumed for a lock or lease volume that does not say its own.
    pub fn read(lock: &Record, leases: &[Record], lease_s: u64) -> Holder {
        let id = lock.labels.get(ID_LABEL).cloned();
        let own_lease = lease_of(&lock.labels).unwrap_or(lease_s);
        let renewed = leases
            .iter()
            .filter(|l| id.is_some() && l.labels.get(ID_LABEL) == id.as_ref())
            .filter_map(|l| {
                let lease = lease_of(&l.labels).unwrap_or(own_lease);
                Some(l.created?.saturating_add(lease))
            })
            .max();
        // A lock is taken before its first lease is written: it counts as leased from then.
        let first = lock.created.map(|c| c.saturating_add(own_lease));
        Holder {
            id,
            owner: lock
                .labels
                .get(OWNER_LABEL)
                .cloned()
                .unwrap_or_else(|| "an unknown apply".into()),
            since: lock.created.unwrap_or(0),
            expires: renewed.max(first),
            process: lock.labels.get(PROCESS_LABEL).cloned(),
        }
    }

    /// Whether the lease has run out at `engine_now`, the lock's engine's time.
    pub fn expired(&self, engine_now: u64) -> bool {
        self.expires
            .is_some_and(|e| e.saturating_add(SLACK_S) < engine_now)
    }

    /// The seconds the lease has left at `engine_now` (0 once it ran out).
    pub fn left(&self, engine_now: u64) -> Option<u64> {
        self.expires.map(|e| e.saturating_sub(engine_now))
    }
}

/// Whether a holder renewing its lease kept it: `previous` and `next` are when the engine
/// created its last two lease volumes (or the lock, for the first). When the new one came
/// after the old one ran out, another apply may have taken the lock over in between (the
/// holder was suspended, or could not reach the engine), so the holder must stop. Judged
/// with the slack the other way round from `Holder::expired`, so the two never both hold.
pub fn renewed_in_time(previous: u64, next: u64, lease_s: u64) -> bool {
    next.saturating_add(SLACK_S) <= previous.saturating_add(lease_s)
}

/// Whether a host keeps something of an apply that is gone, for the next apply to clear: a
/// lock whose lease ran out or whose holder's process is `gone` (told by the machine it ran
/// on), or lease volumes of no lock (an apply killed while it released its lock).
/// `engine_now` is the host's engine time, `None` when it was not read (then only `gone`
/// tells a dead lock).
pub fn left_behind(
    lock: Option<&Record>,
    gone: bool,
    leases: &[Record],
    engine_now: Option<u64>,
) -> bool {
    let id = lock.and_then(|l| l.labels.get(ID_LABEL));
    let orphans = leases
        .iter()
        .any(|l| id.is_none() || l.labels.get(ID_LABEL) != id);
    let expired = |l: &Record| {
        engine_now.is_some_and(|now| Holder::read(l, leases, DEFAULT_LEASE_S).expired(now))
    };
    let dead = lock.is_some_and(|l| gone || expired(l));
    orphans || dead
}

/// Which lease volumes an apply releasing its lock removes: its own, and those of no live
/// lock (left by an apply killed while it released). Never those of the lock's holder now,
/// when that is someone else (this apply lost the lock while it ran): removing them would
/// make a live lock look dead.
pub fn leases_to_release<'a>(
    ours: &str,
    holder_now: Option<&str>,
    leases: &'a [(String, Labels)],
) -> Vec<&'a str> {
    leases
        .iter()
        .filter(|(_, l)| {
            let id = l.get(ID_LABEL).map(String::as_str);
            id == Some(ours) || id != holder_now
        })
        .map(|(name, _)| name.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels::from_pairs as labels;

    fn record(pairs: &[(&str, &str)], created: u64) -> Record {
        Record {
            labels: labels(pairs),
            created: Some(created),
        }
    }

    #[test]
    fn a_release_leaves_the_lease_of_whoever_holds_the_lock_now() {
        let lease = |name: &str, id: &str| (name.to_string(), labels(&[(ID_LABEL, id)]));
        let all = [
            lease("ours-1", "a1"),
            lease("next-1", "b2"),
            lease("dead-1", "c3"),
        ];
        // Still ours: our leases and the orphans go.
        assert_eq!(
            leases_to_release("a1", Some("a1"), &all),
            ["ours-1", "next-1", "dead-1"]
        );
        // Taken over by b2 while this apply ran: b2's lease stays.
        assert_eq!(
            leases_to_release("a1", Some("b2"), &all),
            ["ours-1", "dead-1"]
        );
        // No lock at all: every lease is an orphan.
        assert_eq!(leases_to_release("a1", None, &all).len(), 3);
    }

    #[test]
    fn a_lock_expires_with_its_newest_lease_by_the_engines_clock() {
        let lock = record(&[(ID_LABEL, "a1"), (OWNER_LABEL, "ci@runner pid 7")], 1000);
        let leases = [
            record(&[(ID_LABEL, "a1"), (LEASE_LABEL, "30")], 1070),
            record(&[(ID_LABEL, "a1"), (LEASE_LABEL, "30")], 1170),
            // Another holder's lease does not keep this one alive.
            record(&[(ID_LABEL, "b2"), (LEASE_LABEL, "30")], 9999),
            // Neither does the writer's own idea of its expiry (its clock, not the engine's).
            record(&[(ID_LABEL, "a1"), (EXPIRES_LABEL, "99999")], 0),
        ];
        let mut leases = leases.to_vec();
        leases[3].created = None;
        let h = Holder::read(&lock, &leases, 30);
        assert_eq!(h.since, 1000);
        assert_eq!(h.expires, Some(1200));
        assert_eq!(h.left(1190), Some(10));
        assert!(!h.expired(1200));
        assert!(
            !h.expired(1200 + SLACK_S),
            "creation times are cut to the second"
        );
        assert!(h.expired(1202));
    }

    #[test]
    fn a_lock_without_leases_lasts_its_own_lease_from_when_the_engine_made_it() {
        let lock = record(&[(ID_LABEL, "a1")], 1000);
        let h = Holder::read(&lock, &[], 30);
        assert_eq!(h.expires, Some(1030));
        assert_eq!(h.owner, "an unknown apply");
        let own = record(&[(ID_LABEL, "a1"), (LEASE_LABEL, "2")], 1000);
        assert_eq!(Holder::read(&own, &[], 30).expires, Some(1002));
        // A lease volume without its own lease counts the lock's.
        let lease = record(&[(ID_LABEL, "a1")], 1010);
        assert_eq!(Holder::read(&own, &[lease], 30).expires, Some(1012));
    }

    #[test]
    fn a_renewal_after_the_lease_ran_out_is_too_late() {
        assert!(renewed_in_time(1000, 1010, 30));
        assert!(renewed_in_time(1000, 1029, 30));
        assert!(!renewed_in_time(1000, 1030, 30));
        // A holder suspended for a minute finds its lease gone, whatever its own clock says.
        assert!(!renewed_in_time(1000, 1060, 30));
        // Where the holder still counts its lease, a taker never finds it run out.
        for next in 1000..1100 {
            let lock = record(&[(ID_LABEL, "a1"), (LEASE_LABEL, "30")], 1000);
            if renewed_in_time(1000, next, 30) {
                assert!(!Holder::read(&lock, &[], 30).expired(next));
            }
        }
    }

    #[test]
    fn what_a_dead_apply_left_is_told_from_a_live_lock() {
        let lock = record(&[(ID_LABEL, "a1")], 1000);
        let lease = record(&[(ID_LABEL, "a1"), (LEASE_LABEL, "30")], 1070);
        let own = std::slice::from_ref(&lease);
        let other = record(&[(ID_LABEL, "b2")], 1070);
        // A live lock with its own lease, and nothing at all: nothing to clear.
        assert!(!left_behind(Some(&lock), false, own, Some(1090)));
        assert!(!left_behind(None, false, &[], Some(1090)));
        // Its lease ran out, or its holder is known to have died.
        assert!(left_behind(Some(&lock), false, own, Some(1110)));
        assert!(left_behind(Some(&lock), true, own, Some(1090)));
        // Without the engine's time, only a holder known to be gone is dead.
        assert!(!left_behind(Some(&lock), false, own, None));
        // Leases of no lock, or of another lock than the one there.
        assert!(left_behind(None, false, own, None));
        assert!(left_behind(Some(&lock), false, &[lease, other], Some(1090)));
    }

    #[test]
    fn a_lock_without_any_time_never_expires() {
        let lock = Record {
            labels: labels(&[(OWNER_LABEL, "x")]),
            created: None,
        };
        let h = Holder::read(&lock, &[], 30);
        assert!(!h.expired(u64::MAX));
        assert_eq!(h.left(5), None);
    }
}
