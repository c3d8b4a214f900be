//! The executor without hosts: plans built by the core from fixture repositories are run on
//! engines kept in memory (`hosts::engine::Engine`), which hold containers, their state and
//! their service names, and write down every call. This checks what the lab tests cannot
//! pin down exactly: the order of steps, what a failed wave rolls back, that lanes of other
//! deployments go on, and that an apply told to stop does nothing more.

use crate::fixture;

use berth::apply::{execute_on, Engines, Fence, Outcome, Progress};
use berth::hosts::engine::{Engine, JobOutput, OpResult, Probe};
use berth::model::haproxy::EdgeFile;
use berth::model::{Analysis, JobRecord, ObservedHost, Rollout};
use berth::plan::{JobPlan, Plan, PodPlan, ServiceJoin};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq)]
struct Held {
    image: String,
    running: bool,
    aliases: Vec<String>,
}

/// One host's engine in memory. Images in `broken` start and exit at once; images in
/// `crash_on_join` look running to the first probe and have exited by the time they join.
struct Memory {
    host: String,
    containers: Mutex<BTreeMap<String, Held>>,
    broken: BTreeSet<String>,
    crash_on_join: BTreeSet<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Memory {
    fn note(&self, what: String) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}: {what}", self.host));
    }

    fn ok<'a, T: Send + 'a>(&self, what: String, value: T) -> BoxFuture<'a, OpResult<T>> {
        self.note(what);
        async move { Ok(value) }.boxed()
    }

    fn set_running(&self, names: &[String], running: bool) {
        let mut held = self.containers.lock().unwrap();
        for n in names {
            if let Some(c) = held.get_mut(n) {
                c.running = running;
            }
        }
    }
}

impl Engine for Memory {
    fn ensure_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, OpResult> {
        self.ok(format!("network {name}"), ())
    }

    fn ensure_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, OpResult> {
        self.ok(format!("volume {name}"), ())
    }

    fn ensure_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, OpResult> {
        self.ok(format!("image {image}"), ())
    }

    fn create_pod<'a>(&'a self, pod: &'a PodPlan) -> BoxFuture<'a, OpResult> {
        let mut held = self.containers.lock().unwrap();
        for c in &pod.containers {
            held.insert(
                c.name.clone(),
                Held {
                    image: c.spec.image.clone(),
                    running: true,
                    aliases: vec![],
                },
            );
        }
        drop(held);
        self.ok(format!("create {}", pod.name), ())
    }

    fn start<'a>(&'a self, containers: &'a [String]) -> BoxFuture<'a, OpResult> {
        self.set_running(containers, true);
        self.ok(format!("start {}", containers.join(" ")), ())
    }

    fn stop<'a>(&'a self, containers: &'a [String], _: u32) -> BoxFuture<'a, OpResult> {
        self.set_running(containers, false);
        self.ok(format!("stop {}", containers.join(" ")), ())
    }

    fn remove<'a>(&'a self, containers: &'a [String], _: u32) -> BoxFuture<'a, OpResult> {
        let mut held = self.containers.lock().unwrap();
        for n in containers {
            held.remove(n);
        }
        drop(held);
        self.ok(format!("remove {}", containers.join(" ")), ())
    }

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, OpResult> {
        self.ok(format!("remove volume {name}"), ())
    }

    fn join<'a>(&'a self, join: &'a ServiceJoin) -> BoxFuture<'a, OpResult> {
        if let Some(c) = self.containers.lock().unwrap().get_mut(&join.container) {
            if self.crash_on_join.contains(&c.image) {
                c.running = false;
                let e = format!("{} is not connected to the network", join.container);
                return async move { Err(e.into()) }.boxed();
            }
            c.aliases = join.aliases.clone();
        }
        self.ok(
            format!("join {} {}", join.container, join.aliases.join(",")),
            (),
        )
    }

    fn leave<'a>(&'a self, leave: &'a ServiceJoin) -> BoxFuture<'a, OpResult> {
        if let Some(c) = self.containers.lock().unwrap().get_mut(&leave.container) {
            c.aliases.clear();
        }
        self.ok(format!("leave {}", leave.container), ())
    }

