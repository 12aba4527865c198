//! # state-manager
//!
//! Ties stores to a consumer group: the store registry, partition
//! assignment with recovery, and checkpoints with at-least-once or
//! exactly-once guarantees.
//!
//! * [`StateStoreManager`] — registers stores per stream (returning typed
//!   [`StoreHandle`]s), opens and recovers partitions on assignment, hands
//!   out the current checkpoint's transactions and commits them.
//! * [`StoreSpec`] — how a store is registered: kind, codec, backend
//!   (any [`Backend`]; RocksDB by default with feature `rocksdb`), changelog.
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

mod assignment;
mod checkpoint;
mod config;
mod context;
mod error;
mod layout;
mod manager;
pub mod metrics;
mod producer;
mod reader;
mod registry;
mod spec;
#[cfg(feature = "tokio")]
mod tokio_support;

pub use assignment::StandbyReport;
pub use checkpoint::CheckpointStage;
pub use config::{ManagerConfig, ProcessingGuarantee, StandbyPolicy};
pub use context::StateContext;
pub use error::{ManagerError, Result};
pub use layout::StateDir;
pub use manager::StateStoreManager;
pub use reader::{partition_for_key, StateReader};
pub use spec::{KeyValue, StoreHandle, StoreSpec, StoreType, Timestamped, Windowed};
#[cfg(feature = "tokio")]
pub use tokio_support::AsyncStateManager;

// Every type in this crate's public signatures, reachable from here.
pub use parking_lot::{self, Mutex};
pub use rdkafka;
pub use state_cache::{WriteBehindConfig, WriteBehindStats};
pub use state_changelog::{ChangelogTopicConfig, RecoveryConfig, RecoveryProgress};
pub use state_core::{Backend, BackendInfo, Codec, MemoryBackend, StorePartition};
#[cfg(feature = "rocksdb")]
pub use state_rocksdb::{RocksDbBackend, RocksDbOptions};
pub use state_txn::{
    CollectedValues, ExpireOptions, GetOptions, PartitionTransaction, SetOptions, StateTransaction, TimestampedConfig,
    TimestampedTransaction, TtlOptions, WindowIndex, WindowedTransaction,
};
