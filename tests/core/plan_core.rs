//! The pure core on fixture files: a repository (tests/fixtures/basic) and observed states
//! (JSON) in, plans out. A small simulator applies a plan to an observed state, so the tests
//! can check convergence without hosts.

use crate::fixture;

use berth::model::{
    label, ObservedContainer, ObservedHost, ObservedVolume, Reason, Resources, Selector,
};
use berth::plan::{self, Action, ChangeKind, IssueKind, Plan, PlanInput, Step};
use berth::repo::{self, RepoFiles};
use std::collections::BTreeMap;
use std::path::Path;

use fixture::Observed;

fn basic() -> RepoFiles {
    fixture::repo_files(&fixture::dir("basic"))
}

fn empty_hosts() -> Observed {
    ["a1", "a2", "b1"]
        .iter()
        .map(|h| {
            (
                h.to_string(),
                Ok(ObservedHost {
                    host: h.to_string(),
                    ..Default::default()
                }),
            )
        })
        .collect()
}

fn make_plan(files: &RepoFiles, observed: &Observed, prune: bool) -> Plan {
    plan_with(files, observed, prune, false)
}

fn plan_with(files: &RepoFiles, observed: &Observed, prune: bool, prune_volumes: bool) -> Plan {
    let desired = fixture::desired(files);
    plan::build(&PlanInput {
        prune,
        prune_volumes,
        now: 0,
        ..fixture::input(&desired, observed)
    })
}

/// A clock for created containers: each is newer than the one before.
static CREATED: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);

/// Applies a plan's steps to the observed state, as a healthy Docker engine would.
fn simulate(plan: &Plan, observed: &mut Observed) {
    simulate_cut(plan, observed, None, false, None)
}

/// Running web pods on one host that answer to `web` (deep observations only).
fn serving_on(h: &ObservedHost) -> usize {
    h.containers
        .iter()
        .filter(|c| c.label(label::DEPLOYMENT) == Some("web") && c.is_running())
        .filter(|c| {
            c.resources
                .as_ref()
                .is_some_and(|r| r.aliases.iter().any(|a| a == "web"))
        })
        .count()
}

/// Like `simulate`, but stops where berth would be killed: in wave `cut.0`, after the first
/// `cut.1` steps of each host. With `deep`, created containers carry what a deep observation
/// sees (resources, and the service names they answer to, kept up to date).
/// With `gaps`, every step where a host that had pods behind `web` is left with none is
/// recorded there.
/// The pods a plan puts behind `alias` (a join, or a health gate that joins).
fn joins_to(plan: &Plan, alias: &str) -> Vec<String> {
    plan.waves
        .iter()
        .flat_map(|w| w.steps.values().flatten())
        .filter_map(|s| match s {
            Step::JoinService { pod, join } if join.aliases.iter().any(|a| a == alias) => {
                Some(pod.clone())
            }
            Step::AwaitReady {
                pod, join: Some(j), ..
            } if j.aliases.iter().any(|a| a == alias) => Some(pod.clone()),
            _ => None,
        })
        .collect()
}

fn simulate_cut(
    plan: &Plan,
    observed: &mut Observed,
    cut: Option<(usize, usize)>,
    deep: bool,
    mut gaps: Option<&mut Vec<String>>,
) {
    for (wi, wave) in plan.waves.iter().enumerate() {
        if cut.is_some_and(|(k, _)| wi > k) {
            break;
        }
        for (host, steps) in &wave.steps {
            let h = observed.get_mut(host).unwrap().as_mut().unwrap();
            let steps = match cut {
                Some((k, j)) if k == wi => &steps[..j.min(steps.len())],
                _ => &steps[..],
            };
            let had = serving_on(h);
            for step in steps {
                let set_aliases = |h: &mut ObservedHost, container: &str, aliases: Vec<String>| {
                    for c in h.containers.iter_mut().filter(|c| c.name == container) {
                        if let Some(r) = c.resources.as_mut() {
                            r.aliases = aliases.clone();
                        }
                    }
                };
                match step {
                    Step::AwaitReady { join: Some(j), .. } if deep => {
                        set_aliases(h, &j.container, j.aliases.clone())
                    }
                    Step::CreatePod { pod } => {
                        for c in &pod.containers {
                            h.containers.push(ObservedContainer {
                                id: format!("id-{}", c.name),
                                name: c.name.clone(),
                                image: c.spec.image.clone(),
                                state: "running".into(),
                                health: None,
                                labels: c.labels.clone(),
                                host_ports: c
                                    .spec
                                    .ports
                                    .iter()
                                    .filter_map(|p| p.host.map(|hp| (hp, p.protocol.clone())))
                                    .collect(),
                                volumes: c
                                    .spec
                                    .volumes
                                    .iter()
                                    .filter(|m| m.is_named_volume())
                                    .map(|m| {
                                        berth::model::names::volume_name(&plan.project, &m.source)
                                    })
                                    .collect(),
                                resources: deep.then(|| Resources {
                                    memory: c.spec.memory.unwrap_or(0),
                                    millicpus: c.spec.millicpus.unwrap_or(0),
                                    restart: c.spec.restart.clone(),
                                    aliases: vec![],
                                }),
                                created: CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                            });
                        }
                    }
                    Step::EnsureVolume { name } if !h.volumes.iter().any(|v| &v.name == name) => {
                        h.volumes.push(ObservedVolume {
                            name: name.clone(),
                            labels: [(label::PROJECT.to_string(), plan.project.clone())].into(),
                            created: None,
                        });
                    }
                    Step::RemoveVolume { name } => h.volumes.retain(|v| &v.name != name),
                    Step::RecordRollout { deployment, state } => {
                        h.rollouts.retain(|r| &r.deployment != deployment);
                        h.rollouts.extend(state.clone().map(|mut s| {
                            s.since = 1_000;
                            s
                        }));
                    }
                    Step::RemovePod { containers, .. } => {
                        h.containers.retain(|c| !containers.contains(&c.name))
                    }
                    Step::StartPod { containers, .. } => {
                        for c in h
                            .containers
                            .iter_mut()
                            .filter(|c| containers.contains(&c.name))
                        {
                            c.state = "running".into();
                        }
                    }
                    Step::StopPod { containers, .. } => {
                        for c in h
                            .containers
                            .iter_mut()
                            .filter(|c| containers.contains(&c.name))
                        {
                            c.state = "exited".into();
                        }
                    }
                    // Membership is only known where a deep observation saw it.
                    Step::JoinService { join, .. } => {
                        set_aliases(h, &join.container, join.aliases.clone())
                    }
                    Step::LeaveService { leave, .. } => set_aliases(h, &leave.container, vec![]),
                    _ => {}
                }
                if let Some(gaps) = gaps.as_deref_mut() {
                    if had > 0 && serving_on(h) == 0 {
                        gaps.push(format!("{host} in \"{}\" after {step:?}", wave.description));
                    }
                }
            }
        }
    }
}

fn pods_on(observed: &Observed, host: &str, deployment: &str) -> usize {
    let h = observed[host].as_ref().unwrap();
    let mut pods: Vec<&str> = h
        .containers
        .iter()
        .filter(|c| c.label(label::DEPLOYMENT) == Some(deployment))
        .filter_map(|c| c.label(label::POD))
        .collect();
    pods.sort();
    pods.dedup();
    pods.len()
}

#[test]
fn a_new_repository_creates_every_pod_spread_evenly_then_converges() {
    let files = basic();
    let mut observed = empty_hosts();
    let p = make_plan(&files, &observed, false);
    assert_eq!(p.count(Action::Create), 5);
    assert!(p.changes.iter().all(|c| c.kind == ChangeKind::Pending));
    assert!(
        p.changes.iter().all(|c| c.host != "b1"),
        "placement ignores role=db"
    );
    // Pods new on one host start together: all creates, then all health gates.
    let web = p
        .waves
        .iter()
        .find(|w| w.description == "web: create new pods")
        .unwrap();
    let ops: Vec<&str> = web.steps["a1"]
        .iter()
        .map(|s| match s {
            Step::CreatePod { .. } => "create",
            Step::AwaitReady { .. } => "await",
            _ => "other",
        })
        .collect();
    assert_eq!(ops, ["create", "create", "await", "await"]);
    // A pod joins its service (web) in its health gate, once healthy.
    assert!(web.steps["a1"].iter().all(|s| match s {
        Step::AwaitReady { join, .. } => join.as_ref().is_some_and(|j| j.aliases == ["web"]),
        _ => true,
    }));
    simulate(&p, &mut observed);
    assert_eq!(
        pods_on(&observed, "a1", "web") + pods_on(&observed, "a2", "web"),
        3
    );
    assert_eq!(
        (
            pods_on(&observed, "a1", "edge"),
            pods_on(&observed, "a2", "edge")
        ),
        (1, 1)
    );
    let again = make_plan(&files, &observed, false);
    assert!(!again.has_changes(), "{:?}", again.changes);
    assert!(again.waves.is_empty());
    // The fingerprint is stable for an unchanged host.
    assert_eq!(p.hosts["b1"].fingerprint, again.hosts["b1"].fingerprint);
}

