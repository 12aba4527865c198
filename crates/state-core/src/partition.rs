//! [`StorePartition`]: the data of one partition of one store, as every
//! backend provides it.

use crate::batch::WriteBatch;
use crate::error::Result;

/// A key and its value, as returned by range iteration.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A lazy iterator over key-value pairs of one column family.
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<KeyValue>> + 'a>;

/// Iteration order of [`StorePartition::iter_range`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    /// Ascending key order.
    #[default]
    Forward,
    /// Descending key order.
    Backward,
}

/// Sizes a backend reports about one partition, for metrics and standby
/// reports; each is `None` where the backend has no such figure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionStats {
    /// Bytes of files on disk (data, logs).
    pub disk_bytes: Option<u64>,
    /// Estimated bytes of live (not overwritten or deleted) keys and values.
    pub live_data_bytes: Option<u64>,
    /// Bytes held in write buffers (memtables).
    pub memtable_bytes: Option<u64>,
    /// Bytes of the block cache in use (shared caches report the whole cache).
    pub block_cache_bytes: Option<u64>,
    /// Bytes compaction still has to rewrite.
    pub pending_compaction_bytes: Option<u64>,
    /// Bytes the readers of open table files hold outside the block cache
    /// (their index and filter blocks, unless those are cached).
    pub table_readers_bytes: Option<u64>,
}

/// The storage of one partition of one store: column families of ordered
/// byte keys, written atomically in batches, plus the changelog offset the
/// data is up to date with.
///
/// # Contract (checked by the conformance kit, `state_core::testkit`)
/// * Reads see every batch whose `write` returned `Ok`, and nothing of a
///   batch whose `write` failed.
/// * A batch, its changelog offset included, is atomic: after a crash either
///   all of it or none of it is visible (for durable backends).
/// * A column family exists as soon as it is written; reading or iterating a
///   column family never written is not an error and yields nothing.
/// * Iteration is in byte order of keys, bounded by `lower` (inclusive) and
///   `upper` (exclusive), and reflects a consistent view.
/// * The changelog offset is stored in the [`crate::cf::METADATA`] column
///   family under [`crate::cf::CHANGELOG_OFFSET_KEY`] as u64 big-endian.
pub trait StorePartition: Send + Sync {
    /// Reads the value of `key` in `cf`.
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// True if `key` has a value in `cf`.
    fn exists(&self, cf: &str, key: &[u8]) -> Result<bool> {
        Ok(self.get(cf, key)?.is_some())
    }

    /// Iterates `cf` over keys `lower <= key < upper` (`upper = None`: to the
    /// end) in the given direction.
    fn iter_range<'a>(
        &'a self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>>;

    /// Applies `batch` atomically (see the trait contract).
    fn write(&self, batch: &WriteBatch) -> Result<()>;

    /// Applies `batch` for bulk loading (recovery). Backends may skip their
    /// write-ahead log here; such a write is only durable after
    /// [`StorePartition::persist`] returns. The default is [`StorePartition::write`].
    fn write_bulk(&self, batch: &WriteBatch) -> Result<()> {
        self.write(batch)
    }

    /// Loads `batch` into a partition being filled from its changelog in
    /// large batches (a restore into an empty partition): the result is the
    /// one [`StorePartition::write_bulk`] gives (operations in order, a later
    /// one on the same key wins, deletes remove, the changelog offset
    /// stored), and like it, durable only after [`StorePartition::persist`].
    ///
    /// A backend may load the batch as sorted files instead of inserting it
    /// key by key; then the batch is not atomic: after a crash, or after an
    /// `Err`, the partition may hold some or all of the batch's data while
    /// its stored changelog offset is still an earlier one (never the other
    /// way round). Replaying the changelog from the stored offset rewrites
    /// every key the batch touched, so it converges to the same state. Only
    /// callers that replay from the stored offset after a failure (the
    /// restore engine) may use it. The default, for backends that decline,
    /// is [`StorePartition::write_bulk`].
    fn load_bulk(&self, batch: &WriteBatch) -> Result<()> {
        self.write_bulk(batch)
    }

    /// Makes everything written so far durable, including bulk writes.
    fn persist(&self) -> Result<()> {
        Ok(())
    }

    /// The stored changelog offset: the offset of the last changelog record
    /// the data includes, or `None` if never set. The default reads it from
    /// [`crate::cf::METADATA`], where every batch's offset is stored.
    fn changelog_offset(&self) -> Result<Option<u64>> {
        match self.get(crate::cf::METADATA, crate::cf::CHANGELOG_OFFSET_KEY)? {
            None => Ok(None),
            Some(bytes) => crate::keys::decode_u64(&bytes)
                .map(Some)
                .map_err(|_| crate::Error::CorruptChangelogOffset { len: bytes.len() }),
        }
    }

    /// Stores a new changelog offset without touching the data.
    fn write_changelog_offset(&self, offset: u64) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.set_changelog_offset(offset);
        self.write(&batch)
    }

    /// Writes one key (a one-operation batch).
    fn put(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put(cf, key, value);
        self.write(&batch)
    }

    /// Deletes one key (a one-operation batch).
    fn delete(&self, cf: &str, key: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete(cf, key);
        self.write(&batch)
    }

    /// True if the partition writes a batch faster when its keys come in
    /// order per column family (RocksDB's memtable inserts reuse their
    /// search path between neighbouring keys). Writers whose changes sit
    /// in a hash table sort them only for partitions that say so; the
    /// order never changes what a batch does. Default: true.
    fn prefers_sorted_batches(&self) -> bool {
        true
    }

    /// Names of the column families that exist, `default` and
    /// `__metadata__` included, sorted.
    fn column_families(&self) -> Result<Vec<String>>;

    /// A consistent read-only view as of now, for readers on other threads
    /// (interactive queries): every read through it sees the same batches,
    /// so several reads never straddle a checkpoint, while writes go on.
    /// RocksDB and fjall use their snapshots; the in-memory backend holds
    /// its read lock for the view's life. A wrapper delegates to what it
    /// wraps.
    fn read_view(&self) -> Result<Box<dyn crate::ReadView + '_>>;

    /// Takes a consistent snapshot of the partition into the new directory
    /// `dir` (its parent must exist; `dir` itself must not), for
    /// `state-snapshot` to upload. A capability a backend may decline:
    /// `Ok(None)` (the default) says it takes no snapshots, and leaves
    /// nothing at `dir`. What a returned [`LocalSnapshot`](crate::LocalSnapshot)
    /// guarantees is on that type; writes may go on meanwhile (they are not
    /// in the snapshot, or entirely in it). On an error, whatever was
    /// created at `dir` is the caller's to delete. A wrapper delegates to
    /// what it wraps.
    ///
    /// RocksDB takes a checkpoint (hard links to its SST files; cheap),
    /// fjall exports a copy of every keyspace (reads and writes all the
    /// data), the in-memory backend serializes its maps.
    fn snapshot(&self, dir: &std::path::Path) -> Result<Option<crate::LocalSnapshot>> {
        let _ = dir;
        Ok(None)
    }

    /// Sizes of the partition, as far as the backend knows them (default:
    /// nothing known). Cheap enough to call every few seconds.
    fn stats(&self) -> PartitionStats {
        PartitionStats::default()
    }

    /// Closes the partition, making written data durable and releasing any
    /// lock on its files. Dropping the partition also closes it, silently.
    fn close(self) -> Result<()>
    where
        Self: Sized,
    {
        self.persist()
    }
}
