//! Ingress through the edge proxies, on the lab: a client outside the hosts (this machine,
//! through the lab's bridge) asks the public port of every edge host throughout a rolling
//! update and an update of the edge itself, and no request may fail; a host without a pod
//! answers from a pod on another host.

use crate::common::*;
use std::collections::BTreeMap;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The public port of the first test (not 80: other tests' pods publish that); each test has
/// its own public port, admin port and pod ports, since the tests share the lab's hosts.
const PORT: u16 = 8081;
const CANARY_PORT: u16 = 8082;

fn project_files(repo: &Repo, edge_image: &str, port: u16) {
    // 8081… → admin ports 8406…, pod ports 31000-31099, 31100-31199, …
    let (admin, first) = (port + 325, 31000 + (port - PORT) * 100);
    repo.write(
        "berth.yaml",
        &format!(
            "project: {}\nedge: {{image: {edge_image}, admin_port: {admin}, pod_ports: {first}-{}}}\n",
            repo.project,
            first + 99
        ),
    );
}

fn web_with_ingress(replicas: u32, version: &str, port: u16) -> String {
    web("web", replicas, version, "role=web")
        + &format!(
            "service: {{name: web, port: 8080}}\ningress: {{port: {port}, health: /healthz}}\n"
        )
}

fn unix_now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Answers by body, and the failures.
type Heard = (BTreeMap<String, u64>, Vec<String>);

/// Clients asking every edge host in a loop until stopped; what they heard.
struct Hammer {
    stop: Arc<AtomicBool>,
    heard: Arc<Mutex<Heard>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Hammer {
    fn start(hosts: &[&str], port: u16) -> Hammer {
        let stop = Arc::new(AtomicBool::new(false));
        let heard = Arc::new(Mutex::new((BTreeMap::new(), Vec::new())));
        let threads = hosts
            .iter()
            .map(|h| {
                let addr: SocketAddr = format!("{h}:{port}").parse().unwrap();
                let (stop, heard) = (stop.clone(), heard.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let answer = get(addr);
                        let mut heard = heard.lock().unwrap();
                        match answer {
                            Ok(body) => *heard.0.entry(body).or_default() += 1,
                            Err(e) => heard.1.push(format!("{addr} at {}: {e}", unix_now_ms())),
                        }
                    }
                })
            })
            .collect();
        Hammer {
            stop,
            heard,
            threads,
        }
    }

    /// Stops the clients; answers by body, and the failures.
    fn finish(self) -> Heard {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let heard = self.heard.lock().unwrap();
        (heard.0.clone(), heard.1.clone())
    }
}

const EDGES: [&str; 2] = ["198.18.0.11", "198.18.0.12"];

