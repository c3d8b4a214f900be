//! Secrets on the lab: the value reaches the container's environment and nowhere else. Every
//! output berth writes (plans in each format, a saved plan, apply's progress, status, drift,
//! errors) and every label on the container are searched for the value and for its SHA-256;
//! a changed value is seen and rolled out by name.

use crate::common::*;

const VALUE: &str = "hunter2-very-secret";
const CHANGED: &str = "hunter3-very-secret";

fn with_secret() -> String {
    web("web", 1, "v1", "zone=b").replace(
        "      healthcheck:",
        "      env: {DB_PASSWORD: {secret: db-password}}\n      healthcheck:",
    )
}

fn run(repo: &Repo, args: &[&str], value: &str) -> Run {
    let mut full: Vec<&str> = args.to_vec();
    let path = repo.path().to_str().unwrap().to_string();
    full.extend(["--repo", &path]);
    berth_env(&full, &[("BERTH_SECRET_DB_PASSWORD", value)])
}

fn sha256_hex(text: &str) -> String {
    berth::model::sha256_hex(text.as_bytes())
}

fn assert_clean(what: &str, text: &str) {
    for v in [VALUE, CHANGED] {
        assert!(!text.contains(v), "{what} shows the secret value:\n{text}");
        assert!(
            !text.contains(&sha256_hex(v)),
            "{what} shows the SHA-256 of the secret:\n{text}"
        );
    }
}

#[test]
fn a_secret_is_never_shown_and_a_changed_one_is_rolled_out_by_name() {
    let repo = Repo::new("t-secret");
    repo.write("deployments/web.yaml", &with_secret());
    repo.commit("web with a secret");

    // render needs no value; plan does, and says which.
    let render = repo.berth(&["render", "--format", "json"]);
    assert_eq!(render.code, 0, "{render:?}");
    let unset = repo.berth(&["plan"]);
    assert_eq!(unset.code, 1, "{unset:?}");
    assert!(
        unset.said().contains("BERTH_SECRET_DB_PASSWORD"),
        "{unset:?}"
    );

    let saved = repo.path().join("plan.json");
    let mut outputs = vec![("render", render.all()), ("unset", unset.all())];
    for format in ["text", "json", "markdown"] {
        let r = run(&repo, &["plan", "--format", format], VALUE);
        assert_eq!(r.code, 0, "{r:?}");
        outputs.push((format, r.all()));
    }
    let r = run(&repo, &["plan", "-o", saved.to_str().unwrap()], VALUE);
    assert_eq!(r.code, 0, "{r:?}");
    outputs.push(("plan file", std::fs::read_to_string(&saved).unwrap()));
    // Applied where the secret has no value: refused before any host is touched.
    let r = repo.berth(&["apply", "--auto-approve", saved.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        // (miette may wrap the line at the name's hyphen)
        r.said().contains("creates pods with secret(s) db-")
            && r.said().contains("that have no value here")
            && r.said().contains("BERTH_SECRET_DB_PASSWORD"),
        "{r:?}"
    );
    assert!(repo.all_containers().is_empty(), "{r:?}");
    let r = run(
        &repo,
        &["apply", "--auto-approve", "-v", saved.to_str().unwrap()],
        VALUE,
    );
    assert_eq!(r.code, 0, "{r:?}");
    outputs.push(("apply", r.all()));

    // The value is in the container's environment, as asked.
    let name = repo.running_on("h2")[0].name.clone();
    let env = docker(
        "h2",
        &["inspect", "--format", "{{json .Config.Env}}", &name],
    );
    assert!(env.contains(&format!("DB_PASSWORD={VALUE}")), "{env}");
    let labels = docker(
        "h2",
        &["inspect", "--format", "{{json .Config.Labels}}", &name],
    );
    assert!(
        labels.contains("berth.secrets") && labels.contains("scrypt:15:8:1:"),
        "the salted scrypt record is there: {labels}"
    );
    outputs.push(("labels", labels));

    for cmd in [&["status"][..], &["drift"], &["plan", "--exit-code"]] {
        let r = run(&repo, cmd, VALUE);
        assert_eq!(r.code, 0, "{cmd:?}: {r:?}");
        outputs.push(("status/drift/plan", r.all()));
    }

    // A value changed between `plan -o` and `apply FILE`: the saved plan keeps pods that run
    // with the old value, so it no longer says what applying must do: stale, nothing done.
    let keep = repo.path().join("keep.json");
    let r = run(&repo, &["plan", "-o", keep.to_str().unwrap()], VALUE);
    assert_eq!(r.code, 0, "{r:?}");
    let before = repo.all_containers();
    let r = run(
        &repo,
        &["apply", "--auto-approve", keep.to_str().unwrap()],
        CHANGED,
    );
    assert_eq!(r.code, 5, "{r:?}");
    assert!(
        r.stderr.contains("secret db-password: web-")
            && r.stderr
                .contains("the value changed since the plan was made"),
        "{r:?}"
    );
    assert_eq!(repo.all_containers(), before, "a stale plan changed a host");
    outputs.push(("stale apply", r.all()));

    // A new value: a replace, named, with neither value shown.
    let r = run(&repo, &["plan", "--exit-code"], CHANGED);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("secret db-password changed"), "{r:?}");
    outputs.push(("changed plan", r.all()));
    let r = run(&repo, &["apply", "--auto-approve", "-v"], CHANGED);
    assert_eq!(r.code, 0, "{r:?}");
    outputs.push(("changed apply", r.all()));
    let name = repo.running_on("h2")[0].name.clone();
    let env = docker(
        "h2",
        &["inspect", "--format", "{{json .Config.Env}}", &name],
    );
    assert!(env.contains(&format!("DB_PASSWORD={CHANGED}")), "{env}");
    let labels = docker(
        "h2",
        &["inspect", "--format", "{{json .Config.Labels}}", &name],
    );
    outputs.push(("new labels", labels));
    let r = run(&repo, &["plan", "--exit-code"], CHANGED);
    assert_eq!(r.code, 0, "converged: {r:?}");

    for (what, text) in &outputs {
        assert_clean(what, text);
    }
}

#[test]
fn a_secret_kept_in_a_file_outside_the_repository_reaches_its_container() {
    let repo = Repo::new("t-secret-file");
    repo.write("deployments/web.yaml", &with_secret());
    repo.commit("web with a secret");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db-password"), format!("{VALUE}\n")).unwrap();
    let path = repo.path().to_str().unwrap().to_string();
    let secrets_dir = dir.path().to_str().unwrap().to_string();
    let r = berth_env(
        &["apply", "--auto-approve", "--repo", &path],
        &[("BERTH_SECRETS_DIR", &secrets_dir)],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_clean("apply with BERTH_SECRETS_DIR", &r.all());
    let c = repo.containers("h2");
    assert_eq!(c.len(), 1, "{c:?}");
    let env = docker(
        "h2",
        &["inspect", "--format", "{{json .Config.Env}}", &c[0].name],
    );
    assert!(
        env.contains(&format!("DB_PASSWORD={VALUE}\"")),
        "the value, without the file's line break: {env}"
    );
    // The same value named by BERTH_SECRET_DB_PASSWORD_FILE: nothing to change.
    let file = dir.path().join("db-password");
    let r = berth_env(
        &["plan", "--exit-code", "--repo", &path],
        &[("BERTH_SECRET_DB_PASSWORD_FILE", file.to_str().unwrap())],
    );
    assert_eq!(r.code, 0, "{r:?}");
}
