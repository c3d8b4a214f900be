//! The operator's policy applied by the loader: each refusal at the value it refuses, naming
//! the rule; a refused secret is never looked up.
use super::tests::{expect_exactly, files, located};
use super::*;
use std::cell::RefCell;

const POLICY: &str = "\
registries: [ghcr.io, docker.io]
images: ['ghcr.io/acme/*', 'docker.io/library/*']
bind_mounts: [/srv/shop]
secrets:
  - deployments: [web]
    allow: [db-password]
  - registries: [ghcr.io]
    allow: [ghcr-token]
";

const WEB: &str = "\
name: web
pod:
  containers:
    - name: app
      image: ghcr.io/acme/web:1
      env:
        DB: {secret: db-password}
        STOLEN: {secret: prod-signing-key}
      volumes:
        - /srv/shop/uploads:/uploads
        - /var/run/docker.sock:/var/run/docker.sock
        - data:/data
    - name: side
      image: evil.example/miner:1
";

fn policy() -> Policy {
    crate::repo::policy::parse("policy.yaml", POLICY).expect("valid policy")
}

#[test]
fn every_value_the_policy_refuses_is_reported_where_it_is_written() {
    let mut f = files(&[("web.yaml", WEB)]);
    f.files.insert(
        PROJECT_FILE.into(),
        "project: p\nregistries:\n  - {server: evil.example, username: u, password: {secret: db-password}}\n  - {server: ghcr.io, username: u, password: {secret: ghcr-token}}\n".into(),
    );
    let asked = RefCell::new(Vec::<String>::new());
    let lookup = |name: &str| {
        asked.borrow_mut().push(name.to_string());
        Some("value".to_string())
    };
    let p = policy();
    let diags = load_under(&f, None, Some(&lookup), None, Some(&p)).expect_err("refused");
    let errors = located(&diags);
    expect_exactly(
        &errors,
        &[
            ("deployments/web.yaml:8:17", "deployment web may not read secret \"prod-signing-key\" under the policy"),
            ("deployments/web.yaml:11:11", "bind mount of host path /var/run/docker.sock is not allowed by the policy"),
            ("deployments/web.yaml:14:14", "registry evil.example (of image evil.example/miner:1) is not allowed by the policy"),
            ("berth.yaml:3:14", "a login for registry evil.example is not allowed by the policy"),
            ("berth.yaml:3:51", "the login for registry evil.example may not read secret \"db-password\" under the policy"),
        ],
    );
    let shown = format!("{:?}", diags.reports[1]);
    let shown = shown.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        shown.contains(
            "the policy's bind_mounts (policy.yaml line 3): allows host paths under /srv/shop"
        ),
        "{shown}"
    );
    let asked = asked.borrow();
    assert!(
        !asked.contains(&"prod-signing-key".to_string()),
        "a refused secret is never read: {asked:?}"
    );
    assert!(asked.contains(&"db-password".to_string()));
}

#[test]
fn without_a_policy_the_same_repository_loads() {
    let f = files(&[("web.yaml", WEB)]);
    assert!(load_under(&f, None, Some(&|_| Some("v".into())), None, None).is_ok());
}

#[test]
fn an_environment_override_and_the_edge_are_checked_too() {
    let ingress = "name: shop\nreplicas: 1\npod:\n  containers:\n    - {name: app, image: 'docker.io/library/busybox:1'}\nservice: {name: shop, port: 8080}\ningress: {port: 80}\n";
    let mut f = files(&[("shop.yaml", ingress)]);
    f.files.insert(
        PROJECT_FILE.into(),
        "project: p\nenvironments:\n  prod:\n    deployments:\n      shop:\n        containers:\n          app: {image: 'quay.io/x/y:2'}\n".into(),
    );
    let p = policy();
    let diags = load_under(&f, Some("prod"), None, None, Some(&p)).expect_err("refused");
    expect_exactly(
        &located(&diags),
        &[
            ("berth.yaml:7:24", "registry quay.io (of image quay.io/x/y:2) is not allowed by the policy"),
            ("deployments/shop.yaml:1:7", "the edge proxies that serve this deployment's ingress would run on the host's network"),
        ],
    );
    let mut open = policy();
    open.host_network.value = true;
    open.registries = None;
    open.images = None;
    assert!(load_under(&f, Some("prod"), None, None, Some(&open)).is_ok());
}
