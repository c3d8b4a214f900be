//! berth on podman hosts: h4 and h5 run Debian's podman behind its Docker-compatible API
//! (`podman system service`) instead of dockerd (`scripts/lab up 3 --podman 2`). The same
//! berth plans, applies, rolls out and reports drift there.

use crate::common::clients::*;
use crate::common::*;

fn podman_repo(project: &str) -> Repo {
    let inventory = "hosts:\n  - {name: h4, address: 198.18.0.14, labels: {role: web}}\n  - {name: h5, address: 198.18.0.15, labels: {role: web}}\n";
    let repo = Repo::on(project, &PODMAN_HOSTS, inventory);
    for h in PODMAN_HOSTS {
        let engine = docker(h, &["version", "--format", "{{json .Server.Components}}"]);
        assert!(
            engine.contains("Podman Engine"),
            "{h} does not run podman: {engine}"
        );
    }
    repo
}

#[test]
fn drift_on_podman_hosts_is_reported_and_repaired() {
    let repo = podman_repo("t-podman-drift");
    repo.write("deployments/web.yaml", &web("web", 2, "v1", "role=web"));
    repo.commit("web");
    repo.apply_ok(&[]);
    let clean = repo.berth(&["drift"]);
    assert_eq!(clean.code, 0, "{clean:?}");

    let h4 = repo.containers("h4");
    docker("h4", &["stop", "-t", "1", &h4[0].name]);
    let d = repo.berth(&["drift"]);
    assert_eq!(d.code, 2, "{d:?}");
    assert!(
        d.stdout
            .contains(&format!("h4 web {}", h4[0].name.trim_end_matches("-app")))
            && d.stdout.contains("stopped"),
        "{d:?}"
    );
    repo.apply_ok(&[]);
    let d = repo.berth(&["drift"]);
    assert_eq!(d.code, 0, "{d:?}");
    assert_eq!(repo.running_containers().len(), 2);
}

#[test]
fn podman_hosts_run_the_edges_and_the_apply_lock_comes_off_them() {
    let repo = podman_repo("t-podman-edge");
    repo.write(
        "berth.yaml",
        "project: t-podman-edge\nedge: {image: berth-lab/haproxy:2.6, admin_port: 8497, pod_ports: 32100-32199}\n",
    );
    let web = web("web", 2, "v1", "role=web")
        + "service: {name: web, port: 8080}\ningress: {port: 8172, health: /healthz}\n";
    repo.write("deployments/web.yaml", &web);
    repo.commit("web behind the edges");
    let run = repo.apply_ok(&[]);
    // Podman 4.3 lists what passes any of several label filters, not all: the lock's
    // release must not take the edges' volume for a lease (it would fail, and say so).
    assert!(!run.all().contains("could not release"), "{run:?}");
    for edge in ["198.18.0.14:8172", "198.18.0.15:8172"] {
        assert_eq!(
            get(edge.parse().unwrap()),
            Ok("berth-lab web v1".to_string()),
            "{edge}"
        );
    }
    let again = repo.berth(&["plan"]);
    assert!(again.stdout.contains("No changes"), "{again:?}");
}

#[test]
fn a_rolling_update_on_podman_hosts_fails_no_request_of_clients_asking_the_service() {
    let repo = podman_repo("t-podman-roll");
    let strategy = "{min_ready: 1s, health_timeout: 30s, max_surge: 1, max_unavailable: 0}";
    let v1 = web_everywhere(4, "v1", strategy);
    rolling_update_fails_no_request(&repo, &v1, 100);
}