    fn record_rollout<'a>(
        &'a self,
        deployment: &'a str,
        state: Option<&'a Rollout>,
    ) -> BoxFuture<'a, OpResult> {
        let phase = state.map_or("cleared".to_string(), |s| format!("{:?}", s.phase));
        self.ok(format!("record {deployment} {phase}"), ())
    }

    fn probe<'a>(&'a self, container: &'a str) -> BoxFuture<'a, OpResult<Probe>> {
        let held = self.containers.lock().unwrap().get(container).cloned();
        async move {
            let c = held.ok_or_else(|| format!("no container {container}"))?;
            let broken = self.broken.contains(&c.image)
                || (self.crash_on_join.contains(&c.image) && !c.running);
            Ok(Probe {
                running: c.running && !broken,
                restarting: false,
                health: None,
                exit_code: Some(if broken { 1 } else { 0 }),
                health_log: vec![],
            })
        }
        .boxed()
    }

    fn run_job<'a>(
        &'a self,
        job: &'a JobPlan,
        output: &'a JobOutput<'a>,
    ) -> BoxFuture<'a, OpResult<i64>> {
        output("migrating");
        let code = if self.broken.contains(&job.container.spec.image) {
            3
        } else {
            0
        };
        self.ok(format!("run job {}", job.job), code)
    }

    fn record_job<'a>(&'a self, record: &'a JobRecord) -> BoxFuture<'a, OpResult> {
        self.ok(format!("record job {} {}", record.job, record.revision), ())
    }

    /// An edge pod is a pod here (the edge steps' reloads are what the tests follow).
    fn create_edge<'a>(
        &'a self,
        pod: &'a PodPlan,
        _: &'a str,
        _: &'a [EdgeFile],
    ) -> BoxFuture<'a, OpResult> {
        self.create_pod(pod)
    }

    /// No edge here counts requests: every count is zero.
    fn edge_stats(&self, _: u16) -> BoxFuture<'_, OpResult<String>> {
        async { Ok(String::new()) }.boxed()
    }

    /// Notes the servers the edge gets (`edge pod:weight pod:weight`).
    fn edge_reload<'a>(
        &'a self,
        config: &'a str,
        _: &'a [EdgeFile],
        _: u16,
    ) -> BoxFuture<'a, OpResult> {
        let mut servers: Vec<String> = (config.lines())
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some("server")).then_some(())?;
                let pod = words.next()?;
                let weight = words.skip_while(|w| *w != "weight").nth(1)?;
                Some(format!("{pod}:{weight}"))
            })
            .collect();
        servers.sort();
        self.ok(format!("edge {}", servers.join(" ")), ())
    }

    fn last_logs<'a>(&'a self, _: &'a str, _: usize) -> BoxFuture<'a, String> {
        async { "it broke\n".to_string() }.boxed()
    }

    fn analyze<'a>(
        &'a self,
        pods: &'a [ServiceJoin],
        _: &'a Analysis,
        _: &'a AtomicU32,
    ) -> BoxFuture<'a, Result<(), (String, String)>> {
        self.note(format!("analyze {} pod(s)", pods.len()));
        async { Ok(()) }.boxed()
    }
}

struct Quiet;

impl Progress for Quiet {
    fn wave(&self, _: usize, _: usize, _: &str) {}
    fn step_started(&self, _: &str, _: Option<&str>, _: &str) {}
    fn step_done(&self, _: &str, _: Option<&str>, _: &str) {}
    fn failed(&self, _: &str, _: &str) {}
    fn rolling_back(&self, _: &str) {}
    fn output(&self, _: &str, _: &str, _: &str) {}
    fn finish(&self) {}
}

