//! # state-rocksdb
//!
//! The RocksDB backend. [`RocksDbBackend`] implements
//! [`state_core::Backend`]: one database per partition in its own
//! directory, a block cache shared by every partition it opens, lock-aware
//! opening, an optional process-wide [`state_core::MemoryBudget`] (one
//! block cache with the memtables charged to it) and an options hook
//! ([`RocksDbOptionsHook`]). [`RocksDbPartition`] implements
//! [`state_core::StorePartition`]:
//! column families created on first write, atomic batches carrying the
//! changelog offset, bulk loads without the WAL for recovery.
//!
//! This crate depends on `state-core`, and on `state-cache` for the
//! optional cache of committed values in front of point reads
//! ([`RocksDbOptions::value_cache_bytes`]). Transactions (key-value,
//! windowed, timestamped) come from `state-txn` and work unchanged on it, as
//! on every backend that passes the conformance kit.

#![warn(missing_docs)]

mod backend;
mod hook;
mod memory;
mod options;
mod partition;
mod sorted_load;
mod wal_check;

pub use backend::RocksDbBackend;
pub use hook::{HookTarget, RocksDbOptionsHook};
pub use options::{Compression, RocksDbOptions};
pub use partition::{RocksDbPartition, SNAPSHOT_LAYOUT};
/// The `rocksdb` crate this backend is built on, for options hooks
/// ([`RocksDbOptionsHook`]) and other engine-level calls.
pub use rocksdb;
