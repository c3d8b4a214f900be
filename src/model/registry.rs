//! Registries images are pulled from, and the logins berth.yaml declares for them (the
//! password by secret name only: its value is read at pull time and goes nowhere else).

use serde::{Deserialize, Serialize};

/// The registry Docker pulls an image without a registry name from.
pub const DOCKER_HUB: &str = "docker.io";

/// What a pull from a registry authenticates with, as the operator's Docker configuration or
/// berth.yaml's `registries:` give it. It goes to the engine with each pull and nowhere else:
/// its `Debug` shows only the server.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Password {
        server: String,
        username: String,
        password: String,
    },
    IdentityToken {
        server: String,
        token: String,
    },
}

impl Credentials {
    pub fn server(&self) -> &str {
        match self {
            Credentials::Password { server, .. } | Credentials::IdentityToken { server, .. } => {
                server
            }
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials for {} (not shown)", self.server())
    }
}

/// A login for pulls from one registry, as `registries:` in berth.yaml declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegistryLogin {
    /// The registry's host (and port), as image references name it: `ghcr.io`,
    /// `registry.example.com:5000`, `docker.io`.
    pub server: String,
    pub username: String,
    /// The secret that holds the password or token.
    pub password_secret: String,
}

/// The registry an image reference pulls from, by Docker's rules: the part before the first
/// `/` when it looks like a host (has a `.` or a `:`, or is `localhost`), Docker Hub otherwise.
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => match first {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
            host => host,
        },
        _ => DOCKER_HUB,
    }
}

/// A registry as a user may write it (`https://ghcr.io/`, `GHCR.io`): the host as image
/// references name it.
pub fn normalize_server(server: &str) -> String {
    let host = server
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let host = host.strip_suffix("/v1").unwrap_or(host);
    match host.to_ascii_lowercase().as_str() {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        lower => lower.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_their_secret() {
        let c = Credentials::Password {
            server: "registry.example:5000".into(),
            username: "deploy".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{c:?}");
        assert_eq!(shown, "Credentials for registry.example:5000 (not shown)");
        let token = Credentials::IdentityToken {
            server: "ghcr.io".into(),
            token: "t0k3n".into(),
        };
        assert!(!format!("{token:?}").contains("t0k3n"));
    }

    #[test]
    fn an_image_pulls_from_the_registry_its_first_part_names() {
        for (image, registry) in [
            ("nginx:1.27", DOCKER_HUB),
            ("library/nginx", DOCKER_HUB),
            ("acme/web:2", DOCKER_HUB),
            ("ghcr.io/acme/web:2", "ghcr.io"),
            ("198.18.0.1:5001/berth-lab/web:v3", "198.18.0.1:5001"),
            ("localhost/web", "localhost"),
            (
                "registry.example.com:5000/web@sha256:abcd",
                "registry.example.com:5000",
            ),
            ("index.docker.io/library/nginx", DOCKER_HUB),
        ] {
            assert_eq!(registry_of(image), registry, "{image}");
        }
    }

    #[test]
    fn an_image_name_is_its_reference_without_tag_or_digest() {
        use crate::model::image_name;
        assert_eq!(image_name("nginx:1.27"), "nginx");
        assert_eq!(
            image_name("registry:5000/app/web:2"),
            "registry:5000/app/web"
        );
        assert_eq!(image_name("registry:5000/app/web"), "registry:5000/app/web");
        assert_eq!(image_name("web:2@sha256:ab"), "web");
        assert_eq!(image_name("ghcr.io/a/web@sha256:ab"), "ghcr.io/a/web");
    }

    #[test]
    fn a_server_is_named_as_images_name_it() {
        assert_eq!(normalize_server("https://GHCR.io/"), "ghcr.io");
        assert_eq!(normalize_server("https://index.docker.io/v1/"), DOCKER_HUB);
        assert_eq!(normalize_server("198.18.0.1:5001"), "198.18.0.1:5001");
    }
}
