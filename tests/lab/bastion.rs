//! Hosts behind a bastion (the lab's `--bastion`): each host's second address, 198.18.1.x,
//! is reachable only through the bastion at 198.18.0.2. berth reads the route from the
//! inventory (`proxy_jump`) or from an OpenSSH config (an alias with `HostName` and
//! `ProxyJump`), opens one connection to the bastion for all hosts behind it, and checks the
//! host keys of the bastion and of each host.

use crate::common::*;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const BASTION: &str = "198.18.0.2";

fn require_bastion() {
    let addr: SocketAddr = format!("{BASTION}:22").parse().unwrap();
    if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        panic!("the lab's bastion ({addr}) does not answer: run `scripts/lab up 3 --bastion`");
    }
}

fn bastion_log() -> String {
    let lab = std::env::var("BERTH_LAB_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root().join(".lab"));
    std::fs::read_to_string(lab.join("bastion/sshd.log")).unwrap_or_default()
}

fn accepted() -> usize {
    bastion_log().matches("Accepted publickey").count()
}

#[test]
fn plans_and_applies_through_a_bastion_named_in_the_inventory_or_the_ssh_config() {
    require_bastion();
    let repo = Repo::new("t-bastion");
    // The hosts' second addresses are not reachable from here.
    let inner: SocketAddr = "198.18.1.11:22".parse().unwrap();
    assert!(
        TcpStream::connect_timeout(&inner, Duration::from_secs(1)).is_err(),
        "198.18.1.11 must be reachable only through the bastion"
    );
    repo.write(
        "inventory.yaml",
        "hosts:\n  - {name: h1, address: 198.18.1.11, proxy_jump: \"root@198.18.0.2\", labels: {role: web}}\n  - {name: h2, address: web2, labels: {role: web}}\n",
    );
    let config = repo.path().join("ssh_config");
    std::fs::write(
        &config,
        "Host web2\n    HostName 198.18.1.12\n    ProxyJump lab-bastion\n\nHost lab-bastion\n    HostName 198.18.0.2\n    User root\n    ConnectTimeout 5\n",
    )
    .unwrap();
    repo.write("deployments/web.yaml", &web("web", 2, "v1", "role=web"));
    repo.commit("two hosts behind the bastion");
    let cfg = config.to_str().unwrap();

    let before = accepted();
    let r = repo.berth(&["plan", "--ssh-config", cfg]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("2/2 host(s) observed"), "{r:?}");
    // One connection to the bastion serves both hosts behind it.
    assert_eq!(accepted() - before, 1, "{}", bastion_log());

    let r = repo.berth(&["apply", "--auto-approve", "--ssh-config", cfg]);
    assert_eq!(r.code, 0, "{r:?}");
    for h in ["h1", "h2"] {
        let c = repo.containers(h);
        assert_eq!(c.len(), 1, "{h}: {c:?}");
        assert_eq!(c[0].state, "running", "{h}: {c:?}");
    }
    let r = repo.berth(&["plan", "--exit-code", "--ssh-config", cfg]);
    assert_eq!(r.code, 0, "converged through the bastion: {r:?}");

    // The bastion's host key is checked too: a known_hosts without it refuses.
    let known = std::fs::read_to_string(std::env::var("BERTH_KNOWN_HOSTS").unwrap()).unwrap();
    let without: String = known
        .lines()
        .filter(|l| !l.starts_with(&format!("{BASTION} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    let file = repo.path().join("known_hosts_without_bastion");
    std::fs::write(&file, without).unwrap();
    let r = repo.berth(&[
        "plan",
        "--ssh-config",
        cfg,
        "--known-hosts",
        file.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("bastion root@198.18.0.2:22") && r.stderr.contains(BASTION),
        "{r:?}"
    );

    // A config file that is not there is named.
    let r = repo.berth(&["plan", "--ssh-config", "/nonexistent/ssh_config"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("/nonexistent/ssh_config"), "{r:?}");
}
