//! Why an operation stopped, and the exit code each reason is given (see the README).

/// Exit codes, one per way a run ends (the README's table).
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const CHANGES: u8 = 2;
    pub const ROLLED_BACK: u8 = 3;
    pub const LOCKED: u8 = 4;
    pub const STALE: u8 = 5;
    /// A second SIGINT or SIGTERM stopped a rollback half-way (128 + SIGINT, as shells do).
    pub const INTERRUPTED: u8 = 130;
}

/// An operation that did not run, or stopped before it changed anything.
#[derive(Debug)]
pub enum Error {
    /// Bad input, hosts that cannot be reached, a plan that must not run: exit 1.
    Refused(miette::Report),
    /// Someone else holds the project's lock: exit 4.
    Locked(String),
    /// The hosts are no longer as the plan saw them: exit 5, with what changed.
    Stale(Vec<String>),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Refused(_) => exit::ERROR,
            Error::Locked(_) => exit::LOCKED,
            Error::Stale(_) => exit::STALE,
        }
    }
}

impl From<miette::Report> for Error {
    fn from(report: miette::Report) -> Self {
        Error::Refused(report)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Refused(report) => write!(f, "{report}"),
            Error::Locked(why) => write!(f, "{why}"),
            Error::Stale(what) => write!(
                f,
                "the plan is stale:\n  {}\nrun berth plan again",
                what.join("\n  ")
            ),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// For commands whose only failures are refusals (plan, drift, status): the diagnostic.
impl From<Error> for miette::Report {
    fn from(e: Error) -> Self {
        match e {
            Error::Refused(report) => report,
            other => miette::miette!("{other}"),
        }
    }
}
