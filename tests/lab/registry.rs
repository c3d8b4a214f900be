//! Private registries on the lab: the registry at 198.18.0.1:5001 asks for a password
//! (htpasswd; scripts/lab makes it and exports BERTH_LAB_REGISTRY_USER/PASSWORD). berth pulls
//! with credentials from Docker's configuration (an `auths` entry, a credential helper) or
//! from a `registries:` login in berth.yaml whose password is a secret; without any, the pull
//! fails naming the registry and what to set, and nothing changes. The password is searched
//! for in every output, the saved plan and the containers' labels.

use crate::common::*;
use std::path::Path;
use std::process::Command;

const REGISTRY: &str = "198.18.0.1:5001";
const IMAGE: &str = "198.18.0.1:5001/berth-lab/web:v3";

fn password() -> String {
    std::env::var("BERTH_LAB_REGISTRY_PASSWORD")
        .expect("BERTH_LAB_REGISTRY_PASSWORD is not set: source .lab/env (scripts/lab up 3)")
}

fn user() -> String {
    std::env::var("BERTH_LAB_REGISTRY_USER").unwrap_or_else(|_| "berth".into())
}

fn private_web() -> String {
    web("web", 2, "v3", "role=web").replace("berth-lab/web:v3", IMAGE)
}

/// No host has the image, so the next apply pulls it.
fn forget_image() {
    for h in HOSTS {
        let _ = docker(h, &["rmi", "-f", IMAGE]);
    }
}

fn base64(text: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", "printf '%s' \"$1\" | base64 -w0", "sh", text])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Runs berth with Docker's configuration in `config` (and `env`), never the user's own.
fn run(repo: &Repo, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut full: Vec<&str> = args.to_vec();
    let path = repo.path().to_str().unwrap().to_string();
    full.extend(["--repo", &path]);
    let mut all = vec![("DOCKER_CONFIG", config.to_str().unwrap())];
    all.extend_from_slice(env);
    berth_env(&full, &all)
}

fn assert_clean(what: &str, text: &str) {
    assert!(
        !text.contains(&password()),
        "{what} shows the registry password:\n{text}"
    );
}

fn labels_clean(repo: &Repo) {
    for c in repo.all_containers() {
        let host = if c.name.is_empty() {
            continue;
        } else {
            host_of(repo, &c.name)
        };
        let labels = docker(
            &host,
            &[
                "inspect",
                "--format",
                "{{json .Config.Labels}} {{json .Config.Env}}",
                &c.name,
            ],
        );
        assert_clean(&format!("container {}", c.name), &labels);
    }
}

fn host_of(repo: &Repo, container: &str) -> String {
    HOSTS
        .iter()
        .find(|h| repo.containers(h).iter().any(|c| c.name == container))
        .unwrap()
        .to_string()
}

fn running_private(repo: &Repo) -> usize {
    repo.all_containers()
        .iter()
        .filter(|c| c.image == IMAGE && c.state == "running")
        .count()
}

