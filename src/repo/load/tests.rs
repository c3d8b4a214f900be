//! The loader's tests: diagnostics at their file, line and column.
use super::*;

const INVENTORY: &str = "hosts:\n  - {name: a, address: 198.18.1.1, labels: {role: web}}\n  - {name: b, address: 198.18.1.2, labels: {role: web}}\n";

pub(super) fn files(deployments: &[(&str, &str)]) -> RepoFiles {
    let mut f = RepoFiles::default();
    f.files.insert(PROJECT_FILE.into(), "project: p\n".into());
    f.files.insert(DEFAULT_INVENTORY.into(), INVENTORY.into());
    for (name, text) in deployments {
        f.files
            .insert(format!("deployments/{name}"), text.to_string());
    }
    f
}

/// Each diagnostic as "file:line:col message", via miette's own span data.
pub(super) fn errors(f: &RepoFiles) -> Vec<String> {
    located(&load(f, &|_| None).expect_err("the repository is invalid"))
}

/// Each diagnostic as "file:line:col message".
pub(super) fn located(diags: &Diagnostics) -> Vec<String> {
    diags
        .reports
        .iter()
        .map(|r| {
            let label = r.labels().and_then(|mut l| l.next());
            let at = match (r.source_code(), label) {
                (Some(src), Some(label)) => {
                    let c = src.read_span(label.inner(), 0, 0).expect("span in source");
                    format!(
                        "{}:{}:{}",
                        c.name().unwrap_or("?"),
                        c.line() + 1,
                        c.column() + 1
                    )
                }
                _ => "-".into(),
            };
            format!("{at} {r}")
        })
        .collect()
}

/// Each expected (place, message) is among the errors, and there are no others.
pub(super) fn expect_exactly(errors: &[String], expect: &[(&str, &str)]) {
    for (at, message) in expect {
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(at) && e.contains(message)),
            "no {message:?} at {at} in:\n{}",
            errors.join("\n")
        );
    }
    assert_eq!(errors.len(), expect.len(), "{}", errors.join("\n"));
}

fn web(extra: &str) -> String {
    format!("name: web\npod:\n  containers:\n    - name: app\n      image: x:1\n{extra}")
}

#[test]
fn a_valid_repository_loads_with_defaults() {
    let state = load(&files(&[("web.yaml", &web(""))]), &|_| None).unwrap();
    let d = &state.deployments[0];
    assert_eq!((d.replicas, d.strategy.kind), (1, StrategyKind::Rolling));
    assert_eq!(d.pod.containers[0].image, "x:1");
    assert_eq!(d.pod.containers[0].restart, "unless-stopped");
    assert_eq!(state.hosts[0].port, 22);
}

#[test]
fn every_kind_of_mistake_is_reported_at_its_place_in_one_run() {
    let f = files(&[
        ("a.yaml", &web("      colour: red\n")),
        ("b.yaml", "name: b\nname: b\npod: {containers: []}\n"),
        ("c.yaml", "name: c\nreplicas: many\npod: {containers: [{name: x, image: y}]}\n"),
        ("d.yaml", "name: Bad_Name\npod: {containers: [{name: x, image: y}]}\n"),
        ("e.yaml", "name: e\nplacement: {hosts: \"role notin web\"}\npod: {containers: [{name: x, image: y}]}\n"),
        ("f.yaml", "name: e\npod: {containers: [{name: x, image: y}]}\n"),
        ("g.yaml", "name: g\nreplicas: 5\nplacement: {max_per_host: 2}\npod: {containers: [{name: x, image: y}]}\n"),
        ("h.yaml", "name: h\npod: {containers: [{name: x, image: y, ports: [\"80:80\"]}]}\n"),
        ("i.yaml", "name: i\npod: {containers: [{name: x, image: y, ports: [\"80:8080\"]}]}\n"),
        ("j.yaml", "name: j\nlabels: {\"bad key\": v}\npod: {containers: [{name: x, image: y, memory: lots}]}\n"),
    ]);
    let errors = errors(&f);
    let expect = [
        ("deployments/a.yaml:6:7", "unknown key `colour`"),
        (
            "deployments/b.yaml:2:1",
            "`name` appears twice in this mapping",
        ),
        (
            "deployments/c.yaml:2:11",
            "`replicas` must be a whole number",
        ),
        ("deployments/d.yaml:1:7", "invalid deployment name"),
        ("deployments/e.yaml:2:32", "invalid label selector"),
        ("deployments/f.yaml:1:7", "two deployments are named \"e\""),
        (
            "deployments/g.yaml:2:11",
            "5 replicas of g cannot be placed",
        ),
        (
            "deployments/i.yaml:2:",
            "host port 80/tcp is published by two deployments",
        ),
        ("deployments/j.yaml:2:", "invalid label key"),
        ("deployments/j.yaml:3:", "invalid memory limit"),
    ];
    expect_exactly(&errors, &expect);
}

