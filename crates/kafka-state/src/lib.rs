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
//! | `manager` (default) | changelogs on Kafka, recovery, the state manager | [`changelog`], [`manager`] |
//! | `snapshots` | partition snapshots in an object store (local filesystem; `snapshots-aws`, `snapshots-gcp`, `snapshots-azure` add those services) | `snapshot` (`state-snapshot`) |
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

#[cfg(feature = "fjall")]
pub use state_fjall as fjall;

#[cfg(feature = "manager")]
pub use state_changelog as changelog;
#[cfg(feature = "manager")]
pub use state_manager as manager;
#[cfg(feature = "snapshots")]
pub use state_snapshot as snapshot;

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
    rdkafka, ChangelogProducer, ChangelogTopicConfig, ConsumerSettings, RecoveryConfig, RecoveryProgress,
};
#[cfg(feature = "manager")]
pub use state_manager::{
    partition_for_key, CheckpointError, CheckpointStage, KeyValueStore, ManagerConfig, ManagerError,
    ProcessingGuarantee, StateContext, StateReader, StateStoreManager, StoreHandle, StoreSpec, StoreType,
    TimestampedStore, WindowedStore,
};
