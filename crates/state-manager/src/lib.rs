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
mod partitioner;
mod reader;
mod registry;
mod spec;
mod stage;
#[cfg(feature = "tokio")]
mod tokio_support;
mod txns;

pub use assignment::StandbyReport;
pub use config::{ManagerConfig, ProcessingGuarantee, StandbyPolicy};
pub use context::StateContext;
pub use error::{CheckpointError, ManagerError, Result};
pub use layout::StateDir;
pub use manager::StateStoreManager;
pub use partitioner::partition_for_key;
pub use reader::StateReader;
pub use spec::{KeyValueStore, StoreHandle, StoreSpec, StoreType, TimestampedStore, WindowedStore};
pub use stage::CheckpointStage;
#[cfg(feature = "tokio")]
pub use tokio_support::AsyncStateManager;

// Every type in this crate's public signatures, reachable from here.
pub use parking_lot::{self, Mutex};
pub use rdkafka;
pub use state_cache::{WriteBehindConfig, WriteBehindStats};
pub use state_changelog::{ChangelogTopicConfig, ConsumerSettings, RecoveryConfig, RecoveryProgress};
pub use state_core::{
    Backend, BackendInfo, Codec, MemoryBackend, MemoryBudget, MemoryBudgetStats, StoreKind, StorePartition,
    TopicPartition,
};
#[cfg(feature = "rocksdb")]
pub use state_rocksdb::{RocksDbBackend, RocksDbOptions};
pub use state_txn::{
    CollectedValues, ExpireOptions, GetOptions, PartitionTransaction, SetOptions, StateTransaction, TimestampedConfig,
    TimestampedTransaction, TtlOptions, WindowIndex, WindowedTransaction,
};
