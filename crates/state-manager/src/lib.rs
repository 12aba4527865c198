//! # state-manager
//!
//! Ties stores to a consumer group: the store registry, partition
//! assignment with recovery, and checkpoints with at-least-once or
//! exactly-once guarantees.
//!
//! * [`StateStoreManager`] — registers stores per stream, opens and recovers
//!   partitions on assignment, hands out the current checkpoint's
//!   transactions and commits them.
//! * [`StateContext`] — an rdkafka consumer context that calls the manager
//!   from the group's rebalance callbacks.
//! * [`StateDir`] — `<state_dir>/<group_id>/<store>/<stream_id>/<partition>`.
//!
//! A complete processor (`examples/page_counts.rs`, compiled with the docs):
//!
#![doc = concat!("```no_run\n", include_str!("../examples/page_counts.rs"), "\n```")]
//!
//! See `docs/manager.md` for what each step guarantees.

#![warn(missing_docs)]

mod checkpoint;
mod config;
mod context;
mod error;
mod layout;
mod manager;
mod registry;

pub use config::{ManagerConfig, ProcessingGuarantee};
pub use context::StateContext;
pub use error::{ManagerError, Result};
pub use layout::StateDir;
pub use manager::{CheckpointStage, StateStoreManager};
pub use registry::{Backend, StoreKind, StoreSpec};
