//! Credentials for the registries a plan pulls from, found where berth runs: a login in
//! berth.yaml (its password a secret), or Docker's own configuration (`~/.docker/config.json`
//! or `$DOCKER_CONFIG`: `auths`, `credHelpers`, `credsStore` and their `docker-credential-*`
//! helpers), as the Docker CLI finds them. They go to the engine with each pull and nowhere
//! else.

use super::error::Result;
use crate::hosts::Logins;
use crate::model::registry::{registry_of, Credentials, RegistryLogin, DOCKER_HUB};
use crate::repo::load::secret_help;
use docker_credential::{CredentialRetrievalError, DockerCredential};
use miette::miette;
use std::collections::BTreeSet;

/// The credentials for each registry these images are pulled from, where some are found.
/// A registry without any is pulled from anonymously.
pub fn logins<'a>(
    images: impl IntoIterator<Item = &'a str>,
    declared: &[RegistryLogin],
    secret: &dyn Fn(&str) -> Option<String>,
) -> Result<Logins> {
    let servers: BTreeSet<&str> = images.into_iter().map(registry_of).collect();
    let mut logins = Logins::new();
    for server in servers {
        let found = match declared.iter().find(|l| l.server == server) {
            Some(login) => Some(from_berth_yaml(login, secret)?),
            None => from_docker_config(server)?,
        };
        if let Some(credentials) = found {
            logins.insert(server.to_string(), credentials);
        }
    }
    Ok(logins)
}

fn from_berth_yaml(
    login: &RegistryLogin,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials> {
    let name = &login.password_secret;
    let Some(password) = secret(name) else {
        return Err(miette!(
            help = secret_help(name),
            "secret {name:?} (the password of registry {}) has no value",
            login.server
        )
        .into());
    };
    Ok(Credentials::Password {
        server: login.server.clone(),
        username: login.username.clone(),
        password,
    })
}

/// The key Docker's configuration files a registry under.
fn config_key(server: &str) -> &str {
    if server == DOCKER_HUB {
        "https://index.docker.io/v1/"
    } else {
        server
    }
}

fn from_docker_config(server: &str) -> Result<Option<Credentials>> {
    match docker_credential::get_credential(config_key(server)) {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Ok(Some(Credentials::Password {
                server: server.to_string(),
                username,
                password,
            }))
        }
        Ok(DockerCredential::IdentityToken(token)) => Ok(Some(Credentials::IdentityToken {
            server: server.to_string(),
            token,
        })),
        Err(
            CredentialRetrievalError::NoCredentialConfigured
            | CredentialRetrievalError::ConfigNotFound
            | CredentialRetrievalError::ConfigReadError,
        ) => Ok(None),
        // A helper's output is not repeated: it could hold what it was asked for.
        Err(CredentialRetrievalError::HelperFailure { helper, stderr, .. }) => Err(miette!(
            help = format!("check `{helper} list`, or log in again with `docker login {server}`"),
            "the Docker credential helper {helper} failed for registry {server}: {}",
            stderr.trim()
        )
        .into()),
        Err(e) => {
            Err(miette!("cannot read the Docker credentials for registry {server}: {e}").into())
        }
    }
}
