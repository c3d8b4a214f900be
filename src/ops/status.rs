//! `berth status` (and the pod counts `sync --every` exports): each deployment as it runs,
//! from one shallow or deep observation of the hosts.

use super::context::{observe_hosts, Connection, Depth};
use crate::diff::status::{status as judge, Status};
use crate::model::{DesiredState, Selector};

/// Observes the hosts and says how each selected deployment runs against Git. Offline as to
/// registries: each image is taken at the digest its pods run.
pub async fn status(
    desired: &DesiredState,
    to: &Connection,
    depth: Depth,
    selector: Option<&Selector>,
) -> Status {
    let (_, observed) = observe_hosts(desired, to, depth).await;
    let (desired, _) = crate::plan::digests::settle(desired, &Default::default(), &observed);
    judge(&desired, &observed, selector)
}