#[test]
fn an_image_change_is_a_pending_replace_with_the_field_that_differs() {
    let mut files = basic();
    let mut observed = empty_hosts();
    simulate(&make_plan(&files, &observed, false), &mut observed);
    let web = files.files["deployments/web.yaml"].replace("example/web:1", "example/web:2");
    files.files.insert("deployments/web.yaml".into(), web);
    let p = make_plan(&files, &observed, false);
    assert_eq!(p.count(Action::Replace), 3, "{:?}", p.changes);
    let c = &p.changes[0];
    assert_eq!(c.kind, ChangeKind::Pending);
    let f = c
        .fields
        .iter()
        .find(|f| f.field == "image")
        .expect("image differs");
    assert_eq!(
        (f.old.as_deref(), f.new.as_deref()),
        (Some("example/web:1"), Some("example/web:2"))
    );
    // Rolling: two waves per pod: the first creates it (beside the previous pod's old one
    // leaving its service, draining and going, on another host), the second is its health
    // gate, in which it joins the service. The last old pod goes in a final wave.
    let starts: Vec<_> = p
        .waves
        .iter()
        .filter(|w| w.description.contains("rolling batch") && !w.description.contains("gate"))
        .collect();
    let gates: Vec<_> = p
        .waves
        .iter()
        .filter(|w| w.description.contains("health gate"))
        .collect();
    assert_eq!((starts.len(), gates.len()), (3, 3));
    let ops_of =
        |w: &plan::Wave, h: &str| -> Vec<&'static str> { w.steps[h].iter().map(op).collect() };
    let first_host = starts[0].steps.keys().next().unwrap().clone();
    assert_eq!(ops_of(starts[0], &first_host), ["create"]);
    assert_eq!(ops_of(gates[0], &first_host), ["await"]);
    let Step::AwaitReady { join: Some(j), .. } = &gates[0].steps[&first_host][0] else {
        panic!("the new pod joins in its gate")
    };
    assert_eq!(j.aliases, ["web"]);
    let second = &starts[1].steps;
    assert_ne!(
        second.keys().last().unwrap(),
        &first_host,
        "batches go round robin over hosts"
    );
    assert_eq!(ops_of(starts[1], &first_host), ["leave"]);
    assert_eq!(
        ops_of(gates[1], &first_host),
        ["stop"],
        "stopped (kept for rollback) beside the next gate"
    );
    let Step::LeaveService {
        leave, drain_ms, ..
    } = &second[&first_host][0]
    else {
        unreachable!()
    };
    assert_eq!(
        (leave.aliases.as_slice(), *drain_ms),
        (&["web".to_string()][..], 1000)
    );
    let last = p.waves.last().unwrap();
    assert!(last.description.contains("retire the last replaced pods"));
    let last_ops: Vec<&str> = last.steps.values().flatten().map(op).collect();
    assert_eq!(last_ops, ["leave", "stop"]);
    let undo: Vec<&str> = gates[0].on_failure[&first_host].iter().map(op).collect();
    // ... and records that the revision failed, so `sync` does not retry it.
    assert_eq!(undo, ["remove", "join", "record"]);
    simulate(&p, &mut observed);
    assert!(!make_plan(&files, &observed, false).has_changes());
}

#[test]
fn a_host_port_pod_stops_its_predecessor_first_and_restarts_it_on_failure() {
    let mut files = basic();
    let mut observed = empty_hosts();
    simulate(&make_plan(&files, &observed, false), &mut observed);
    let edge = files.files["deployments/edge.yaml"].replace("example/proxy:1", "example/proxy:2");
    files.files.insert("deployments/edge.yaml".into(), edge);
    let p = make_plan(&files, &observed, false);
    let wave = p
        .waves
        .iter()
        .find(|w| w.description.contains("replace edge"))
        .expect("an edge wave");
    let steps = wave.steps.values().next().unwrap();
    assert!(matches!(steps[0], Step::StopPod { .. }), "{steps:?}");
    let undo = wave.on_failure.values().next().unwrap();
    assert!(matches!(undo[1], Step::StartPod { .. }), "{undo:?}");
    assert!(p
        .changes
        .iter()
        .any(|c| matches!(c.reason, Reason::StopsFirst { host_port: 80, .. })));
}

#[test]
fn hand_made_changes_are_drift() {
    let files = basic();
    let mut observed = empty_hosts();
    simulate(&make_plan(&files, &observed, false), &mut observed);
    let a1 = observed.get_mut("a1").unwrap().as_mut().unwrap();
    let web_on_a1: Vec<String> = a1
        .containers
        .iter()
        .filter(|c| c.label(label::DEPLOYMENT) == Some("web"))
        .map(|c| c.name.clone())
        .collect();
    a1.containers
        .iter_mut()
        .find(|c| c.name == web_on_a1[0])
        .unwrap()
        .state = "exited".into();
    let a2 = observed.get_mut("a2").unwrap().as_mut().unwrap();
    a2.containers
        .retain(|c| c.label(label::DEPLOYMENT) != Some("web"));
    let p = make_plan(&files, &observed, false);
    let actions: Vec<(Action, ChangeKind)> = p.changes.iter().map(|c| (c.action, c.kind)).collect();
    assert!(
        actions.contains(&(Action::Start, ChangeKind::Drift)),
        "{actions:?}"
    );
    assert!(
        actions.contains(&(Action::Create, ChangeKind::Drift)),
        "{actions:?}"
    );
    simulate(&p, &mut observed);
    assert!(!make_plan(&files, &observed, false).has_changes());
}

#[test]
fn adding_a_host_does_not_move_running_pods() {
    let mut files = basic();
    let mut observed = empty_hosts();
    simulate(&make_plan(&files, &observed, false), &mut observed);
    let inv = files.files["inventory.yaml"].clone()
        + "  - {name: a3, address: 198.18.1.4, labels: {role: web}}\n";
    files.files.insert("inventory.yaml".into(), inv);
    observed.insert(
        "a3".into(),
        Ok(ObservedHost {
            host: "a3".into(),
            ..Default::default()
        }),
    );
    let p = make_plan(&files, &observed, false);
    assert!(!p.has_changes(), "{:?}", p.changes);
}

#[test]
fn unmanaged_clashes_are_conflicts_and_orphans_need_prune() {
    let files = basic();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/basic/observed-conflicts.json"),
    )
    .unwrap();
    let hosts: BTreeMap<String, ObservedHost> = serde_json::from_str(&text).unwrap();
    let observed: Observed = hosts.into_iter().map(|(k, v)| (k, Ok(v))).collect();
    let p = make_plan(&files, &observed, false);
    let conflict = p
        .issues
        .iter()
        .find(|i| i.kind == IssueKind::Conflict)
        .expect("a conflict");
    assert!(
        conflict.message.contains("someone-elses-proxy") && conflict.message.contains("80/tcp"),
        "{conflict:?}"
    );
    assert!(p
        .issues
        .iter()
        .any(|i| i.kind == IssueKind::Notice && i.message.contains("--prune")));
    assert!(!p
        .changes
        .iter()
        .any(|c| c.pod.as_deref() == Some("gone-abc-0")));
    let pruned = make_plan(&files, &observed, true);
    assert!(pruned
        .changes
        .iter()
        .any(|c| c.action == Action::Remove && c.pod.as_deref() == Some("gone-abc-0")));
    // Nothing ever removes the unmanaged container.
    let json = serde_json::to_string(&pruned.waves).unwrap();
    assert!(!json.contains("someone-elses-proxy"));
}

#[test]
fn a_selector_limits_the_plan_to_matching_deployments() {
    let files = basic();
    let observed = empty_hosts();
    let desired = repo::load(&files, &|_| None).unwrap();
    let sel = Selector::parse("app=edge").unwrap();
    let p = plan::build(&PlanInput {
        selector: Some(&sel),
        now: 0,
        ..fixture::input(&desired, &observed)
    });
    assert!(p.changes.iter().all(|c| c.deployment == "edge"));
    assert_eq!(p.changes.len(), 2);
}

#[test]
fn an_unreachable_host_is_an_issue_and_gets_no_steps() {
    let files = basic();
    let mut observed = empty_hosts();
    observed.insert("a2".into(), Err("connection refused".into()));
    let p = make_plan(&files, &observed, false);
    assert!(p
        .issues
        .iter()
        .any(|i| i.kind == IssueKind::Unreachable && i.message.contains("a2")));
    assert!(p.changes.iter().all(|c| c.host != "a2"));
    assert!(!p.hosts["a2"].reachable);
}

