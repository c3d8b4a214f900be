//! Why a plan changes a pod: a value per cause, so tools read the code from the plan's JSON
//! (`"reason": {"code": "revision", ...}`) and people read its `Display`.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    // Pending: what Git asks for.
    NewDeployment {
        deployment: String,
    },
    ScaleUp {
        replicas: u32,
    },
    ScaleDown {
        replicas: u32,
    },
    /// The host no longer matches the deployment's placement.
    Placement {
        host: String,
        deployment: String,
    },
    Revision {
        from: String,
        to: String,
    },
    SecretsChanged {
        secrets: Vec<String>,
    },
    /// A replaced pod whose host has no room for its replacement here.
    NotNeeded {
        because: Box<Reason>,
        replicas: u32,
    },
    /// A replacement that must stop the old pod first: a host port is held by one container.
    StopsFirst {
        because: Box<Reason>,
        host_port: u16,
    },
    NotInGit {
        deployment: String,
    },
    VolumeNotDeclared {
        volume: String,
    },

    // Drift: what a hand (or a dead apply) changed.
    ExtraPod,
    RemovedByHand,
    Stopped {
        containers: Vec<String>,
    },
    ChangedByHand,
    ContainersRemovedByHand {
        containers: Vec<String>,
    },
    ResourcesChangedByHand,
    Unowned,
    /// An edge runs another configuration than the ingresses and the pods behind their
    /// services call for (an ingress changed in Git, or the edge by hand).
    EdgeRoutes,
    /// A pod still starting, not behind the names it should answer to.
    StartingOutOfService {
        want: Vec<String>,
    },
    /// A pod behind names it should not answer to.
    ShouldBeOutOfService {
        have: Vec<String>,
    },
    /// A ready pod behind none of its names.
    ReadyOutOfService {
        want: Vec<String>,
    },
    /// A pod behind other names than its own.
    WrongNames {
        have: Vec<String>,
        want: Vec<String>,
    },

    // Canary.
    CanaryStep {
        step: usize,
        weight: u32,
        effective: u32,
    },
    CanaryComplete,
    CanaryStableNotNeeded,
    CanaryAbortedStableBack,
    CanaryAborted,
    StableCompleteFirst,
    CanaryAlreadyReplaces,
    NeitherRevision {
        revision: String,
        stable: String,
    },

    // Blue-green.
    BlueGreenNewSet {
        revision: String,
        stable: String,
        preview: String,
    },
    Promote {
        service: String,
        revision: String,
    },
    BlueGreenRollBack {
        pod: String,
        service: String,
    },
    RolledBack,
    OldSetAfterPromotion {
        delay_s: Option<u64>,
    },
    BlueGreenAborted,

    // History (`history_limit`, `berth rollback --to`).
    PastHistoryLimit {
        revision: String,
        limit: u32,
    },
    RollbackTo {
        revision: String,
    },
    KeptAfterRollback {
        revision: String,
    },

    // `berth restart`.
    /// A new pod of the same revision replaces it.
    Restart,
}

