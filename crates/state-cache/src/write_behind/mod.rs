//! [`WriteBehindPartition`]: a bounded write-behind cache in front of a
//! store partition, for stores with a changelog.
//!
//! Every checkpoint of a store with a changelog sends its changes to the
//! changelog and commits them before it writes them locally; recovery
//! replays the changelog from the offset stored with the local data. The
//! local write can therefore be deferred and coalesced across checkpoints:
//! this wrapper keeps the written keys in memory and writes them to the
//! partition below as **one** atomic batch that carries the newest
//! changelog offset its data includes, when
//!
//! * the dirty bytes would exceed [`WriteBehindConfig::max_dirty_bytes`],
//! * the oldest unflushed write is older than
//!   [`WriteBehindConfig::max_dirty_age`] (checked on every write and by
//!   [`WriteBehindPartition::flush_if_due`]),
//! * the cache needs room for a write (all its bytes are bounded by
//!   [`WriteBehindConfig::max_bytes`]), or
//! * its owner asks: [`WriteBehindPartition::flush`] (revoke, close) or
//!   [`StorePartition::persist`](state_core::StorePartition::persist).
//!
//! A crash (or dropping the wrapper without a flush) loses only the cache:
//! the partition below holds the data of a prefix of the writes, with the
//! changelog offset of that prefix, so recovery replays exactly the rest.
//!
//! Reads see the cache first. Keys read from the partition below are kept
//! as a read cache, absent keys too, so a key that is created and deleted
//! between two flushes never reaches the partition below (see
//! [`WriteBatch::put_new`](state_core::WriteBatch::put_new) for the hint that lets writers say a key is new
//! without reading it).
//!
//! Use it only for partitions whose every committed write is also in a
//! changelog: without one, a crash loses the writes since the last flush.
//!
//! One job per file: `state` (what the cache holds and its flush policy,
//! over the cache slots shared with the write-through cache), `ordered` (the ordered view of
//! unflushed keys for range reads), `merge` (merged reads and the read
//! view), `behind` (large batches applied by a helper thread after
//! `write` returns), `partition` ([`WriteBehindPartition`]) and `backend`
//! ([`WriteBehindBackend`]).

mod backend;
mod behind;
mod merge;
mod ordered;
mod partition;
mod state;
#[cfg(test)]
mod tests;

pub use crate::config::{WriteBehindConfig, WriteBehindStats, ENTRY_OVERHEAD, ORDERED_OVERHEAD};
pub use backend::WriteBehindBackend;
pub use partition::WriteBehindPartition;
