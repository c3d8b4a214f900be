//! Service membership repairs: every ready pod answers to the names its deployment's state
//! says, whatever an apply killed half-way (a pod created but not yet joined, an old pod that
//! left but was not stopped, a promotion cut short) or a hand (`docker network disconnect`)
//! left behind. Pure; needs a deep observation (the aliases come from an inspect).
//!
//! Only pods the plan keeps are repaired: pods of the desired revision and of the rollout's
//! stable one. The others are replaced by the strategy anyway.

use super::*;

/// The service names a running, ready pod should answer to, or `None` when it is not this
/// pass's business (another revision, an aborted canary's pods).
fn expected(
    pod: &ObservedPod,
    revision: &str,
    state: Option<&Rollout>,
    service: &str,
    preview: &str,
) -> Option<Vec<String>> {
    let serve = || Some(vec![service.to_string()]);
    match state {
        Some(s) if s.strategy == StrategyKind::BlueGreen && pod.revision == s.revision => {
            match s.phase {
                Phase::Paused => Some(vec![preview.to_string()]),
                Phase::Promoted => serve(),
                _ => None,
            }
        }
        Some(s) if s.strategy == StrategyKind::BlueGreen && pod.revision == s.stable => {
            match s.phase {
                // The old set waits out of service for a rollback.
                Phase::Promoted => Some(vec![]),
                _ => serve(),
            }
        }
        Some(s) if s.phase == Phase::Aborted && pod.revision == s.revision => None,
        Some(s) if pod.revision == s.stable => serve(),
        _ if pod.revision == revision => serve(),
        _ => None,
    }
}

impl Builder<'_> {
    /// A wave that puts the deployment's ready pods behind the names they should answer to,
    /// if any is off; joins come before leaves on each host, so a name never loses its last
    /// pod on the way.
    pub(super) fn membership_repairs(&mut self, d: &Deployment) -> Option<Wave> {
        let service = d.service.as_ref()?.name.clone();
        let preview = names::preview_alias(&service);
        let revision = d.revision(&self.input.desired.project);
        let state = Rollout::of(self.input.observed, &d.name).cloned();
        let network = network_name(&self.input.desired.project);
        let mut joins: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        let mut leaves: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        let mut changes = Vec::new();
        for p in self.pods.iter().filter(|p| p.deployment == d.name) {
            let ready = !matches!(p.health(), Some(Health::Unhealthy | Health::Starting));
            if !p.is_running() || !ready {
                continue;
            }
            let (Some(have), Some(owner)) = (p.behind(&[&service, &preview]), p.network_owner())
            else {
                continue;
            };
            let Some(want) = expected(p, &revision, state.as_ref(), &service, &preview) else {
                continue;
            };
            let (mut have_sorted, mut want_sorted) = (have.clone(), want.clone());
            have_sorted.sort();
            want_sorted.sort();
            if have_sorted == want_sorted {
                continue;
            }
            let container = owner.name.clone();
            let reason = if want.is_empty() {
                format!(
                    "answers to {} but should be out of service (an apply stopped half-way, or a hand)",
                    have.join(", ")
                )
            } else if have.is_empty() {
                format!(
                    "ready but not behind {} (an apply stopped before it joined, or a hand disconnected it)",
                    want.join(", ")
                )
            } else {
                format!("behind {} instead of {}", have.join(", "), want.join(", "))
            };
            let leave = |aliases: Vec<String>, drain_ms: u64| Step::LeaveService {
                pod: p.name.clone(),
                leave: ServiceJoin {
                    container: container.clone(),
                    network: network.clone(),
                    aliases,
                },
                drain_ms,
            };
            let join = Step::JoinService {
                pod: p.name.clone(),
                join: ServiceJoin {
                    container: container.clone(),
                    network: network.clone(),
                    aliases: want.clone(),
                },
            };
            if want.is_empty() {
                let drain = d.strategy.drain_ms;
                leaves
                    .entry(p.host.clone())
                    .or_default()
                    .push(leave(have, drain));
            } else if want.iter().all(|w| have.contains(w)) {
                // Extra names only: off all of them and back on the right ones at once (the
                // address is kept, so connections go on).
                let steps = [leave(have, 0), join];
                joins.entry(p.host.clone()).or_default().extend(steps);
            } else {
                joins.entry(p.host.clone()).or_default().push(join);
            }
            changes.push(Change::plain(
                &d.name,
                &p.host,
                Action::Switch,
                ChangeKind::Drift,
                Some(p.name.clone()),
                reason,
            ));
        }
        if changes.is_empty() {
            return None;
        }
        self.changes.extend(changes);
        for (host, steps) in leaves {
            joins.entry(host).or_default().extend(steps);
        }
        Some(Wave {
            deployment: Some(d.name.clone()),
            description: format!("put the pods of {} back behind their service names", d.name),
            steps: joins,
            on_failure: BTreeMap::new(),
        })
    }
}
