//! The floor for any tool that manages Docker hosts over SSH, which `scripts/bench-suite` times
//! beside berth as "the limit": an SSH session to every host at once (TCP, key exchange, public
//! key authentication, as berth opens them) and one Docker API request over each
//! (`GET /_ping` on a `direct-streamlocal` channel to the engine's socket). Nothing is listed,
//! compared or planned.
//!
//!   ssh_limit IDENTITY KNOWN_HOSTS USER@ADDRESS[:PORT]...
use berth::hosts::{docker, route, ssh};
use std::sync::Arc;
use std::time::Duration;

fn hop(spec: &str) -> route::Hop {
    let (user, rest) = spec.split_once('@').unwrap_or(("root", spec));
    let (address, port) = match rest.rsplit_once(':') {
        Some((a, p)) => (a, p.parse().expect("a port number")),
        None => (rest, 22),
    };
    route::Hop {
        address: address.to_string(),
        port,
        user: user.to_string(),
        identities: Vec::new(),
        known_hosts: None,
        connect_timeout: None,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: ssh_limit IDENTITY KNOWN_HOSTS USER@ADDRESS[:PORT]...");
        std::process::exit(2);
    }
    let options = ssh::SshOptions {
        known_hosts: args[1].clone().into(),
        accept_new_host_keys: false,
        identities: vec![args[0].clone().into()],
        key_text: None,
        connect_timeout: Duration::from_secs(30),
        command_timeout: Duration::from_secs(30),
        pull_timeout: Duration::from_secs(30),
        config: Arc::new(route::ClientConfig::default()),
    };
    let pings = args[2..].iter().map(|spec| {
        let hop = hop(spec);
        let options = options.clone();
        tokio::spawn(async move {
            let session = ssh::connect(&hop, &options, None)
                .await
                .map_err(|e| e.to_string())?;
            let (status, _) = docker::raw_json(
                options.command_timeout,
                &session,
                "/var/run/docker.sock",
                hyper::Method::GET,
                "/_ping",
                serde_json::Value::Null,
            )
            .await
            .map_err(|e| e.to_string())?;
            match status {
                200 => Ok(()),
                other => Err(format!("{}: /_ping answered {other}", hop.key())),
            }
        })
    });
    let results = futures_util::future::join_all(pings).await;
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|r| match r {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(e) => Some(e.to_string()),
        })
        .collect();
    if !failed.is_empty() {
        eprintln!("ssh_limit: {}", failed.join("; "));
        std::process::exit(1);
    }
}
