//! Bastions as the inventory and OpenSSH's ProxyJump write them. Pure.

/// One entry of a ProxyJump list, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jump {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Parses a ProxyJump list: `[user@]host[:port]` entries separated by commas, in the order
/// they are gone through; `none` (or nothing) is no bastion.
pub fn parse_jumps(spec: &str) -> Result<Vec<Jump>, String> {
    let spec = spec.trim();
    if spec.is_empty() || spec.eq_ignore_ascii_case("none") {
        return Ok(vec![]);
    }
    spec.split(',')
        .map(|entry| parse_jump(entry.trim()))
        .collect()
}

fn parse_jump(entry: &str) -> Result<Jump, String> {
    let entry = entry.strip_prefix("ssh://").unwrap_or(entry);
    let (user, rest) = match entry.rsplit_once('@') {
        Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
        Some(_) => return Err(format!("{entry:?}: the user before @ is empty")),
        None => (None, entry),
    };
    // `[v6]:port`, `host:port` or `host`.
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        match inner.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, port)) => (host, Some(port.trim_start_matches(':'))),
            None => return Err(format!("{entry:?}: an unclosed [")),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            _ => (rest, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{entry:?}: a bastion is [user@]host[:port]"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("{entry:?}: the port {p:?} is not 1 to 65535")),
        },
    };
    Ok(Jump {
        user,
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_lists_parse_or_say_why() {
        let j = parse_jumps("a, bob@b:2200 ,[2001:db8::1]:22").unwrap();
        assert_eq!(j.len(), 3);
        assert_eq!(
            (j[1].user.as_deref(), j[1].host.as_str(), j[1].port),
            (Some("bob"), "b", Some(2200))
        );
        assert_eq!((j[2].host.as_str(), j[2].port), ("2001:db8::1", Some(22)));
        assert!(parse_jumps("none").unwrap().is_empty());
        for bad in ["a:0", "a:x", "@a", "a,,b", "[::1"] {
            assert!(parse_jumps(bad).is_err(), "{bad}");
        }
    }
}
