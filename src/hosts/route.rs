//! How to reach a host: the inventory's address, user and port, read through the OpenSSH
//! client configuration (`~/.ssh/config` or `--ssh-config`) the way `ssh` reads it for the
//! options that matter here, and the bastions (ProxyJump) to go through.

use super::HostError;
use crate::model::jump::parse_jumps;
use crate::model::Host;
use ssh2_config::{ParseRule, SshConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One SSH server on the way: a bastion or the host itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The address (or DNS name) to connect to, after `HostName`.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Identity files the configuration names for it (tried after `-i`).
    pub identities: Vec<PathBuf>,
    /// `UserKnownHostsFile`, when the configuration names one.
    pub known_hosts: Option<PathBuf>,
    /// `ConnectTimeout`, when the configuration gives one.
    pub connect_timeout: Option<Duration>,
}

impl Hop {
    /// `user@address:port`, which names a hop in messages and in the pool of bastions.
    pub fn key(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }
}

/// The bastions to go through, in order, and the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub jumps: Vec<Hop>,
    pub target: Hop,
}

/// The OpenSSH client configuration, read once.
#[derive(Debug, Default)]
pub struct ClientConfig {
    config: Option<SshConfig>,
    home: PathBuf,
}

impl ClientConfig {
    /// Reads `path`, or `~/.ssh/config` when none is given and it exists. Options berth does
    /// not use are accepted and ignored, as they are meant for `ssh` itself.
    pub fn read(path: Option<&Path>, home: &Path) -> Result<ClientConfig, HostError> {
        let default = home.join(".ssh").join("config");
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (default, false),
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ClientConfig {
                    config: None,
                    home: home.to_path_buf(),
                })
            }
            Err(e) => {
                return Err(HostError::Route(format!(
                    "cannot read the SSH config {}: {e}",
                    path.display()
                )))
            }
        };
        let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
        let config = SshConfig::default()
            .parse(&mut std::io::BufReader::new(file), rules)
            .map_err(|e| {
                HostError::Route(format!(
                    "the SSH config {} cannot be read: {e}",
                    path.display()
                ))
            })?;
        Ok(ClientConfig {
            config: Some(config),
            home: home.to_path_buf(),
        })
    }

    /// From text (tests).
    pub fn parse(text: &str, home: &Path) -> Result<ClientConfig, HostError> {
        let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
        let config = SshConfig::default()
            .parse(&mut text.as_bytes(), rules)
            .map_err(|e| HostError::Route(format!("the SSH config cannot be read: {e}")))?;
        Ok(ClientConfig {
            config: Some(config),
            home: home.to_path_buf(),
        })
    }

    /// The route to an inventory host. The inventory's `address` may be an alias of the
    /// configuration (`Host` patterns). A port or user the inventory sets (other than 22 and
    /// root, its defaults) wins over the configuration's, as command-line options win in
    /// `ssh`. `proxy_jump` in the inventory wins over `ProxyJump`; `none` means none.
    pub fn route(&self, host: &Host) -> Result<Route, HostError> {
        let port = (host.port != 22).then_some(host.port);
        let user = (host.user != "root").then(|| host.user.clone());
        let target = self.hop(&host.address, user, port);
        let jumps = match host.proxy_jump.as_deref() {
            Some(spec) => spec.to_string(),
            None => self.proxy_jump_of(&host.address).unwrap_or_default(),
        };
        let jumps = parse_jumps(&jumps)
            .map_err(HostError::Route)?
            .into_iter()
            .map(|j| self.hop(&j.host, j.user, j.port))
            .collect();
        Ok(Route { jumps, target })
    }

    /// A server named as `ssh` would take it: its alias looked up in the configuration.
    fn hop(&self, name: &str, user: Option<String>, port: Option<u16>) -> Hop {
        let params = self.config.as_ref().map(|c| c.query(name));
        let params = params.as_ref();
        let field = |key: &str| {
            params
                .and_then(|p| p.unsupported_fields.get(key))
                .and_then(|args| args.first())
                .cloned()
        };
        Hop {
            address: params
                .and_then(|p| p.host_name.clone())
                .unwrap_or_else(|| name.to_string()),
            port: port.or_else(|| params.and_then(|p| p.port)).unwrap_or(22),
            user: user
                .or_else(|| params.and_then(|p| p.user.clone()))
                .unwrap_or_else(|| "root".to_string()),
            identities: params
                .and_then(|p| p.identity_file.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|p| self.expand(&p))
                .collect(),
            known_hosts: field("userknownhostsfile")
                .filter(|f| f != "none")
                .map(|f| self.expand(Path::new(&f))),
            connect_timeout: params.and_then(|p| p.connect_timeout),
        }
    }

    fn proxy_jump_of(&self, name: &str) -> Option<String> {
        let jumps = self.config.as_ref()?.query(name).proxy_jump?;
        Some(jumps.join(","))
    }

    /// `~/…` as the user's home.
    fn expand(&self, path: &Path) -> PathBuf {
        match path.strip_prefix("~") {
            Ok(rest) => self.home.join(rest),
            Err(_) => path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(address: &str, port: u16, user: &str, jump: Option<&str>) -> Host {
        Host {
            name: "h".into(),
            address: address.into(),
            port,
            user: user.into(),
            labels: Default::default(),
            docker_socket: "/var/run/docker.sock".into(),
            proxy_jump: jump.map(str::to_string),
        }
    }

    const CONFIG: &str = "
Host web1
    HostName 10.0.0.11
    User deploy
    Port 2222
    IdentityFile ~/.ssh/web_key
    ProxyJump jump

Host jump
    HostName bastion.example.com
    User ops
    UserKnownHostsFile ~/.ssh/bastion_hosts
    ConnectTimeout 5

Host *.internal
    ProxyJump ops@bastion.example.com:2200,inner
    User app

Host *
    IdentityFile ~/.ssh/id_default
";

    fn config() -> ClientConfig {
        ClientConfig::parse(CONFIG, Path::new("/home/me")).unwrap()
    }

    #[test]
    fn an_alias_is_read_as_ssh_reads_it_with_its_bastion() {
        let r = config().route(&host("web1", 22, "root", None)).unwrap();
        assert_eq!(r.target.address, "10.0.0.11");
        assert_eq!((r.target.port, r.target.user.as_str()), (2222, "deploy"));
        // The parser expands `~` itself, as the user running berth.
        let names: Vec<String> = r
            .target
            .identities
            .iter()
            .map(|p| {
                assert!(p.is_absolute(), "{p:?}");
                p.file_name().unwrap().to_string_lossy().to_string()
            })
            .collect();
        assert_eq!(names, ["web_key", "id_default"]);
        assert_eq!(r.jumps.len(), 1);
        let jump = &r.jumps[0];
        assert_eq!(jump.key(), "ops@bastion.example.com:22");
        assert_eq!(
            jump.known_hosts,
            Some(PathBuf::from("/home/me/.ssh/bastion_hosts"))
        );
        assert_eq!(jump.connect_timeout, Some(Duration::from_secs(5)));
    }

    #[test]
    fn the_inventory_wins_over_the_config_and_none_means_direct() {
        let r = config()
            .route(&host("web1", 2200, "admin", Some("none")))
            .unwrap();
        assert_eq!(r.target.key(), "admin@10.0.0.11:2200");
        assert!(r.jumps.is_empty());
        let r = config()
            .route(&host("10.1.1.1", 22, "root", Some("ops@198.18.0.2")))
            .unwrap();
        assert_eq!(r.target.key(), "root@10.1.1.1:22");
        assert_eq!(r.jumps[0].key(), "ops@198.18.0.2:22");
    }

    #[test]
    fn a_chain_of_bastions_is_gone_through_in_order() {
        let r = config()
            .route(&host("db.internal", 22, "root", None))
            .unwrap();
        assert_eq!(r.target.key(), "app@db.internal:22");
        let keys: Vec<String> = r.jumps.iter().map(Hop::key).collect();
        assert_eq!(keys, ["ops@bastion.example.com:2200", "root@inner:22"]);
    }

    #[test]
    fn without_a_config_a_host_is_its_inventory_entry() {
        let none = ClientConfig::default();
        let r = none.route(&host("198.18.0.11", 22, "root", None)).unwrap();
        assert_eq!(r.target.key(), "root@198.18.0.11:22");
        assert!(r.jumps.is_empty() && r.target.identities.is_empty());
    }
}