/// The rolling fixture (3 web pods and 2 edge pods running at v1), with Git edited by `edit`
/// and health gates that count at once.
fn fixture(edit: impl Fn(&str, String) -> String) -> (Plan, BTreeMap<String, ObservedHost>) {
    let case = fixture::dir("golden/rolling-image-change");
    let mut files = fixture::repo_files(&case.join("repo"));
    for (rel, text) in files.files.iter_mut() {
        *text = edit(rel, std::mem::take(text));
    }
    files.files.insert(
        "berth.yaml".into(),
        "project: fx\ndefaults:\n  strategy: {min_ready: 0s, drain: 0s}\n".into(),
    );
    let observed = fixture::observed(&case.join("observed.json"));
    let plan = fixture::plan(&fixture::desired(&files), &observed);
    let hosts = observed.into_iter().map(|(h, o)| (h, o.unwrap())).collect();
    (plan, hosts)
}

struct Run {
    outcome: Outcome,
    log: Vec<String>,
    engines: BTreeMap<String, Arc<Memory>>,
}

impl Run {
    /// Every container on every host, as `host name image running`.
    fn containers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (h, m) in &self.engines {
            for (name, c) in m.containers.lock().unwrap().iter() {
                out.push(format!("{h} {name} {} {}", c.image, c.running));
            }
        }
        out
    }
}

async fn run(
    plan: &Plan,
    hosts: &BTreeMap<String, ObservedHost>,
    broken: &[&str],
    fence: Fence,
) -> Run {
    run_with(plan, hosts, broken, &[], fence).await
}

async fn run_with(
    plan: &Plan,
    hosts: &BTreeMap<String, ObservedHost>,
    broken: &[&str],
    crash_on_join: &[&str],
    fence: Fence,
) -> Run {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut memories = BTreeMap::new();
    for (h, o) in hosts {
        let containers = o
            .containers
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    Held {
                        image: c.image.clone(),
                        running: c.is_running(),
                        aliases: vec![],
                    },
                )
            })
            .collect();
        memories.insert(
            h.clone(),
            Arc::new(Memory {
                host: h.clone(),
                containers: Mutex::new(containers),
                broken: broken.iter().map(|s| s.to_string()).collect(),
                crash_on_join: crash_on_join.iter().map(|s| s.to_string()).collect(),
                log: log.clone(),
            }),
        );
    }
    let engines: Engines = memories
        .iter()
        .map(|(h, m)| (h.clone(), m.clone() as Arc<dyn Engine>))
        .collect();
    let outcome = execute_on(plan, &engines, Arc::new(Quiet), fence)
        .await
        .unwrap();
    let log = log.lock().unwrap().clone();
    Run {
        outcome,
        log,
        engines: memories,
    }
}

fn no_stop() -> ((), Fence) {
    ((), Fence::open())
}

fn bump_web(rel: &str, text: String) -> String {
    if rel == "deployments/web.yaml" {
        text.replace("example/web:2", "example/web:3")
    } else {
        text
    }
}

#[tokio::test]
async fn a_rolling_update_creates_each_new_pod_before_its_old_one_goes() {
    let (plan, hosts) = fixture(bump_web);
    let (_keep, stop) = no_stop();
    let r = run(&plan, &hosts, &[], stop).await;
    assert!(
        matches!(r.outcome, Outcome::Applied { .. }),
        "{:?}",
        r.outcome
    );
    let web: Vec<String> = r
        .containers()
        .into_iter()
        .filter(|c| c.contains(" web-"))
        .collect();
    // Three new pods run; the three old ones are kept, stopped, for `berth rollback --to`.
    let running: Vec<&String> = web.iter().filter(|c| c.ends_with(" true")).collect();
    assert_eq!(running.len(), 3, "{web:?}");
    assert!(
        running.iter().all(|c| c.ends_with("example/web:3 true")),
        "{web:?}"
    );
    let kept: Vec<&String> = web.iter().filter(|c| c.ends_with(" false")).collect();
    assert_eq!(kept.len(), 3, "{web:?}");
    assert!(kept.iter().all(|c| c.contains("example/web:1")), "{web:?}");
    // Each batch: the new pod is created before any old pod is stopped.
    let first_create = r.log.iter().position(|l| l.contains(": create web-"));
    let first_remove = r.log.iter().position(|l| l.contains(": stop web-"));
    assert!(
        first_create.is_some() && first_create < first_remove,
        "{:#?}",
        r.log
    );
    // The edge pods were not touched.
    assert!(!r.log.iter().any(|l| l.contains("edge-")), "{:#?}", r.log);
}

