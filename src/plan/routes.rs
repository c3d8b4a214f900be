//! What each edge routes before the plan and after each wave, for the plan's readers: the
//! shares of requests by revision, from the service membership (`membership::timeline`) and
//! the canary weights the waves set. Pure.

use super::membership::timeline;
use super::types::{Plan, Step};
use crate::model::ingress::{backends, shares, Routing, Scope};
use std::collections::BTreeMap;

/// Per ingress (`edge :PORT deployment`), its routes in a few words: before the plan, then
/// after each wave (index i + 1 for wave i). Empty when the plan routes nothing.
pub fn timeline_of_routes(plan: &Plan) -> Vec<BTreeMap<String, String>> {
    let Some(routing) = &plan.routing else {
        return vec![];
    };
    let members = timeline(plan);
    let mut view: Routing = routing.clone();
    let mut out = vec![describe(&view, &members[0])];
    for (i, wave) in plan.waves.iter().enumerate() {
        for step in wave.steps.values().flatten() {
            if let Step::RouteWeight {
                deployment,
                revision,
                percent,
            } = step
            {
                view.weights
                    .insert(deployment.clone(), (revision.clone(), *percent));
            }
        }
        out.push(describe(&view, &members[i + 1]));
    }
    out
}

fn describe(routing: &Routing, members: &super::Membership) -> BTreeMap<String, String> {
    // Every pod in service, whatever its host: the fleet's view (an edge with `scope: host`
    // takes its own host's share of it).
    let mut fleet = routing.clone();
    for r in fleet.ingresses.values_mut() {
        r.ingress.scope = Scope::Fleet;
    }
    backends(&fleet, members, "")
        .into_iter()
        .map(|b| {
            let name = format!("edge :{} {}", b.ingress.port, b.deployment);
            let mut pods: BTreeMap<String, usize> = BTreeMap::new();
            for s in &b.servers {
                let rev = routing
                    .endpoints
                    .get(&s.pod)
                    .map_or("?", |e| e.revision.as_str());
                *pods.entry(rev.to_string()).or_default() += 1;
            }
            let text = if b.servers.is_empty() {
                "(nobody)".to_string()
            } else {
                shares(&b, &routing.endpoints)
                    .iter()
                    .map(|(rev, pct)| {
                        let n = pods.get(rev).copied().unwrap_or(0);
                        let plural = if n == 1 { "" } else { "s" };
                        format!("{pct:.0}% to {rev} ({n} pod{plural})")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            (name, text)
        })
        .collect()
}
