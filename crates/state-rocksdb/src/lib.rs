//! # state-rocksdb
//!
//! The RocksDB backend: [`RocksDbPartition`] implements
//! [`state_core::StorePartition`] (one database per partition, column
//! families created on first write, atomic batches carrying the changelog
//! offset), [`RocksDbStore`] implements [`state_core::Store`] (partition
//! directories, a shared block cache, lock-aware opening).
//!
//! Transactions come from `state-txn` and work unchanged on this backend;
//! [`KeyValueStore`], [`WindowedStore`] and [`TimestampedStore`] pair a
//! store with the transaction type it hands out.

#![warn(missing_docs)]

// The README's example is compiled and run as a doctest of this crate, so
// the front door cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

mod cache;
mod options;
mod partition;
mod store;
mod typed;

pub use options::{Compression, RocksDbOptions};
pub use partition::RocksDbPartition;
pub use store::RocksDbStore;
pub use typed::{KeyValueStore, TimestampedStore, WindowedStore};

/// The transaction types, re-exported for convenience.
pub use state_txn::{
    PartitionTransaction, TimestampedConfig, TimestampedTransaction, TxnError, TxnStatus, WindowedTransaction,
};