#[test]
fn pulls_from_a_registry_that_asks_for_a_password_with_credentials_from_docker_or_berth_yaml() {
    let repo = Repo::new("t-registry");
    let empty = tempfile::tempdir().unwrap();
    repo.write("deployments/web.yaml", &private_web());
    repo.commit("web from the private registry");
    forget_image();

    // No credentials anywhere: the pull fails, naming the registry and what to set.
    let r = run(&repo, empty.path(), &["apply", "--auto-approve"], &[]);
    assert_eq!(r.code, 3, "{r:?}");
    for words in [
        format!("the registry {REGISTRY} wants credentials and berth has none for it"),
        format!("docker login {REGISTRY}"),
        "`registries:`".to_string(),
    ] {
        assert!(r.stderr.contains(&words), "{words}: {r:?}");
    }
    assert!(
        repo.all_containers().is_empty(),
        "nothing was left: {:?}",
        repo.all_containers()
    );

    // Docker's configuration, as `docker login` writes it.
    let logged_in = tempfile::tempdir().unwrap();
    let auth = base64(&format!("{}:{}", user(), password()));
    std::fs::write(
        logged_in.path().join("config.json"),
        format!(r#"{{"auths": {{"{REGISTRY}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    let r = run(&repo, logged_in.path(), &["apply", "--auto-approve"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_clean("apply with docker's auths", &r.all());
    assert_eq!(running_private(&repo), 2, "{:?}", repo.all_containers());
    labels_clean(&repo);
    repo.cleanup();
    forget_image();

    // A credential helper, as Docker runs it: `docker-credential-NAME get`, the server on
    // stdin, JSON on stdout.
    let helper = tempfile::tempdir().unwrap();
    let secret_file = helper.path().join("secret");
    std::fs::write(&secret_file, password()).unwrap();
    let script = helper.path().join("docker-credential-berthlab");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{}\",\"Secret\":\"%s\"}}' \"$server\" \"$(cat {})\"\n",
            user(),
            secret_file.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .args(["+x", script.to_str().unwrap()])
        .status()
        .unwrap();
    std::fs::write(
        helper.path().join("config.json"),
        format!(r#"{{"credHelpers": {{"{REGISTRY}": "berthlab"}}}}"#),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        helper.path().display(),
        std::env::var("PATH").unwrap()
    );
    let r = run(
        &repo,
        helper.path(),
        &["apply", "--auto-approve"],
        &[("PATH", &path)],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_clean("apply with a credential helper", &r.all());
    assert_eq!(running_private(&repo), 2, "{:?}", repo.all_containers());
    repo.cleanup();
    forget_image();

    // A login in berth.yaml: the password is a secret; unset, the plan stops at berth.yaml.
    repo.write(
        "berth.yaml",
        &format!(
            "project: t-registry\nregistries:\n  - server: {REGISTRY}\n    username: {}\n    password: {{secret: lab-registry}}\n",
            user()
        ),
    );
    repo.commit("a registry login in berth.yaml");
    let r = run(&repo, empty.path(), &["plan"], &[]);
    assert_eq!(r.code, 1, "{r:?}");
    for words in ["berth.yaml", "lab-registry", "BERTH_SECRET_LAB_REGISTRY"] {
        assert!(r.stderr.contains(words), "{words}: {r:?}");
    }
    // `render` is offline and needs no secret.
    let r = run(&repo, empty.path(), &["render"], &[]);
    assert_eq!(r.code, 0, "{r:?}");

    // A wrong password is named as refused.
    let wrong = [("BERTH_SECRET_LAB_REGISTRY", "not-the-password")];
    let r = run(&repo, empty.path(), &["apply", "--auto-approve"], &wrong);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "the registry {REGISTRY} refused the credentials berth sent"
        )),
        "{r:?}"
    );
    assert!(
        repo.all_containers().is_empty(),
        "{:?}",
        repo.all_containers()
    );

    // The right one: plan saved, then applied.
    let pw = password();
    let right = [("BERTH_SECRET_LAB_REGISTRY", pw.as_str())];
    let plan_file = repo.path().join("plan.json");
    let r = run(
        &repo,
        empty.path(),
        &["plan", "-o", plan_file.to_str().unwrap()],
        &right,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_clean("plan", &r.all());
    let saved = std::fs::read_to_string(&plan_file).unwrap();
    assert_clean("the saved plan", &saved);
    assert!(
        saved.contains("\"password_secret\": \"lab-registry\""),
        "{saved}"
    );
    // The saved plan needs the secret too.
    let r = berth_env(
        &["apply", plan_file.to_str().unwrap(), "--auto-approve"],
        &[("DOCKER_CONFIG", empty.path().to_str().unwrap())],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("BERTH_SECRET_LAB_REGISTRY"), "{r:?}");
    let mut env = vec![("DOCKER_CONFIG", empty.path().to_str().unwrap())];
    env.extend_from_slice(&right);
    let r = berth_env(
        &["apply", plan_file.to_str().unwrap(), "--auto-approve"],
        &env,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_clean("apply of the saved plan", &r.all());
    assert_eq!(running_private(&repo), 2, "{:?}", repo.all_containers());
    labels_clean(&repo);
    for args in [&["status"][..], &["drift"], &["plan", "--format", "json"]] {
        let r = run(&repo, empty.path(), args, &right);
        assert_clean(&format!("{args:?}"), &r.all());
    }
}
