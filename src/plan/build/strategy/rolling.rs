//! Rolling updates in batches, bounded by `max_surge` and `max_unavailable`. Pure.

use super::*;

pub(super) struct Rolling;

impl Strategy for Rolling {
    fn rollout(&self, cx: &Context, d: &Deployment) -> DeploymentPlan {
        pod_waves(cx, d, rolling_waves)
    }

    fn restore(&self, shape: &Restore, back: &[ObservedPod], current: &[ObservedPod]) -> Vec<Wave> {
        shape.in_batches(back, current)
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

/// Rebuilds the plan of an observed pod from its labels (`berth.spec`, `berth.index`), so a
/// rollback can bring it back after it was removed. `None` for pods without those labels.
fn restore_plan(old: &ObservedPod, like: &PodPlan) -> Option<PodPlan> {
    let mut containers = Vec::new();
    for c in &old.containers {
        let index: usize = c.label(label::INDEX)?.parse().ok()?;
        let spec: ContainerSpec = serde_json::from_str(c.label(label::SPEC)?).ok()?;
        containers.push((
            index,
            ContainerPlan {
                name: c.name.clone(),
                spec,
                // Secrets are sealed again (new salts) when the pod is created; no record of
                // them goes into a plan.
                labels: c
                    .labels
                    .iter()
                    .filter(|(k, _)| k.as_str() != crate::model::secret::SECRETS_LABEL)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
        ));
    }
    containers.sort_by_key(|(i, _)| *i);
    // The old pod publishes its ingress port where it did.
    let ingress = like.ingress.map(|b| {
        let port = old.containers.iter().find_map(|c| {
            c.label(crate::model::ingress::INGRESS_PORT_LABEL)?
                .parse::<u16>()
                .ok()
        });
        IngressBinding {
            host_port: port.unwrap_or(b.host_port),
            ..b
        }
    });
    Some(PodPlan {
        ingress,
        name: old.name.clone(),
        deployment: old.deployment.clone(),
        network: like.network.clone(),
        aliases: like.aliases.clone(),
        containers: containers.into_iter().map(|(_, c)| c).collect(),
    })
}

/// Rolling update in batches of `max_surge + max_unavailable` pods, taken round robin across
/// hosts. In each batch the first `max_unavailable` old pods (and any that hold a host port)
/// stop first; then the new pods start, pass their health gate, and the old pods go. If a
/// batch fails, its new pods are removed, its stopped pods start again, and the pods replaced
/// by earlier batches are recreated before their replacements go: the old replica set is back
/// at full count.
fn rolling_waves(d: &Deployment, replacements: Vec<Replacement>) -> Vec<Wave> {
    let (surge, unavailable) = d.strategy.rolling_budget(d.replicas);
    let batch = (surge + unavailable).max(1) as usize;
    let mut queues: BTreeMap<String, std::collections::VecDeque<Replacement>> = BTreeMap::new();
    for r in replacements {
        queues.entry(r.host.clone()).or_default().push_back(r);
    }
    let mut order = Vec::new();
    while queues.values().any(|q| !q.is_empty()) {
        for q in queues.values_mut() {
            order.extend(q.pop_front());
        }
    }
    let batches: Vec<&[Replacement]> = order.chunks(batch).collect();
    let mut waves = Vec::new();
    let mut done: Vec<&Replacement> = Vec::new();
    // The old pods of a batch are removed at the start of the next one, where they run
    // beside the next batch's work on other hosts instead of holding up the rollout.
    let mut leftover: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    let mut leftover_removes: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    let drain = d.strategy.drain_ms;
    for (n, chunk) in batches.iter().enumerate() {
        let mut stops: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        let mut starts = Phased::default();
        let mut removes: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        let mut undo: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        // Old pods leave their service before they stop: those that stop first right away,
        // the others once their replacements are ready.
        let mut leave_first: BTreeMap<String, Vec<(&str, ServiceJoin)>> = BTreeMap::new();
        let mut leave_after: BTreeMap<String, Vec<(&str, ServiceJoin)>> = BTreeMap::new();
        let mut rejoin: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for (j, r) in chunk.iter().enumerate() {
            let stop_first = r.stop_first || j < unavailable as usize;
            undo.entry(r.host.clone())
                .or_default()
                .push(remove_new(&r.new, d.strategy.stop_timeout_s));
            let service = membership(&r.old, &r.new);
            if let Some(s) = &service {
                let leaving = if stop_first {
                    &mut leave_first
                } else {
                    &mut leave_after
                };
                leaving
                    .entry(r.host.clone())
                    .or_default()
                    .push((r.old.name.as_str(), s.clone()));
            }
            if stop_first {
                stops
                    .entry(r.host.clone())
                    .or_default()
                    .push(stop_step(&r.old, d.strategy.stop_timeout_s));
                undo.entry(r.host.clone())
                    .or_default()
                    .push(start_step(&r.old));
            }
            if let Some(s) = service {
                rejoin
                    .entry(r.host.clone())
                    .or_default()
                    .push(join_step(&r.old, s));
            }
            starts.add(&r.host, create_and_await(d, r.new.clone()));
            removes
                .entry(r.host.clone())
                .or_default()
                .push(r.retire_step(d));
        }
        for (host, steps) in rejoin {
            undo.entry(host).or_default().extend(steps);
        }
        for (host, pods) in &leave_first {
            let mut s = leave_steps(pods, drain);
            s.extend(stops.remove(host).unwrap_or_default());
            stops.insert(host.clone(), s);
        }
        // Creates go in the batch's first wave, beside the previous batch's old pods leaving
        // and draining (terminating pods do not count against the surge, as in Kubernetes),
        // so Docker's container start overlaps a wait the strategy needs anyway. The health
        // gates form the second wave.
        let mut phases = starts.phases;
        let creates = if phases.is_empty() {
            BTreeMap::new()
        } else {
            phases.remove(0)
        };
        let gates = Phased { phases }.into_steps();
        // This batch's old pods leave in the next batch's first wave and are removed in its
        // second once drained, beside the next pods' gates (off the critical path).
        let mut next: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for (host, pods) in &leave_after {
            next.entry(host.clone())
                .or_default()
                .extend(leave_steps(pods, drain));
        }
        let mut restore = Phased::default();
        let mut retire: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for r in &done {
            if r.keep {
                // Kept stopped: it starts again and rejoins once ready.
                let mut gate = await_step(d, &r.old.name, container_names(&r.old));
                if let Step::AwaitReady { join, .. } = &mut gate {
                    *join = membership(&r.old, &r.new);
                }
                restore.add(&r.host, [start_step(&r.old), gate]);
                retire
                    .entry(r.host.clone())
                    .or_default()
                    .push(remove_new(&r.new, d.strategy.stop_timeout_s));
            } else if let Some(old) = restore_plan(&r.old, &r.new) {
                restore.add(&r.host, create_and_await(d, old));
                retire
                    .entry(r.host.clone())
                    .or_default()
                    .push(remove_new(&r.new, d.strategy.stop_timeout_s));
            }
        }
        for (host, steps) in restore.into_steps().into_iter().chain(retire) {
            undo.entry(host).or_default().extend(steps);
        }
        let mut steps = std::mem::replace(&mut leftover, next);
        for (host, s) in stops.into_iter().chain(creates) {
            steps.entry(host).or_default().extend(s);
        }
        // The gates go first: on a host that has both, the old pod's drain runs out while
        // the new pod is gated.
        let mut gate_steps = gates;
        for (host, s) in std::mem::replace(&mut leftover_removes, removes) {
            gate_steps.entry(host).or_default().extend(s);
        }
        let olds: Vec<&str> = chunk.iter().map(|r| r.old.name.as_str()).collect();
        let news: Vec<&str> = chunk.iter().map(|r| r.new.name.as_str()).collect();
        let batch = format!("{}: rolling batch {}/{}", d.name, n + 1, batches.len());
        waves.push(Wave {
            deployment: None,
            description: format!(
                "{batch} (surge {surge}, unavailable {unavailable}): replace {} with {}",
                olds.join(", "),
                news.join(", ")
            ),
            steps,
            on_failure: undo.clone(),
        });
        waves.push(Wave {
            deployment: None,
            description: format!("{batch}: health gate of {}", news.join(", ")),
            steps: gate_steps,
            on_failure: undo,
        });
        done.extend(chunk.iter());
    }
    for (host, s) in leftover_removes {
        leftover.entry(host).or_default().extend(s);
    }
    if !leftover.is_empty() {
        waves.push(Wave {
            deployment: None,
            description: format!("{}: retire the last replaced pods", d.name),
            steps: leftover,
            on_failure: BTreeMap::new(),
        });
    }
    waves
}