#[tokio::test]
async fn a_failed_health_gate_rolls_its_wave_back_and_runs_no_later_wave() {
    let (plan, hosts) = fixture(bump_web);
    let (_keep, stop) = no_stop();
    let before: Vec<String> = hosts
        .iter()
        .flat_map(|(h, o)| {
            o.containers
                .iter()
                .map(move |c| format!("{h} {} {} {}", c.name, c.image, c.is_running()))
        })
        .collect();
    let r = run(&plan, &hosts, &["example/web:3"], stop).await;
    let Outcome::RolledBack(failed) = &r.outcome else {
        panic!("{:?}", r.outcome)
    };
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].wave.contains("rolling batch 1/"), "{failed:?}");
    assert!(
        failed[0].failures[0]
            .message
            .contains("failed its health gate")
            && failed[0].failures[0].details.contains("it broke"),
        "{failed:?}"
    );
    assert!(failed[0].rollback_errors.is_empty(), "{failed:?}");
    // Exactly the old pods, running; one new pod was created, then removed again.
    assert_eq!(r.containers(), before);
    let created = r.log.iter().filter(|l| l.contains(": create web-")).count();
    assert_eq!(created, 1, "{:#?}", r.log);
}

#[tokio::test]
async fn one_deployment_failing_does_not_stop_another() {
    let (plan, hosts) =
        fixture(|rel, text| bump_web(rel, text).replace("example/proxy:1", "example/proxy:2"));
    let (_keep, stop) = no_stop();
    let r = run(&plan, &hosts, &["example/web:3"], stop).await;
    let Outcome::RolledBack(failed) = &r.outcome else {
        panic!("{:?}", r.outcome)
    };
    assert_eq!(failed.len(), 1, "only web failed: {failed:?}");
    let edge: Vec<String> = r
        .containers()
        .into_iter()
        .filter(|c| c.contains(" edge-"))
        .collect();
    let running: Vec<&String> = edge.iter().filter(|c| c.ends_with(" true")).collect();
    assert_eq!(running.len(), 2, "{edge:?}");
    assert!(
        running.iter().all(|c| c.ends_with("example/proxy:2 true")),
        "{edge:?}"
    );
    assert_eq!(edge.len(), 4, "the old pods are kept, stopped: {edge:?}");
}

#[tokio::test]
async fn an_apply_told_to_stop_changes_nothing_more() {
    let (plan, hosts) = fixture(bump_web);
    let fence = Fence::open();
    fence.lose("the lock's lease could not be renewed".into());
    let r = run(&plan, &hosts, &[], fence).await;
    let Outcome::LockLost { why } = &r.outcome else {
        panic!("{:?}", r.outcome)
    };
    assert_eq!(why, "the lock's lease could not be renewed");
    assert!(r.log.is_empty(), "not one step ran: {:#?}", r.log);
}

#[tokio::test]
async fn a_pod_that_ends_before_it_joins_fails_its_gate_for_that_reason() {
    let (plan, hosts) = fixture(bump_web);
    let (_keep, stop) = no_stop();
    let r = run_with(&plan, &hosts, &[], &["example/web:3"], stop).await;
    let Outcome::RolledBack(failed) = &r.outcome else {
        panic!("{:?}", r.outcome)
    };
    let f = &failed[0].failures[0];
    assert!(
        f.message.contains("failed its health gate") && f.message.contains("exited with code 1"),
        "{f:?}"
    );
    assert_eq!(
        f.kind,
        berth::apply::FailureKind::Verdict,
        "a crash is a verdict on the revision: {f:?}"
    );
    assert!(f.details.contains("it broke"), "{f:?}");
}

