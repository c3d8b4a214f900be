//! The README's second example, `examples/webapp`, deployed on the lab as the README says:
//! an image from the private registry, files and a template from Git, a SOPS secret with
//! the example's demo age key, and a migration job. A changed file rolls out after the job.

use crate::common::*;

fn example_files(dir: &std::path::Path, rel: &str, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir.join(rel)).unwrap() {
        let entry = entry.unwrap();
        let name = format!("{rel}{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            example_files(dir, &format!("{name}/"), out);
        } else {
            out.push((name.clone(), std::fs::read_to_string(entry.path()).unwrap()));
        }
    }
}

#[test]
fn the_webapp_example_deploys_as_the_readme_says() {
    let repo = Repo::new("webapp");
    let example = root().join("examples/webapp");
    let mut files = Vec::new();
    example_files(&example, "", &mut files);
    for (rel, text) in &files {
        repo.write(rel, text);
    }
    repo.commit("the example");
    let key = example.join("demo-age-key.txt");
    let password = std::env::var("BERTH_LAB_REGISTRY_PASSWORD")
        .expect("BERTH_LAB_REGISTRY_PASSWORD: the lab's env (source .lab/env)");
    let env = [
        ("SOPS_AGE_KEY_FILE", key.to_str().unwrap()),
        ("BERTH_SECRET_LAB_REGISTRY", password.as_str()),
    ];
    let path = repo.path().to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let mut full = args.to_vec();
        full.extend(["--repo", &path]);
        berth_env(&full, &env)
    };

    let plan = run(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout
            .contains("run job migrate on h3 before the new pods of web"),
        "{plan:?}"
    );
    let applied = run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(
        applied
            .said()
            .contains("h3 job migrate | migrating app@db (production)"),
        "{applied:?}"
    );
    for h in ["h1", "h2"] {
        let pods = repo.running_on(h);
        assert_eq!(pods.len(), 1, "{h}: {pods:?}");
        let served = docker(
            h,
            &[
                "exec",
                &pods[0].name,
                "wget",
                "-qO-",
                "http://127.0.0.1:8080/about.txt",
            ],
        );
        assert_eq!(served, "webapp, deployed by berth from Git\n");
        let conf = docker(h, &["exec", &pods[0].name, "cat", "/etc/app/db.conf"]);
        assert!(conf.contains("password=demo-db-password-123"), "{conf}");
    }
    for text in [&plan.all(), &applied.all()] {
        assert!(
            !text.contains("demo-db-password-123") && !text.contains(&password),
            "{text}"
        );
    }
    let again = run(&["apply", "--auto-approve"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.all().contains("No changes") && !again.all().contains("job migrate"),
        "{again:?}"
    );

    // A changed file: a rollout, after the job has run for the new revision.
    repo.write("config/about.txt", "webapp, version two\n");
    repo.commit("new about");
    let changed = run(&["plan"]);
    assert!(
        changed.stdout.contains("app.files[/www/about.txt]"),
        "{changed:?}"
    );
    let rolled = run(&["apply", "--auto-approve"]);
    assert_eq!(rolled.code, 0, "{rolled:?}");
    assert!(
        rolled.said().contains("h3 job migrate | done"),
        "{rolled:?}"
    );
    // The new pod, beside the old one kept stopped for `berth rollback --to`.
    let pods = repo.running_on("h1");
    assert_eq!(pods.len(), 1, "{pods:?}");
    let served = docker(
        "h1",
        &[
            "exec",
            &pods[0].name,
            "wget",
            "-qO-",
            "http://127.0.0.1:8080/about.txt",
        ],
    );
    assert_eq!(served, "webapp, version two\n");
}
