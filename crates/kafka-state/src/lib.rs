//! # kafka-state
//!
//! Durable, transactional, fault-tolerant local state for Kafka stream
//! processors on `rdkafka`, in one dependency. This crate re-exports the
//! workspace's crates behind features; each of them also works on its own.
//!
//! | feature | what it adds | crate |
//! |---|---|---|
//! | (always) | backend traits, codecs, key layouts, the in-memory backend | [`core`] (`state-core`) |
//! | (always) | transactions: key-value, windowed, timestamped | [`txn`] (`state-txn`) |
//! | (always) | write-behind and write-through caches over any backend | [`cache`] (`state-cache`) |
//! | `rocksdb` (default) | the RocksDB backend | [`rocksdb`] (`state-rocksdb`) |
//! | `fjall` | a backend in Rust only (no C++ toolchain, musl, cross builds) | `fjall` (`state-fjall`) |
//! | `manager` (default) | changelogs on Kafka, recovery, the state manager, the [`App`] runner | [`changelog`], [`manager`] |
//! | `windows` (default) | window operators: tumbling, hopping, sliding, session, count windows; aggregations | [`windows`] (`state-windows`) |
//! | `tokio` | the manager on rdkafka's `StreamConsumer` | [`manager`] (`AsyncStateManager`) |
//! | `testing` | an in-process test cluster and a test driver for your processor | `testing` |
//! | `snapshots` | partition snapshots in an object store (local filesystem; `snapshots-aws` (or `snapshots-aws-ring`: S3 with rustls on ring), `snapshots-gcp`, `snapshots-azure` add those services); with `manager`, restores from a snapshot plus the changelog tail and background snapshots (`SnapshotSettings`) | `snapshot` (`state-snapshot`) |
//!
//! The most used types are re-exported at the root, so
//! `use kafka_state::{StateStoreManager, StoreSpec, ...}` is enough for an
//! application: per-write TTL (`TtlOptions`, `SetOptions`, `GetOptions`),
//! the per-message-key views (`txn.key(msg_key)`), the manager's
//! `StateReader` included. See the README for a complete example.

#![warn(missing_docs)]

// The README's example is compiled and run as a doctest here, so the front
// door cannot drift from the code.
#[cfg(all(doctest, feature = "rocksdb"))]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

pub use state_cache as cache;
pub use state_core as core;
pub use state_txn as txn;

#[cfg(feature = "rocksdb")]
pub use state_rocksdb as rocksdb;

#[cfg(feature = "windows")]
pub use state_windows as windows;

#[cfg(feature = "fjall")]
pub use state_fjall as fjall;

#[cfg(feature = "manager")]
pub use state_changelog as changelog;
#[cfg(feature = "manager")]
pub use state_manager as manager;
#[cfg(feature = "snapshots")]
pub use state_snapshot as snapshot;

#[cfg(feature = "testing")]
pub mod testing;

/// The mutex the manager is shared behind (`Arc<Mutex<StateStoreManager>>`).
pub use parking_lot::{self, Mutex};

pub use state_cache::{WriteBehindBackend, WriteBehindConfig, WriteBehindPartition, WriteBehindStats};
pub use state_core::{
    Backend, BackendInfo, ChangelogSink, Codec, Direction, MemoryBackend, MemoryPartition, ProcessedOffsets,
    RecordingSink, Store, StoreKind, StoreLocation, StorePartition, TopicPartition, WriteBatch,
};
pub use state_txn::{
    CollectedValues, ExpireOptions, ExpiredWindow, GetOptions, KeyView, PartitionTransaction, SetOptions,
    StateTransaction, SweepTombstones, TimestampedConfig, TimestampedKeyView, TimestampedTransaction, TtlOptions,
    TtlState, TxnError, TxnStatus, Window, WindowIndex, WindowedKeyView, WindowedTransaction, CHECKPOINT_NEVER,
};

#[cfg(feature = "rocksdb")]
pub use state_rocksdb::{RocksDbBackend, RocksDbOptions, RocksDbPartition};

#[cfg(feature = "fjall")]
pub use state_fjall::{FjallBackend, FjallOptions, FjallPartition};

#[cfg(feature = "manager")]
pub use state_changelog::{
    rdkafka, ChangelogProducer, ChangelogTopicConfig, ConsumerSettings, OffsetReset, OutputRecord, OutputTopic,
    RecoveryConfig, RecoveryProgress,
};
#[cfg(feature = "manager")]
pub use state_manager::{
    murmur2_partition, processor_fn, App, AppBuilder, AppError, CheckpointError, CheckpointStage, Context,
    KeyValueStore, ManagerConfig, ManagerError, ManagerEvent, Partitioner, Polled, ProcessError, ProcessingGuarantee,
    Processor, Record, Shutdown, StateContext, StateReader, StateStoreManager, StoreHandle, StoreSpec, StoreType,
    TimestampedStore, Topics, Topology, WindowedStore,
};

/// Snapshots with the manager: `ManagerConfig::with_snapshots` takes
/// [`SnapshotSettings`] over a [`SnapshotStore`].
#[cfg(all(feature = "snapshots", feature = "manager"))]
pub use state_manager::SnapshotSettings;
#[cfg(feature = "snapshots")]
pub use state_snapshot::{Retention as SnapshotRetention, SnapshotStore, StoreOptions as SnapshotStoreOptions};

#[cfg(feature = "windows")]
pub use state_windows::{
    Aggregator, Closing, Collect, Count, DefinitionError, Earliest, Emit, First, Hopping, HoppingCount, Last, Late,
    Latest, Max, Mean, Mergeable, Min, Reduce, Session, Sliding, SlidingCount, Sum, Tumbling, TumblingCount,
    WindowError, WindowOperator, WindowResult,
};
