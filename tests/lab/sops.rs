//! Secrets from a SOPS file committed in the repository, made by the real sops (the lab
//! installs it) for an age key made by age-keygen: berth decrypts it with the key sops would
//! use (SOPS_AGE_KEY_FILE), the value reaches the container and no output (a saved plan
//! reads the file at its commit); without the key the plan stops, naming what to set;
//! `render` needs no key.

use crate::common::*;
use std::process::Command;

const VALUE: &str = "s0ps-secret-value-42";

fn sops() -> String {
    std::env::var("BERTH_LAB_SOPS")
        .expect("BERTH_LAB_SOPS is not set: source .lab/env (scripts/lab up 3 installs sops)")
}

#[test]
fn a_secret_from_a_sops_file_reaches_its_container_with_the_age_key_and_nowhere_else() {
    let repo = Repo::new("t-sops");
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("keys.txt");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let recipient = String::from_utf8_lossy(&out.stderr)
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");
    // The plaintext never enters the repository: sops writes the encrypted file from stdin.
    let plain = keys.path().join("app.yaml");
    std::fs::write(&plain, format!("db-password: {VALUE}\n")).unwrap();
    let encrypted = Command::new(sops())
        .args([
            "encrypt",
            "--age",
            &recipient,
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
        ])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(encrypted.status.success(), "{encrypted:?}");
    let file = String::from_utf8(encrypted.stdout).unwrap();
    assert!(
        file.contains("ENC[AES256_GCM") && !file.contains(VALUE),
        "{file}"
    );
    repo.write("secrets/app.yaml", &file);
    repo.write(
        "deployments/web.yaml",
        &web("web", 1, "v1", "zone=b").replace(
            "      healthcheck:",
            "      env: {DB_PASSWORD: {secret: db-password}}\n      healthcheck:",
        ),
    );
    repo.commit("web with a secret from sops");
    let path = repo.path().to_str().unwrap().to_string();
    let with_key = [("SOPS_AGE_KEY_FILE", key_file.to_str().unwrap())];

    // Without the key: the plan stops before any host, saying what to set.
    let r = berth_env(
        &["plan", "--repo", &path],
        &[("XDG_CONFIG_HOME", "/nonexistent")],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("SOPS_AGE_KEY_FILE"), "{r:?}");
    // render is offline and needs no key.
    let r = berth_env(&["render", "--repo", &path], &[]);
    assert_eq!(r.code, 0, "{r:?}");

    // A saved plan, applied: the SOPS file is read at the plan's commit.
    let saved = keys.path().join("plan.json");
    let saved = saved.to_str().unwrap();
    let mut outputs = vec![];
    for args in [
        &["plan", "--repo", &path][..],
        &["plan", "-o", saved, "--repo", &path],
        &["apply", saved, "--auto-approve", "-v", "--repo", &path],
        &["plan", "--exit-code", "--format", "json", "--repo", &path],
        &["status", "--repo", &path],
    ] {
        let r = berth_env(args, &with_key);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        outputs.push(r.all());
    }
    outputs.push(std::fs::read_to_string(saved).unwrap());
    for o in &outputs {
        assert!(
            !o.contains(VALUE),
            "an output or the plan file shows the secret:\n{o}"
        );
    }
    let c = repo.containers("h2");
    assert_eq!(c.len(), 1, "{c:?}");
    let env = docker(
        "h2",
        &["inspect", "--format", "{{json .Config.Env}}", &c[0].name],
    );
    assert!(env.contains(&format!("DB_PASSWORD={VALUE}\"")), "{env}");
    let labels = docker(
        "h2",
        &["inspect", "--format", "{{json .Config.Labels}}", &c[0].name],
    );
    assert!(!labels.contains(VALUE), "{labels}");
}
