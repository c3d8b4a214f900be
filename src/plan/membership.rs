//! Who answers to which service name, before the plan and after each of its waves: the plan
//! records the starting point, and the waves' steps move pods in and out. Pure.

pub use super::types::Membership;
use super::types::{EdgeMember, Plan, Step};
use std::collections::{BTreeMap, BTreeSet};

fn drop_pod(m: &mut Membership, host: &str, pod: &str) {
    for hosts in m.values_mut() {
        if let Some(pods) = hosts.get_mut(host) {
            pods.remove(pod);
        }
    }
}

fn put(m: &mut Membership, host: &str, pod: &str, aliases: &[String]) {
    drop_pod(m, host, pod);
    for a in aliases {
        m.entry(a.clone())
            .or_default()
            .entry(host.to_string())
            .or_default()
            .insert(pod.to_string());
    }
}

/// Applies a `RouteEdges` step to what the edges route; whether anything changed.
pub fn route_edges(m: &mut Membership, add: &[EdgeMember], remove: &[EdgeMember]) -> bool {
    let mut changed = false;
    for r in remove {
        let pods = m
            .get_mut(&r.service)
            .and_then(|hosts| hosts.get_mut(&r.host));
        changed |= pods.is_some_and(|pods| pods.remove(&r.pod));
    }
    for a in add {
        let pods = m.entry(a.service.clone()).or_default();
        changed |= pods
            .entry(a.host.clone())
            .or_default()
            .insert(a.pod.clone());
    }
    changed
}

/// A `RouteEdges` step in a few words: `route web-b-0 on h1, web-b-1 on h2; stop routing
/// web-a-0 on h1`.
pub fn describe_edge_step(add: &[EdgeMember], remove: &[EdgeMember]) -> String {
    let list = |members: &[EdgeMember]| {
        let named: Vec<String> = (members.iter().take(MEMBERS_LISTED))
            .map(|m| format!("{} on {}", m.pod, m.host))
            .collect();
        match members.len().saturating_sub(MEMBERS_LISTED) {
            0 => named.join(", "),
            more => format!("{} and {more} more", named.join(", ")),
        }
    };
    let mut parts = Vec::new();
    if !add.is_empty() {
        parts.push(format!("route {}", list(add)));
    }
    if !remove.is_empty() {
        parts.push(format!("stop routing {}", list(remove)));
    }
    parts.join("; ")
}

/// Applies one host's steps to the membership, as the executor would if all goes well.
pub fn apply(m: &mut Membership, host: &str, steps: &[Step]) {
    for step in steps {
        match step {
            Step::AwaitReady {
                pod, join: Some(j), ..
            } => put(m, host, pod, &j.aliases),
            Step::JoinService { pod, join } => put(m, host, pod, &join.aliases),
            // A pod leaves the names it is asked to (a blue-green's new set leaves its preview
            // name as it joins the service).
            Step::LeaveService { pod, leave, .. } => {
                for a in &leave.aliases {
                    if let Some(pods) = m.get_mut(a).and_then(|hosts| hosts.get_mut(host)) {
                        pods.remove(pod);
                    }
                }
            }
            Step::StopPod { pod, .. } | Step::RemovePod { pod, .. } => drop_pod(m, host, pod),
            _ => {}
        }
    }
}

/// The membership before the plan, then after each wave (index i + 1 for wave i).
pub fn timeline(plan: &Plan) -> Vec<Membership> {
    let mut now = plan.services.clone();
    let mut out = vec![now.clone()];
    for wave in &plan.waves {
        for (host, steps) in &wave.steps {
            apply(&mut now, host, steps);
        }
        out.push(now.clone());
    }
    out
}

/// One service's members as `host: pod, pod; host: pod`, hosts without members left out.
/// Pods of a host listed by name in a membership line; more are counted.
const MEMBERS_LISTED: usize = 4;

pub fn describe(hosts: &BTreeMap<String, BTreeSet<String>>) -> String {
    let parts: Vec<String> = hosts
        .iter()
        .filter(|(_, pods)| !pods.is_empty())
        .map(|(h, pods)| {
            // Many pods on a host are counted, not listed: a plan at scale stays readable.
            if pods.len() > MEMBERS_LISTED {
                format!("{h}: {} pods", pods.len())
            } else {
                format!(
                    "{h}: {}",
                    pods.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            }
        })
        .collect();
    if parts.is_empty() {
        "(nobody)".into()
    } else {
        parts.join("; ")
    }
}
