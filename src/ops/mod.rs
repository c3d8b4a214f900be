//! Operations: what each command does, between the CLI (flags in, words and an exit code out)
//! and the machinery (`repo`, `hosts`, `plan`, `apply`). An operation returns a value or an
//! `Error` that carries its exit code; it prints through the `Ui` it is given.

pub mod apply;
pub mod context;
pub mod error;
pub mod history;
pub mod lock;
pub mod metrics;
pub mod notify;
pub mod pods;
pub mod policy;
pub mod registry;
pub mod secrets;
pub mod source;
pub mod status;

pub use error::{exit, Error, Result};
