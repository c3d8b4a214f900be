//! The policy's rules on plain values.
use super::*;

fn rule<T>(value: T, line: usize) -> Option<Rule<T>> {
    Some(Rule {
        value,
        line: Some(line),
    })
}

#[test]
fn patterns_match_with_stars_only() {
    assert!(glob("ghcr.io/acme/*", "ghcr.io/acme/web"));
    assert!(glob("ghcr.io/acme/*", "ghcr.io/acme/team/web"));
    assert!(!glob("ghcr.io/acme/*", "ghcr.io/acmeevil/web"));
    assert!(glob("api-*-token", "api-x-token"));
    assert!(!glob("api-*-token", "api-token"));
    assert!(glob("*", ""));
    assert!(glob("db-password", "db-password"));
    assert!(!glob("db-password", "db-password2"));
    assert!(glob("a*b*c", "abc"));
    assert!(!glob("a*b*c", "acb"));
}

#[test]
fn image_names_are_full() {
    assert_eq!(full_name("nginx:1.27"), "docker.io/library/nginx");
    assert_eq!(full_name("acme/web@sha256:ab"), "docker.io/acme/web");
    assert_eq!(
        full_name("docker.io/library/haproxy"),
        "docker.io/library/haproxy"
    );
    assert_eq!(
        full_name("index.docker.io/acme/web:2"),
        "docker.io/acme/web"
    );
    assert_eq!(
        full_name("198.18.0.1:5001/lab/web:v3"),
        "198.18.0.1:5001/lab/web"
    );
    assert_eq!(full_name("localhost/web"), "localhost/web");
}

#[test]
fn registries_and_images_limit_what_containers_run() {
    let mut p = Policy::new("policy.yaml");
    assert!(p.check_image("evil.example/x:1").is_ok(), "unset: any");
    p.registries = rule(vec!["ghcr.io".into(), DOCKER_HUB.into()], 3);
    p.images = rule(
        vec!["ghcr.io/acme/*".into(), "docker.io/library/*".into()],
        4,
    );
    assert!(p.check_image("ghcr.io/acme/web:2").is_ok());
    assert!(p.check_image("nginx:1.27").is_ok());
    let e = p.check_image("evil.example/x:1").unwrap_err();
    assert_eq!(
        e.message,
        "registry evil.example (of image evil.example/x:1) is not allowed by the policy"
    );
    assert_eq!(
        e.rule,
        "the policy's registries (policy.yaml line 3): allows ghcr.io, docker.io"
    );
    let e = p.check_image("ghcr.io/other/web:2").unwrap_err();
    assert!(e.rule.contains("images (policy.yaml line 4)"), "{e:?}");
    assert!(
        p.check_image("acme/web").is_err(),
        "docker.io/acme is not listed"
    );
    assert!(p.check_login("ghcr.io").is_ok());
    assert!(p.check_login("evil.example").is_err());
    assert!(p.lists_registry("ghcr.io") && !p.lists_registry("evil.example"));
    assert!(
        !Policy::new("p").lists_registry("ghcr.io"),
        "unset lists none"
    );
}

#[test]
fn bind_mounts_only_under_listed_directories_and_none_by_default() {
    let mut p = Policy::new("policy.yaml");
    let e = p.check_bind_mount("/srv/data").unwrap_err();
    assert_eq!(
        e.rule,
        "the policy's bind_mounts (unset in policy.yaml, so its default): allows no host path"
    );
    p.bind_mounts = Rule {
        value: vec!["/srv/shop/".into()],
        line: Some(2),
    };
    assert!(p.check_bind_mount("/srv/shop").is_ok());
    assert!(p.check_bind_mount("/srv/shop/uploads").is_ok());
    assert!(p.check_bind_mount("/srv/shopping").is_err());
    assert!(p.check_bind_mount("/srv/shop/../../etc").is_err());
    assert!(p.check_bind_mount("/srv/shop//x").is_err());
    assert!(p.check_bind_mount("/var/run/docker.sock").is_err());
    assert!(p.check_bind_mount("/").is_err());
    p.bind_mounts.value = vec!["/".into()];
    assert!(
        p.check_bind_mount("/etc").is_ok(),
        "/ allows every clean path"
    );
    assert!(p.check_bind_mount("/etc/../x").is_err());
}

#[test]
fn the_edge_needs_host_network_and_an_allowed_image() {
    let mut p = Policy::new("policy.yaml");
    assert!(p.check_host_network("the edge").is_err());
    assert!(
        p.check_edge_image("haproxy:2.6").is_ok(),
        "the default image"
    );
    assert!(p.check_edge_image("evil/haproxy:2.6").is_err());
    p.host_network = Rule {
        value: true,
        line: Some(5),
    };
    assert!(p.check_host_network("the edge").is_ok());
    p.edge_images.value = vec!["ghcr.io/acme/edge".into()];
    assert!(p.check_edge_image("ghcr.io/acme/edge:3").is_ok());
    assert!(p.check_edge_image("haproxy:2.6").is_err());
}

#[test]
fn secrets_by_deployment_selector_registry_and_edge() {
    let mut p = Policy::new("policy.yaml");
    let labels = Labels::from([("tier".to_string(), "backend".to_string())]);
    let web = &SecretUser::Deployment {
        name: "web".into(),
        labels,
    };
    let other = &SecretUser::Deployment {
        name: "other".into(),
        labels: Labels::new(),
    };
    assert!(p.check_secret(other, "anything").is_ok(), "unset: any");
    p.secrets = rule(
        vec![
            SecretRule {
                users: SecretUsers::Deployments(vec!["web".into()]),
                allow: vec!["db-password".into()],
                line: 8,
            },
            SecretRule {
                users: SecretUsers::Selector(Selector::parse("tier=backend").unwrap()),
                allow: vec!["api-*".into()],
                line: 10,
            },
            SecretRule {
                users: SecretUsers::Registries(vec!["ghcr.io".into()]),
                allow: vec!["ghcr-token".into()],
                line: 12,
            },
            SecretRule {
                users: SecretUsers::Edge,
                allow: vec!["tls-*".into()],
                line: 14,
            },
        ],
        7,
    );
    assert!(p.check_secret(web, "db-password").is_ok());
    assert!(p.check_secret(web, "api-key").is_ok());
    let e = p.check_secret(web, "ghcr-token").unwrap_err();
    assert_eq!(
        e.message,
        "deployment web may not read secret \"ghcr-token\" under the policy"
    );
    assert_eq!(
        e.rule,
        "the policy's secrets (policy.yaml line 7): the rules for deployment web (line 8, 10) do not list it"
    );
    let e = p.check_secret(other, "db-password").unwrap_err();
    assert!(e.rule.ends_with("no rule is for deployment other"), "{e:?}");
    assert!(p
        .check_secret(&SecretUser::Registry("ghcr.io".into()), "ghcr-token")
        .is_ok());
    assert!(p
        .check_secret(&SecretUser::Registry("quay.io".into()), "ghcr-token")
        .is_err());
    assert!(p.check_secret(&SecretUser::Edge, "tls-shop").is_ok());
    assert!(p.check_secret(&SecretUser::Edge, "db-password").is_err());
}
