//! One memory budget for a process: [`MemoryBudget`], shared by every
//! partition of every store (and every manager) given the same budget.
//!
//! A budget is split in two [`BudgetPool`]s:
//!
//! * [`BudgetPool::Engine`] — the storage engines: RocksDB's block cache
//!   with its memtables charged to it (one cache and one write buffer
//!   manager per budget), fjall's block cache and write buffers;
//! * [`BudgetPool::Caches`] — the in-process caches of the layers above:
//!   write-behind caches, window indexes, RocksDB's value cache.
//!
//! Users of a pool hold a [`Reservation`] that grows in chunks
//! ([`RESERVATION_CHUNK`]) from one atomic counter, so a hot path compares
//! two numbers and touches the counter only once per chunk. A reservation
//! the pool cannot grow tells its owner to evict or flush instead; holders
//! above their fair share give memory back when another holder was
//! refused ([`Reservation::pressure`]).
//!
//! # What a budget does not cover
//! Peak resident memory of a process is about
//!
//! ```text
//! budget
//!   + process base (binary, allocator, thread stacks, librdkafka's client and queues)
//!   + open partitions x per-partition overhead (RocksDB: column family and
//!     version objects, table readers of open SST files, WAL and LOG buffers;
//!     fjall: journal buffer, worker thread, keyspace objects)
//!   + transactions in flight (a checkpoint's change sets) and iterators
//!   + read views and snapshots held by interactive queries
//! ```
//!
//! `docs/operations.md` ("Memory") gives measured values of each term.

mod memory_budget;
mod pool;
mod reservation;

pub use memory_budget::{BudgetPool, MemoryBudget, MemoryBudgetStats, PoolStats};
pub use reservation::{Reservation, RESERVATION_CHUNK};
