//! Environments on the lab: one repository, staging and production, each with its own
//! inventory, overrides and project name; both run side by side on a shared host.

use crate::common::*;

const PROJECT: &str = "project: t-env
environments:
  staging:
    inventory: staging.yaml
    deployments:
      web:
        replicas: 1
        containers:
          app: {image: \"berth-lab/web:v2\", env: {STAGE: staging}}
  production: {}
";

#[test]
fn staging_and_production_from_one_repository() {
    let repo = Repo::new("t-env");
    // Their projects are cleaned up by these, on drop.
    let _staging = Repo::new("t-env-staging");
    let _production = Repo::new("t-env-production");
    repo.write("berth.yaml", PROJECT);
    repo.write(
        "staging.yaml",
        "hosts:\n  - {name: h2, address: 198.18.0.12, labels: {role: web, zone: b}}\n",
    );
    repo.write("deployments/web.yaml", &web("web", 2, "v1", "role=web"));
    repo.commit("two environments");

    let r = repo.berth(&["plan"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.said().contains("choose one with -e"), "{r:?}");

    let plan = repo.berth(&["plan", "-e", "staging"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout
            .contains("project t-env-staging (environment staging)"),
        "{plan:?}"
    );
    repo.apply_ok(&["-e", "staging", "-q"]);
    repo.apply_ok(&["--env", "production", "-q"]);

    let on = |host: &str, project: &str| -> Vec<String> {
        let out = docker(
            host,
            &[
                "ps",
                "--filter",
                &format!("label=berth.project={project}"),
                "--format",
                "{{.Image}}",
            ],
        );
        out.lines().map(str::to_string).collect()
    };
    assert_eq!(on("h2", "t-env-staging"), ["berth-lab/web:v2"]);
    assert!(on("h1", "t-env-staging").is_empty());
    assert_eq!(on("h1", "t-env-production"), ["berth-lab/web:v1"]);
    assert_eq!(on("h2", "t-env-production"), ["berth-lab/web:v1"]);
    // Each environment sees only its own: nothing to do in either.
    for env in ["staging", "production"] {
        let r = repo.berth(&["plan", "--exit-code", "-e", env]);
        assert_eq!(r.code, 0, "{env}: {r:?}");
    }
    let staged = docker(
        "h2",
        &["ps", "-q", "--filter", "label=berth.project=t-env-staging"],
    );
    let env = docker(
        "h2",
        &["inspect", "--format", "{{json .Config.Env}}", staged.trim()],
    );
    assert!(env.contains("STAGE=staging"), "{env}");
}