/// Unreachable is never green: a plan without changes says "matches Git" only when every
/// host was observed, in text and Markdown.
#[test]
fn a_plan_without_changes_says_which_hosts_were_not_observed() {
    let files = basic();
    let mut observed = empty_hosts();
    simulate(&make_plan(&files, &observed, false), &mut observed);
    let p = make_plan(&files, &observed, false);
    assert!(!p.has_changes());
    let text = berth::render::text::plan(&p, false);
    assert!(
        text.contains("No changes: the live state matches Git."),
        "{text}"
    );

    // b1 runs nothing of this project: without it there is still nothing to change.
    observed.insert("b1".into(), Err("connection refused".into()));
    let p = make_plan(&files, &observed, false);
    assert!(!p.has_changes());
    let text = berth::render::text::plan(&p, false);
    let md = berth::render::markdown::plan(&p);
    assert!(
        text.contains("No changes on the 2 of 3 hosts observed; not observed, so unknown: b1."),
        "{text}"
    );
    assert!(
        md.contains("no changes on the 2 of 3 hosts observed; not observed, so unknown: b1"),
        "{md}"
    );

    for h in ["a1", "a2", "b1"] {
        observed.insert(h.into(), Err("connection refused".into()));
    }
    let p = make_plan(&files, &observed, false);
    let text = berth::render::text::plan(&p, false);
    let md = berth::render::markdown::plan(&p);
    for shown in [&text, &md] {
        assert!(
            !shown.contains("matches Git") && !shown.contains("o changes"),
            "{shown}"
        );
    }
    assert!(
        text.contains("Nothing observed: no host answered (0 of 3 observed)"),
        "{text}"
    );
    assert!(
        md.contains("nothing observed, no host answered (0 of 3)"),
        "{md}"
    );
}

/// What the executor adds to a container with secrets: a salted scrypt record of each value.
fn seal_secrets(observed: &mut Observed, value: &str) {
    for h in observed.values_mut() {
        for c in &mut h.as_mut().unwrap().containers {
            if c.label(label::DEPLOYMENT) == Some("web") {
                let sealed = berth::model::secret::seal("0123456789abcdef0123456789abcdef", value);
                c.labels.insert(
                    berth::model::secret::SECRETS_LABEL.into(),
                    format!("{{\"api-token\":\"{sealed}\"}}"),
                );
            }
        }
    }
}

fn plan_for(desired: &berth::model::DesiredState, observed: &Observed) -> Plan {
    plan::build(&PlanInput {
        now: 0,
        ..fixture::input(desired, observed)
    })
}

#[test]
fn secrets_appear_by_name_only_and_a_changed_value_replaces_its_pods() {
    let mut files = basic();
    let web = files.files["deployments/web.yaml"].replace(
        "env: {MODE: prod}",
        "env: {MODE: prod, TOKEN: {secret: api-token}}",
    );
    files.files.insert("deployments/web.yaml".into(), web);
    let with = |value: &'static str| {
        repo::load(&files, &move |name| {
            (name == "api-token").then(|| value.to_string())
        })
        .unwrap()
    };
    let mut observed = empty_hosts();
    let p = plan_for(&with("hunter2-secret"), &observed);
    let json = berth::render::json(&p);
    let digest = berth::model::sha256_hex(b"hunter2-secret");
    assert!(json.contains("api-token"));
    assert!(
        !json.contains("hunter2-secret") && !json.contains(&digest) && !json.contains("sha256")
    );
    simulate(&p, &mut observed);
    seal_secrets(&mut observed, "hunter2-secret");
    assert!(!plan_for(&with("hunter2-secret"), &observed).has_changes());

    // The value changed: each pod is replaced, and the plan says so by name only.
    let p = plan_for(&with("hunter3-secret"), &observed);
    assert_eq!(p.count(Action::Replace), 3, "{:?}", p.changes);
    assert!(p.changes.iter().all(
        |c| c.reason.to_string() == "secret api-token changed" && c.kind == ChangeKind::Pending
    ));
    let text = berth::render::text::plan(&p, false);
    for shown in [berth::render::json(&p), text] {
        assert!(!shown.contains("hunter2-secret") && !shown.contains("hunter3-secret"));
        assert!(
            !shown.contains(&digest)
                && !shown.contains(&berth::model::sha256_hex(b"hunter3-secret"))
        );
        assert!(
            !shown.contains("0123456789abcdef0123456789abcdef"),
            "no salt either"
        );
    }

    // Checked when a saved plan is applied: the new pods need the value; a plan that keeps
    // the pods (made with the old value) is stale under the new one, one that replaces them
    // is not.
    let kept = plan_for(&with("hunter2-secret"), &observed);
    assert!(berth::plan::saved::secrets_needed(&kept).is_empty());
    assert_eq!(
        berth::plan::saved::secrets_needed(&p),
        ["api-token".to_string()].into()
    );
    let hosts = &observed;
    let now = |v: &'static str| move |n: &str| (n == "api-token").then(|| v.to_string());
    let changed = berth::plan::saved::secrets_changed_since(&kept, hosts, &now("hunter3-secret"));
    assert_eq!(changed.len(), 3, "{changed:?}");
    assert!(changed
        .iter()
        .all(|c| c.starts_with("secret api-token: web-")));
    assert!(
        berth::plan::saved::secrets_changed_since(&kept, hosts, &now("hunter2-secret")).is_empty()
    );
    assert!(
        berth::plan::saved::secrets_changed_since(&p, hosts, &now("hunter3-secret")).is_empty()
    );

    // Planning needs the value; render does not, nor a plan of other deployments.
    let missing = repo::load(&files, &|_| None).unwrap_err();
    assert!(format!("{missing:?}").contains("BERTH_SECRET_API_TOKEN"));
    assert!(repo::load::load_with(&files, None, None).is_ok());
    let edge = Selector::parse("app=edge").unwrap();
    assert!(repo::load::load_with(&files, Some(&|_| None), Some(&edge)).is_ok());
}

#[test]
fn unused_volumes_are_removed_only_with_prune_volumes_and_never_while_mounted() {
    let mut files = basic();
    let edge = files.files["deployments/edge.yaml"].replace(
        "ports: [\"80:8080\"]}",
        "ports: [\"80:8080\"], volumes: [\"cache:/cache\"]}",
    );
    files.files.insert("deployments/edge.yaml".into(), edge);
    let mut observed = empty_hosts();
    simulate(&make_plan(&files, &observed, false), &mut observed);
    assert!(
        !plan_with(&files, &observed, true, true).has_changes(),
        "a declared volume stays"
    );

    // The deployment leaves Git: its pods go with --prune, its volume only with --prune-volumes.
    files.files.remove("deployments/edge.yaml");
    let pods_only = plan_with(&files, &observed, true, false);
    assert!(pods_only.changes.iter().all(|c| c.volume.is_none()));
    let both = plan_with(&files, &observed, true, true);
    let volumes: Vec<(&str, &str)> = both
        .changes
        .iter()
        .filter_map(|c| c.volume.as_deref().map(|v| (c.host.as_str(), v)))
        .collect();
    assert_eq!(volumes, [("a1", "fx-cache"), ("a2", "fx-cache")]);
    // In the prune wave the pods go before the volume on each host.
    let wave = both.waves.last().unwrap();
    let a1 = &wave.steps["a1"];
    assert!(
        matches!(a1.last(), Some(Step::RemoveVolume { .. })),
        "{a1:?}"
    );
    assert!(a1.iter().any(|s| matches!(s, Step::RemovePod { .. })));

    // Without --prune the orphan pods keep mounting it, so it is kept with a notice.
    let kept = plan_with(&files, &observed, false, true);
    assert!(kept.changes.iter().all(|c| c.volume.is_none()));
    assert!(kept
        .issues
        .iter()
        .any(|i| i.message.contains("fx-cache") && i.message.contains("still mount")));
    simulate(&both, &mut observed);
    assert!(observed["a1"].as_ref().unwrap().volumes.is_empty());
}

/// The aliases of the one container given deep observation data in the test below.
fn c_aliases(observed: &mut Observed) -> &mut Vec<String> {
    let a1 = observed.get_mut("a1").unwrap().as_mut().unwrap();
    let c = a1
        .containers
        .iter_mut()
        .find(|c| c.resources.is_some())
        .unwrap();
    &mut c.resources.as_mut().unwrap().aliases
}

#[test]
fn resources_changed_by_hand_are_drift_when_observed_deeply() {
    let files = basic();
    let mut observed = empty_hosts();
    simulate(&make_plan(&files, &observed, false), &mut observed);
    let a1 = observed.get_mut("a1").unwrap().as_mut().unwrap();
    let c = a1
        .containers
        .iter_mut()
        .find(|c| c.label(label::DEPLOYMENT) == Some("web"))
        .unwrap();
    // As the spec says (no limits, unless-stopped, behind its service): no change.
    c.resources = Some(Resources {
        memory: 0,
        millicpus: 0,
        restart: "unless-stopped".into(),
        aliases: vec!["web".into()],
    });
    assert!(!make_plan(&files, &observed, false).has_changes());
    // Ready but not behind its service (an apply stopped before it joined): put back behind
    // it, not replaced.
    c_aliases(&mut observed).clear();
    let p = make_plan(&files, &observed, false);
    assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
    let change = &p.changes[0];
    assert_eq!(
        (change.action, change.kind),
        (Action::Switch, ChangeKind::Drift)
    );
    assert_eq!(
        change.reason,
        Reason::ReadyOutOfService {
            want: vec!["web".into()]
        },
        "{change:?}"
    );
    assert_eq!(p.waves.len(), 1, "{:?}", p.waves);
    let steps: Vec<&Step> = p.waves[0].steps.values().flatten().collect();
    assert!(
        matches!(steps.as_slice(), [Step::JoinService { join, .. }] if join.aliases == ["web"]),
        "{steps:?}"
    );
    simulate(&p, &mut observed);
    assert_eq!(c_aliases(&mut observed), &vec!["web".to_string()]);
    assert!(!make_plan(&files, &observed, false).has_changes());
    // As after `docker update --memory 128m`.
    let c = observed
        .get_mut("a1")
        .unwrap()
        .as_mut()
        .unwrap()
        .containers
        .iter_mut()
        .find(|c| c.resources.is_some())
        .unwrap();
    c.resources.as_mut().unwrap().memory = 128 << 20;
    let p = make_plan(&files, &observed, false);
    assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
    let change = &p.changes[0];
    assert_eq!(
        (change.action, change.kind),
        (Action::Replace, ChangeKind::Drift)
    );
    assert_eq!(change.reason, Reason::ResourcesChangedByHand);
    let f = &change.fields[0];
    assert_eq!(
        (f.field.as_str(), f.old.as_deref(), f.new.as_deref()),
        ("memory", Some("134217728"), Some("0"))
    );
}