impl Reason {
    /// Whether the change is a restart's (`berth restart`), a host port's stop-first included.
    pub fn is_restart(&self) -> bool {
        match self {
            Reason::Restart => true,
            Reason::StopsFirst { because, .. } => because.is_restart(),
            _ => false,
        }
    }
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Reason::*;
        match self {
            EdgeRoutes => write!(
                f,
                "the edge's configuration is not what the ingresses and their pods call for"
            ),
            NewDeployment { deployment } => write!(f, "new deployment {deployment}"),
            ScaleUp { replicas } => write!(f, "scale to {replicas} replica(s)"),
            ScaleDown { replicas } => write!(f, "scale down to {replicas} replica(s)"),
            Placement { host, deployment } => {
                write!(f, "{host} no longer matches the placement of {deployment}")
            }
            Revision { from, to } => write!(f, "revision {from} → {to}"),
            SecretsChanged { secrets } => {
                let each: Vec<String> = secrets.iter().map(|s| format!("secret {s} changed")).collect();
                write!(f, "{}", list(&each))
            }
            NotNeeded { because, replicas } => {
                write!(f, "{because}; not needed at {replicas} replica(s) here")
            }
            StopsFirst { because, host_port } => write!(
                f,
                "{because}; host port {host_port} can be held by one container, so the old pod stops first"
            ),
            NotInGit { deployment } => write!(f, "deployment {deployment} is not in Git"),
            VolumeNotDeclared { volume } => {
                write!(f, "volume {volume} is not declared by any deployment")
            }
            ExtraPod => f.write_str("extra pod, not created by berth for this replica count"),
            RemovedByHand => f.write_str("pod removed by hand"),
            Stopped { containers } => write!(f, "stopped: {}", list(containers)),
            ChangedByHand => f.write_str("changed by hand"),
            ContainersRemovedByHand { containers } => {
                write!(f, "container {} removed by hand", list(containers))
            }
            ResourcesChangedByHand => f.write_str("resources changed by hand"),
            Unowned => f.write_str("container with berth labels that no deployment owns"),
            StartingOutOfService { want } => write!(
                f,
                "still starting and not behind {} (an apply stopped before its health gate): it joins once healthy",
                list(want)
            ),
            ShouldBeOutOfService { have } => write!(
                f,
                "answers to {} but should be out of service (an apply stopped half-way, or a hand)",
                list(have)
            ),
            ReadyOutOfService { want } => write!(
                f,
                "ready but not behind {} (an apply stopped before it joined, or a hand disconnected it)",
                list(want)
            ),
            WrongNames { have, want } => {
                write!(f, "behind {} instead of {}", list(have), list(want))
            }
            CanaryStep {
                step,
                weight,
                effective,
            } => write!(f, "canary step {step}: weight {weight}% (effective {effective}%)"),
            CanaryComplete => f.write_str("canary complete"),
            CanaryStableNotNeeded => f.write_str("canary complete: stable pod no longer needed"),
            CanaryAbortedStableBack => f.write_str("canary aborted: the stable pod comes back"),
            CanaryAborted => f.write_str("canary aborted"),
            StableCompleteFirst => {
                f.write_str("the stable set is complete again before the canary starts")
            }
            CanaryAlreadyReplaces => f.write_str(
                "a canary pod already replaces it (an apply stopped half-way): it leaves and stops",
            ),
            NeitherRevision { revision, stable } => {
                write!(f, "neither revision {revision} nor {stable}")
            }
            BlueGreenNewSet {
                revision,
                stable,
                preview,
            } => write!(
                f,
                "blue-green: new set (revision {revision}) beside revision {stable}, behind {preview}"
            ),
            Promote { service, revision } => {
                write!(f, "promote: {service} moves to revision {revision}")
            }
            BlueGreenRollBack { pod, service } => {
                write!(f, "roll back: {pod} answers as {service} again")
            }
            RolledBack => f.write_str("rolled back"),
            OldSetAfterPromotion { delay_s: None } => f.write_str("old set after promotion"),
            OldSetAfterPromotion { delay_s: Some(s) } => {
                write!(f, "old set after promotion (scale_down_delay {s}s passed)")
            }
            BlueGreenAborted => f.write_str("blue-green aborted before promotion"),
            PastHistoryLimit { revision, limit } => write!(
                f,
                "kept revision {revision} is older than the {limit} the strategy keeps (history_limit)"
            ),
            RollbackTo { revision } => write!(f, "rollback: kept revision {revision} starts again"),
            Restart => f.write_str("restart: a new pod of the same revision replaces it"),
            KeptAfterRollback { revision } => {
                write!(f, "rollback: revision {revision} stops, kept for `berth rollback --to`")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_reads_as_words_and_serializes_as_a_code() {
        let r = Reason::NotNeeded {
            because: Box::new(Reason::Revision {
                from: "aaaa".into(),
                to: "bbbb".into(),
            }),
            replicas: 1,
        };
        assert_eq!(
            r.to_string(),
            "revision aaaa → bbbb; not needed at 1 replica(s) here"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["code"], "not_needed");
        assert_eq!(json["because"]["code"], "revision");
        let back: Reason = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }
}
