//! End-to-end proofs of progressive delivery on the lab: a client pod on every host asks the
//! service name in a loop during each rollout and records every answer.

mod common;
use common::*;

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

/// A web deployment on every lab host, behind the service name `web`.
fn web_everywhere(replicas: u32, version: &str, strategy: &str) -> String {
    format!(
        r#"name: web
labels: {{app: web}}
replicas: {replicas}
service: {{name: web, port: 8080}}
pod:
  containers:
    - name: app
      image: berth-lab/web:{version}
      healthcheck:
        test: [CMD, wget, -q, -O, /dev/null, http://127.0.0.1:8080/healthz]
        interval: 1s
        retries: 2
strategy: {strategy}
"#
    )
}

/// One client per host that asks `http://web:8080/` every 50 ms and prints each answer, or
/// FAIL. busybox's own `wget -T` crashes in the lab image, so `timeout` bounds each request.
fn client() -> String {
    r#"name: zclient
replicas: 3
placement: {max_per_host: 1}
pod:
  containers:
    - name: loop
      image: berth-lab/web:v1
      command: |
        trap "exit 0" TERM
        while true; do
          if a=$(timeout 2 wget -q -O - http://web:8080/ 2>/dev/null); then echo "ok $a"; else echo FAIL; fi
          sleep 0.05
        done
"#
    .to_string()
}

/// Every answer each client recorded so far, per host.
fn answers(repo: &Repo) -> Vec<(String, Vec<String>)> {
    HOSTS
        .iter()
        .map(|h| {
            let name = repo
                .containers(h)
                .into_iter()
                .find(|c| c.name.starts_with("zclient-"))
                .unwrap_or_else(|| panic!("no client on {h}"))
                .name;
            let logs = docker(h, &["logs", &name]);
            (h.to_string(), logs.lines().map(str::to_string).collect())
        })
        .collect()
}

fn failures(all: &[(String, Vec<String>)]) -> usize {
    all.iter()
        .map(|(_, lines)| lines.iter().filter(|l| !l.starts_with("ok ")).count())
        .sum()
}

fn count(all: &[(String, Vec<String>)]) -> usize {
    all.iter().map(|(_, l)| l.len()).sum()
}

/// Deploys web at v1 and the clients, and waits until every client has heard v1.
fn start_with_clients(repo: &Repo, web: &str) {
    repo.write("deployments/web.yaml", web);
    repo.commit("web v1");
    repo.apply_ok(&[]);
    repo.write("deployments/zclient.yaml", &client());
    repo.commit("clients");
    repo.apply_ok(&[]);
    for _ in 0..50 {
        let a = answers(repo);
        if a.iter().all(|(_, l)| l.len() >= 5) {
            assert_eq!(failures(&a), 0, "clients fail before any rollout: {a:?}");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("the clients did not start answering: {:?}", answers(repo));
}

/// The share of answers from `version` among the last `n` of each client.
fn last_versions(all: &[(String, Vec<String>)], n: usize) -> Vec<String> {
    all.iter()
        .flat_map(|(_, l)| l.iter().rev().take(n).cloned())
        .collect()
}

#[test]
fn a_rolling_update_of_six_pods_fails_no_request() {
    let repo = Repo::new("t-zero");
    let strategy = "{min_ready: 1s, health_timeout: 30s, max_surge: 1, max_unavailable: 0}";
    let v1 = web_everywhere(6, "v1", strategy);
    start_with_clients(&repo, &v1);
    repo.write("deployments/web.yaml", &v1.replace("web:v1", "web:v2"));
    repo.commit("web v2");
    repo.apply_ok(&[]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let all = answers(&repo);
    assert!(
        count(&all) > 200,
        "too few requests to prove anything: {all:?}"
    );
    assert_eq!(
        failures(&all),
        0,
        "failed requests during the rollout: {all:?}"
    );
    let tail = last_versions(&all, 5);
    assert!(
        tail.iter().all(|l| l == "ok berth-lab web v2"),
        "after the rollout only v2 answers: {tail:?}"
    );
}
