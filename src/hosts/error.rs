//! What went wrong reaching a host or asking its engine, by kind: whether the host could be
//! reached at all, whether its engine went silent (then it is not asked again in this run),
//! or what its engine said. The words are for people; callers decide on the variant.

/// Why a host could not be reached, or what its engine could not do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// How to reach the host is not usable: its SSH config entry, its keys.
    #[error("{0}")]
    Route(String),
    /// The SSH connection, its handshake, the host's key or the authentication failed (here
    /// or at a bastion on the way).
    #[error("{0}")]
    Ssh(String),
    /// The engine missed a deadline in this run (in this call, or earlier: then it was not
    /// asked); it is not asked again in this run.
    #[error("{said}")]
    Silent { said: String },
    /// The engine speaks no API berth can use.
    #[error("{0}")]
    Api(String),
    /// The engine could not be reached over the session, or it answered with an error.
    #[error("{0}")]
    Engine(String),
}

impl HostError {
    /// The same kind of error, its words prefixed with what it was part of.
    pub fn within(self, what: &str) -> HostError {
        use HostError::*;
        match self {
            Route(e) => Route(format!("{what}: {e}")),
            Ssh(e) => Ssh(format!("{what}: {e}")),
            Api(e) => Api(format!("{what}: {e}")),
            Engine(e) => Engine(format!("{what}: {e}")),
            // Said as the deadline says it: the host's name comes from the caller.
            silent @ Silent { .. } => silent,
        }
    }
}

impl From<bollard::errors::Error> for HostError {
    fn from(e: bollard::errors::Error) -> HostError {
        HostError::Engine(e.to_string())
    }
}

/// Errors on several hosts, each with its host's name, said as `h1: …; h2: …`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostErrors(pub Vec<(String, HostError)>);

impl HostErrors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for HostErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (host, e)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{host}: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for HostErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_host_says_so_once_and_keeps_its_kind_within_a_larger_error() {
        let said = "the Docker engine did not answer within 8s (--command-timeout)";
        let e = HostError::Silent { said: said.into() };
        assert_eq!(e.to_string(), said);
        assert_eq!(e.clone().within("observing"), e);
        let engine = HostError::Engine("404 no such network".into()).within("reading the lock");
        assert_eq!(
            engine,
            HostError::Engine("reading the lock: 404 no such network".into())
        );
    }

    #[test]
    fn errors_on_several_hosts_name_each_host() {
        let all = HostErrors(vec![
            ("h1".into(), HostError::Engine("gone".into())),
            ("h2".into(), HostError::Ssh("refused".into())),
        ]);
        assert_eq!(all.to_string(), "h1: gone; h2: refused");
        assert!(HostErrors::default().is_empty());
    }
}
