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
//! * [`ManagerConfig::consumer_config`] / [`ManagerConfig::producer_config`]
//!   — the client settings the manager relies on, in one call;
//!   [`Partitioner`] — where producers put a key, and so its state.
//! * [`StateStoreManager::close`] — a clean shutdown; [`ManagerEvent`] —
//!   what the manager handled on its own (a commit that waited for a
//!   rebalance, a checkpoint processed again).
//! * [`SnapshotSettings`] — partition snapshots in an object store
//!   (`state_snapshot`): restores from a snapshot plus the changelog
//!   after it, snapshots taken in the background.
//! * [`App`] — the poll loop written once around a [`Processor`] (one call
//!   per [`Record`], with a [`Context`] of store transactions and output),
//!   built from a [`Topology`] function; `kafka_state::testing` runs the
//!   same processor in tests.
//!
//! A complete processor with its own loop (`examples/page_counts.rs`,
//! compiled with the docs):
//!
#![doc = concat!("```no_run\n", include_str!("../examples/page_counts.rs"), "\n```")]
//!
//! See `docs/manager.md` for what each step guarantees.

#![warn(missing_docs)]

mod app;
mod assignment;
mod checkpoint;
mod cleaner;
mod client_settings;
mod config;
mod context;
mod disk_full;
mod error;
mod events;
#[cfg(feature = "tokio")]
mod executor;
mod healing;
mod layout;
mod manager;
pub mod metrics;
mod partitioner;
mod reader;
mod registry;
mod shutdown;
mod snapshots;
mod spec;
mod stage;
#[cfg(feature = "tokio")]
mod tokio_support;
mod txns;
#[cfg(feature = "windows")]
mod windows;

pub use app::{
    processor_fn, App, AppBuilder, AppError, Context, FnProcessor, Polled, ProcessError, Processor, Record, Shutdown,
    Topics, Topology,
};
pub use assignment::StandbyReport;
pub use config::{CorruptionPolicy, ManagerConfig, ProcessingGuarantee, QuarantineLimits, StandbyPolicy};
pub use context::StateContext;
pub use error::{CheckpointError, ManagerError, Result};
pub use events::{ManagerEvent, RewoundPartition};
pub use layout::StateDir;
pub use manager::StateStoreManager;
#[allow(deprecated)]
pub use partitioner::partition_for_key;
pub use partitioner::{murmur2_partition, Partitioner, UnsupportedPartitioner, PARTITIONER_SETTING};
pub use reader::StateReader;
pub use snapshots::SnapshotSettings;
pub use spec::{KeyValueStore, StoreHandle, StoreSpec, StoreType, TimestampedStore, WindowedStore};
pub use stage::CheckpointStage;
#[cfg(feature = "tokio")]
pub use tokio_support::AsyncStateManager;

// Every type in this crate's public signatures, reachable from here.
pub use parking_lot::{self, Mutex};
pub use rdkafka;
pub use state_cache::{WriteBehindConfig, WriteBehindStats};
pub use state_changelog::{
    ChangelogTopicConfig, ConsumerSettings, OffsetReset, OutputRecord, OutputTopic, RecoveryConfig, RecoveryProgress,
};
pub use state_core::{
    Backend, BackendInfo, Codec, MemoryBackend, MemoryBudget, MemoryBudgetStats, StoreKind, StorePartition,
    TopicPartition,
};
#[cfg(feature = "rocksdb")]
pub use state_rocksdb::{RocksDbBackend, RocksDbOptions};
pub use state_snapshot::{self, SnapshotStore};
pub use state_txn::{
    CollectedValues, ExpireOptions, GetOptions, PartitionTransaction, SetOptions, StateTransaction, TimestampedConfig,
    TimestampedTransaction, TtlOptions, WindowIndex, WindowedTransaction,
};
/// Window operators (feature `windows`): see [`StoreSpec::window`].
#[cfg(feature = "windows")]
pub use state_windows;
