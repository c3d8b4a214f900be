//! Environments: one repository, several fleets. `berth.yaml` names each environment's
//! inventory and what it changes in the shared deployments (replicas, placement, a
//! container's image and env); `-e ENV` chooses one. Overrides are checked where they are
//! written, in berth.yaml. Pure.

use super::*;

/// The environment chosen, checked against those declared: its name and declaration.
pub(super) fn choose<'p>(
    l: &mut Loader,
    src: &SourceFile,
    project: &'p ProjectFile,
    wanted: Option<&str>,
) -> Option<(String, &'p EnvironmentFile)> {
    let mut names: Vec<&str> = project
        .environments
        .keys()
        .map(|k| k.value.as_str())
        .collect();
    names.sort();
    match wanted {
        None if names.is_empty() => None,
        None => {
            l.diags.push(miette::miette!(
                help = format!("run with -e {} (or set BERTH_ENV)", names[0]),
                "this repository declares environments ({}): choose one with -e",
                names.join(", ")
            ));
            None
        }
        Some(e) => match project.environments.iter().find(|(k, _)| k.value == e) {
            Some((k, env)) => {
                l.name(src, k, "environment");
                Some((k.value.clone(), env))
            }
            None if names.is_empty() => {
                l.diags.push(miette::miette!(
                    help = "declare it under `environments:` in berth.yaml, or leave -e out",
                    "-e {e}: this repository declares no environments"
                ));
                None
            }
            None => {
                l.diags.push(miette::miette!(
                    help = format!("the environments are: {}", names.join(", ")),
                    "there is no environment named {e} in berth.yaml"
                ));
                None
            }
        },
    }
}

/// Applies an environment's overrides to the loaded deployments.
pub(super) fn apply_overrides(
    l: &mut Loader,
    src: &SourceFile,
    env: &EnvironmentFile,
    deployments: &mut [(Deployment, SourceFile, DeploymentFile)],
) {
    for (name, o) in &env.deployments {
        let Some((d, _, _)) = deployments
            .iter_mut()
            .find(|(d, _, _)| d.name == name.value)
        else {
            let declared: Vec<&str> = deployments
                .iter()
                .map(|(d, _, _)| d.name.as_str())
                .collect();
            l.report(
                src.error(
                    name,
                    format!("there is no deployment named {:?}", name.value),
                    "not a deployment",
                )
                .with_help(format!("the deployments are: {}", declared.join(", "))),
            );
            continue;
        };
        if let Some(r) = &o.replicas {
            d.replicas = r.value;
        }
        if let Some(h) = &o.hosts {
            d.placement.hosts = l.selector(src, h);
        }
        let needs = l.needs_secrets.is_none_or(|s| s.matches(&d.labels));
        l.secret_user = SecretUser::Deployment {
            name: d.name.clone(),
            labels: d.labels.clone(),
        };
        for (cname, c) in &o.containers {
            let Some(spec) = d.pod.containers.iter_mut().find(|s| s.name == cname.value) else {
                let names: Vec<&str> = d.pod.containers.iter().map(|s| s.name.as_str()).collect();
                l.report(
                    src.error(
                        cname,
                        format!("{} has no container {:?}", d.name, cname.value),
                        "not in the pod",
                    )
                    .with_help(format!("its containers are: {}", names.join(", "))),
                );
                continue;
            };
            if let Some(image) = &c.image {
                if image.value.trim().is_empty() || image.value.contains(char::is_whitespace) {
                    l.report(src.error(
                        image,
                        "invalid image reference",
                        "an image like registry/name:tag is needed",
                    ));
                }
                l.check_policy(src, image, |p| p.check_image(&image.value));
                spec.image = normalise_image(&image.value);
            }
            spec.env.extend(super::env::load_env(l, src, &c.env, needs));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::files;
    use super::*;

    const PROJECT: &str = "project: p\nenvironments:\n  staging:\n    inventory: staging.yaml\n    deployments:\n      web:\n        replicas: 1\n        containers:\n          app: {image: \"registry/web:rc\", env: {LOG: debug}}\n  production: {}\n";
    const WEB: &str = "name: web\nreplicas: 2\npod:\n  containers:\n    - {name: app, image: registry/web:1, env: {LOG: info, MODE: x}}\n";

    fn repo(project: &str) -> RepoFiles {
        let mut f = files(&[("web.yaml", WEB)]);
        f.files.insert(PROJECT_FILE.into(), project.into());
        f.files.insert(
            "staging.yaml".into(),
            "hosts:\n  - {name: s1, address: 198.18.9.1}\n".into(),
        );
        f
    }

    fn messages(r: Result<DesiredState, Diagnostics>) -> String {
        let d = r.expect_err("refused");
        d.reports
            .iter()
            .map(|r| format!("{r} {:?}", r.help().map(|h| h.to_string())))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn an_environment_has_its_inventory_overrides_and_project() {
        let s = load_for(&repo(PROJECT), Some("staging"), None, None).expect("valid");
        assert_eq!(
            (s.project.as_str(), s.environment.as_deref()),
            ("p-staging", Some("staging"))
        );
        assert_eq!(
            s.hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
            ["s1"]
        );
        let web = &s.deployments[0];
        assert_eq!(web.replicas, 1);
        let app = &web.pod.containers[0];
        assert_eq!(app.image, "registry/web:rc");
        assert_eq!(app.env["LOG"], EnvValue::Plain("debug".into()));
        assert_eq!(app.env["MODE"], EnvValue::Plain("x".into()));

        let prod = load_for(&repo(PROJECT), Some("production"), None, None).expect("valid");
        assert_eq!(prod.project, "p-production");
        assert_eq!(prod.deployments[0].replicas, 2);
        assert_eq!(prod.hosts.len(), 2, "the project's inventory");
    }

    #[test]
    fn an_environment_must_be_chosen_and_exist() {
        let none = messages(load_for(&repo(PROJECT), None, None, None));
        assert!(
            none.contains("declares environments (production, staging): choose one with -e"),
            "{none}"
        );
        let typo = messages(load_for(&repo(PROJECT), Some("stagign"), None, None));
        assert!(
            typo.contains("no environment named stagign") && typo.contains("production, staging"),
            "{typo}"
        );
        let plain = messages(load_for(
            &files(&[("web.yaml", WEB)]),
            Some("staging"),
            None,
            None,
        ));
        assert!(plain.contains("declares no environments"), "{plain}");
        let bad = PROJECT.replace("      web:\n", "      api:\n");
        let wrong = messages(load_for(&repo(&bad), Some("staging"), None, None));
        assert!(wrong.contains("no deployment named \"api\""), "{wrong}");
    }
}
