//! The step vocabulary the strategies build waves from: create and await, stop, start,
//! remove, join and leave a service, and steps per host in phases. Pure.

use super::*;

pub(super) fn container_names(pod: &ObservedPod) -> Vec<String> {
    let mut names: Vec<String> = pod.containers.iter().map(|c| c.name.clone()).collect();
    names.sort();
    names
}

/// The (host, container) pairs that these steps remove.
pub(super) fn removed_containers<'a>(
    maps: impl Iterator<Item = &'a BTreeMap<String, Vec<Step>>>,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (host, steps) in maps.flatten() {
        for step in steps {
            if let Step::RemovePod { containers, .. } = step {
                out.extend(containers.iter().map(|c| (host.clone(), c.clone())));
            }
        }
    }
    out
}

pub(super) fn remove_step(p: &ObservedPod, stop_timeout_s: u32) -> Step {
    Step::RemovePod {
        pod: p.name.clone(),
        containers: container_names(p),
        stop_timeout_s,
    }
}

pub(super) fn await_step(d: &Deployment, pod: &str, containers: Vec<String>) -> Step {
    Step::AwaitReady {
        pod: pod.to_string(),
        containers,
        min_ready_ms: d.strategy.min_ready_ms,
        timeout_ms: d.strategy.health_timeout_ms,
        join: None,
    }
}

pub(super) fn new_container_names(pod: &PodPlan) -> Vec<String> {
    pod.containers.iter().map(|c| c.name.clone()).collect()
}

/// Create a pod and wait for its health gate; with a service it joins once healthy.
pub(super) fn create_and_await(d: &Deployment, pod: PodPlan) -> Vec<Step> {
    let join = (!pod.aliases.is_empty()).then(|| ServiceJoin {
        container: pod.containers[0].name.clone(),
        network: pod.network.clone(),
        aliases: pod.aliases.clone(),
    });
    let wait = Step::AwaitReady {
        pod: pod.name.clone(),
        containers: new_container_names(&pod),
        min_ready_ms: d.strategy.min_ready_ms,
        timeout_ms: d.strategy.health_timeout_ms,
        join,
    };
    vec![Step::CreatePod { pod }, wait]
}

pub(super) fn remove_new(pod: &PodPlan, stop_timeout_s: u32) -> Step {
    Step::RemovePod {
        pod: pod.name.clone(),
        containers: new_container_names(pod),
        stop_timeout_s,
    }
}

pub(super) fn stop_step(p: &ObservedPod, stop_timeout_s: u32) -> Step {
    Step::StopPod {
        pod: p.name.clone(),
        containers: container_names(p),
        stop_timeout_s,
    }
}

/// The container of an observed pod that owns its network (index 0).
pub(super) fn network_owner(p: &ObservedPod) -> String {
    p.network_owner()
        .map(|c| c.name.clone())
        .unwrap_or_else(|| container_names(p)[0].clone())
}

/// An observed pod's service membership, as the new pods of its deployment have it.
pub(super) fn membership(p: &ObservedPod, like: &PodPlan) -> Option<ServiceJoin> {
    (!like.aliases.is_empty()).then(|| ServiceJoin {
        container: network_owner(p),
        network: like.network.clone(),
        aliases: like.aliases.clone(),
    })
}

/// Takes pods out of their service; each drains before a later step stops it.
pub(super) fn leave_steps<P: AsRef<str>>(pods: &[(P, ServiceJoin)], drain_ms: u64) -> Vec<Step> {
    pods.iter()
        .map(|(pod, leave)| Step::LeaveService {
            pod: pod.as_ref().to_string(),
            leave: leave.clone(),
            drain_ms,
        })
        .collect()
}

pub(super) fn join_step(p: &ObservedPod, join: ServiceJoin) -> Step {
    Step::JoinService {
        pod: p.name.clone(),
        join,
    }
}

pub(super) fn start_step(p: &ObservedPod) -> Step {
    Step::StartPod {
        pod: p.name.clone(),
        containers: container_names(p),
    }
}

/// Steps per host in phases: every pod's first step, then every pod's second step, and so
/// on (create all, then await all, then join all), so that the pods of one wave on one host
/// come up together rather than one after another.
#[derive(Default)]
pub(super) struct Phased {
    pub(super) phases: Vec<BTreeMap<String, Vec<Step>>>,
}

impl Phased {
    pub(super) fn add(&mut self, host: &str, steps: impl IntoIterator<Item = Step>) {
        for (i, step) in steps.into_iter().enumerate() {
            if self.phases.len() <= i {
                self.phases.push(BTreeMap::new());
            }
            self.phases[i]
                .entry(host.to_string())
                .or_default()
                .push(step);
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.phases.is_empty()
    }

    pub(super) fn into_steps(self) -> BTreeMap<String, Vec<Step>> {
        let mut steps: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for phase in self.phases {
            for (host, s) in phase {
                steps.entry(host).or_default().extend(s);
            }
        }
        steps
    }
}