fn op(s: &Step) -> &'static str {
    match s {
        Step::StopPod { .. } => "stop",
        Step::StartPod { .. } => "start",
        Step::CreatePod { .. } => "create",
        Step::AwaitReady { .. } => "await",
        Step::RemovePod { .. } => "remove",
        Step::LeaveService { .. } => "leave",
        Step::JoinService { .. } => "join",
        Step::RecordRollout { .. } => "record",
        _ => "other",
    }
}

#[test]
fn rolling_batches_follow_surge_and_unavailability_across_hosts() {
    let mut files = basic();
    let web = files.files["deployments/web.yaml"]
        .replace("replicas: 3", "replicas: 4")
        .replace(
            "service: {name: web}",
            "service: {name: web}\nstrategy: {max_surge: 25%, max_unavailable: 1}",
        );
    files
        .files
        .insert("deployments/web.yaml".into(), web.clone());
    let mut observed = empty_hosts();
    simulate(&make_plan(&files, &observed, false), &mut observed);
    files.files.insert(
        "deployments/web.yaml".into(),
        web.replace("example/web:1", "example/web:2"),
    );
    let p = make_plan(&files, &observed, false);
    let batches: Vec<_> = p
        .waves
        .iter()
        .filter(|w| w.description.contains("rolling batch") && !w.description.contains("gate"))
        .collect();
    // 4 pods, surge ceil(25% of 4) = 1, unavailable 1: batches of 2, so 2 batches.
    assert_eq!(
        batches.len(),
        2,
        "{:?}",
        p.waves.iter().map(|w| &w.description).collect::<Vec<_>>()
    );
    assert!(batches[0].description.contains("surge 1, unavailable 1"));
    // Round robin: the first batch touches both hosts, one pod each.
    let first = batches[0];
    assert_eq!(first.steps.keys().collect::<Vec<_>>(), ["a1", "a2"]);
    // On the first host the old pod may be unavailable: it leaves its service and stops
    // first. The second keeps serving until its replacement is ready, then leaves (drains).
    let a1: Vec<&str> = first.steps["a1"].iter().map(op).collect();
    let a2: Vec<&str> = first.steps["a2"].iter().map(op).collect();
    assert_eq!(a1, ["leave", "stop", "create"]);
    assert_eq!(a2, ["create"]);
    // A failed batch puts the old pods back behind the service.
    let undo_a1: Vec<&str> = first.on_failure["a1"].iter().map(op).collect();
    assert_eq!(undo_a1, ["remove", "start", "join", "record"]);
    // The second batch first removes what the first replaced.
    let second_a2: Vec<&str> = batches[1].steps["a2"].iter().map(op).collect();
    assert_eq!(second_a2[0], "leave", "{second_a2:?}");
    let second_gate = p
        .waves
        .iter()
        .find(|w| w.description.contains("batch 2/2: health gate"))
        .unwrap();
    // ... and removes it once its drain is out, after the new pods' gates on the host (the
    // drain runs out during the gate).
    let gate_a1: Vec<&str> = second_gate.steps["a1"].iter().map(op).collect();
    assert_eq!(gate_a1, ["await", "stop"], "{gate_a1:?}");
    // Failing the second batch restores what the first batch replaced: kept stopped, those
    // pods start again (no create).
    let undo: Vec<&str> = batches[1].on_failure.values().flatten().map(op).collect();
    assert_eq!(
        undo.iter().filter(|o| **o == "create").count(),
        0,
        "{undo:?}"
    );
    let restored: Vec<String> = batches[1]
        .on_failure
        .values()
        .flatten()
        .filter_map(|s| match s {
            Step::StartPod { pod, .. } => Some(pod.clone()),
            _ => None,
        })
        .collect();
    let replaced_first: Vec<String> = second_gate
        .steps
        .values()
        .flatten()
        .filter_map(|s| match s {
            Step::StopPod { pod, .. } => Some(pod.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(replaced_first.len(), 2, "{replaced_first:?}");
    assert!(
        replaced_first.iter().all(|p| restored.contains(p)),
        "{restored:?} {replaced_first:?}: the first batch's old pods come back by name"
    );
    simulate(&p, &mut observed);
    assert!(!make_plan(&files, &observed, false).has_changes());
}

#[test]
fn surge_and_unavailability_are_checked_and_rounded() {
    use berth::model::Amount;
    assert_eq!(Amount::parse("25%").unwrap().resolve(3, true), 1);
    assert_eq!(Amount::parse("25%").unwrap().resolve(3, false), 0);
    assert_eq!(Amount::parse("50%").unwrap().resolve(5, false), 2);
    assert_eq!(Amount::parse("2").unwrap().resolve(9, true), 2);
    assert!(Amount::parse("120%").is_err() && Amount::parse("x").is_err());
    let mut files = basic();
    let web = files.files["deployments/web.yaml"].replace(
        "service: {name: web}",
        "service: {name: web}\nstrategy: {max_surge: 0, max_unavailable: 0}",
    );
    files.files.insert("deployments/web.yaml".into(), web);
    let err = repo::load(&files, &|_| None).unwrap_err();
    assert!(format!("{err:?}").contains("both 0"), "{err:?}");
}

#[test]
fn status_counts_ready_pods_at_the_desired_revision() {
    use berth::diff::status::status;
    let mut files = basic();
    let mut observed = empty_hosts();
    simulate(&make_plan(&files, &observed, false), &mut observed);
    let desired = repo::load(&files, &|_| None).unwrap();
    let s = status(&desired, &observed, None);
    let web = s.deployments.iter().find(|d| d.name == "web").unwrap();
    assert_eq!((web.ready, web.replicas, web.pods.len()), (3, 3, 3));
    assert_eq!(web.service.as_deref(), Some("web"));

    let changed = files.files["deployments/web.yaml"].replace("example/web:1", "example/web:2");
    files.files.insert("deployments/web.yaml".into(), changed);
    let desired = repo::load(&files, &|_| None).unwrap();
    observed.insert("b1".into(), Err("connection refused".into()));
    let s = status(
        &desired,
        &observed,
        Some(&Selector::parse("app=web").unwrap()),
    );
    assert_eq!(s.deployments.len(), 1);
    assert_eq!(s.deployments[0].ready, 0);
    assert!(s.deployments[0].pods.iter().all(|p| !p.current));
    assert_eq!(s.unreachable.keys().collect::<Vec<_>>(), ["b1"]);
    let text = berth::render::status_text(&s);
    assert!(
        text.contains("web 0/3 ready") && text.contains("b1 is unreachable"),
        "{text}"
    );
    let live = &s.deployments[0].pods[0].revision;
    assert!(
        text.contains(&format!("live: {live} (")),
        "the live revision is named: {text}"
    );
}

fn plan_intent(
    files: &RepoFiles,
    observed: &Observed,
    intent: Option<plan::Intent>,
    now: u64,
) -> Plan {
    let desired = repo::load(files, &|_| None).unwrap_or_else(|d| panic!("{d:?}"));
    plan::build(&PlanInput {
        desired: &desired,
        observed,
        selector: None,
        prune: false,
        prune_volumes: false,
        now,
        intents: intent.map(|i| ("web".to_string(), i)).into_iter().collect(),
        retry: false,
        rollback_to: Default::default(),
    })
}

/// The basic fixture with web on `strategy`, at v1, applied.
fn rolled_out(strategy: &str) -> (RepoFiles, Observed) {
    let mut files = basic();
    let web = files.files["deployments/web.yaml"].clone() + strategy;
    files.files.insert("deployments/web.yaml".into(), web);
    let mut observed = empty_hosts();
    simulate(&make_plan(&files, &observed, false), &mut observed);
    assert!(!make_plan(&files, &observed, false).has_changes());
    (files, observed)
}

fn bump(files: &mut RepoFiles, image: &str) {
    let web = files.files["deployments/web.yaml"].replace("example/web:1", image);
    files.files.insert("deployments/web.yaml".into(), web);
}

fn waves_text(p: &Plan) -> Vec<&str> {
    p.waves.iter().map(|w| w.description.as_str()).collect()
}

fn images(observed: &Observed) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = observed
        .values()
        .flat_map(|o| o.as_ref().unwrap().containers.iter())
        .filter(|c| c.label(label::DEPLOYMENT) == Some("web"))
        .map(|c| (c.image.clone(), c.state.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn a_canary_goes_step_by_step_and_pauses_until_promoted() {
    let (mut files, mut observed) = rolled_out(
        "strategy:\n  type: canary\n  steps:\n    - weight: 50\n    - pause: 10s\n    - analysis: {port: 8080, path: /health}\n    - pause: {}\n    - weight: 100\n",
    );
    bump(&mut files, "example/web:2");
    let p = make_plan(&files, &observed, false);
    let waves = waves_text(&p);
    assert!(
        waves
            .iter()
            .any(|w| w.contains("weight 50% → 2 of 3 pods") && w.contains("effective 67%")),
        "requested and effective weight: {waves:?}"
    );
    assert_eq!(p.count(Action::Replace), 2);
    let steps: Vec<&Step> = p
        .waves
        .iter()
        .flat_map(|w| w.steps.values().flatten())
        .collect();
    assert!(steps
        .iter()
        .any(|s| matches!(s, Step::Wait { ms: 10_000, .. })));
    assert!(steps
        .iter()
        .any(|s| matches!(s, Step::Analyze { check, .. } if check.path == "/health")));
    // Stable pods leave the service and stop; an abort brings them back.
    let step1 = p
        .waves
        .iter()
        .find(|w| w.description.contains("step 1/5"))
        .unwrap();
    let ops: Vec<&str> = step1.steps.values().flatten().map(op).collect();
    assert!(
        ops.contains(&"leave") && ops.contains(&"stop") && !ops.contains(&"remove"),
        "{ops:?}"
    );
    let undo: Vec<&str> = step1.on_failure.values().flatten().map(op).collect();
    assert!(
        undo.contains(&"start") && undo.contains(&"remove"),
        "{undo:?}"
    );
    let Some(Step::RecordRollout { state: Some(s), .. }) =
        p.waves.last().unwrap().steps.values().flatten().last()
    else {
        panic!("the plan ends by recording the pause: {waves:?}");
    };
    assert_eq!(
        (s.phase, s.step, s.weight),
        (berth::model::Phase::Paused, 3, 66)
    );

    simulate(&p, &mut observed);
    assert_eq!(
        images(&observed),
        [
            ("example/web:1".into(), "exited".into()),
            ("example/web:1".into(), "exited".into()),
            ("example/web:1".into(), "running".into()),
            ("example/web:2".into(), "running".into()),
            ("example/web:2".into(), "running".into()),
        ]
    );
    // Paused: a plain plan does nothing and says why.
    let p = make_plan(&files, &observed, false);
    assert!(
        p.waves.is_empty() && !p.has_changes(),
        "{:?}",
        waves_text(&p)
    );
    assert!(p
        .issues
        .iter()
        .any(|i| i.kind == IssueKind::Rollout && i.message.contains("berth promote web")));
    // ... and does not claim the live state matches Git.
    let text = berth::render::text::plan(&p, false);
    assert!(
        text.contains("paused at step 4 (weight 66%)")
            && text.contains("No changes to make now: a rollout waits")
            && !text.contains("matches Git"),
        "{text}"
    );

    let p = plan_intent(&files, &observed, Some(plan::Intent::Promote), 0);
    assert!(
        !waves_text(&p).iter().any(|w| w.contains("step 1/5")),
        "promote goes on from the pause"
    );
    assert_eq!(p.count(Action::Replace), 1);
    simulate(&p, &mut observed);
    // The stable pods stay stopped, kept for `berth rollback --to` (history_limit 2).
    let mut want = vec![("example/web:1".to_string(), "exited".to_string()); 3];
    want.extend(vec![
        ("example/web:2".to_string(), "running".to_string());
        3
    ]);
    assert_eq!(images(&observed), want);
    assert!(
        observed
            .values()
            .all(|o| o.as_ref().unwrap().rollouts.is_empty()),
        "state cleared"
    );
    assert!(!make_plan(&files, &observed, false).has_changes());
}

/// `berth abort web` on a one-pod canary: the stopped v1 pod starts, the canary goes, and the
/// three v1 pods run.
fn abort_to_v1(files: &RepoFiles, observed: &mut Observed) {
    let p = plan_intent(files, observed, Some(plan::Intent::Abort), 0);
    assert_eq!((p.count(Action::Start), p.count(Action::Remove)), (1, 1));
    simulate(&p, observed);
    assert_eq!(
        images(observed),
        vec![("example/web:1".to_string(), "running".to_string()); 3]
    );
}

#[test]
fn aborting_a_canary_restores_the_stable_set_and_is_not_retried() {
    let (mut files, mut observed) =
        rolled_out("strategy:\n  type: canary\n  steps:\n    - weight: 33\n    - pause: {}\n");
    bump(&mut files, "example/web:2");
    simulate(&make_plan(&files, &observed, false), &mut observed);
    abort_to_v1(&files, &mut observed);
    let p = make_plan(&files, &observed, false);
    assert!(
        !p.has_changes(),
        "an aborted revision is not rolled out again"
    );
    assert!(p.issues.iter().any(|i| i.message.contains("aborted")));
    // promote retries it from the first step.
    let p = plan_intent(&files, &observed, Some(plan::Intent::Promote), 0);
    assert!(
        waves_text(&p).iter().any(|w| w.contains("step 1/2")),
        "{:?}",
        waves_text(&p)
    );
}

#[test]
fn blue_green_waits_behind_the_preview_name_then_switches_and_scales_down_later() {
    let (mut files, mut observed) =
        rolled_out("strategy: {type: blue-green, scale_down_delay: 30s}\n");
    bump(&mut files, "example/web:2");
    let p = make_plan(&files, &observed, false);
    assert_eq!(p.count(Action::Create), 3);
    let created: Vec<&plan::PodPlan> = p
        .waves
        .iter()
        .flat_map(|w| w.steps.values().flatten())
        .filter_map(|s| match s {
            Step::CreatePod { pod } => Some(pod),
            _ => None,
        })
        .collect();
    assert!(
        created.iter().all(|c| c.aliases == ["web-preview"]),
        "{created:?}"
    );
    // The plan shows who answers to which name before and after each wave.
    let shown = berth::render::waves_with_services(&p);
    let (_, before) = &shown[0];
    assert_eq!(before.len(), 1, "only web-preview changes: {shown:?}");
    assert_eq!(
        (before[0].0.as_str(), before[0].1.as_str()),
        ("web-preview", "(nobody)")
    );
    let after_start = shown
        .iter()
        .find(|(w, _)| w.contains("start the new set"))
        .unwrap();
    let new_names: Vec<String> = created.iter().map(|c| c.name.clone()).collect();
    assert!(
        new_names
            .iter()
            .all(|n| after_start.1[0].1.contains(n.as_str())),
        "{after_start:?}"
    );
    simulate(&p, &mut observed);
    assert_eq!(images(&observed).len(), 6, "both sets run");
    assert!(
        make_plan(&files, &observed, false).waves.is_empty(),
        "waits for promote"
    );

    let p = plan_intent(&files, &observed, Some(plan::Intent::Promote), 0);
    assert!(p.count(Action::Switch) > 0);
    let shown = berth::render::waves_with_services(&p);
    let web_after: Vec<&(String, String)> = shown[1].1.iter().filter(|(n, _)| n == "web").collect();
    assert!(
        new_names
            .iter()
            .all(|n| web_after[0].1.contains(n.as_str()))
            && !web_after[0].1.contains("-0"),
        "after promotion only the new set is behind web: {shown:?}"
    );
    let promote = &p.waves[0];
    for steps in promote.steps.values() {
        let ops: Vec<&str> = steps.iter().map(op).collect();
        let first_leave = ops.iter().position(|o| *o == "leave").unwrap();
        assert!(
            ops[..first_leave].iter().all(|o| *o == "join"),
            "join before leave: {ops:?}"
        );
    }
    simulate(&p, &mut observed);
    // The old set stays for scale_down_delay (the simulator stamps since = 1000).
    let p = plan_intent(&files, &observed, None, 1_010);
    assert!(
        !p.has_changes()
            && p.issues
                .iter()
                .any(|i| i.message.contains("berth rollback web"))
    );
    // Then the old set stops, kept for `berth rollback --to`.
    let p = plan_intent(&files, &observed, None, 1_031);
    assert_eq!(p.count(Action::Stop), 3);
    simulate(&p, &mut observed);
    let mut want = vec![("example/web:1".to_string(), "exited".to_string()); 3];
    want.extend(vec![
        ("example/web:2".to_string(), "running".to_string());
        3
    ]);
    assert_eq!(images(&observed), want);
    assert!(!make_plan(&files, &observed, false).has_changes());
}

#[test]
fn promote_says_why_when_there_is_nothing_to_promote() {
    let files = basic();
    let mut observed = empty_hosts();
    simulate(&make_plan(&files, &observed, false), &mut observed);
    let p = plan_intent(&files, &observed, Some(plan::Intent::Promote), 0);
    assert!(p.waves.is_empty());
    assert!(
        p.issues
            .iter()
            .any(|i| i.kind == IssueKind::Rollout && i.message.contains("rolling strategy")),
        "{:?}",
        p.issues
    );
}

#[test]
fn a_new_revision_during_a_blue_green_keeps_the_serving_set_until_it_is_promoted() {
    let (mut files, mut observed) =
        rolled_out("strategy: {type: blue-green, scale_down_delay: 30s}\n");
    bump(&mut files, "example/web:2");
    simulate(&make_plan(&files, &observed, false), &mut observed);
    let p = plan_intent(&files, &observed, Some(plan::Intent::Promote), 0);
    simulate(&p, &mut observed);
    // v2 serves, v1 is kept out of service; now Git names v3.
    let v3 = files.files["deployments/web.yaml"].replace("example/web:2", "example/web:3");
    files.files.insert("deployments/web.yaml".into(), v3);
    let p = make_plan(&files, &observed, false);
    let removed: Vec<&String> = p
        .changes
        .iter()
        .filter(|c| c.action == Action::Remove)
        .filter_map(|c| c.pod.as_ref())
        .collect();
    let v2_pods: Vec<String> = observed
        .values()
        .flat_map(|o| o.as_ref().unwrap().containers.iter())
        .filter(|c| c.image == "example/web:2")
        .map(|c| c.label(label::POD).unwrap().to_string())
        .collect();
    assert_eq!(removed.len(), 3, "the kept v1 set goes: {removed:?}");
    assert!(
        removed.iter().all(|r| !v2_pods.contains(r)),
        "the serving v2 set stays until v3 is promoted: {removed:?}"
    );
    assert_eq!(p.count(Action::Create), 3);
    simulate(&p, &mut observed);
    let p = plan_intent(&files, &observed, Some(plan::Intent::Promote), 0);
    assert!(p.count(Action::Switch) > 0);
}

#[test]
fn aborting_a_canary_that_git_moved_past_removes_it_and_lets_the_new_revision_go() {
    let (mut files, mut observed) =
        rolled_out("strategy:\n  type: canary\n  steps:\n    - weight: 33\n    - pause: {}\n");
    bump(&mut files, "example/web:2");
    simulate(&make_plan(&files, &observed, false), &mut observed);
    let v3 = files.files["deployments/web.yaml"].replace("example/web:2", "example/web:3");
    files.files.insert("deployments/web.yaml".into(), v3);
    abort_to_v1(&files, &mut observed);
    let p = make_plan(&files, &observed, false);
    assert!(
        waves_text(&p).iter().any(|w| w.contains("step 1/2")),
        "v3 is not the aborted revision: {:?} {:?}",
        waves_text(&p),
        p.issues
    );
}

/// Who answers to `name`, over all hosts: running web pods whose network owner has it.
fn behind(observed: &Observed, name: &str) -> Vec<String> {
    let mut pods: Vec<String> = observed
        .values()
        .flat_map(|o| o.as_ref().unwrap().containers.iter())
        .filter(|c| c.label(label::DEPLOYMENT) == Some("web") && c.is_running())
        .filter(|c| {
            c.resources
                .as_ref()
                .is_some_and(|r| r.aliases.iter().any(|a| a == name))
        })
        .map(|c| c.name.clone())
        .collect();
    pods.sort();
    pods
}

fn running_web(observed: &Observed) -> usize {
    observed
        .values()
        .flat_map(|o| o.as_ref().unwrap().containers.iter())
        .filter(|c| c.label(label::DEPLOYMENT) == Some("web") && c.is_running())
        .count()
}

/// Plans and applies (fully, deeply) until nothing is left to do; the first plan carries
/// `intent`. Panics if it does not settle.
fn converge(files: &RepoFiles, observed: &mut Observed, intent: Option<plan::Intent>, now: u64) {
    let first = plan_intent(files, observed, intent, now);
    if std::env::var_os("DEBUG_CONVERGE").is_some() {
        eprintln!("{}", berth::render::text::plan(&first, false));
    }
    // No step of the way back may leave a host without a pod behind the service.
    let mut gaps = Vec::new();
    simulate_cut(&first, observed, None, true, Some(&mut gaps));
    for _ in 0..10 {
        assert!(
            gaps.is_empty(),
            "a host lost its last pod behind web: {gaps:?}"
        );
        let p = plan_intent(files, observed, None, now);
        if p.waves.is_empty() {
            return;
        }
        simulate_cut(&p, observed, None, true, Some(&mut gaps));
    }
    panic!(
        "no convergence: {:?}",
        waves_text(&plan_intent(files, observed, None, now))
    );
}

/// Every way back from every moment: for each strategy, a rollout is cut at every step of
/// every wave (as if berth were killed there), then each action a user or cron may take next
/// (a plain apply, promote, abort, rollback, a new commit) is applied until nothing is left.
/// At the end the declared number of pods answers to the service, every other running pod is
/// a blue-green's preview set, and no pod of the service is left outside it.
#[test]
fn every_way_back_from_every_step_of_every_strategy_ends_with_the_declared_pods_serving() {
    use plan::Intent::*;
    let strategies = [
        "strategy: {max_surge: 1, max_unavailable: 0}\n",
        "strategy:\n  type: canary\n  steps: [{weight: 33}, {pause: {}}, {weight: 66}]\n",
        "strategy: {type: blue-green, scale_down_delay: 0s}\n",
        "strategy: {type: blue-green, auto_promote: true, scale_down_delay: 0s}\n",
    ];
    let actions: [(&str, Option<plan::Intent>, bool); 5] = [
        ("apply", None, false),
        ("promote", Some(Promote), false),
        ("abort", Some(Abort), false),
        ("rollback", Some(Rollback), false),
        ("new commit", None, true),
    ];
    let mut tried = 0;
    for strategy in strategies {
        let mut files = basic();
        let web = files.files["deployments/web.yaml"].clone() + strategy;
        files.files.insert("deployments/web.yaml".into(), web);
        let mut base = empty_hosts();
        converge(&files, &mut base, None, 1_000);
        bump(&mut files, "example/web:2");
        // The states to cut from: the rollout's own plan, and after a pause the promote plan.
        let mut starts = vec![(base.clone(), None)];
        let mut paused = base.clone();
        converge(&files, &mut paused, None, 1_000);
        if plan_intent(&files, &paused, Some(Promote), 1_000).has_changes() {
            starts.push((paused, Some(Promote)));
        }
        for (start, intent) in starts {
            let p = plan_intent(&files, &start, intent, 1_000);
            let new_pods: Vec<String> = p
                .waves
                .iter()
                .flat_map(|w| w.steps.values().flatten())
                .filter_map(|s| match s {
                    Step::CreatePod { pod } => Some(pod.name.clone()),
                    _ => None,
                })
                .collect();
            let longest = |w: &plan::Wave| w.steps.values().map(Vec::len).max().unwrap_or(0);
            for (k, wave) in p.waves.iter().enumerate() {
                for j in 0..=longest(wave) {
                    for (name, action, commit) in actions {
                        let mut observed = start.clone();
                        simulate_cut(&p, &mut observed, Some((k, j)), true, None);
                        let mut files = files.clone();
                        if commit {
                            bump(&mut files, "example/web:3");
                        }
                        let at = format!("{strategy:?} cut at wave {k} step {j}, then {name}");
                        // Until it is promoted, a blue-green's new set never answers to the
                        // service, whatever a killed apply left (the recovery must not repair
                        // it into service).
                        let waits_for_promote = strategy.contains("blue-green")
                            && !strategy.contains("auto_promote")
                            && intent.is_none()
                            && action.is_none()
                            && !commit;
                        if waits_for_promote {
                            let next = plan_intent(&files, &observed, None, 2_000);
                            let early = joins_to(&next, "web")
                                .into_iter()
                                .filter(|pod| new_pods.contains(pod))
                                .collect::<Vec<_>>();
                            assert!(
                                early.is_empty(),
                                "{at}: new set put behind web before promotion: {early:?}"
                            );
                        }
                        converge(&files, &mut observed, action, 2_000);
                        let serving = behind(&observed, "web");
                        let preview = behind(&observed, "web-preview");
                        assert_eq!(serving.len(), 3, "{at}: behind web: {serving:?}");
                        assert_eq!(
                            running_web(&observed),
                            serving.len() + preview.len(),
                            "{at}: a running pod outside its service: web {serving:?}, preview {preview:?}"
                        );
                        tried += 1;
                    }
                }
            }
        }
    }
    assert!(tried > 100, "only {tried} cases");
    eprintln!("ways back: {tried} cut points x actions converged");
}

#[test]
fn a_moved_tag_is_a_rollout_and_a_registry_that_cannot_be_asked_changes_nothing() {
    use berth::plan::digests::{self, Resolved};
    let desired = fixture::desired(&basic());
    let mut observed = empty_hosts();
    let image = "example/web:1".to_string();
    // No host has the image: it is asked about, through a host that will run it.
    let asks = digests::to_resolve(&desired, &observed);
    assert!(asks.contains_key(&image), "{asks:?}");
    let d1 = format!("sha256:{}", "1".repeat(64));
    let d2 = format!("sha256:{}", "2".repeat(64));
    let at = |digest: &str| Resolved::from([(image.clone(), Ok(digest.to_string()))]);
    let (settled, notes) = digests::settle(&desired, &at(&d1), &observed);
    assert!(notes.is_empty(), "{notes:?}");
    let p = plan_for(&settled, &observed);
    let pulled = format!("{image}@{d1}");
    assert!(p.images().contains(pulled.as_str()), "{:?}", p.images());
    simulate(&p, &mut observed);
    assert!(plan_for(&settled, &observed).changes.is_empty());

    // The registry cannot be asked: the pods keep the digest they run, and a notice says so.
    let down = Resolved::from([(image.clone(), Err("connection refused".to_string()))]);
    let (settled, notes) = digests::settle(&desired, &down, &observed);
    assert!(plan_for(&settled, &observed).changes.is_empty());
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].message.contains("connection refused")
            && notes[0]
                .message
                .contains("its pods keep the digest they run"),
        "{notes:?}"
    );

    // The tag moved: every web pod is replaced, the change naming both digests.
    let (settled, _) = digests::settle(&desired, &at(&d2), &observed);
    let p = plan_for(&settled, &observed);
    let web: Vec<_> = p.changes.iter().filter(|c| c.deployment == "web").collect();
    assert_eq!(web.len(), 3, "{:?}", p.changes);
    for c in &web {
        assert_eq!(c.action, Action::Replace);
        let f = c
            .fields
            .iter()
            .find(|f| f.field == "digest")
            .expect("a digest field");
        assert_eq!(
            (f.old.as_deref(), f.new.as_deref()),
            (Some(d1.as_str()), Some(d2.as_str()))
        );
    }
    assert!(
        p.changes.iter().all(|c| c.deployment == "web"),
        "edge is not touched"
    );
    let text = berth::render::text::plan(&p, false);
    assert!(
        text.contains(&format!("app.digest: {}… → {}…", &d1[..19], &d2[..19])),
        "{text}"
    );

    // An image the hosts have only from no registry (built or loaded there) is not asked
    // about; a digest of another repository does not count as coming from a registry.
    for (digests_seen, asked) in [
        (vec![], false),
        (vec![format!("registry.example/web@{d1}")], false),
        (vec![format!("example/web@{d1}")], true),
    ] {
        let mut seen = observed.clone();
        for host in seen.values_mut() {
            let host = host.as_mut().unwrap();
            host.images.insert(image.clone(), digests_seen.clone());
        }
        let asks = digests::to_resolve(&desired, &seen);
        assert_eq!(
            asks.contains_key(&image),
            asked,
            "{digests_seen:?}: {asks:?}"
        );
    }
}

#[test]
fn a_sixty_pod_image_bump_reads_in_a_few_lines() {
    let mut files = basic();
    let web = |image: &str| {
        format!("name: web\nlabels: {{app: web}}\nreplicas: 60\nplacement: {{hosts: role=web}}\npod:\n  containers:\n    - {{name: app, image: \"{image}\"}}\nservice: {{name: web}}\n")
    };
    files
        .files
        .insert("deployments/web.yaml".into(), web("example/web:1"));
    files.files.remove("deployments/edge.yaml");
    let mut observed = empty_hosts();
    simulate(&make_plan(&files, &observed, false), &mut observed);
    files
        .files
        .insert("deployments/web.yaml".into(), web("example/web:2"));
    let plan = make_plan(&files, &observed, false);
    assert_eq!(plan.changes.len(), 60, "every pod is replaced");
    let text = berth::render::text::plan(&plan, false);
    let changes: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("deployment web"))
        .take_while(|l| !l.starts_with("steps"))
        .collect();
    assert!(changes.len() < 20, "{}", changes.join("\n"));
    assert!(
        text.contains("(60 pods)") && text.contains("app.image: example/web:1 → example/web:2"),
        "{text}"
    );
    let md = berth::render::markdown::plan(&plan);
    assert!(md.len() < 20_000, "{} characters", md.len());
    assert_eq!(md.matches("| `~` | replace |").count(), 1, "{md}");
}

#[test]
fn a_deployment_removed_from_git_is_a_headline() {
    let mut files = basic();
    let mut observed = empty_hosts();
    simulate(&make_plan(&files, &observed, false), &mut observed);
    files.files.remove("deployments/edge.yaml");
    let plan = make_plan(&files, &observed, false);
    assert_eq!(plan.not_in_git["edge"].len(), 2, "{:?}", plan.not_in_git);
    let text = berth::render::text::plan(&plan, false);
    let headline = text.lines().nth(2).unwrap_or("");
    assert!(
        headline.starts_with("deployment edge: removed from Git; its 2 pod(s) on a1, a2 are kept (--prune removes them)"),
        "{text}"
    );
    let pruned = make_plan(&files, &observed, true);
    assert!(pruned.not_in_git.is_empty());
    assert_eq!(
        pruned
            .changes
            .iter()
            .filter(|c| c.deployment == "edge")
            .count(),
        2
    );
}

#[test]
fn render_speaks_the_repository_format() {
    let mut files = basic();
    files.files.insert(
        "deployments/web.yaml".into(),
        "name: web\nreplicas: 2\npod:\n  containers:\n    - {name: app, image: example/web:1, memory: 64m, cpus: 0.5, env: {DB: {secret: db}}}\nstrategy: {type: canary, min_ready: 2s, steps: [{weight: 20}, {pause: 30s}, {pause: {}}]}\nservice: {name: web}\n".into(),
    );
    // As render loads it: no secret values needed.
    let desired = berth::repo::load::load_with(&files, None, None).expect("valid");
    let text = berth::render::desired::text(&desired);
    for words in [
        "min_ready: 2s",
        "memory: 64m",
        "cpus: 0.5",
        "steps: [{weight: 20}, {pause: 30s}, {pause: {}}]",
        "env: {DB: {secret: db}}",
        "image: example/web:1",
    ] {
        assert!(text.contains(words), "{words} in\n{text}");
    }
    assert!(!text.contains("_ms"), "no internal fields: {text}");
}

/// The web deployment at `image` (basic() declares example/web:1).
fn at_image(files: &RepoFiles, image: &str) -> RepoFiles {
    let mut files = files.clone();
    let web = files.files["deployments/web.yaml"].replace("example/web:1", image);
    files.files.insert("deployments/web.yaml".into(), web);
    files
}

/// The revision the web pods running `image` carry.
fn revision_of(observed: &Observed, image: &str) -> String {
    observed
        .values()
        .flat_map(|o| o.as_ref().unwrap().containers.iter())
        .find(|c| c.image == image)
        .and_then(|c| c.label(label::REVISION))
        .unwrap_or_else(|| panic!("no pod runs {image}"))
        .to_string()
}

fn plan_rollback(files: &RepoFiles, observed: &Observed, to: Option<&str>) -> Plan {
    let desired = fixture::desired(files);
    plan::build(&PlanInput {
        intents: [("web".to_string(), plan::Intent::Rollback)].into(),
        rollback_to: to
            .map(|t| ("web".to_string(), t.to_string()))
            .into_iter()
            .collect(),
        ..fixture::input(&desired, observed)
    })
}

#[test]
fn rollouts_keep_the_last_revisions_stopped_and_forget_older_ones_in_the_same_plan() {
    let (files, mut observed) = rolled_out("strategy: {history_limit: 2}\n");
    for n in 2..=4 {
        let next = at_image(&files, &format!("example/web:{n}"));
        let p = make_plan(&next, &observed, false);
        // The fourth revision's rollout forgets the first, which is then the third back.
        let forgets = waves_text(&p)
            .iter()
            .any(|w| w.contains("forget revisions past history_limit 2"));
        assert_eq!(forgets, n == 4, "{n}: {:?}", waves_text(&p));
        simulate(&p, &mut observed);
        assert!(
            !make_plan(&next, &observed, false).has_changes(),
            "{n}: kept pods are neither replicas nor drift"
        );
    }
    let kept: Vec<(String, String)> = images(&observed)
        .into_iter()
        .filter(|(_, s)| s != "running")
        .collect();
    let mut want = vec![("example/web:2".to_string(), "exited".to_string()); 3];
    want.extend(vec![("example/web:3".to_string(), "exited".to_string()); 3]);
    assert_eq!(kept, want);

    // With history_limit 0 nothing is kept.
    let (files, mut observed) = rolled_out("strategy: {history_limit: 0}\n");
    let next = at_image(&files, "example/web:2");
    simulate(&make_plan(&next, &observed, false), &mut observed);
    assert_eq!(
        images(&observed),
        vec![("example/web:2".to_string(), "running".to_string()); 3]
    );
}

#[test]
fn rollback_to_a_kept_revision_starts_it_and_holds_it_until_git_or_a_rollback_moves_on() {
    let (files, mut observed) = rolled_out("");
    let v2 = at_image(&files, "example/web:2");
    simulate(&make_plan(&v2, &observed, false), &mut observed);
    let v3 = at_image(&files, "example/web:3");
    simulate(&make_plan(&v3, &observed, false), &mut observed);
    let (r1, r3) = (
        revision_of(&observed, "example/web:1"),
        revision_of(&observed, "example/web:3"),
    );

    // Neither a revision that is not kept nor the one running can be brought back.
    for (to, says) in [("nope", "is not kept"), (&r3[..6], "already runs")] {
        let p = plan_rollback(&v3, &observed, Some(to));
        assert!(p.waves.is_empty(), "{to}");
        assert!(
            p.issues.iter().any(|i| i.message.contains(says)),
            "{to}: {:?}",
            p.issues
        );
    }

    // --to a prefix of the first revision: its kept pods start (no create), the running
    // ones stop, and the plan records that Git declares another revision.
    let p = plan_rollback(&v3, &observed, Some(&r1[..6]));
    assert_eq!(
        (
            p.count(Action::Start),
            p.count(Action::Stop),
            p.count(Action::Create)
        ),
        (3, 3, 0),
        "{:?}",
        waves_text(&p)
    );
    // Rolling: a batch starts a kept pod, gates it in service, then a running pod leaves;
    // those stop in one wave at the end (their drains run out under the later gates).
    let first = &p.waves[0];
    let ops: Vec<&str> = first.steps.values().flatten().map(op).collect();
    assert_eq!(ops, ["start", "await", "leave"], "{:?}", waves_text(&p));
    let stops = &p.waves[p.waves.len() - 2];
    let ops: Vec<&str> = stops.steps.values().flatten().map(op).collect();
    assert_eq!(ops, ["stop"; 3], "{:?}", waves_text(&p));
    let joins = first
        .steps
        .values()
        .flatten()
        .any(|s| matches!(s, Step::AwaitReady { join: Some(j), .. } if j.aliases == ["web"]));
    assert!(joins, "the kept pod joins web once ready");
    simulate(&p, &mut observed);
    let running: Vec<(String, String)> = images(&observed)
        .into_iter()
        .filter(|(_, s)| s == "running")
        .collect();
    assert_eq!(
        running,
        vec![("example/web:1".to_string(), "running".to_string()); 3]
    );

    // Git still declares v3: nothing is rolled out, the plan says why, drift will report it.
    let p = make_plan(&v3, &observed, false);
    assert!(p.waves.is_empty(), "{:?}", waves_text(&p));
    let held = p
        .issues
        .iter()
        .find(|i| i.kind == plan::IssueKind::RolledBack);
    assert!(
        held.is_some_and(|i| i.message.contains(&r3) && i.message.contains(&r1)),
        "{:?}",
        p.issues
    );

    // `berth rollback` without --to goes to the newest kept revision: Git's v3 again, and
    // the state is cleared.
    let p = plan_rollback(&v3, &observed, None);
    assert_eq!(p.count(Action::Start), 3, "{:?}", waves_text(&p));
    simulate(&p, &mut observed);
    let p = make_plan(&v3, &observed, false);
    assert!(
        !p.has_changes() && p.waves.is_empty(),
        "{:?}",
        waves_text(&p)
    );
    assert!(!p
        .issues
        .iter()
        .any(|i| i.kind == plan::IssueKind::RolledBack));

    // A new commit moves on from a rolled-back deployment as from any other.
    let p = plan_rollback(&v3, &observed, Some(&r1[..6]));
    simulate(&p, &mut observed);
    let v4 = at_image(&files, "example/web:4");
    let p = make_plan(&v4, &observed, false);
    assert_eq!(p.count(Action::Replace), 3, "{:?}", waves_text(&p));
    simulate(&p, &mut observed);
    assert!(!make_plan(&v4, &observed, false).has_changes());
}

#[test]
fn git_going_back_to_a_kept_revision_starts_its_pods_and_keeps_the_ones_it_leaves() {
    let (files, mut observed) = rolled_out("");
    let v2 = at_image(&files, "example/web:2");
    simulate(&make_plan(&v2, &observed, false), &mut observed);
    // A revert in Git: the kept v1 pods start again, pending (not drift); v2 is kept.
    let p = make_plan(&files, &observed, false);
    assert_eq!(
        (
            p.count(Action::Start),
            p.count(Action::Stop),
            p.count(Action::Create)
        ),
        (3, 3, 0),
        "{:?}",
        waves_text(&p)
    );
    assert!(p
        .changes
        .iter()
        .all(|c| c.kind == plan::ChangeKind::Pending));
    simulate(&p, &mut observed);
    assert!(!make_plan(&files, &observed, false).has_changes());
    let mut want = vec![("example/web:1".to_string(), "running".to_string()); 3];
    want.extend(vec![("example/web:2".to_string(), "exited".to_string()); 3]);
    assert_eq!(images(&observed), want);
}

/// A saved plan is held to the operator's policy when it is applied: what it creates (images,
/// host paths, secrets by deployment) and its registry logins, one line per refusal.
#[test]
fn a_saved_plan_is_held_to_the_policy() {
    let mut files = basic();
    let web = files.files["deployments/web.yaml"].replace(
        "env: {MODE: prod}",
        "env: {MODE: prod, TOKEN: {secret: api-token}}\n      volumes: [/etc:/host-etc]",
    );
    files.files.insert("deployments/web.yaml".into(), web);
    let desired = repo::load(&files, &|_| Some("v".into())).unwrap();
    let p = plan_for(&desired, &empty_hosts());
    let policy = repo::policy::parse(
        "policy.yaml",
        "registries: [docker.io]\nimages: ['docker.io/example/*']\nbind_mounts: [/srv]\nsecrets:\n  - {deployments: [other], allow: [api-token]}\n",
    )
    .unwrap();
    let refused = plan::saved::policy_refusals(&p, &policy);
    assert_eq!(
        refused,
        [
            "web: bind mount of host path /etc is not allowed by the policy (the policy's bind_mounts (policy.yaml line 3): allows host paths under /srv)",
            "web: deployment web may not read secret \"api-token\" under the policy (the policy's secrets (policy.yaml line 5): no rule is for deployment web)",
        ]
    );
    let open = repo::policy::parse(
        "policy.yaml",
        "bind_mounts: [/etc]\nimages: ['docker.io/example/web', 'docker.io/example/proxy']\n",
    )
    .unwrap();
    let none = plan::saved::policy_refusals(&p, &open);
    assert!(none.is_empty(), "{none:?}");
    let closed = repo::policy::parse(
        "policy.yaml",
        "bind_mounts: [/etc]\nregistries: [ghcr.io]\n",
    )
    .unwrap();
    let refused = plan::saved::policy_refusals(&p, &closed);
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[1].starts_with("web: registry docker.io (of image example/web:1"),
        "{refused:?}"
    );
}

/// The revision part of a pod's name (`web-<revision>-<ordinal>`).
fn revision_of_pod(name: &str) -> &str {
    name.split('-').nth(1).unwrap_or_default()
}

/// `berth restart`: each pod of a settled deployment is replaced by a new pod of the same
/// revision, in rolling batches behind health gates, and then nothing is left to do; a
/// canary deployment restarts in rolling batches too; while Git's revision is not rolled out
/// yet, the restart is refused with a reason and plans nothing.
#[test]
fn a_restart_replaces_each_pod_with_one_of_the_same_revision_once_the_rollout_is_done() {
    for strategy in [
        "strategy: {max_surge: 1, max_unavailable: 0}\n",
        "strategy:\n  type: canary\n  steps: [{weight: 50}, {pause: {}}]\n",
    ] {
        let (mut files, mut observed) = rolled_out(strategy);
        let p = plan_intent(&files, &observed, Some(plan::Intent::Restart), 0);
        assert_eq!(p.count(Action::Replace), 3, "{strategy}: {:?}", p.changes);
        for c in &p.changes {
            assert_eq!(c.reason, Reason::Restart, "{c:?}");
            assert_eq!(c.kind, ChangeKind::Pending, "{c:?}");
            let (old, new) = (c.pod.as_deref().unwrap(), c.new_pod.as_deref().unwrap());
            assert_ne!(old, new, "a new pod: {c:?}");
            assert_eq!(revision_of_pod(old), revision_of_pod(new), "{c:?}");
        }
        let waves = waves_text(&p);
        assert!(
            waves.iter().any(|w| w.contains("rolling batch 1/3"))
                && waves.iter().any(|w| w.contains("health gate")),
            "{strategy}: {waves:?}"
        );
        assert!(
            berth::render::summary(&p)
                .contains("0 to create, 3 to replace (3 restarts), 0 to start"),
            "{}",
            berth::render::summary(&p)
        );
        let before = web_pods(&observed);
        simulate(&p, &mut observed);
        let after = web_pods(&observed);
        assert_eq!(after.len(), 3, "{after:?}");
        assert!(
            after.iter().all(|p| !before.contains(p)),
            "{before:?} {after:?}"
        );
        assert!(
            !make_plan(&files, &observed, false).has_changes(),
            "{strategy}: a restarted deployment is what Git declares"
        );

        // Git names a new revision that is not rolled out: no restart before it is.
        bump(&mut files, "example/web:2");
        let refused = plan_intent(&files, &observed, Some(plan::Intent::Restart), 0);
        assert!(refused.waves.is_empty(), "{:?}", waves_text(&refused));
        assert!(
            refused.issues.iter().any(|i| i.kind == IssueKind::Rollout
                && i.message
                    .contains("web has a rollout under way (3 pod(s) of another revision")),
            "{:?}",
            refused.issues
        );
    }
}

/// The running web pods' names.
fn web_pods(observed: &Observed) -> Vec<String> {
    let mut v: Vec<String> = observed
        .values()
        .flat_map(|o| o.as_ref().unwrap().containers.iter())
        .filter(|c| c.label(label::DEPLOYMENT) == Some("web") && c.state.to_string() == "running")
        .filter_map(|c| c.label(label::POD).map(str::to_string))
        .collect();
    v.sort();
    v.dedup();
    v
}
