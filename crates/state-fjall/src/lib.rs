//! # state-fjall
//!
//! A persistent backend written in Rust only, on [fjall](https://docs.rs/fjall)
//! (an LSM tree with keyspaces and atomic cross-keyspace batches): for
//! applications that cannot build C++ (no libclang, musl, cross-compiling).
//! [`FjallBackend`] implements [`state_core::Backend`]; its partitions pass
//! both conformance kits, so transactions, windows, changelogs, recovery and
//! the state manager work on it unchanged.
//!
//! What is guaranteed (details in [`FjallPartition`]'s module docs):
//! a batch is atomic across column families, after a process crash too;
//! `write` hands the batch to the OS before returning (it survives a process
//! crash, not a power loss, unless [`FjallOptions::sync_writes`]); `persist`
//! fsyncs; reads go through snapshots.
//!
//! With a [`state_core::MemoryBudget`] ([`FjallOptions::memory_budget`]),
//! every partition shares one block cache and keeps its memtables within a
//! reservation of the budget.
//!
//! Depends on `state-core` only.

#![warn(missing_docs)]

mod backend;
mod memory;
mod options;
mod partition;

pub use backend::FjallBackend;
pub use options::FjallOptions;
pub use partition::{
    is_corruption, is_lsm_corruption, FjallPartition, FjallSnapshot, KEY_TAG, MAX_KEY_LEN, SNAPSHOT_LAYOUT,
};
