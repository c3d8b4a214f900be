//! The edge's HAProxy configuration, made from its backends. Pure.
//!
//! Why HAProxy (docs/ingress.md says more): server weights, a drain that lets in-flight
//! requests finish, health checks per server, and a reload that keeps its listening sockets
//! (master-worker mode, `expose-fd listeners`), so a new configuration or a new edge container
//! takes over without refusing a connection. Its replacement container fetches the listeners
//! from the old one over the admin socket (`-x`), in the volume both mount.

use super::ingress::{Backend, EDGE_DIR};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The command an edge container runs.
pub fn edge_command() -> Vec<String> {
    [
        "haproxy",
        "-W",
        "-db",
        "-f",
        &format!("{EDGE_DIR}/{}", super::ingress::EDGE_CONFIG),
        "-x",
        &format!("{EDGE_DIR}/admin.sock"),
    ]
    .map(String::from)
    .to_vec()
}

/// The backend for requests no ingress takes (a host name nobody declared).
const NOT_FOUND: &str = "berth-not-found";

/// A HAProxy backend or frontend name for a deployment or port.
pub fn backend_name(deployment: &str) -> String {
    format!("be-{deployment}")
}

/// Where the configuration says its generation, filled in once the files it names are known
/// (`with_generation`).
pub const GENERATION_MARK: &str = "@berth-generation@";

/// The configuration with its generation filled in.
pub fn with_generation(config: &str, generation: &str) -> String {
    config.replace(GENERATION_MARK, generation)
}

/// A file the edge needs beside its configuration: its path and what fills it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeFile {
    pub path: String,
    pub content: EdgeContent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeContent {
    Text(String),
    /// A secret's value (a certificate and its key), read when the file is written.
    Secret(String),
}

/// The bytes of each file, secrets read through `secret`.
pub fn file_bytes(
    files: &[EdgeFile],
    secret: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    files
        .iter()
        .map(|f| {
            let bytes = match &f.content {
                EdgeContent::Text(t) => t.clone().into_bytes(),
                EdgeContent::Secret(name) => secret(name)
                    .ok_or_else(|| {
                        format!("secret {name} has no value (a certificate of the edge)")
                    })?
                    .into_bytes(),
            };
            Ok((f.path.clone(), bytes))
        })
        .collect()
}

/// The generation of a configuration (with `GENERATION_MARK`) and its files: a short hash of
/// all of it, so a new certificate is a new generation too.
pub fn generation(config: &str, files: &[(String, Vec<u8>)]) -> String {
    let mut digest = config.as_bytes().to_vec();
    for (path, bytes) in files {
        digest.extend(path.as_bytes());
        digest.extend(bytes);
    }
    super::short_hash(&digest)
}

/// The certificate of a deployment's ingress, in the edge's volume.
fn certificate_path(deployment: &str) -> String {
    format!("{EDGE_DIR}/certs/{deployment}.pem")
}

/// The list of the certificates served on an HTTPS port.
fn certificate_list_path(port: u16) -> String {
    format!("{EDGE_DIR}/certs/port-{port}.list")
}

/// The configuration (with `GENERATION_MARK` for its generation) and the files it names.
pub fn edge_files(backends: &[Backend], admin_port: u16) -> (String, Vec<EdgeFile>) {
    let config = config(backends, admin_port, GENERATION_MARK);
    let mut files = Vec::new();
    let mut lists: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for b in backends {
        if let Some(secret) = &b.ingress.tls {
            let path = certificate_path(&b.deployment);
            lists.entry(b.ingress.port).or_default().push(path.clone());
            files.push(EdgeFile {
                path,
                content: EdgeContent::Secret(secret.clone()),
            });
        }
    }
    for (port, paths) in lists {
        files.push(EdgeFile {
            path: certificate_list_path(port),
            content: EdgeContent::Text(paths.join("\n") + "\n"),
        });
    }
    (config, files)
}

