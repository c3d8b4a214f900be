//! Files into containers on the lab: a config file from the repository, a template filled
//! from a secret, env files from the repository and from a secret. They are in the container
//! before it starts, with their modes; the secret's value is in no output and no label; a
//! changed file in Git is a rollout; a saved plan places the files of its own commit.

use crate::common::*;

const PASSWORD: &str = "s3cret-db-password-value";
const TOKEN: &str = "t0ken-from-a-secret-env-file";

fn deployment() -> String {
    web("web", 1, "v1", "zone=b").replace(
        "      healthcheck:",
        r#"      env: {MODE: from-env}
      env_file: [config/app.env, {secret: app-env}]
      files:
        - {source: config/app.conf, target: /etc/app/app.conf}
        - {source: config/db.conf, target: /etc/app/db.conf, mode: 0600, template: true}
      healthcheck:"#,
    )
}

fn run(repo: &Repo, args: &[&str]) -> Run {
    let mut full: Vec<&str> = args.to_vec();
    let path = repo.path().to_str().unwrap().to_string();
    full.extend(["--repo", &path]);
    let env_file = format!("TOKEN={TOKEN}\nMODE=from-secret\nLEVEL=from-secret\n");
    berth_env(
        &full,
        &[
            ("BERTH_SECRET_DB_PASSWORD", PASSWORD),
            ("BERTH_SECRET_APP_ENV", &env_file),
        ],
    )
}

/// Runs a command in the running pod on h2 (an old revision may be kept there, stopped).
fn in_container(repo: &Repo, cmd: &[&str]) -> String {
    let name = repo.running_on("h2")[0].name.clone();
    let mut args = vec!["exec", name.as_str()];
    args.extend(cmd);
    docker("h2", &args)
}

#[test]
fn files_are_placed_before_start_and_a_changed_file_is_rolled_out() {
    let repo = Repo::new("t-files");
    repo.write("config/app.conf", "listen 8080\n");
    repo.write(
        "config/db.conf",
        "user=app\npassword=${{ secrets.db-password }}\n",
    );
    repo.write(
        "config/app.env",
        "# from Git\nLEVEL=from-git\nMODE=from-git\n",
    );
    repo.write("deployments/web.yaml", &deployment());
    repo.commit("web with files");

    // render needs no secret; the plan names the files, never the value.
    let render = repo.berth(&["render"]);
    assert_eq!(render.code, 0, "{render:?}");
    let plan = run(&repo, &["plan", "--format", "json"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.contains("/etc/app/db.conf"), "{plan:?}");
    let saved = repo.path().join("plan.json");
    let r = run(&repo, &["plan", "-o", saved.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let applied = run(&repo, &["apply", "--auto-approve", saved.to_str().unwrap()]);
    assert_eq!(applied.code, 0, "{applied:?}");

    assert_eq!(
        in_container(&repo, &["cat", "/etc/app/app.conf"]),
        "listen 8080\n"
    );
    assert_eq!(
        in_container(&repo, &["cat", "/etc/app/db.conf"]),
        format!("user=app\npassword={PASSWORD}\n")
    );
    let modes = in_container(
        &repo,
        &[
            "busybox",
            "stat",
            "-c",
            "%a %u",
            "/etc/app/app.conf",
            "/etc/app/db.conf",
        ],
    );
    assert_eq!(modes, "644 0\n600 0\n");
    // env wins over env files; a repository env file wins over a secret one.
    let env = in_container(&repo, &["env"]);
    for want in ["MODE=from-env", "LEVEL=from-git", &format!("TOKEN={TOKEN}")] {
        assert!(env.lines().any(|l| l == want), "{want} in {env}");
    }

    let name = repo.running_on("h2")[0].name.clone();
    let labels = docker(
        "h2",
        &["inspect", "--format", "{{json .Config.Labels}}", &name],
    );
    for (what, text) in [
        ("plan", plan.all()),
        ("saved plan", std::fs::read_to_string(&saved).unwrap()),
        ("apply", applied.all()),
        ("labels", labels.clone()),
    ] {
        for secret in [PASSWORD, TOKEN] {
            assert!(!text.contains(secret), "{what} shows a secret: {text}");
        }
    }
    assert!(
        labels.contains("db-password") && labels.contains("app-env"),
        "{labels}"
    );
    let again = run(&repo, &["plan", "--exit-code"]);
    assert_eq!(again.code, 0, "nothing to do after the apply: {again:?}");

    // The file changes in Git: a rollout, named by the file.
    repo.write("config/app.conf", "listen 9090\n");
    repo.commit("another listen");
    let changed = run(&repo, &["plan", "--exit-code"]);
    assert_eq!(changed.code, 2, "{changed:?}");
    assert!(
        changed.stdout.contains("app.files[/etc/app/app.conf]"),
        "{changed:?}"
    );
    let r = run(&repo, &["apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{r:?}");
    let now = repo.running_on("h2");
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now[0].name, name, "a new pod");
    assert_eq!(
        in_container(&repo, &["cat", "/etc/app/app.conf"]),
        "listen 9090\n"
    );

    // A secret's value changed: the template's pod is replaced, by the secret's name.
    let r = berth_env(
        &[
            "plan",
            "--exit-code",
            "--repo",
            repo.path().to_str().unwrap(),
        ],
        &[
            ("BERTH_SECRET_DB_PASSWORD", "another-password"),
            (
                "BERTH_SECRET_APP_ENV",
                &format!("TOKEN={TOKEN}\nMODE=from-secret\nLEVEL=from-secret\n"),
            ),
        ],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("db-password"), "{r:?}");
    assert!(!r.all().contains("another-password"), "{r:?}");
}
