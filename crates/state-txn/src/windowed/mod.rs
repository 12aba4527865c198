//! [`WindowedTransaction`]: time windows per key prefix on top of a
//! [`PartitionTransaction`], with the same byte layouts as quixstreams'
//! windowed RocksDB state.
//!
//! Layouts (see `docs/formats.md`):
//! * window `prefix | start | end` (u64 BE) in `default`, value = codec(aggregate);
//! * latest event time `prefix | __latest_timestamp__` in `__latest-timestamps__`;
//! * last expired start `prefix | __expired_start_gt__` in `__expiration-index__`;
//! * last deleted start `prefix | __deleted_start_gt__` in `__deletion-index__`;
//! * last deleted value id `prefix | __value_deleted_start_gt__` in
//!   `__value-deletion-index__`;
//! * collection values `prefix | id | counter` in `__values__`;
//! * the counter `__global_counter__` in `__global-counter__`.
//!
//! Index values are integers encoded with the store's codec, any integer in
//! `[-2^63, 2^64 - 1]` as quixstreams allows (its session windows store `-1`
//! and `2^64 - 1`). Every write goes through the base transaction, so all of
//! it reaches the changelog and is rebuilt by recovery.
//!
//! One job per file: `layout` (key layout and integer checks),
//! `prefix_cache` (what a transaction knows per prefix), `index_slots`
//! (the per-prefix index values), `windows` (window reads and writes),
//! `expiry`, `collections`, `commit` (prepare and flush), [`iter`] (lazy
//! window iteration, prefixes, keys) and [`checkpoint`] (partition
//! watermark, expiry checkpoints: the methods quixstreams 3.28.1 added for
//! session windows), and [`index`] (the shared [`WindowIndex`]).

pub mod checkpoint;
mod collections;
mod commit;
mod expiry;
pub mod index;
mod index_slots;
mod index_value;
pub mod iter;
mod layout;
mod prefix_cache;
mod transaction;
mod windows;

pub use checkpoint::CHECKPOINT_NEVER;
pub use expiry::ExpiredWindow;
pub use index::{WindowIndex, WindowIndexStats, DEFAULT_MAX_PREFIXES, PREFIX_OVERHEAD};
pub use iter::WindowCursor;
pub(crate) use layout::stored_millis;
pub use layout::GLOBAL_COUNTER_KEY;
pub use transaction::WindowedTransaction;
pub use windows::Window;
