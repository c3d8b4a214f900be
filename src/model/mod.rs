//! The pure model: desired and observed state, labels and selectors. No I/O.

pub mod clock;
pub mod desired;
pub mod edge_stats;
pub mod files;
pub mod haproxy;
pub mod history;
pub mod ingress;
pub mod jump;
pub mod labels;
pub mod lines;
pub mod lock;
pub mod names;
pub mod observed;
pub mod policy;
pub mod reason;
pub mod registry;
pub mod rollout;
pub mod secret;
pub mod selector;
pub mod strategy;

pub use desired::*;
pub use labels::Labels;
pub use observed::{
    label, ContainerState, Health, JobRecord, ObservedContainer, ObservedHost, ObservedLock,
    ObservedVolume, Resources, Role,
};
pub use reason::Reason;
pub use rollout::{Phase, Rollout};
pub use selector::Selector;
pub use strategy::*;
