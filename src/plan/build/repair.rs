//! Service membership repairs: every ready pod answers to the names its deployment's state
//! says, whatever an apply killed half-way (a pod created but not yet joined, an old pod that
//! left but was not stopped, a promotion cut short) or a hand (`docker network disconnect`)
//! left behind. Pure; needs a deep observation (the aliases come from an inspect).
//!
//! Only pods the plan keeps are repaired: pods of the desired revision and of the rollout's
//! stable one. The others are replaced by the strategy anyway.

use super::*;

/// Where a pod belongs, as to its deployment's service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Behind {
    Service,
    /// The preview name of a blue-green new set.
    Preview,
    /// Out of service (an old set kept for a rollback).
    Nothing,
}

impl Behind {
    pub(super) fn names(self, service: &str, preview: &str) -> Vec<String> {
        match self {
            Behind::Service => vec![service.to_string()],
            Behind::Preview => vec![preview.to_string()],
            Behind::Nothing => vec![],
        }
    }
}

/// Where a running, ready pod belongs, or `None` when it is not this pass's business
/// (another revision, an aborted canary's pods). The recorded rollout's strategy has the
/// first say. `new_set_waits`: a blue-green whose desired revision no rollout state covers
/// yet while another revision runs (an apply killed before it recorded its new set): the new
/// set waits behind the preview name, since only a promotion puts it behind the service.
fn expected(
    pod: &ObservedPod,
    revision: &str,
    state: Option<&Rollout>,
    new_set_waits: bool,
) -> Option<Behind> {
    if new_set_waits && pod.revision == revision {
        return Some(Behind::Preview);
    }
    if let Some(s) = state {
        if let Some(decided) = strategy::of(s.strategy).behind_during(s, &pod.revision) {
            return decided;
        }
    }
    match state {
        Some(s)
            if matches!(s.phase, Phase::Aborted | Phase::Failed) && pod.revision == s.revision =>
        {
            None
        }
        Some(s) if pod.revision == s.stable => Some(Behind::Service),
        _ if pod.revision == revision => Some(Behind::Service),
        _ => None,
    }
}

