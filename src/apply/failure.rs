//! How a step fails and what an apply waited for: the values the executor, the steps and
//! `sync` share.

use crate::hosts::engine::OpError;
use std::time::Duration;

/// Why a step failed, with what the user needs to see (logs, health output).
#[derive(Debug, Clone)]
pub struct StepFailure {
    pub host: String,
    pub message: String,
    pub details: String,
    pub kind: FailureKind,
}

/// What a step's failure says of the revision it rolls out: what `sync` and the history
/// decide on (its message is for people only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A verdict on the new pods: a health gate or an analysis they failed, a job of the
    /// revision that failed or ran out of time. The revision is marked failed: `sync` does
    /// not retry it until Git changes (or `--retry`).
    Verdict,
    /// A fault of a host, the network, the engine or berth: tried again by the next run.
    Fault,
    /// The operator stopped it (SIGINT, SIGTERM), or the lock was lost: tried again.
    Interrupted,
}

/// Time an apply spent waiting, by what for (per wave, the longest host of each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waits {
    /// What the strategy asked for: health gates, drains, pauses, analyses.
    pub strategy: Duration,
    /// Old pods stopping: SIGTERM, then SIGKILL once the stop timeout is over.
    pub stopping: Duration,
}

impl Waits {
    pub(super) fn longest(self, other: Waits) -> Waits {
        Waits {
            strategy: self.strategy.max(other.strategy),
            stopping: self.stopping.max(other.stopping),
        }
    }
}

impl std::ops::AddAssign for Waits {
    fn add_assign(&mut self, other: Waits) {
        self.strategy += other.strategy;
        self.stopping += other.stopping;
    }
}

/// Why a step failed: what went wrong, what the user needs to see of it (the pod's last
/// log lines, its health check's output), and what kind of failure it is.
pub(super) struct StepError {
    pub(super) message: String,
    pub(super) details: String,
    pub(super) kind: FailureKind,
}

impl StepError {
    /// A fault of a host, the network or berth: the next run tries again.
    pub(super) fn new(message: impl Into<String>, details: String) -> StepError {
        StepError {
            message: message.into(),
            details,
            kind: FailureKind::Fault,
        }
    }

    /// A verdict on the revision's pods (see `FailureKind::Verdict`).
    pub(super) fn verdict(message: impl Into<String>, details: String) -> StepError {
        StepError {
            kind: FailureKind::Verdict,
            ..StepError::new(message, details)
        }
    }
}

impl From<OpError> for StepError {
    fn from(e: OpError) -> StepError {
        StepError::new(e.to_string(), String::new())
    }
}

pub(super) type StepResult = Result<(), StepError>;
