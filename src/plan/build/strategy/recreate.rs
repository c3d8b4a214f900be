//! Recreate: every old pod stops first, then the new pods start and pass their health gate,
//! then the old pods go (or stay stopped, kept for `berth rollback --to`). A failure removes the new pods and starts the old ones again. Pure.

use super::*;

pub(super) struct Recreate;

impl Strategy for Recreate {
    fn rollout(&self, cx: &Context, d: &Deployment) -> DeploymentPlan {
        pod_waves(cx, d, recreate_waves)
    }

    fn restore(&self, shape: &Restore, back: &[ObservedPod], current: &[ObservedPod]) -> Vec<Wave> {
        shape.stop_first(back, current)
    }

    fn behind_during(&self, _: &Rollout, _: &str) -> Option<Option<Behind>> {
        None
    }

    fn new_set_waits(&self) -> bool {
        false
    }

    fn routed_weight(&self, _: &Rollout) -> Option<u32> {
        None
    }
}

fn recreate_waves(d: &Deployment, replacements: Vec<Replacement>) -> Vec<Wave> {
    let mut waves = Vec::new();
    if replacements.is_empty() {
        return waves;
    }
    let mut stop: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    let mut create = Phased::default();
    let mut undo: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    let mut remove: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    for r in replacements {
        let retire = r.retire_step(d);
        let Replacement {
            host,
            new,
            old,
            keep,
            ..
        } = r;
        stop.entry(host.clone())
            .or_default()
            .push(stop_step(&old, d.strategy.stop_timeout_s));
        let u = undo.entry(host.clone()).or_default();
        u.push(remove_new(&new, d.strategy.stop_timeout_s));
        u.push(start_step(&old));
        create.add(&host, create_and_await(d, new));
        // A kept pod is stopped already: it stays as it is.
        if !keep {
            remove.entry(host).or_default().push(retire);
        }
    }
    waves.push(Wave {
        deployment: None,
        description: format!("{}: stop the old pods (recreate)", d.name),
        steps: stop,
        on_failure: BTreeMap::new(),
    });
    waves.push(Wave {
        deployment: None,
        description: format!("{}: start the new pods", d.name),
        steps: create.into_steps(),
        on_failure: undo,
    });
    if !remove.is_empty() {
        waves.push(Wave {
            deployment: None,
            description: format!("{}: remove the old pods", d.name),
            steps: remove,
            on_failure: BTreeMap::new(),
        });
    }
    waves
}
