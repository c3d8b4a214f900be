//! Where replicas go: spread evenly over the eligible hosts, but pods stay where they are
//! (adding a host never reshuffles running pods).

use std::collections::BTreeMap;

/// Target pod count per eligible host. `current` holds today's counts; hosts are in a stable
/// order. Returns the targets and how many replicas could not be placed.
pub fn place(
    replicas: u32,
    hosts: &[String],
    current: &BTreeMap<String, u32>,
    max_per_host: u32,
) -> (BTreeMap<String, u32>, u32) {
    let mut target: BTreeMap<String, u32> = hosts
        .iter()
        .map(|h| {
            (
                h.clone(),
                current.get(h).copied().unwrap_or(0).min(max_per_host),
            )
        })
        .collect();
    let mut total: u32 = target.values().sum();
    while total > replicas {
        // Take from the fullest host; among equals, the last in order.
        let h = hosts
            .iter()
            .rev()
            .max_by_key(|h| target[*h])
            .expect("total > 0 means a host")
            .clone();
        *target.get_mut(&h).expect("known host") -= 1;
        total -= 1;
    }
    while total < replicas {
        // Give to the emptiest host with room; among equals, the first in order.
        let Some(h) = hosts
            .iter()
            .filter(|h| target[*h] < max_per_host)
            .min_by_key(|h| target[*h])
            .cloned()
        else {
            break;
        };
        *target.get_mut(&h).expect("known host") += 1;
        total += 1;
    }
    (target, replicas - total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("h{i}")).collect()
    }

    fn counts(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(h, c)| (h.to_string(), *c)).collect()
    }

    #[test]
    fn spreads_evenly_from_nothing() {
        let (t, left) = place(5, &hosts(3), &BTreeMap::new(), u32::MAX);
        assert_eq!(t, counts(&[("h1", 2), ("h2", 2), ("h3", 1)]));
        assert_eq!(left, 0);
    }

    #[test]
    fn keeps_pods_where_they_are_when_a_host_is_added() {
        let (t, _) = place(4, &hosts(3), &counts(&[("h1", 2), ("h2", 2)]), u32::MAX);
        assert_eq!(t, counts(&[("h1", 2), ("h2", 2), ("h3", 0)]));
    }

    #[test]
    fn scales_down_from_the_fullest_host() {
        let (t, _) = place(
            3,
            &hosts(3),
            &counts(&[("h1", 2), ("h2", 1), ("h3", 1)]),
            u32::MAX,
        );
        assert_eq!(t, counts(&[("h1", 1), ("h2", 1), ("h3", 1)]));
    }

    #[test]
    fn respects_max_per_host_and_reports_what_does_not_fit() {
        let (t, left) = place(4, &hosts(3), &BTreeMap::new(), 1);
        assert_eq!(t, counts(&[("h1", 1), ("h2", 1), ("h3", 1)]));
        assert_eq!(left, 1);
    }
}
