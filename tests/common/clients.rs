//! Clients that ask a service name in a loop from every lab host, and what they heard: the
//! proof that a rollout fails no request.

use super::*;

/// A web deployment on every lab host, behind the service name `web`.
pub fn web_everywhere(replicas: u32, version: &str, strategy: &str) -> String {
    web("web", replicas, version, "EVERYWHERE")
        .replace(
            "placement: {hosts: \"EVERYWHERE\"}\n",
            "service: {name: web, port: 8080}\n",
        )
        .replace(
            "strategy: {min_ready: 1s, health_timeout: 30s}",
            &format!("strategy: {strategy}"),
        )
}

/// One client on each of `hosts` hosts that asks `http://web:8080/` every 50 ms and prints
/// each answer, or FAIL with what wget said (nothing: it ran out of time). busybox's own
/// `wget -T` crashes in the lab image, so `timeout` bounds each request.
pub fn client_on(hosts: usize) -> String {
    r#"name: zclient
replicas: HOSTS
placement: {max_per_host: 1}
pod:
  containers:
    - name: loop
      image: berth-lab/web:v1
      command: |
        trap "exit 0" TERM
        while true; do
          if a=$(timeout 2 wget -q -O - http://web:8080/ 2>/tmp/err); then echo "ok $a"; else echo "FAIL at $(date +%s): $(tr '\n' ' ' </tmp/err)"; fi
          sleep 0.05
        done
"#
    .replace("HOSTS", &hosts.to_string())
}

/// Every answer each client recorded so far, per host.
pub fn answers(repo: &Repo) -> Vec<(String, Vec<String>)> {
    repo.hosts
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

pub fn failures(all: &[(String, Vec<String>)]) -> usize {
    all.iter()
        .map(|(_, lines)| lines.iter().filter(|l| !l.starts_with("ok ")).count())
        .sum()
}

/// The failed requests with the answers around each, per host, and when this report was
/// made: enough to place a failure in the rollout's timeline without every answer.
pub fn failed_report(all: &[(String, Vec<String>)]) -> String {
    let mut out = format!(
        "{} failed request(s); report made at {}\n",
        failures(all),
        unix_now()
    );
    for (host, lines) in all {
        for (i, l) in lines
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.starts_with("ok "))
        {
            let around = &lines[i.saturating_sub(3)..(i + 4).min(lines.len())];
            out += &format!(
                "{host} answer {i} of {}: {l}; around it: {around:?}\n",
                lines.len()
            );
        }
    }
    out
}

/// Seconds since the epoch, to compare with a client's `FAIL at` time.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn count(all: &[(String, Vec<String>)]) -> usize {
    all.iter().map(|(_, l)| l.len()).sum()
}

/// Deploys web at v1 and the clients, and waits until every client has heard v1.
pub fn start_with_clients(repo: &Repo, web: &str) {
    repo.write("deployments/web.yaml", web);
    repo.commit("web v1");
    repo.apply_ok(&[]);
    repo.write("deployments/zclient.yaml", &client_on(repo.hosts.len()));
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

/// Deploys `v1` (a web on `web:v1`) with the clients, rolls it to v2 and checks what they
/// heard meanwhile: more than `least` answers, none failed, the last ones from v2.
pub fn rolling_update_fails_no_request(repo: &Repo, v1: &str, least: usize) {
    start_with_clients(repo, v1);
    repo.write("deployments/web.yaml", &v1.replace("web:v1", "web:v2"));
    repo.commit("web v2");
    let mark = answers(repo);
    repo.apply_ok(&[]);
    let all = settle(repo, &mark, 10);
    assert!(
        count(&all) > least,
        "too few requests to prove anything: {all:?}"
    );
    assert_eq!(
        failures(&all),
        0,
        "failed requests during the rollout: {}",
        failed_report(&all)
    );
    let tail = last_versions(&all, 5);
    assert!(
        tail.iter().all(|l| l == "ok berth-lab web v2"),
        "after the rollout only v2 answers: {tail:?}"
    );
}

/// The share of answers from `version` among the last `n` of each client.
pub fn last_versions(all: &[(String, Vec<String>)], n: usize) -> Vec<String> {
    all.iter()
        .flat_map(|(_, l)| l.iter().rev().take(n).cloned())
        .collect()
}

/// The answers each client recorded after `mark` (a previous call to `answers`).
pub fn since(mark: &[(String, Vec<String>)], now: &[(String, Vec<String>)]) -> Vec<String> {
    now.iter()
        .zip(mark)
        .flat_map(|((_, n), (_, m))| n[m.len().min(n.len())..].to_vec())
        .collect()
}

pub fn share(lines: &[String], version: &str) -> f64 {
    let hits = lines.iter().filter(|l| l.ends_with(version)).count();
    hits as f64 / lines.len().max(1) as f64
}

/// Waits until every client has recorded at least `n` more answers than at `mark` (a busy
/// machine slows the clients down; a fixed sleep would sample too few), and returns all the
/// answers then.
pub fn settle(repo: &Repo, mark: &[(String, Vec<String>)], n: usize) -> Vec<(String, Vec<String>)> {
    let start = std::time::Instant::now();
    loop {
        let now = answers(repo);
        if now
            .iter()
            .zip(mark)
            .all(|((_, a), (_, m))| a.len() >= m.len() + n)
        {
            return now;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the clients stopped answering: {now:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The answers heard after `mark` once every client has recorded `n` more.
pub fn heard_after(repo: &Repo, mark: &[(String, Vec<String>)], n: usize) -> Vec<String> {
    since(mark, &settle(repo, mark, n))
}
