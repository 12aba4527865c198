//! The bounds of the caches and what they report.

use std::time::Duration;

/// Bytes charged per cache entry on top of its key and value: the slot,
/// its place in the hash table and the allocator's headers of its two
/// heap blocks. An estimate; `peak_rss_mb` in the benchmark shows the
/// truth.
pub const ENTRY_OVERHEAD: usize = 96;

/// Bytes charged per key in a column family's ordered view of its dirty
/// keys (built for range reads), on top of the key itself.
pub const ORDERED_OVERHEAD: usize = 48;

/// Bytes charged for the pending changelog offset.
pub(crate) const OFFSET_CHARGE: usize = 32;

/// The bounds of a [`WriteBehindPartition`](crate::WriteBehindPartition).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteBehindConfig {
    /// Bound of the resident bytes of the cache: every entry (dirty, clean,
    /// known absent) counts its key, its value and [`ENTRY_OVERHEAD`]. Never
    /// exceeded: a write that needs room first evicts clean entries, then
    /// flushes; a single batch larger than the bound is written through.
    pub max_bytes: usize,
    /// A write that would take the dirty bytes above this flushes the cache
    /// first. Capped at `max_bytes`.
    pub max_dirty_bytes: usize,
    /// A write arriving when the oldest unflushed write is this old flushes
    /// the cache first; so does
    /// [`WriteBehindPartition::flush_if_due`](crate::WriteBehindPartition::flush_if_due).
    /// Together with the checkpoint interval this bounds how much of the
    /// changelog a restart replays.
    pub max_dirty_age: Duration,
    /// A batch of at least this many operations is applied to the cache
    /// after `write` returns, by a helper thread the process shares, so
    /// the writer goes on while it is applied (a checkpoint of a window
    /// store writes hundreds of thousands). Whoever uses the cache next
    /// (a read, a write, a flush) first finishes what the helper has not
    /// done, so every read still sees every batch whose write returned.
    /// After such a catch-up the next large batches are applied inside
    /// `write` for a while: a store that reads the cache right after each
    /// checkpoint gains nothing from the helper. `usize::MAX`: every batch
    /// is applied inside `write`.
    pub apply_behind_ops: usize,
}

impl Default for WriteBehindConfig {
    /// 64 MiB resident, flushed at 32 MiB of changes or 30 s (Kafka
    /// Streams' default commit interval).
    fn default() -> Self {
        WriteBehindConfig {
            max_bytes: 64 << 20,
            max_dirty_bytes: 32 << 20,
            max_dirty_age: Duration::from_secs(30),
            apply_behind_ops: 4096,
        }
    }
}

impl WriteBehindConfig {
    /// The bounds for a window store's partition: 128 MiB resident,
    /// flushed at 64 MiB of changes or 30 s.
    ///
    /// A window is written when its first record arrives and deleted when
    /// a later record closes it. If both happen between two flushes, the
    /// cache drops both and the partition below never sees the window;
    /// if a flush falls between them, the window is written below and
    /// then deleted there too (and the cache holds a delete for it until
    /// the next flush). So a flush forced by the dirty bound while the
    /// windows of the last checkpoints are still open sends every one of
    /// them below twice, and the deletes it leaves fill the cache again
    /// towards the next forced flush. The dirty bound must hold the open
    /// windows plus the deletes of one generation of them: with the
    /// default 32 MiB, the hopping benchmark (200,000 open windows of
    /// ~140 bytes charged, `docs/performance.md`) flushes every
    /// checkpoint; at 48 MiB it still does, at 64 MiB it never does, and
    /// its peak resident set falls (RocksDB's memtables stay empty).
    /// Window stores whose open windows take more than that need a
    /// proportionally larger bound (`max_dirty_bytes` about twice what the
    /// open windows are charged, `max_bytes` twice that).
    pub fn windowed() -> Self {
        WriteBehindConfig {
            max_bytes: 128 << 20,
            max_dirty_bytes: 64 << 20,
            ..WriteBehindConfig::default()
        }
    }
}

/// What a [`WriteBehindPartition`](crate::WriteBehindPartition) holds and
/// has done, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteBehindStats {
    /// Bytes held, as charged against [`WriteBehindConfig::max_bytes`].
    pub resident_bytes: usize,
    /// Bytes of the changes not yet written below.
    pub dirty_bytes: usize,
    /// Entries held (dirty, clean and known absent).
    pub entries: usize,
    /// Entries not yet written below.
    pub dirty_entries: usize,
    /// Batches written below by flushes.
    pub flushes: u64,
    /// Keys whose put and delete both stayed in the cache, so the
    /// partition below never saw either.
    pub elided: u64,
    /// The newest changelog offset written through the wrapper.
    pub changelog_offset: Option<u64>,
    /// The changelog offset the partition below holds.
    pub flushed_offset: Option<u64>,
    /// Batches applied after their `write` returned (see
    /// [`WriteBehindConfig::apply_behind_ops`]).
    pub applied_behind: u64,
    /// Of those, the batches whose application a caller finished because
    /// it needed the cache before the helper thread was done: that caller
    /// waited, so a high share means applying behind gains little here.
    pub finished_by_caller: u64,
}

impl WriteBehindStats {
    /// Adds `other`'s sizes and counters (not its offsets, which belong
    /// to one partition).
    pub(crate) fn add(&mut self, other: &WriteBehindStats) {
        self.resident_bytes += other.resident_bytes;
        self.dirty_bytes += other.dirty_bytes;
        self.entries += other.entries;
        self.dirty_entries += other.dirty_entries;
        self.flushes += other.flushes;
        self.elided += other.elided;
        self.applied_behind += other.applied_behind;
        self.finished_by_caller += other.finished_by_caller;
    }
}