fn web_with_migration(rel: &str, text: String) -> String {
    let text = bump_web(rel, text);
    if rel == "deployments/web.yaml" {
        format!("{text}jobs:\n  - {{name: migrate, command: [migrate, up]}}\n")
    } else {
        text
    }
}

#[tokio::test]
async fn a_job_runs_before_any_new_pod_and_its_failure_touches_no_pod() {
    let (plan, hosts) = fixture(web_with_migration);
    let (_keep, stop) = no_stop();
    let r = run(&plan, &hosts, &[], stop).await;
    assert!(
        matches!(r.outcome, Outcome::Applied { .. }),
        "{:?}",
        r.outcome
    );
    let job = r.log.iter().position(|l| l.contains(": run job migrate"));
    let recorded = r
        .log
        .iter()
        .position(|l| l.contains(": record job migrate"));
    let first_create = r.log.iter().position(|l| l.contains(": create web-"));
    assert!(
        job.is_some() && job < recorded && recorded < first_create,
        "{:#?}",
        r.log
    );

    // The job fails (the new image exits 3): no pod is created, stopped or removed.
    let (_keep, stop) = no_stop();
    let r = run(&plan, &hosts, &["example/web:3"], stop).await;
    let Outcome::RolledBack(failed) = &r.outcome else {
        panic!("{:?}", r.outcome)
    };
    assert!(
        failed[0].failures[0]
            .message
            .contains("job migrate exited with code 3"),
        "{failed:?}"
    );
    // Its exit is a verdict on the revision, told by its kind, not its words: the revision
    // is recorded failed (the rollback's records stay), so `sync` does not retry it.
    assert_eq!(
        failed[0].failures[0].kind,
        berth::apply::FailureKind::Verdict
    );
    assert!(
        r.log.iter().any(|l| l.contains("record web Failed")),
        "{:#?}",
        r.log
    );
    assert!(
        !r.log.iter().any(|l| l.contains(": create web-")
            || l.contains(": stop web-")
            || l.contains(": remove web-")
            || l.contains("record job")),
        "{:#?}",
        r.log
    );
}

/// The ingress fixture (3 web pods at v1 behind the edges of hosts a1 and a2), with the web
/// deployment's strategy `strategy` and health gates that count at once.
fn ingress_fixture(strategy: &str) -> (Plan, BTreeMap<String, ObservedHost>) {
    let case = fixture::dir("golden/ingress-canary");
    let mut files = fixture::repo_files(&case.join("repo"));
    let web = files.files.get_mut("deployments/web.yaml").unwrap();
    let at = web.find("strategy:").unwrap();
    web.truncate(at);
    web.push_str(strategy);
    files.files.insert(
        "berth.yaml".into(),
        "project: fx\nedge: {image: example/haproxy:2.6}\ndefaults:\n  strategy: {min_ready: 0s, drain: 0s}\n".into(),
    );
    let observed = fixture::observed(&case.join("observed.json"));
    let plan = fixture::plan(&fixture::desired(&files), &observed);
    let hosts = observed.into_iter().map(|(h, o)| (h, o.unwrap())).collect();
    (plan, hosts)
}

/// Where each edge step of the plan's forward waves stands, in the order the waves run.
fn edge_steps(plan: &Plan) -> Vec<(String, berth::plan::Step)> {
    (plan.waves.iter())
        .flat_map(|w| {
            w.steps
                .values()
                .flatten()
                .map(|s| (w.description.clone(), s.clone()))
        })
        .filter(|(_, s)| matches!(s, berth::plan::Step::RouteEdges { .. }))
        .collect()
}

/// The index in the log of the first line that says `what`.
fn at(log: &[String], what: impl Fn(&str) -> bool) -> usize {
    log.iter()
        .position(|l| what(l))
        .unwrap_or_else(|| panic!("nothing in the log matches: {log:#?}"))
}