/// A wave that puts the deployment's ready pods behind the names they should answer to,
/// if any is off; joins come before leaves on each host, so a name never loses its last
/// pod on the way.
pub(super) fn membership_repairs(
    cx: &Context,
    d: &Deployment,
    out: &mut DeploymentPlan,
) -> Option<Wave> {
    let service = d.service.as_ref()?.name.clone();
    let preview = names::preview_alias(&service);
    let revision = d.revision(&cx.input.desired.project);
    let state = Rollout::of(cx.input.observed, &d.name).cloned();
    let network = network_name(&cx.input.desired.project);
    let new_set_waits = strategy::of(d.strategy.kind).new_set_waits()
        && state.as_ref().is_none_or(|s| s.revision != revision)
        && cx
            .pods
            .iter()
            .any(|p| p.deployment == d.name && p.revision != revision && p.is_running());
    // Per host, in this order: names added, names swapped, names dropped; so a name
    // never loses its last pod on the way.
    let mut joins: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    let mut swaps: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    let mut leaves: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    let mut changes = Vec::new();
    for p in cx.pods.iter().filter(|p| p.deployment == d.name) {
        // An unhealthy pod is the health report's business; a starting one joins once its
        // gate passes (a killed apply may have left it between start and gate).
        let starting = p.health() == Some(Health::Starting);
        if !p.is_running() || p.health() == Some(Health::Unhealthy) {
            continue;
        }
        let (Some(have), Some(owner)) = (p.behind(&[&service, &preview]), p.network_owner()) else {
            continue;
        };
        // A new set pod already behind the service (a promotion cut short) stays there
        // until the promotion moves the rest: taking it off could leave a host without a
        // pod behind the service.
        if new_set_waits && p.revision == revision && have.contains(&service) {
            continue;
        }
        let Some(want) = expected(p, &revision, state.as_ref(), new_set_waits) else {
            continue;
        };
        let want = want.names(&service, &preview);
        let (mut have_sorted, mut want_sorted) = (have.clone(), want.clone());
        have_sorted.sort();
        want_sorted.sort();
        if have_sorted == want_sorted {
            continue;
        }
        let container = owner.name.clone();
        let reason = if starting {
            Reason::StartingOutOfService { want: want.clone() }
        } else if want.is_empty() {
            Reason::ShouldBeOutOfService { have: have.clone() }
        } else if have.is_empty() {
            Reason::ReadyOutOfService { want: want.clone() }
        } else {
            Reason::WrongNames {
                have: have.clone(),
                want: want.clone(),
            }
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
        if starting && !want.is_empty() {
            let gate = Step::AwaitReady {
                pod: p.name.clone(),
                containers: p.containers.iter().map(|c| c.name.clone()).collect(),
                min_ready_ms: d.strategy.min_ready_ms,
                timeout_ms: d.strategy.health_timeout_ms,
                join: Some(ServiceJoin {
                    container: container.clone(),
                    network: network.clone(),
                    aliases: want.clone(),
                }),
            };
            joins.entry(p.host.clone()).or_default().push(gate);
        } else if starting {
            continue;
        } else if want.is_empty() {
            let drain = d.strategy.drain_ms;
            leaves
                .entry(p.host.clone())
                .or_default()
                .push(leave(have, drain));
        } else if want.iter().all(|w| have.contains(w)) {
            // Extra names only: off all of them and back on the right ones at once (the
            // address is kept, so connections go on).
            let steps = [leave(have, 0), join];
            swaps.entry(p.host.clone()).or_default().extend(steps);
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
    out.changes.extend(changes);
    for (host, steps) in swaps.into_iter().chain(leaves) {
        joins.entry(host).or_default().extend(steps);
    }
    Some(Wave {
        deployment: Some(d.name.clone()),
        description: format!("put the pods of {} back behind their service names", d.name),
        steps: joins,
        on_failure: BTreeMap::new(),
    })
}

impl Context<'_> {
    /// The observed hosts that carry a rollout state of the deployment.
    pub(super) fn state_carriers(&self, d: &Deployment) -> Vec<String> {
        self.input
            .observed
            .iter()
            .filter_map(|(h, o)| Some((h, o.as_ref().ok()?)))
            .filter(|(_, o)| o.rollouts.iter().any(|r| r.deployment == d.name))
            .map(|(h, _)| h.clone())
            .collect()
    }
}

/// Whether the deployment's desired revision failed its rolling or recreate rollout
/// before (with this strategy): then nothing is planned for it until Git changes or
/// `--retry`, and the plan says so. Flap protection for `sync` from cron.
pub(super) fn failed_before(cx: &Context, d: &Deployment, out: &mut DeploymentPlan) -> bool {
    if d.strategy.kind.is_progressive() || cx.input.retry {
        return false;
    }
    let revision = d.revision(&cx.input.desired.project);
    let Some(s) = Rollout::of(cx.input.observed, &d.name) else {
        return false;
    };
    if !(s.phase == Phase::Failed && s.stops(&revision, &d.attempt())) {
        return false;
    }
    out.rollout_issue(d, format!(
            "the rollout of revision {revision} of {} failed at {} and was rolled back; it is not tried again until Git changes (or run with --retry)",
            d.name,
            crate::model::rollout::rfc3339(s.since)
        ));
    true
}

/// A rolling or recreate deployment's waves, each recording on failure that this
/// revision failed (so `sync` does not retry it), and, when they all pass, forgetting an
/// earlier failure.
pub(super) fn remember_failure(cx: &Context, d: &Deployment, mut waves: Vec<Wave>) -> Vec<Wave> {
    if waves.is_empty() || d.strategy.kind.is_progressive() {
        return waves;
    }
    let failed = Rollout {
        deployment: d.name.clone(),
        strategy: d.strategy.kind,
        revision: d.revision(&cx.input.desired.project),
        stable: String::new(),
        phase: Phase::Failed,
        step: 0,
        weight: 0,
        since: 0,
        attempt: Some(d.attempt()),
    };
    let record = |state: Option<Rollout>| Step::RecordRollout {
        deployment: d.name.clone(),
        state,
    };
    for (i, w) in waves.iter_mut().enumerate() {
        let state = Rollout {
            step: i,
            ..failed.clone()
        };
        let hosts: Vec<String> = w.steps.keys().cloned().collect();
        for h in hosts {
            w.on_failure
                .entry(h)
                .or_default()
                .push(record(Some(state.clone())));
        }
    }
    let carriers = cx.state_carriers(d);
    if !carriers.is_empty() {
        waves.push(Wave {
            deployment: Some(d.name.clone()),
            description: format!("forget the failed rollout of {}", d.name),
            steps: carriers
                .into_iter()
                .map(|h| (h, vec![record(None)]))
                .collect(),
            on_failure: BTreeMap::new(),
        });
    }
    waves
}
