//! The strategies, as values: each plans a deployment's rollout into a `DeploymentPlan`,
//! shapes the return of a kept revision, and says what its recorded rollouts mean for the
//! service names and the edges. `of` is the one place a strategy is chosen: a new strategy
//! is a file and a match arm, and the trait says what it must answer. Pure.

use super::repair::Behind;
use super::restore::Restore;
use super::*;
use crate::model::Rollout;

mod blue_green;
mod canary;
mod recreate;
mod rolling;

pub(super) trait Strategy {
    /// The deployment's plan towards Git's revision (its jobs, history and repairs are the
    /// pipeline's).
    fn rollout(&self, cx: &Context, d: &Deployment) -> DeploymentPlan;

    /// The waves that bring back a kept revision (`berth rollback --to`) in this
    /// strategy's shape, when its pods publish no host port.
    fn restore(&self, shape: &Restore, back: &[ObservedPod], current: &[ObservedPod]) -> Vec<Wave>;

    /// Where a pod of `revision` belongs while the rollout `s` of this strategy is recorded,
    /// when the strategy decides it: `Some(None)` leaves the pod to its rollout. `None`: the
    /// common rules apply (the stable and the desired revision serve).
    fn behind_during(&self, s: &Rollout, revision: &str) -> Option<Option<Behind>>;

    /// Whether a new revision's pods wait behind the preview name until a promotion, even
    /// before any rollout state covers them (an apply killed before it recorded one).
    fn new_set_waits(&self) -> bool;

    /// The share of requests the edges send to `s`'s revision while it stands.
    fn routed_weight(&self, s: &Rollout) -> Option<u32>;
}

/// The strategy of that kind.
pub(super) fn of(kind: StrategyKind) -> &'static dyn Strategy {
    match kind {
        StrategyKind::Rolling => &rolling::Rolling,
        StrategyKind::Recreate => &recreate::Recreate,
        StrategyKind::Canary => &canary::Canary,
        StrategyKind::BlueGreen => &blue_green::BlueGreen,
    }
}

/// A deployment planned without a rollout of its own (a canary or blue-green one with
/// nothing to roll out, or no service): scaling and repairs in rolling batches.
pub(super) fn rolling_without_rollout(cx: &Context, d: &Deployment) -> DeploymentPlan {
    rolling::Rolling.rollout(cx, d)
}

/// A restart (`berth restart`): each running pod replaced by a new one of the same revision,
/// ordered as the strategy orders replacements where it can. A restart has no new revision
/// for a canary to weigh or a blue-green switch to move to, so those restart in rolling
/// batches (their `max_surge` and `max_unavailable`), as their repairs do.
pub(super) fn restart(cx: &Context, d: &Deployment) -> DeploymentPlan {
    match d.strategy.kind {
        StrategyKind::Recreate => recreate::Recreate.rollout(cx, d),
        StrategyKind::Rolling | StrategyKind::Canary | StrategyKind::BlueGreen => {
            rolling::Rolling.rollout(cx, d)
        }
    }
}

/// One old pod to be replaced by a new one on a host.
struct Replacement {
    host: String,
    new: PodPlan,
    old: ObservedPod,
    /// The pod publishes a host port, so the old pod must stop before the new one starts.
    stop_first: bool,
    /// The old pod holds another revision, kept stopped for `berth rollback --to` rather
    /// than removed (`history_limit` above 0).
    keep: bool,
}

impl Replacement {
    /// Once replaced: the old pod stops and stays (history), or goes.
    fn retire_step(&self, d: &Deployment) -> Step {
        if self.keep {
            stop_step(&self.old, d.strategy.stop_timeout_s)
        } else {
            remove_step(&self.old, d.strategy.stop_timeout_s)
        }
    }
}

/// A deployment's pods judged one by one (`pods::pod_work`) and their work ordered into
/// waves, the replacements by `replace` (rolling batches, or recreate's stop-first).
fn pod_waves(
    cx: &Context,
    d: &Deployment,
    replace: fn(&Deployment, Vec<Replacement>) -> Vec<Wave>,
) -> DeploymentPlan {
    let (mut plan, work) = pods::pod_work(cx, d);
    plan.waves = ordered(d, work, &network_name(cx.project()), replace);
    plan
}

/// Orders one deployment's pod work into waves: stopped pods start, missing ones are
/// created, `replace` orders the replacements its strategy's way, and the surplus goes.
fn ordered(
    d: &Deployment,
    work: Vec<Work>,
    network: &str,
    replace: fn(&Deployment, Vec<Replacement>) -> Vec<Wave>,
) -> Vec<Wave> {
    let aliases: Vec<String> = d.service.iter().map(|s| s.name.clone()).collect();
    let mut waves = Vec::new();
    let mut starts = Phased::default();
    let mut fresh = Phased::default();
    let mut fresh_undo: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    let mut replacements = Vec::new();
    let mut removals: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    // A pod that goes leaves its service first, then is removed, or stopped and kept.
    let retire = |removals: &mut BTreeMap<String, Vec<Step>>, p: &ObservedPod, keep: bool| {
        let steps = removals.entry(p.host.clone()).or_default();
        if !aliases.is_empty() {
            let leave = ServiceJoin {
                container: network_owner(p),
                network: network.to_string(),
                aliases: aliases.clone(),
            };
            steps.extend(leave_steps(&[(&p.name, leave)], d.strategy.drain_ms));
        }
        steps.push(if keep {
            stop_step(p, d.strategy.stop_timeout_s)
        } else {
            remove_step(p, d.strategy.stop_timeout_s)
        });
    };
    for w in work {
        match w {
            Work::Start(p) => {
                // A stopped pod may never have joined its service (an apply stopped between
                // creating and gating it): it joins once ready, whatever it had before.
                let mut gate = await_step(d, &p.name, container_names(&p));
                if let (Step::AwaitReady { join, .. }, false) = (&mut gate, aliases.is_empty()) {
                    *join = Some(ServiceJoin {
                        container: network_owner(&p),
                        network: network.to_string(),
                        aliases: aliases.clone(),
                    });
                }
                starts.add(&p.host, [start_step(&p), gate]);
            }
            Work::Create {
                new,
                host,
                replaces: None,
                ..
            } => {
                fresh_undo
                    .entry(host.clone())
                    .or_default()
                    .push(remove_new(&new, d.strategy.stop_timeout_s));
                fresh.add(&host, create_and_await(d, new));
            }
            Work::Create {
                new,
                host,
                replaces: Some(old),
                stop_first,
            } => replacements.push(Replacement {
                keep: d.strategy.history_limit > 0
                    && new.containers[0].labels.get(label::REVISION) != Some(&old.revision),
                host,
                new,
                old,
                stop_first,
            }),
            Work::Remove(p) => retire(&mut removals, &p, false),
            Work::Stop(p) => retire(&mut removals, &p, true),
        }
    }
    if !starts.is_empty() {
        waves.push(Wave {
            deployment: None,
            description: format!("{}: start stopped pods", d.name),
            steps: starts.into_steps(),
            on_failure: BTreeMap::new(),
        });
    }
    if !fresh.is_empty() {
        waves.push(Wave {
            deployment: None,
            description: format!("{}: create new pods", d.name),
            steps: fresh.into_steps(),
            on_failure: fresh_undo,
        });
    }
    waves.extend(replace(d, replacements));
    if !removals.is_empty() {
        waves.push(Wave {
            deployment: None,
            description: format!("{}: remove surplus pods", d.name),
            steps: removals,
            on_failure: BTreeMap::new(),
        });
    }
    waves
}