#[tokio::test]
async fn an_ingress_canary_moves_the_edges_at_its_planned_steps() {
    let (plan, hosts) =
        ingress_fixture("strategy: {type: canary, steps: [{weight: 33}, {pause: {}}]}\n");
    // The plan says when the edges change: the canary pod goes on once it joined, the
    // stable pod it replaces comes off before it leaves.
    let steps = edge_steps(&plan);
    assert_eq!(steps.len(), 2, "{steps:#?}");
    let (old, new) = ("web-3da45b7153-0", "web-f307a82838-3");
    let shown: Vec<String> = steps
        .iter()
        .map(|(_, s)| berth::apply::progress::describe(s))
        .collect();
    assert_eq!(
        shown,
        [
            format!("edges: route {new} on a1"),
            format!("edges: stop routing {old} on a1")
        ],
        "{steps:#?}"
    );
    let (_keep, stop) = no_stop();
    let r = run(&plan, &hosts, &[], stop).await;
    assert!(
        matches!(r.outcome, Outcome::Applied { .. }),
        "{:?}",
        r.outcome
    );
    let log = &r.log;
    // Both edges (a1, a2) get each change; the weight step comes first (33% to the canary,
    // which has no pod yet), then the canary pod, then the stable pod off.
    let reloads: Vec<&String> = log.iter().filter(|l| l.contains(": edge ")).collect();
    assert_eq!(reloads.len(), 6, "{log:#?}");
    let joined = at(log, |l| l.starts_with("a1: join") && l.contains(new));
    let on = at(log, |l| l.contains(": edge ") && l.contains(new));
    let off = at(log, |l| {
        l.contains(": edge ") && l.contains(new) && !l.contains(old)
    });
    let left = at(log, |l| l.starts_with("a1: leave") && l.contains(old));
    assert!(joined < on && on < off && off < left, "{log:#?}");
    let last = reloads.last().unwrap();
    assert!(
        last.contains(&format!("{new}:")) && !last.contains(old),
        "{log:#?}"
    );
}

#[tokio::test]
async fn a_blue_green_promotion_switches_every_edge_at_once() {
    let (plan, hosts) =
        ingress_fixture("strategy: {type: blue-green, auto_promote: true, scale_down_delay: 0s}\n");
    // The promotion is cut where the edges switch: the new set joins, one edge step moves
    // every pod, the old set leaves.
    let steps = edge_steps(&plan);
    assert_eq!(steps.len(), 1, "{steps:#?}");
    let berth::plan::Step::RouteEdges { add, remove } = &steps[0].1 else {
        unreachable!()
    };
    assert!(
        steps[0].0.contains("every edge switches at once"),
        "{steps:#?}"
    );
    assert_eq!((add.len(), remove.len()), (3, 3), "{steps:#?}");
    let (_keep, stop) = no_stop();
    let r = run(&plan, &hosts, &[], stop).await;
    assert!(
        matches!(r.outcome, Outcome::Applied { .. }),
        "{:?}",
        r.outcome
    );
    let log = &r.log;
    let new: Vec<&str> = add.iter().map(|m| m.pod.as_str()).collect();
    let old: Vec<&str> = remove.iter().map(|m| m.pod.as_str()).collect();
    // One reload per edge host, with every new pod and no old one; all joins before it,
    // every leave after it.
    let reloads: Vec<usize> = (0..log.len())
        .filter(|i| log[*i].contains(": edge "))
        .collect();
    assert_eq!(reloads.len(), 2, "{log:#?}");
    for i in &reloads {
        assert!(
            new.iter().all(|p| log[*i].contains(&format!("{p}:"))),
            "{log:#?}"
        );
        assert!(!old.iter().any(|p| log[*i].contains(p)), "{log:#?}");
    }
    let last_join = (0..log.len())
        .filter(|i| log[*i].contains(": join ") && log[*i].ends_with(" web"))
        .max()
        .unwrap();
    let first_leave = (0..log.len())
        .filter(|i| log[*i].contains(": leave ") && old.iter().any(|p| log[*i].contains(p)))
        .min()
        .unwrap();
    assert!(
        last_join < reloads[0] && reloads[1] < first_leave,
        "{log:#?}"
    );
}
