//! The edges' routes as steps of the plan (`Step::RouteEdges`): after the waves are built,
//! each step that puts a pod of an ingress deployment behind its service gets an edge step
//! after it, and each step that takes one out (a leave, a stop, a remove) an edge step
//! before it, so a pod's drain starts with no new requests from the edges. A wave that
//! moves a service between sets of pods (a blue-green promotion or rollback, a restore)
//! becomes three: the pods join, every edge switches at once in one step, the pods leave.
//! What the edges route is followed wave by wave from the plan's starting membership;
//! a rollback's steps (`on_failure`) run from a state the plan cannot know, so there each
//! leave, stop or remove of a routed pod is preceded by its removal. Pure.

use super::*;
use crate::plan::membership::route_edges;
use crate::plan::EdgeMember;

/// What the edges route: service → host → pods (only the ingresses' services).
type Routes = super::super::Membership;

/// Places the edge steps in the plan's waves, when it routes any ingress.
pub(super) fn place(plan: &mut Plan) {
    let Some(routing) = &plan.routing else { return };
    let routed: BTreeSet<String> = (routing.ingresses.values())
        .map(|r| r.service.clone())
        .collect();
    if routed.is_empty() {
        return;
    }
    let edges = Edges {
        services: services_of_pods(plan, &routed),
        routable: routing.endpoints.keys().cloned().collect(),
    };
    let mut routes: Routes = (plan.services.iter())
        .filter(|(s, _)| routed.contains(*s))
        .map(|(s, hosts)| (s.clone(), hosts.clone()))
        .collect();
    let mut waves = Vec::new();
    for wave in std::mem::take(&mut plan.waves) {
        let on_failure: BTreeMap<String, Vec<Step>> = (wave.on_failure.iter())
            .map(|(h, steps)| (h.clone(), edges.route(h, steps, None)))
            .collect();
        let wave = Wave { on_failure, ..wave };
        match edges.switch(&wave, &routes) {
            Some(split) => waves.extend(split.waves(&edges, &mut routes)),
            None => {
                let steps = (wave.steps.iter())
                    .map(|(h, steps)| (h.clone(), edges.route(h, steps, Some(&mut routes))))
                    .collect();
                waves.push(Wave { steps, ..wave });
            }
        }
    }
    plan.waves = waves;
}

/// The service of each pod of an ingress deployment the plan mentions: behind it at the
/// start, created by the plan, or joined to it by a step.
fn services_of_pods(plan: &Plan, routed: &BTreeSet<String>) -> BTreeMap<String, String> {
    let routing = plan.routing.as_ref().expect("routing");
    let mut out = BTreeMap::new();
    for (service, hosts) in plan.services.iter().filter(|(s, _)| routed.contains(*s)) {
        for pod in hosts.values().flatten() {
            out.insert(pod.clone(), service.clone());
        }
    }
    let all = (plan.waves.iter()).flat_map(|w| w.steps.values().chain(w.on_failure.values()));
    for step in all.flatten() {
        match step {
            Step::CreatePod { pod } => {
                if let Some(r) = routing.ingresses.get(&pod.deployment) {
                    out.insert(pod.name.clone(), r.service.clone());
                }
            }
            Step::JoinService { pod, join }
            | Step::AwaitReady {
                pod,
                join: Some(join),
                ..
            } => {
                if let Some(s) = join.aliases.iter().find(|a| routed.contains(*a)) {
                    out.insert(pod.clone(), s.clone());
                }
            }
            _ => {}
        }
    }
    out
}

struct Edges {
    /// Pod → the routed service it belongs to.
    services: BTreeMap<String, String>,
    /// Pods with an endpoint the edges can send requests to.
    routable: BTreeSet<String>,
}

/// What a step does to its pod's place on the edges.
#[derive(Debug, PartialEq)]
enum Effect {
    /// It goes on the edges once the step is done.
    On(EdgeMember),
    /// It comes off the edges before the step runs.
    Off(EdgeMember),
    None,
}

impl Edges {
    /// The step's effect, given what the edges route (`None`: not known, as in a rollback;
    /// a pod is then taken off before any step that may take it out).
    fn effect(&self, host: &str, step: &Step, routes: Option<&Routes>) -> Effect {
        let (pod, after) = match step {
            Step::JoinService { pod, join }
            | Step::AwaitReady {
                pod,
                join: Some(join),
                ..
            } => (pod, Some(join.aliases.as_slice())),
            Step::LeaveService { pod, leave, .. } => {
                let Some(service) = self.services.get(pod) else {
                    return Effect::None;
                };
                if !leave.aliases.contains(service) {
                    return Effect::None;
                }
                (pod, None)
            }
            Step::StopPod { pod, .. } | Step::RemovePod { pod, .. } => (pod, None),
            _ => return Effect::None,
        };
        let (Some(service), true) = (self.services.get(pod), self.routable.contains(pod)) else {
            return Effect::None;
        };
        let member = EdgeMember {
            service: service.clone(),
            host: host.to_string(),
            pod: pod.clone(),
        };
        let on_before = routes.map(|r| {
            r.get(service)
                .and_then(|hosts| hosts.get(host))
                .is_some_and(|pods| pods.contains(pod))
        });
        let on_after = after.is_some_and(|aliases| aliases.contains(service));
        match (on_before, on_after) {
            (Some(false), true) | (None, true) => Effect::On(member),
            (Some(true), false) | (None, false) => Effect::Off(member),
            _ => Effect::None,
        }
    }

