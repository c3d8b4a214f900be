//! The inventory: hosts, their addresses, users, keys and labels. Pure.

use super::*;

pub(super) fn load_hosts(l: &mut Loader, src: &SourceFile) -> Vec<Host> {
    let Some(inv) = l.parse::<InventoryFile>(src) else {
        return vec![];
    };
    let mut hosts: Vec<Host> = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut addresses: HashMap<(String, u16), (String, u64)> = HashMap::new();
    for h in &inv.hosts {
        l.name(src, &h.name, "host");
        if let Some(line) = seen.insert(h.name.value.clone(), h.name.referenced.line()) {
            l.report(
                src.error(
                    &h.name,
                    format!("two hosts are named {:?}", h.name.value),
                    "declared again here",
                )
                .with_help(format!("first declared on line {line}")),
            );
        }
        let address = &h.address.value;
        if address.trim().is_empty() {
            l.report(src.error(
                &h.address,
                "empty host address",
                "an address or DNS name is needed",
            ));
        } else if let Some(bad) = address.chars().find(|c| !is_address_char(*c)) {
            l.report(
                src.error(&h.address, format!("invalid host address {address:?}"), format!("{bad:?} cannot be in an address"))
                    .with_help("an IPv4 or IPv6 address, or a DNS name: 203.0.113.10, 2001:db8::10, web1.example.com"),
            );
        }
        if let Some(p) = h.port.as_ref().filter(|p| p.value == 0) {
            l.report(src.error(p, "an SSH port is 1 to 65535", "port 0"));
        }
        if let Some(u) = (h.user.as_ref()).filter(|u| {
            !u.value.trim().is_empty() && u.value.contains(|c: char| c.is_whitespace() || c == '@')
        }) {
            l.report(src.error(
                u,
                format!("invalid SSH user {:?}", u.value),
                "no spaces or @ in a user name",
            ));
        }
        if let Some(u) = h.user.as_ref().filter(|u| u.value.trim().is_empty()) {
            l.report(
                src.error(u, "empty SSH user", "no user name")
                    .with_help("leave `user` out for root, or name the user"),
            );
        }
        let port = h.port.as_ref().map_or(22, |p| p.value);
        let endpoint = (h.address.value.trim().to_ascii_lowercase(), port);
        if let Some((other, line)) = addresses.get(&endpoint) {
            l.report(
                src.error(
                    &h.address,
                    format!(
                        "hosts {other} and {} have the same address and port",
                        h.name.value
                    ),
                    "same as another host",
                )
                .with_help(format!(
                    "{other} (line {line}) is {}:{port} too; one machine is one host",
                    h.address.value
                )),
            );
        } else {
            addresses.insert(
                endpoint,
                (h.name.value.clone(), h.address.referenced.line()),
            );
        }
        if let Some(j) = &h.proxy_jump {
            if let Err(why) = crate::model::jump::parse_jumps(&j.value) {
                l.report(
                    src.error(j, "invalid proxy_jump", why)
                        .with_help("bastions are [user@]host[:port], comma-separated, in the order they are gone through"),
                );
            }
        }
        hosts.push(Host {
            name: h.name.value.clone(),
            address: h.address.value.clone(),
            port,
            user: h
                .user
                .as_ref()
                .map_or_else(|| "root".into(), |u| u.value.clone()),
            labels: l.labels(src, &h.labels),
            docker_socket: h
                .docker_socket
                .clone()
                .unwrap_or_else(|| "/var/run/docker.sock".into()),
            proxy_jump: h.proxy_jump.as_ref().map(|j| j.value.clone()),
        });
    }
    hosts
}

/// What a host address may hold: a DNS name's letters, digits, `-`, `.` and `_`, or an IPv6
/// address's hex digits and `:` (with `[` `]` around it, or a `%` zone).
fn is_address_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':' | '[' | ']' | '%')
}
