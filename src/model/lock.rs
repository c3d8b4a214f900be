//! The apply lock as plain values: who holds it, and until when. Pure.
//!
//! On each host the lock is a Docker network `berth-lock-<project>` (an engine refuses a
//! second network of one name, so only one apply can create it) labelled with the holder's
//! id, who they are and since when. Network labels cannot change, so the holder proves it is
//! alive with lease volumes `berth-lease-<project>-<id>-<n>`, each labelled with an expiry:
//! a running apply writes a new one every third of the lease. A lock whose newest lease has
//! expired belongs to an apply that died; the next apply may take it over.

use super::Labels;

pub const ID_LABEL: &str = "berth.lock.id";
pub const OWNER_LABEL: &str = "berth.lock.owner";
pub const SINCE_LABEL: &str = "berth.lock.since";
/// On lease volumes: Unix seconds after which the holder counts as gone.
pub const EXPIRES_LABEL: &str = "berth.lock.expires";
/// On the lock: the holder's lease in seconds, for the time before its first lease volume.
pub const LEASE_LABEL: &str = "berth.lock.lease";
/// On the lock: the holder's process as the machine it ran on can recognise it (see
/// `here`), so that an apply there can tell at once that the holder died.
pub const PROCESS_LABEL: &str = "berth.lock.process";

/// How long a lease lasts unless renewed.
pub const DEFAULT_LEASE_S: u64 = 30;

/// Who holds a lock on one host, read from its labels and its lease volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub id: Option<String>,
    pub owner: String,
    /// Unix seconds; 0 when unknown.
    pub since: u64,
    /// Unix seconds after which the holder is gone, `None` when it cannot be told (a lock
    /// without any time on it: only `berth unlock` removes it).
    pub expires: Option<u64>,
    /// The holder's process record, when it left one.
    pub process: Option<String>,
}

impl Holder {
    /// `leases` are the labels of the lease volumes found with the lock's id; `lease_s` is
    /// the lease assumed for a lock that does not say its own.
    pub fn read(lock: &Labels, leases: &[Labels], lease_s: u64) -> Holder {
        let id = lock.get(ID_LABEL).cloned();
        let since = lock
            .get(SINCE_LABEL)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        let renewed = leases
            .iter()
            .filter(|l| id.is_some() && l.get(ID_LABEL) == id.as_ref())
            .filter_map(|l| l.get(EXPIRES_LABEL)?.parse::<u64>().ok())
            .max();
        // A lock is taken before its first lease is written: it counts as leased from then,
        // for the holder's own lease.
        let own_lease = lock
            .get(LEASE_LABEL)
            .and_then(|l| l.parse::<u64>().ok())
            .unwrap_or(lease_s);
        let first = (since > 0).then(|| since.saturating_add(own_lease));
        Holder {
            id,
            owner: lock
                .get(OWNER_LABEL)
                .cloned()
                .unwrap_or_else(|| "an unknown apply".into()),
            since,
            expires: renewed.or(first),
            process: lock.get(PROCESS_LABEL).cloned(),
        }
    }

    pub fn expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|e| e < now)
    }
}

/// Whether a host keeps something of an apply that is gone, for the next apply to clear: a
/// lock whose lease ran out or whose holder's process is `gone` (told by the machine it ran
/// on), or lease volumes of no lock (an apply killed while it released its lock).
pub fn left_behind(lock: Option<&Labels>, gone: bool, leases: &[Labels], now: u64) -> bool {
    let id = lock.and_then(|l| l.get(ID_LABEL));
    let orphans = leases.iter().any(|l| id.is_none() || l.get(ID_LABEL) != id);
    let dead = lock.is_some_and(|l| gone || Holder::read(l, leases, DEFAULT_LEASE_S).expired(now));
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

    use crate::model::labels::from_pairs as labels;

    #[test]
    fn a_lock_expires_with_its_newest_lease() {
        let lock = labels(&[
            (ID_LABEL, "a1"),
            (OWNER_LABEL, "ci@runner pid 7"),
            (SINCE_LABEL, "1000"),
        ]);
        let leases = [
            labels(&[(ID_LABEL, "a1"), (EXPIRES_LABEL, "1100")]),
            labels(&[(ID_LABEL, "a1"), (EXPIRES_LABEL, "1200")]),
            // Another holder's lease does not keep this one alive.
            labels(&[(ID_LABEL, "b2"), (EXPIRES_LABEL, "9999")]),
        ];
        let h = Holder::read(&lock, &leases, 30);
        assert_eq!(h.expires, Some(1200));
        assert!(!h.expired(1200));
        assert!(h.expired(1201));
    }

    #[test]
    fn a_lock_without_leases_lasts_one_lease_from_when_it_was_taken() {
        let lock = labels(&[(ID_LABEL, "a1"), (SINCE_LABEL, "1000")]);
        let h = Holder::read(&lock, &[], 30);
        assert_eq!(h.expires, Some(1030));
        assert_eq!(h.owner, "an unknown apply");
        let mut own = lock.clone();
        own.insert(LEASE_LABEL.into(), "2".into());
        assert_eq!(Holder::read(&own, &[], 30).expires, Some(1002));
        // Once leases are written, the newest one decides, even when it is shorter.
        let lease = labels(&[(ID_LABEL, "a1"), (EXPIRES_LABEL, "1004")]);
        assert_eq!(Holder::read(&lock, &[lease], 30).expires, Some(1004));
    }

    #[test]
    fn what_a_dead_apply_left_is_told_from_a_live_lock() {
        let lock = labels(&[(ID_LABEL, "a1"), (SINCE_LABEL, "1000")]);
        let lease = labels(&[(ID_LABEL, "a1"), (EXPIRES_LABEL, "1100")]);
        let own = std::slice::from_ref(&lease);
        let other = labels(&[(ID_LABEL, "b2"), (EXPIRES_LABEL, "1100")]);
        // A live lock with its own lease, and nothing at all: nothing to clear.
        assert!(!left_behind(Some(&lock), false, own, 1050));
        assert!(!left_behind(None, false, &[], 1050));
        // Its lease ran out, or its holder is known to have died.
        assert!(left_behind(Some(&lock), false, own, 1101));
        assert!(left_behind(Some(&lock), true, own, 1050));
        // Leases of no lock, or of another lock than the one there.
        assert!(left_behind(None, false, own, 1050));
        assert!(left_behind(Some(&lock), false, &[lease, other], 1050));
    }

    #[test]
    fn a_lock_without_any_time_never_expires() {
        let h = Holder::read(&labels(&[(OWNER_LABEL, "x")]), &[], 30);
        assert!(!h.expired(u64::MAX));
    }
}