#[test]
fn canary_and_blue_green_mistakes_point_at_the_strategy() {
    let svc = "service: {name: web}\n";
    let f = files(&[
        ("a.yaml", &web(&format!("strategy: {{type: canary}}\n{svc}"))),
        ("b.yaml", &web("strategy: {type: blue-green}\n").replace("name: web", "name: b")),
        (
            "c.yaml",
            &web(&format!("      ports: [\"81:80\"]\nstrategy: {{type: blue-green}}\n{svc}"))
                .replace("name: web", "name: c"),
        ),
        (
            "d.yaml",
            &web(&format!("strategy:\n  type: canary\n  steps:\n    - weight: 150\n    - {{weight: 5, pause: 1s}}\n    - analysis: {{path: /}}\n{svc}"))
                .replace("name: web", "name: d"),
        ),
    ]);
    let errors = errors(&f);
    let expect = [
        ("deployments/a.yaml:6:18", "a canary rollout needs steps"),
        (
            "deployments/b.yaml:6:18",
            "a blue-green rollout needs a service",
        ),
        (
            "deployments/c.yaml:7:18",
            "host port 81 can be held by one container",
        ),
        ("deployments/d.yaml:9:15", "a weight is a percentage"),
        (
            "deployments/d.yaml:10:7",
            "exactly one of weight, pause, analysis",
        ),
        ("deployments/d.yaml:11:17", "an analysis needs the port"),
    ];
    expect_exactly(&errors, &expect);
    let ok = files(&[(
        "w.yaml",
        &web(&format!("strategy:\n  type: canary\n  steps: [{{weight: 20}}, {{pause: 30s}}, {{pause: {{}}}}, {{analysis: {{port: 80}}}}]\n{svc}")),
    )]);
    let state = load(&ok, &|_| None).unwrap();
    let s = &state.deployments[0].strategy;
    assert_eq!(
        s.steps[..3],
        [
            CanaryStep::Weight(20),
            CanaryStep::Pause(Some(30_000)),
            CanaryStep::Pause(None)
        ]
    );
    assert!(
        matches!(&s.steps[3], CanaryStep::Analysis(a) if a.port == 80 && a.status == 200 && a.path == "/")
    );
}

#[test]
fn a_missing_project_file_is_an_error() {
    let mut f = files(&[]);
    f.files.remove(PROJECT_FILE);
    assert!(load(&f, &|_| None).is_err());
}

#[test]
fn ingress_mistakes_are_reported_where_they_are() {
    let f = files(&[
        ("a.yaml", &web("ingress: {port: 80}\n")),
        (
            "b.yaml",
            &web("service: {name: b}\ningress: {port: 80, hostnames: [\"bad host\"], health: healthz, scope: world}\n")
                .replace("name: web", "name: b"),
        ),
        (
            "c.yaml",
            &web("service: {name: c, port: 8080}\ningress: {}\n").replace("name: web", "name: c"),
        ),
        (
            "d.yaml",
            &web("service: {name: d, port: 8080}\ningress: {}\n").replace("name: web", "name: d"),
        ),
    ]);
    let errors = errors(&f);
    let expect = [
        ("deployments/a.yaml:1:7", "an ingress needs a service"),
        ("deployments/b.yaml:7:33", "\"bad host\" is not a host name"),
        ("deployments/b.yaml:7:54", "a health path starts with /"),
        ("deployments/b.yaml:7:70", "unknown scope \"world\""),
        ("deployments/b.yaml:1:7", "does not say which port"),
        (
            "deployments/d.yaml:1:7",
            "port 80 for any host name is routed to c already",
        ),
    ];
    expect_exactly(&errors, &expect);
}

#[test]
fn an_ingress_makes_an_edge_deployment_on_the_ingress_hosts() {
    let text = web("service: {name: web, port: 8080}\ningress: {hostnames: [Shop.Example.com]}\n");
    let state = load(&files(&[("web.yaml", &text)]), &|_| None).unwrap();
    let web = state.deployments.iter().find(|d| d.name == "web").unwrap();
    let ingress = web.ingress.as_ref().unwrap();
    assert_eq!((ingress.port, ingress.container_port), (80, 8080));
    assert_eq!(ingress.hostnames, ["shop.example.com"]);
    let edge = state
        .deployments
        .iter()
        .find(|d| d.name == crate::model::ingress::EDGE_DEPLOYMENT)
        .unwrap();
    assert_eq!(edge.replicas, 2, "one per host");
    assert_eq!(edge.placement.max_per_host, Some(1));
    let c = &edge.pod.containers[0];
    assert_eq!(c.network_mode.as_deref(), Some("host"));
    assert_eq!(c.stop_signal.as_deref(), Some("SIGUSR1"));
    assert_eq!(c.user.as_deref(), Some("root"), "ports below 1024");
    assert_eq!(state.edge.as_ref().unwrap().image, "haproxy:2.6");
}

#[test]
fn an_edge_analysis_needs_an_ingress_and_reads_its_limits() {
    let steps = "strategy: {type: canary, steps: [{weight: 20}, {edge_analysis: {duration: 10s, max_errors: 2%, max_latency: 300ms}}]}\n";
    let without = web(&format!("service: {{name: web, port: 8080}}\n{steps}"));
    let errors = errors(&files(&[("web.yaml", &without)]));
    expect_exactly(
        &errors,
        &[(
            "deployments/web.yaml:7:18",
            "an edge_analysis step needs an ingress",
        )],
    );
    let with = web(&format!(
        "service: {{name: web, port: 8080}}\ningress: {{}}\n{steps}"
    ));
    let state = load(&files(&[("web.yaml", &with)]), &|_| None).unwrap();
    let d = state.deployments.iter().find(|d| d.name == "web").unwrap();
    assert!(matches!(&d.strategy.steps[1], CanaryStep::EdgeAnalysis(e)
        if e.duration_ms == 10_000 && e.max_errors_percent == 2 && e.max_latency_ms == Some(300) && e.min_requests == 1));
}

#[test]
fn a_berth_yml_gets_a_rename_hint() {
    let mut f = files(&[]);
    let text = f.files.remove(PROJECT_FILE).unwrap();
    f.files.insert("berth.yml".into(), text);
    let e = load(&f, &|_| None).unwrap_err();
    let shown = format!("{:?}", e.reports[0]);
    assert!(
        shown.contains("but a berth.yml") && shown.contains("rename berth.yml to berth.yaml"),
        "{shown}"
    );
}