    /// A host's steps with the edge steps they call for. Consecutive steps of one kind
    /// share one edge step (they run at once on the host: `apply::host_steps`).
    fn route(&self, host: &str, steps: &[Step], mut routes: Option<&mut Routes>) -> Vec<Step> {
        let mut out: Vec<Step> = Vec::new();
        let mut adds: Vec<EdgeMember> = Vec::new();
        // Where the edge step of the run of removals going on is, in `out`.
        let mut removals: Option<usize> = None;
        let mut previous: Option<std::mem::Discriminant<Step>> = None;
        for step in steps {
            let kind = std::mem::discriminant(step);
            let same_kind = previous == Some(kind);
            let effect = self.effect(host, step, routes.as_deref());
            let joins_adds = same_kind && matches!(effect, Effect::On(_));
            if !adds.is_empty() && !joins_adds {
                out.push(route_step(std::mem::take(&mut adds), vec![]));
            }
            match effect {
                Effect::Off(member) => {
                    if let Some(r) = routes.as_deref_mut() {
                        route_edges(r, &[], std::slice::from_ref(&member));
                    }
                    match removals.filter(|_| same_kind) {
                        Some(at) => {
                            if let Step::RouteEdges { remove, .. } = &mut out[at] {
                                remove.push(member);
                            }
                        }
                        None => {
                            removals = Some(out.len());
                            out.push(route_step(vec![], vec![member]));
                        }
                    }
                }
                Effect::On(member) => {
                    removals = None;
                    if let Some(r) = routes.as_deref_mut() {
                        route_edges(r, std::slice::from_ref(&member), &[]);
                    }
                    adds.push(member);
                }
                Effect::None => removals = None,
            }
            out.push(step.clone());
            previous = Some(kind);
        }
        if !adds.is_empty() {
            out.push(route_step(adds, vec![]));
        }
        out
    }

    /// A wave that puts pods behind a routed service with `JoinService` (not one by one as
    /// their gates pass) and takes others out: it switches the edges at once, unless a host
    /// takes a pod out before it puts one in (it would wait on itself).
    fn switch(&self, wave: &Wave, routes: &Routes) -> Option<Switch> {
        let mut split = Switch {
            wave: wave.clone(),
            cut: BTreeMap::new(),
        };
        for (host, steps) in &wave.steps {
            let effects: Vec<Effect> = (steps.iter())
                .map(|s| self.effect(host, s, Some(routes)))
                .collect();
            let joins = |(i, e): (usize, &Effect)| {
                (matches!(e, Effect::On(_)) && matches!(steps[i], Step::JoinService { .. }))
                    .then_some(i)
            };
            let Some(last_join) = effects.iter().enumerate().filter_map(joins).next_back() else {
                continue;
            };
            let first_off = effects.iter().position(|e| matches!(e, Effect::Off(_)));
            if first_off.is_some_and(|off| off < last_join) {
                return None;
            }
            split.cut.insert(host.clone(), last_join + 1);
        }
        (!split.cut.is_empty()).then_some(split)
    }
}

/// A wave cut where its edges switch: each host's steps up to its last join, then one edge
/// step, then the rest.
struct Switch {
    wave: Wave,
    /// Per host with joins: where its steps are cut.
    cut: BTreeMap<String, usize>,
}

impl Switch {
    fn waves(self, edges: &Edges, routes: &mut Routes) -> Vec<Wave> {
        let Switch { wave, cut } = self;
        let mut joins = BTreeMap::new();
        let mut rest = BTreeMap::new();
        let mut add = Vec::new();
        for (host, steps) in &wave.steps {
            let at = cut.get(host).copied().unwrap_or(0);
            for step in &steps[..at] {
                if let Effect::On(m) = edges.effect(host, step, Some(routes)) {
                    add.push(m);
                }
            }
            if at > 0 {
                joins.insert(host.clone(), steps[..at].to_vec());
            }
            if at < steps.len() {
                rest.insert(host.clone(), steps[at..].to_vec());
            }
        }
        route_edges(routes, &add, &[]);
        // The pods the rest takes out come off the edges in the same step.
        let mut remove = Vec::new();
        for (host, steps) in &rest {
            for step in steps {
                if let Effect::Off(m) = edges.effect(host, step, Some(routes)) {
                    if !remove.contains(&m) {
                        remove.push(m);
                    }
                }
            }
        }
        route_edges(routes, &[], &remove);
        let rest: BTreeMap<String, Vec<Step>> = (rest.iter())
            .map(|(h, steps)| (h.clone(), edges.route(h, steps, Some(routes))))
            .collect();
        let at = joins.keys().next().cloned().unwrap_or_default();
        let part = |description: String, steps| Wave {
            description,
            deployment: wave.deployment.clone(),
            steps,
            on_failure: wave.on_failure.clone(),
        };
        let mut out = vec![
            part(
                format!("{} (the new members join)", wave.description),
                joins,
            ),
            part(
                format!("{} (every edge switches at once)", wave.description),
                BTreeMap::from([(at, vec![route_step(add, remove)])]),
            ),
        ];
        if !rest.is_empty() {
            out.push(part(
                format!("{} (the old members leave)", wave.description),
                rest,
            ));
        }
        out
    }
}

fn route_step(add: Vec<EdgeMember>, remove: Vec<EdgeMember>) -> Step {
    Step::RouteEdges { add, remove }
}
