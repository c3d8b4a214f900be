//! `registries:` in berth.yaml: a login per private registry, its password a secret.

use super::*;
use crate::model::registry::{normalize_server, registry_of, RegistryLogin};

/// Checks each login; a password that is not `{secret: NAME}` is refused (a password in Git
/// is a leak), and so is a secret without a value when a deployment that is planned pulls
/// from that registry.
pub(super) fn load_registries(
    l: &mut Loader,
    src: &SourceFile,
    raw: &[RegistryFile],
    deployments: &[Deployment],
) -> Vec<RegistryLogin> {
    let mut logins: Vec<RegistryLogin> = Vec::new();
    for r in raw {
        let server = normalize_server(&r.server.value);
        if server.is_empty() || server.contains(['/', ' ']) {
            l.report(
                src.error(&r.server, "invalid registry server", "not a registry host")
                    .with_help("a registry is named as images name it: ghcr.io, registry.example.com:5000, docker.io"),
            );
            continue;
        }
        if logins.iter().any(|o| o.server == server) {
            l.report(src.error(
                &r.server,
                format!("registry {server} has two logins"),
                "declared again here",
            ));
            continue;
        }
        l.check_policy(src, &r.server, |p| p.check_login(&server));
        let secret = match &r.password.value {
            PasswordFile::Secret(SecretRef { secret }) if secret_name_problem(secret).is_some() => {
                let why = secret_name_problem(secret).unwrap_or_default();
                l.report(src.error(&r.password, format!("invalid secret name {secret:?}"), why));
                continue;
            }
            PasswordFile::Secret(SecretRef { secret }) => secret.clone(),
            PasswordFile::Other(_) => {
                l.report(
                    src.error(
                        &r.password,
                        format!("the password of registry {server} is not a secret reference"),
                        "a password in Git",
                    )
                    .with_help(
                        "write `password: {secret: NAME}` and set the secret where berth runs",
                    ),
                );
                continue;
            }
        };
        let user = SecretUser::Registry(server.clone());
        let refused = l.policy.map(|p| p.check_secret(&user, &secret));
        if let Some(Err(refusal)) = refused {
            let e = src.error(&r.password, refusal.message, "refused by the policy");
            l.report(e.with_help(refusal.rule));
            continue;
        }
        let used = deployments.iter().any(|d| {
            d.pod
                .containers
                .iter()
                .any(|c| registry_of(&c.image) == server)
        });
        if let Some(find) = l.secrets.filter(|_| used) {
            if find(&secret).is_none() {
                l.report(
                    src.error(
                        &r.password,
                        format!(
                            "secret {secret:?} (the password of registry {server}) has no value"
                        ),
                        "secret not set",
                    )
                    .with_help(secret_help(&secret)),
                );
            }
        }
        logins.push(RegistryLogin {
            server,
            username: r.username.clone(),
            password_secret: secret,
        });
    }
    logins
}
