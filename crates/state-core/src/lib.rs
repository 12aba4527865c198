//! # state-core
//!
//! The small core of the workspace: the traits a storage backend implements,
//! the byte layouts every layer shares, value codecs, the changelog sink
//! transactions emit to, a real in-memory backend, and (feature `testkit`)
//! the conformance kit every backend runs.
//!
//! * [`StorePartition`] — one partition's column families of ordered byte
//!   keys, atomic [`WriteBatch`]es that carry the changelog offset, bounded
//!   iteration in both directions; [`SortedBatch`] puts a batch in key
//!   order for backends that load it as table files.
//! * [`Backend`] — an engine: opens partition *n* of a store, describes
//!   itself, destroys a store's data. Object safe: everything above takes
//!   `Arc<dyn Backend>`.
//! * [`LocalSnapshot`] — a consistent copy of a partition on local disk,
//!   a capability backends may decline ([`StorePartition::snapshot`],
//!   [`Backend::restore_snapshot`]); `state-snapshot` uploads them.
//! * [`Store`] — the open partitions of one store on any backend: assign,
//!   revoke, destroy.
//! * [`keys`] — `prefix | key`, u64 big-endian integers and pairs, window
//!   and timestamped key layouts.
//! * [`Codec`] — MessagePack (default), quixstreams-compatible JSON, raw.
//! * [`ChangelogSink`] — where `prepare` sends one record per change.
//! * [`check_store_format`] — kind, codec and per-write TTL mode of a
//!   partition, recorded on first open and checked on every open;
//!   [`ReplayCheck`] applies the same rules to replayed changelog records.
//! * [`ttl`] — quixstreams' per-write TTL layouts and the per-partition
//!   [`ttl::TtlState`].
//! * [`MemoryBudget`] — one memory budget per process, shared by every
//!   backend, cache and index given it (see the `budget` module docs for
//!   what it covers).
//! * [`mem`] — the in-memory building blocks of caches and change sets:
//!   a byte-keyed hash map, second-chance eviction, inline byte strings.
//!
//! Nothing here knows about RocksDB or Kafka; transactions live in
//! `state-txn`, RocksDB in `state-rocksdb`, Kafka in `state-changelog`.

#![warn(missing_docs)]

mod backend;
mod batch;
mod budget;
pub mod cf;
mod changelog;
mod codec;
mod dirs;
mod disk_full;
mod error;
mod format;
mod ids;
pub mod keys;
mod legacy_ttl;
pub mod mem;
mod memory;
mod memory_dump;
mod open;
mod partition;
mod replay;
mod snapshot;
mod sorted_batch;
mod store;
mod store_kind;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod ttl;
mod view;

pub use backend::{remove_store_dir, Backend, BackendInfo, StoreLocation};
pub use batch::{BatchOp, WriteBatch};
pub use budget::{BudgetPool, MemoryBudget, MemoryBudgetStats, PoolStats, Reservation, RESERVATION_CHUNK};
pub use changelog::{
    ChangelogRecord, ChangelogSink, OwnedChangelogRecord, ProcessedOffsets, RecordingSink, CF_HEADER, CF_HEADER_C,
    PROCESSED_OFFSETS_HEADER, PROCESSED_OFFSETS_HEADER_C, TTL_STAMPED_HEADER, TTL_STAMPED_HEADER_C,
    TTL_STAMPED_HEADER_VALUE, VALUE_CODEC_HEADER, VALUE_CODEC_HEADER_C,
};
pub use codec::Codec;
pub use dirs::{create_private_dir, PRIVATE_DIR_MODE};
pub use disk_full::{disk_full_in, is_no_space};
pub use error::{BoxError, Error, RequiredOption, Result};
pub use format::{
    check_store_format, legacy_ttl_situation, record_codec, recorded_codec, PartitionFormat, StoreFormat, TtlSupport,
};
pub use ids::{StoreKind, TopicPartition, UnknownStoreKind};
pub use legacy_ttl::LegacyTtl;
pub use memory::{MemoryBackend, MemoryPartition};
pub use open::{open_with_retries, OpenAttempt, OpenRetry};
pub use partition::{Direction, KeyValue, KvIter, PartitionStats, StorePartition};
pub use replay::{HeaderlessRecords, ReplayCheck, ReplayedRecord};
pub use snapshot::{install_snapshot_dir, LocalSnapshot};
pub use sorted_batch::SortedBatch;
pub use store::Store;
pub use store_kind::check_store_kind;
pub use view::{ReadView, SnapshotPartition};

#[cfg(test)]
mod memory_conformance {
    crate::conformance_tests!(crate::testkit::MemoryHarness);
}