/// The configuration for these backends. `generation` is what the edge answers on its admin
/// port, so berth can tell when a reload has taken hold.
pub fn config(backends: &[Backend], admin_port: u16, generation: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "# Written by berth; every apply rewrites it.\n\
         global\n\
         \x20   master-worker\n\
         \x20   stats socket {EDGE_DIR}/admin.sock mode 600 level admin expose-fd listeners\n\
         \x20   hard-stop-after 60s\n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         \x20   timeout http-request 10s\n\
         \x20   retries 3\n\
         \x20   option redispatch 1\n\
         \x20   default-server inter 1s fall 2 rise 1\n\
         listen berth-admin\n\
         \x20   bind 127.0.0.1:{admin_port}\n\
         \x20   http-request return status 200 content-type text/plain string \"generation {generation}\" if {{ path / }}\n\
         \x20   stats enable\n\
         \x20   stats uri /stats\n"
    );
    // One frontend per public port; backends chosen by Host header where names are given.
    let mut by_port: BTreeMap<u16, Vec<&Backend>> = BTreeMap::new();
    for b in backends {
        by_port.entry(b.ingress.port).or_default().push(b);
    }
    for (port, list) in &by_port {
        let tls = if list.iter().any(|b| b.ingress.tls.is_some()) {
            format!(" ssl crt-list {}", certificate_list_path(*port))
        } else {
            String::new()
        };
        let _ = writeln!(out, "frontend port-{port}\n    bind :{port}{tls}");
        let mut default = None;
        for b in list {
            if b.ingress.hostnames.is_empty() {
                default = Some(b);
                continue;
            }
            let _ = writeln!(
                out,
                "    use_backend {} if {{ hdr(host),field(1,:) -i {} }}",
                backend_name(&b.deployment),
                b.ingress.hostnames.join(" ")
            );
        }
        match default {
            Some(b) => {
                let _ = writeln!(out, "    default_backend {}", backend_name(&b.deployment));
            }
            None => {
                let _ = writeln!(out, "    default_backend {NOT_FOUND}");
            }
        }
    }
    let _ = writeln!(
        out,
        "backend {NOT_FOUND}\n    http-request deny deny_status 404"
    );
    for b in backends {
        let _ = writeln!(
            out,
            "backend {}\n    balance roundrobin\n    option httpchk GET {}",
            backend_name(&b.deployment),
            b.ingress.health_path
        );
        for s in &b.servers {
            let _ = writeln!(
                out,
                "    server {} {}:{} weight {} check",
                s.pod, s.address, s.port, s.weight
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ingress::{Ingress, Scope, Server};

    fn backend(deployment: &str, hostnames: &[&str], servers: &[(&str, u32)]) -> Backend {
        Backend {
            deployment: deployment.into(),
            ingress: Ingress {
                port: 80,
                hostnames: hostnames.iter().map(|s| s.to_string()).collect(),
                container_port: 8080,
                health_path: "/healthz".into(),
                scope: Scope::Fleet,
                tls: None,
            },
            servers: servers
                .iter()
                .map(|(p, w)| Server {
                    pod: p.to_string(),
                    address: "198.18.0.12".into(),
                    port: 30001,
                    weight: *w,
                })
                .collect(),
        }
    }

    #[test]
    fn one_frontend_per_port_routes_by_host_name_with_a_default() {
        let cfg = config(
            &[
                backend("web", &[], &[("web-a-1", 75), ("web-b-2", 25)]),
                backend("api", &["api.example.com"], &[]),
            ],
            8405,
            "7",
        );
        assert_eq!(cfg.matches("frontend port-80").count(), 1, "{cfg}");
        assert!(cfg.contains("use_backend be-api if { hdr(host),field(1,:) -i api.example.com }"));
        assert!(cfg.contains("default_backend be-web"));
        assert!(cfg.contains("server web-b-2 198.18.0.12:30001 weight 25 check"));
        assert!(cfg.contains("string \"generation 7\""));
        assert!(cfg.contains("option httpchk GET /healthz"));
    }

    #[test]
    fn a_port_with_only_named_hosts_answers_others_404() {
        let cfg = config(&[backend("api", &["api.example.com"], &[])], 8405, "1");
        assert!(cfg.contains("default_backend berth-not-found"), "{cfg}");
    }
}

#[cfg(test)]
mod tls_tests {
    use super::*;
    use crate::model::ingress::{Ingress, Scope};

    #[test]
    fn an_https_port_lists_its_certificates_and_each_comes_from_its_secret() {
        let backend = Backend {
            deployment: "shop".into(),
            ingress: Ingress {
                port: 443,
                hostnames: vec!["shop.example.com".into()],
                container_port: 8080,
                health_path: "/".into(),
                scope: Scope::Fleet,
                tls: Some("SHOP_TLS".into()),
            },
            servers: vec![],
        };
        let (config, files) = edge_files(&[backend], 8405);
        assert!(
            config.contains("bind :443 ssl crt-list /run/berth-edge/certs/port-443.list"),
            "{config}"
        );
        assert!(config.contains(GENERATION_MARK));
        assert_eq!(
            files,
            [
                EdgeFile {
                    path: "/run/berth-edge/certs/shop.pem".into(),
                    content: EdgeContent::Secret("SHOP_TLS".into()),
                },
                EdgeFile {
                    path: "/run/berth-edge/certs/port-443.list".into(),
                    content: EdgeContent::Text("/run/berth-edge/certs/shop.pem\n".into()),
                },
            ]
        );
        assert!(with_generation(&config, "abc").contains("string \"generation abc\""));
    }
}