#[test]
fn the_edge_routes_across_hosts_and_rolls_out_and_updates_itself_without_failing_a_request() {
    let repo = Repo::new("ingress");
    project_files(&repo, "berth-lab/haproxy:2.6", PORT);
    repo.write("deployments/web.yaml", &web_with_ingress(1, "v1", PORT));
    repo.commit("one pod, behind the edge");
    repo.apply_ok(&[]);

    // One pod, on h1: h2's edge answers from it.
    let pods = |h: &str| {
        repo.running_on(h)
            .into_iter()
            .filter(|c| c.name.starts_with("web-"))
            .count()
    };
    assert_eq!((pods("h1"), pods("h2")), (1, 0));
    every_edge_answers(PORT, "v1");

    // A rolling update (and a scale-up) while clients ask both edges.
    let hammer = Hammer::start(&EDGES, PORT);
    std::thread::sleep(Duration::from_millis(500));
    repo.write("deployments/web.yaml", &web_with_ingress(3, "v2", PORT));
    repo.commit("v2, three pods");
    repo.apply_ok(&[]);
    std::thread::sleep(Duration::from_millis(500));
    let (answers, failed) = hammer.finish();
    let total: u64 = answers.values().sum();
    eprintln!(
        "rolling update through the edge: {total} requests, {} failed, {answers:?}",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} failed requests, the first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(answers.contains_key("berth-lab web v1") && answers.contains_key("berth-lab web v2"));
    every_edge_answers(PORT, "v2");

    // The edge itself updated (a new image): the new edge takes over the listeners.
    let edge_ids = |h: &str| -> Vec<String> {
        repo.running_on(h)
            .into_iter()
            .filter(|c| c.name.starts_with("berth-edge-"))
            .map(|c| c.id)
            .collect()
    };
    let before: Vec<Vec<String>> = ["h1", "h2"].iter().map(|h| edge_ids(h)).collect();
    assert!(
        before.iter().all(|ids| ids.len() == 1),
        "one edge per host: {before:?}"
    );
    let hammer = Hammer::start(&EDGES, PORT);
    std::thread::sleep(Duration::from_millis(500));
    project_files(&repo, "berth-lab/haproxy:2.6-b", PORT);
    repo.commit("a new edge image");
    repo.apply_ok(&[]);
    std::thread::sleep(Duration::from_millis(500));
    let (answers, failed) = hammer.finish();
    let total: u64 = answers.values().sum();
    eprintln!("edge update: {total} requests, {} failed", failed.len());
    assert!(
        failed.is_empty(),
        "{} failed requests, the first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let after: Vec<Vec<String>> = ["h1", "h2"].iter().map(|h| edge_ids(h)).collect();
    assert!(after.iter().all(|ids| ids.len() == 1), "{after:?}");
    assert!(
        before.iter().zip(&after).all(|(b, a)| b != a),
        "the edges were replaced"
    );

    let plan = repo.berth(&["plan", "--exit-code"]);
    assert_eq!(plan.code, 0, "nothing left to do: {plan:?}");
}

#[test]
fn a_canary_gets_its_exact_weight_of_requests_on_the_edge_and_is_promoted_without_a_failure() {
    let repo = Repo::new("ingress-canary");
    project_files(&repo, "berth-lab/haproxy:2.6", CANARY_PORT);
    let canary = |version: &str| {
        let steps = "[{weight: 25}, {edge_analysis: {duration: 3s, max_errors: 0%, min_requests: 20}}, {pause: {}}]";
        with_strategy(
            2,
            version,
            CANARY_PORT,
            &format!("{{type: canary, min_ready: 1s, steps: {steps}}}"),
        )
    };
    repo.write("deployments/web.yaml", &canary("v1"));
    repo.commit("two pods behind the edge");
    repo.apply_ok(&[]);

    // 25% of two pods is one pod, half of them: only the edge's weights make it a quarter.
    let hammer = Hammer::start(&EDGES, CANARY_PORT);
    repo.write("deployments/web.yaml", &canary("v2"));
    repo.commit("v2 as a canary");
    let applied = repo.apply_ok(&[]);
    // The edges' own counts judged the canary, from the requests the clients made.
    assert!(
        applied
            .all()
            .contains("requests through the edges, 0 errors"),
        "{applied:?}"
    );
    let (_, failed) = hammer.finish();
    assert!(
        failed.is_empty(),
        "{} failed requests, the first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let mut heard: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..2000 {
        let addr = format!("{}:{CANARY_PORT}", EDGES[i % 2]).parse().unwrap();
        *heard.entry(get(addr).expect("an answer")).or_default() += 1;
    }
    let v2 = heard.get("berth-lab web v2").copied().unwrap_or(0);
    let share = v2 as f64 * 100.0 / 2000.0;
    eprintln!(
        "canary at weight 25 with 1 of 2 pods: {share:.1}% of 2000 requests on v2 ({heard:?})"
    );
    assert!(
        (20.0..=30.0).contains(&share),
        "v2 had {share:.1}%: {heard:?}"
    );

    let hammer = Hammer::start(&EDGES, CANARY_PORT);
    let promoted = repo.berth(&["promote", "web"]);
    assert_eq!(promoted.code, 0, "{promoted:?}");
    std::thread::sleep(Duration::from_millis(500));
    let (answers, failed) = hammer.finish();
    let total: u64 = answers.values().sum();
    eprintln!("canary promote: {total} requests, {} failed", failed.len());
    assert!(
        failed.is_empty(),
        "{} failed requests, the first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    every_edge_answers(CANARY_PORT, "v2");
}

/// Each edge answers from `version`.
fn every_edge_answers(port: u16, version: &str) {
    for edge in EDGES {
        let addr = format!("{edge}:{port}").parse().unwrap();
        let want = format!("berth-lab web {version}");
        assert_eq!(get(addr).as_deref(), Ok(want.as_str()), "asking {edge}");
    }
}

/// The web deployment with an ingress on `port` and this strategy.
fn with_strategy(replicas: u32, version: &str, port: u16, strategy: &str) -> String {
    web_with_ingress(replicas, version, port).replace(
        "strategy: {min_ready: 1s, health_timeout: 30s}",
        &format!("strategy: {strategy}"),
    )
}

/// `n` requests over both edges, by answer.
fn ask(n: usize, port: u16) -> BTreeMap<String, u64> {
    let mut heard: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..n {
        let addr = format!("{}:{port}", EDGES[i % 2]).parse().unwrap();
        *heard.entry(get(addr).expect("an answer")).or_default() += 1;
    }
    heard
}

#[test]
fn a_blue_green_switch_moves_every_edge_at_once_and_back_on_rollback_without_a_failure() {
    const BG_PORT: u16 = 8083;
    let repo = Repo::new("ingress-bluegreen");
    project_files(&repo, "berth-lab/haproxy:2.6", BG_PORT);
    let blue_green = |version: &str| {
        let strategy = "{type: blue-green, min_ready: 1s, scale_down_delay: 10m}";
        with_strategy(2, version, BG_PORT, strategy)
    };
    repo.write("deployments/web.yaml", &blue_green("v1"));
    repo.commit("blue");
    repo.apply_ok(&[]);

    let hammer = Hammer::start(&EDGES, BG_PORT);
    eprintln!("green from {}", unix_now_ms());
    repo.write("deployments/web.yaml", &blue_green("v2"));
    repo.commit("green beside blue");
    repo.apply_ok(&[]);
    let only = |heard: &BTreeMap<String, u64>, version: &str| {
        heard.len() == 1 && heard.contains_key(&format!("berth-lab web {version}"))
    };
    let waiting = ask(200, BG_PORT);
    assert!(
        only(&waiting, "v1"),
        "before the promotion only blue: {waiting:?}"
    );

    // Once `promote` returns, every edge sends every new request to green, and back after
    // the rollback: no wait for names to spread.
    eprintln!("promote from {}", unix_now_ms());
    let promoted = repo.berth(&["promote", "web"]);
    eprintln!("promote until {}", unix_now_ms());
    assert_eq!(promoted.code, 0, "{promoted:?}");
    let after = ask(200, BG_PORT);
    assert!(
        only(&after, "v2"),
        "after the promotion only green: {after:?}"
    );
    eprintln!("rollback from {}", unix_now_ms());
    let rolled_back = repo.berth(&["rollback", "web"]);
    eprintln!("rollback until {}", unix_now_ms());
    assert_eq!(rolled_back.code, 0, "{rolled_back:?}");
    let back = ask(200, BG_PORT);
    assert!(only(&back, "v1"), "after the rollback only blue: {back:?}");
    let (answers, failed) = hammer.finish();
    let total: u64 = answers.values().sum();
    eprintln!(
        "blue-green switch and rollback: {total} requests, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} failed requests, the first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
}

/// A self-signed certificate for `name` and its key, as one PEM; and the certificate alone.
fn certificate(dir: &std::path::Path, name: &str) -> (String, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/CN={name}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (Debian package openssl) makes the test's certificate");
    assert!(made.status.success(), "{made:?}");
    let pem = std::fs::read_to_string(&cert).unwrap() + &std::fs::read_to_string(&key).unwrap();
    (pem, cert)
}

#[test]
fn an_https_ingress_serves_the_certificate_from_its_secret_and_no_plan_shows_it() {
    const TLS_PORT: u16 = 8084;
    let repo = Repo::new("ingress-tls");
    project_files(&repo, "berth-lab/haproxy:2.6", TLS_PORT);
    repo.write(
        "deployments/web.yaml",
        &web_with_ingress(1, "v1", TLS_PORT).replace(
            "health: /healthz}",
            "health: /healthz, hostnames: [shop.test], tls: {secret: SHOP_TLS}}",
        ),
    );
    repo.commit("https");
    let certs = tempfile::tempdir().unwrap();
    let (pem, ca) = certificate(certs.path(), "shop.test");
    let env = [("BERTH_SECRET_SHOP_TLS", pem.as_str())];
    let with_repo = |args: &[&str]| {
        let dir = repo.path().to_str().unwrap().to_string();
        berth_env(&[args, &["--repo", &dir]].concat(), &env)
    };
    let plan = with_repo(&["plan", "--format", "json"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.contains("SHOP_TLS") && !plan.all().contains("PRIVATE KEY"));
    let applied = with_repo(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(!applied.all().contains("PRIVATE KEY"));

    // Both edges answer HTTPS for shop.test with the certificate (curl checks it against
    // the test's own CA); the pod is on one host only.
    for edge in EDGES {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert"])
            .arg(&ca)
            .arg("--resolve")
            .arg(format!("shop.test:{TLS_PORT}:{edge}"))
            .arg(format!("https://shop.test:{TLS_PORT}/"))
            .output()
            .expect("curl (Debian package curl)");
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && body.contains("berth-lab web v1"),
            "{edge}: {body} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A change of the ingress alone (a second host name) replaces no pod: the edges are
    // given their new configuration, and then nothing is left to do.
    repo.write(
        "deployments/web.yaml",
        &std::fs::read_to_string(repo.path().join("deployments/web.yaml"))
            .unwrap()
            .replace(
                "hostnames: [shop.test]",
                "hostnames: [shop.test, www.shop.test]",
            ),
    );
    repo.commit("a second host name");
    let plan = with_repo(&["plan", "--exit-code"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout.contains("route") && plan.stdout.contains("0 to replace"),
        "{plan:?}"
    );
    let applied = with_repo(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    let plan = with_repo(&["plan", "--exit-code"]);
    assert_eq!(plan.code, 0, "{plan:?}");
}
