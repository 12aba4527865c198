//! # state-rocksdb
//!
//! The RocksDB backend: [`RocksDbPartition`] implements
//! [`state_core::StorePartition`] (one database per partition, column
//! families created on first write, atomic batches carrying the changelog
//! offset), [`RocksDbStore`] implements [`state_core::Store`] (partition
//! directories, a shared block cache, lock-aware opening).
//!
//! Transactions come from `state-txn` and work unchanged on this backend.

#![warn(missing_docs)]

mod options;
mod partition;
mod store;

pub use options::{Compression, RocksDbOptions};
pub use partition::RocksDbPartition;
pub use store::RocksDbStore;
