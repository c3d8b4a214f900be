//! What each edge routes before the plan and after each wave, for the plan's readers: the
//! shares of requests by revision, from the service membership the plan starts from and the
//! edge steps of its waves (`RouteEdges`, `RouteWeight`). Pure.

use super::membership::route_edges;
use super::types::{Plan, Step};
use crate::model::ingress::{backends, shares, Routing, Scope};
use std::collections::BTreeMap;

/// Per ingress (`edge :PORT deployment`), its routes in a few words: before the plan, then
/// after each wave (index i + 1 for wave i). Empty when the plan routes nothing.
pub fn timeline_of_routes(plan: &Plan) -> Vec<BTreeMap<String, String>> {
    let Some(routing) = &plan.routing else {
        return vec![];
    };
    let mut members = plan.services.clone();
    let mut view: Routing = routing.clone();
    let mut out = vec![describe(&view, &members)];
    for wave in &plan.waves {
        for step in wave.steps.values().flatten() {
            match step {
                Step::RouteWeight {
                    deployment,
                    revision,
                    percent,
                } => {
                    let weight = (revision.clone(), *percent);
                    view.weights.insert(deployment.clone(), weight);
                }
                Step::RouteEdges { add, remove } => {
                    route_edges(&mut members, add, remove);
                }
                _ => {}
            }
        }
        out.push(describe(&view, &members));
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
