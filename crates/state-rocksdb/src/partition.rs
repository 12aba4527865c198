//! [`RocksDbPartition`]: one store partition in one RocksDB database.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use rocksdb::{BoundColumnFamily, DBWithThreadMode, IteratorMode, MultiThreaded, ReadOptions, WriteOptions};
use state_cache::{Lookup, WriteThroughCache};
use state_core::{
    cf, keys, open_with_retries, Direction, Error, KvIter, OpenAttempt, OpenRetry, PartitionStats, ReadView, Result,
    StorePartition, WriteBatch,
};

use crate::hook::{check_required, HookTarget};
use crate::memory::EngineMemory;
use crate::options::RocksDbOptions;
use crate::sorted_load;

type Db = DBWithThreadMode<MultiThreaded>;

const BACKEND: &str = "rocksdb";

/// The layout of a RocksDB snapshot: a checkpoint directory (an openable
/// database: SST files, MANIFEST, CURRENT, OPTIONS, and the WAL written
/// after the checkpoint's flush).
pub const SNAPSHOT_LAYOUT: &str = "rocksdb-checkpoint";

/// One partition of a store, backed by its own RocksDB database in its own
/// directory. Column families are created on first write.
///
/// Batches are applied with one RocksDB `WriteBatch`, so they are atomic
/// across column families, the changelog offset included.
pub struct RocksDbPartition {
    db: Db,
    path: PathBuf,
    /// Options of new column families (an options hook's included).
    cf_options: rocksdb::Options,
    /// Options of `__metadata__`: the library's, never a hook's.
    meta_options: rocksdb::Options,
    write_opts: WriteOptions,
    bulk_write_opts: WriteOptions,
    known_cfs: RwLock<BTreeSet<String>>,
    create_cf_lock: Mutex<()>,
    bulk_written: AtomicBool,
    /// Whether [`StorePartition::load_bulk`] may ingest sorted table files:
    /// not under an options hook, which may set a comparator that byte
    /// order does not follow.
    sorted_loads: bool,
    /// Names the table files a sorted load builds.
    tables_built: AtomicU64,
    values: Option<WriteThroughCache>,
}

impl std::fmt::Debug for RocksDbPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbPartition").field("path", &self.path).finish()
    }
}

fn is_lock_error(e: &rocksdb::Error) -> bool {
    let msg = e.to_string();
    msg.contains("LOCK") || msg.contains("lock hold")
}

impl RocksDbPartition {
    /// Opens (or creates) the partition at `path` with its own block cache
    /// (or its memory budget's).
    pub fn open(path: impl AsRef<Path>, options: &RocksDbOptions) -> Result<Self> {
        let memory = options.engine_memory();
        Self::open_in(path.as_ref(), options, &memory, None, &AtomicBool::new(false))
    }

    /// Opens the partition at `path`, sharing `cache` as block cache (with
    /// a [`RocksDbOptions::memory_budget`], the budget's cache instead). If
    /// another process (or handle) holds the partition's lock, retries with
    /// exponential backoff up to `options.open_max_retries` times, giving up
    /// early with [`Error::OpenCancelled`] when `stop` is set.
    pub fn open_with(
        path: &Path,
        options: &RocksDbOptions,
        cache: Option<&rocksdb::Cache>,
        stop: &AtomicBool,
    ) -> Result<Self> {
        let memory = match &options.memory_budget {
            Some(budget) => EngineMemory::of_budget(budget),
            None => EngineMemory {
                cache: cache.cloned(),
                write_buffers: None,
            },
        };
        Self::open_in(path, options, &memory, None, stop)
    }

    /// Opens the partition at `path` on `memory`; `store` names it (store
    /// and partition number) for the options hook.
    pub(crate) fn open_in(
        path: &Path,
        options: &RocksDbOptions,
        memory: &EngineMemory,
        store: Option<(&str, u32)>,
        stop: &AtomicBool,
    ) -> Result<Self> {
        // Owner only (0700): state can hold personal data.
        state_core::create_private_dir(path)?;
        let mut db_opts = options.db_options(memory);
        let mut cf_options = options.cf_options(memory);
        let meta_options = options.cf_options(memory);
        if let Some(hook) = &options.options_hook {
            let target = HookTarget {
                store: store.map(|(name, _)| name),
                partition: store.map(|(_, partition)| partition),
                path,
                block_cache: memory.cache.as_ref(),
            };
            hook.apply(&target, &mut db_opts, &mut cf_options);
        }
        let retry = OpenRetry {
            max_attempts: options.open_max_retries,
            backoff: options.open_retry_backoff,
        };
        if let Some(reason) = crate::wal_check::manifest_older_than_wals(path, options.wal_dir.as_deref(), &db_opts) {
            return Err(Error::PartitionCorrupt {
                backend: BACKEND,
                path: path.to_owned(),
                reason,
            });
        }
        let db = open_with_retries(path, retry, stop, || {
            match Self::open_db(path, &db_opts, &cf_options, &meta_options) {
                Ok(db) => Ok(db),
                Err(e) if is_lock_error(&e) => Err(OpenAttempt::Locked),
                Err(e) => Err(OpenAttempt::Failed(open_error(path, e))),
            }
        })?;
        if options.options_hook.is_some() {
            // Dropping `db` on refusal closes it before any use.
            check_required(path)?;
        }
        let mut known: BTreeSet<String> = Db::list_cf(&db_opts, path).unwrap_or_default().into_iter().collect();
        known.insert(cf::DEFAULT.to_owned());
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(options.sync_writes);
        let mut bulk_write_opts = WriteOptions::default();
        bulk_write_opts.disable_wal(true);
        let values = match &options.memory_budget {
            Some(budget) => WriteThroughCache::with_budget(options.value_cache_bytes, budget),
            None => WriteThroughCache::new(options.value_cache_bytes),
        };
        let partition = RocksDbPartition {
            db,
            path: path.to_owned(),
            cf_options,
            meta_options,
            write_opts,
            bulk_write_opts,
            known_cfs: RwLock::new(known),
            create_cf_lock: Mutex::new(()),
            bulk_written: AtomicBool::new(false),
            sorted_loads: options.options_hook.is_none(),
            tables_built: AtomicU64::new(0),
            values,
        };
        // Table files a crash left before their ingestion.
        let build_dir = path.join(sorted_load::BUILD_DIR);
        if build_dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&build_dir) {
                tracing::warn!(path = %build_dir.display(), error = %e, "could not remove unfinished table files of a restore");
            }
        }
        partition.ensure_cf(cf::METADATA)?;
        tracing::debug!(path = %path.display(), "opened partition");
        Ok(partition)
    }

    /// Opens an existing partition read-only, for inspection: takes no
    /// lock (works while an application has the partition open) and sees
    /// the state as of the open. Writes fail. A missing directory is
    /// [`Error::PartitionNotFound`]; damaged files are
    /// [`Error::PartitionCorrupt`].
    pub fn open_read_only(path: impl AsRef<Path>, options: &RocksDbOptions) -> Result<Self> {
        let path = path.as_ref();
        if !path.join("CURRENT").is_file() {
            return Err(Error::PartitionNotFound { path: path.to_owned() });
        }
        // No cache: an inspection reads each block once.
        let memory = EngineMemory::default();
        let mut db_opts = options.db_options(&memory);
        let mut cf_options = options.cf_options(&memory);
        let meta_options = options.cf_options(&memory);
        if let Some(hook) = &options.options_hook {
            let target = HookTarget {
                store: None,
                partition: None,
                path,
                block_cache: None,
            };
            hook.apply(&target, &mut db_opts, &mut cf_options);
        }
        let names = Db::list_cf(&db_opts, path).map_err(|e| open_error(path, e))?;
        let descriptors = names.iter().map(|name| {
            let o = if name == cf::METADATA {
                &meta_options
            } else {
                &cf_options
            };
            rocksdb::ColumnFamilyDescriptor::new(name, o.clone())
        });
        let db =
            Db::open_cf_descriptors_read_only(&db_opts, path, descriptors, false).map_err(|e| open_error(path, e))?;
        Ok(RocksDbPartition {
            db,
            path: path.to_owned(),
            cf_options,
            meta_options,
            write_opts: WriteOptions::default(),
            bulk_write_opts: WriteOptions::default(),
            known_cfs: RwLock::new(names.into_iter().collect()),
            create_cf_lock: Mutex::new(()),
            bulk_written: AtomicBool::new(false),
            sorted_loads: false,
            tables_built: AtomicU64::new(0),
            values: None,
        })
    }

    fn open_db(
        path: &Path,
        db_opts: &rocksdb::Options,
        cf_opts: &rocksdb::Options,
        meta_opts: &rocksdb::Options,
    ) -> Result<Db, rocksdb::Error> {
        // `default` and `__metadata__` are always opened as named column
        // families so their handles can be looked up like any other.
        let mut names = Db::list_cf(db_opts, path).unwrap_or_default();
        for required in [cf::DEFAULT, cf::METADATA] {
            if !names.iter().any(|n| n == required) {
                names.push(required.to_owned());
            }
        }
        let descriptors = names.into_iter().map(|name| {
            let o = if name == cf::METADATA { meta_opts } else { cf_opts };
            rocksdb::ColumnFamilyDescriptor::new(name, o.clone())
        });
        Db::open_cf_descriptors(db_opts, path, descriptors)
    }

    /// The partition's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn handle(&self, name: &str) -> Option<Arc<BoundColumnFamily<'_>>> {
        self.db.cf_handle(name)
    }

    fn ensure_cf(&self, name: &str) -> Result<()> {
        if self.known_cfs.read().contains(name) {
            return Ok(());
        }
        let _guard = self.create_cf_lock.lock();
        if self.db.cf_handle(name).is_none() {
            let options = if name == cf::METADATA {
                &self.meta_options
            } else {
                &self.cf_options
            };
            self.db.create_cf(name, options).map_err(|e| {
                if state_core::is_no_space(&e) {
                    Error::storage(BACKEND, "creating a column family", &self.path, e)
                } else {
                    Error::backend_on(BACKEND, "creating the column family", format!("{name:?}"), e)
                }
            })?;
            tracing::debug!(cf = name, path = %self.path.display(), "created column family");
        }
        self.known_cfs.write().insert(name.to_owned());
        Ok(())
    }

    fn to_rocks_batch(&self, batch: &WriteBatch) -> Result<rocksdb::WriteBatch> {
        for name in batch.column_families() {
            self.ensure_cf(name)?;
        }
        let mut wb = rocksdb::WriteBatch::default();
        // Batches usually touch one or two column families: remember the
        // last handle instead of looking it up per operation.
        let mut current: Option<(&str, Arc<BoundColumnFamily<'_>>)> = None;
        for op in batch.iter() {
            let handle = match &current {
                Some((name, h)) if *name == op.cf => h.clone(),
                _ => {
                    let h = self.handle(op.cf).ok_or_else(|| {
                        Error::backend(BACKEND, "writing a batch", format!("column family {} vanished", op.cf))
                    })?;
                    current = Some((op.cf, h.clone()));
                    h
                }
            };
            match op.value {
                Some(v) => wb.put_cf(&handle, op.key, v),
                None => wb.delete_cf(&handle, op.key),
            }
        }
        if let Some(offset) = batch.changelog_offset() {
            let meta = self
                .handle(cf::METADATA)
                .ok_or_else(|| Error::backend(BACKEND, "writing a batch", "metadata column family missing"))?;
            wb.put_cf(&meta, cf::CHANGELOG_OFFSET_KEY, keys::encode_u64(offset));
        }
        Ok(wb)
    }

    /// Approximate number of keys in `cf` (RocksDB's estimate).
    pub fn approximate_keys(&self, cf: &str) -> Result<u64> {
        let Some(h) = self.handle(cf) else { return Ok(0) };
        self.db
            .property_int_value_cf(&h, "rocksdb.estimate-num-keys")
            .map(|v| v.unwrap_or(0))
            .map_err(|e| Error::backend(BACKEND, "reading a property", e))
    }
}

/// The typed error for a failed open: a full disk is [`Error::DiskFull`],
/// damaged files are the operator's business ([`Error::PartitionCorrupt`]),
/// anything else is a backend error.
fn open_error(path: &Path, e: rocksdb::Error) -> Error {
    let msg = e.to_string();
    // Opening writes (a new WAL, the recovered memtables' SST files).
    if state_core::is_no_space(&e) {
        return Error::storage(BACKEND, "opening the partition", path, e);
    }
    if msg.contains("Corruption")
        || msg.contains("CURRENT")
        || msg.contains("MANIFEST")
        || msg.contains("not a directory")
    {
        return Error::PartitionCorrupt {
            backend: BACKEND,
            path: path.to_owned(),
            reason: msg,
        };
    }
    Error::backend_on(BACKEND, "opening the partition", path.display(), e)
}

/// The typed error for a failed read or write: a `Corruption` status (a
/// block checksum mismatch, a missing or damaged table file found by a read
/// or by a background job whose error now fails every write) is
/// [`Error::PartitionCorrupt`] of the partition at `path`, so that the
/// manager's self-healing can rebuild it; anything else is a backend error.
fn access_error(path: &Path, operation: &'static str, e: rocksdb::Error) -> Error {
    if e.kind() == rocksdb::ErrorKind::Corruption {
        return Error::PartitionCorrupt {
            backend: BACKEND,
            path: path.to_owned(),
            reason: format!("{operation}: {e}"),
        };
    }
    // A full disk is told apart (`Error::DiskFull`); the rest is a backend
    // error naming the partition.
    Error::storage(BACKEND, operation, path, e)
}

impl StorePartition for RocksDbPartition {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(cache) = &self.values {
            if let Lookup::Hit(v) = cache.get(cf, key) {
                return Ok(v);
            }
        }
        let Some(h) = self.handle(cf) else { return Ok(None) };
        let value = self
            .db
            .get_cf(&h, key)
            .map_err(|e| access_error(&self.path, "reading a key", e))?;
        if let Some(cache) = &self.values {
            cache.fill(cf, key, value.as_deref());
        }
        Ok(value)
    }

    fn exists(&self, cf: &str, key: &[u8]) -> Result<bool> {
        let Some(h) = self.handle(cf) else { return Ok(false) };
        self.db
            .get_pinned_cf(&h, key)
            .map(|v| v.is_some())
            .map_err(|e| access_error(&self.path, "reading a key", e))
    }

    fn iter_range<'a>(
        &'a self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>> {
        let Some(h) = self.handle(cf) else {
            return Ok(Box::new(std::iter::empty()));
        };
        Ok(match range_options(lower, upper, direction) {
            None => Box::new(std::iter::empty()),
            Some((ro, mode)) => boxed(self.db.iterator_cf_opt(&h, ro, mode), &self.path),
        })
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let wb = self.to_rocks_batch(batch)?;
        self.db
            .write_opt(wb, &self.write_opts)
            .map_err(|e| access_error(&self.path, "writing a batch", e))?;
        // Write-through only after RocksDB accepted the batch.
        if let Some(cache) = &self.values {
            cache.written(batch);
        }
        Ok(())
    }

    fn write_bulk(&self, batch: &WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let wb = self.to_rocks_batch(batch)?;
        self.bulk_written.store(true, Ordering::Release);
        // Bulk loads (recovery) bypass the value cache.
        if let Some(cache) = &self.values {
            cache.clear();
        }
        self.db
            .write_opt(wb, &self.bulk_write_opts)
            .map_err(|e| access_error(&self.path, "writing a bulk batch", e))
    }

    /// A batch of at least 1,024 operations (`SortedBatch::MIN_OPERATIONS`) is
    /// sorted, written as one table file per column family and ingested
    /// (no memtable insert, no flush of it later); its changelog offset is
    /// stored after the last file went in. Smaller batches, and partitions
    /// opened with an options hook, take [`write_bulk`](Self::write_bulk).
    fn load_bulk(&self, batch: &WriteBatch) -> Result<()> {
        if !self.sorted_loads || batch.len() < state_core::SortedBatch::MIN_OPERATIONS {
            return self.write_bulk(batch);
        }
        for name in batch.column_families() {
            self.ensure_cf(name)?;
        }
        self.bulk_written.store(true, Ordering::Release);
        if let Some(cache) = &self.values {
            cache.clear();
        }
        let build_dir = self.path.join(sorted_load::BUILD_DIR);
        state_core::create_private_dir(&build_dir)?;
        let sorted = state_core::SortedBatch::new(batch);
        for (name, ops) in sorted.by_column_family() {
            let handle = self
                .handle(name)
                .ok_or_else(|| Error::backend(BACKEND, "loading a batch", format!("column family {name} vanished")))?;
            let options = if name == cf::METADATA {
                &self.meta_options
            } else {
                &self.cf_options
            };
            let n = self.tables_built.fetch_add(1, Ordering::Relaxed);
            let file = build_dir.join(format!("{n:08}.sst"));
            let ingested = sorted_load::write_table(options, &file, ops).and_then(|()| {
                let mut io = rocksdb::IngestExternalFileOptions::default();
                // Hard-linked into the database, not copied.
                io.set_move_files(true);
                self.db.ingest_external_file_cf_opts(&handle, &io, vec![&file])
            });
            // Moved on success; built but refused (or half-built) otherwise.
            if file.exists() {
                let _ = std::fs::remove_file(&file);
            }
            ingested.map_err(|e| access_error(&self.path, "loading a sorted table file", e))?;
        }
        if let Some(offset) = batch.changelog_offset() {
            let mut wb = WriteBatch::new();
            wb.set_changelog_offset(offset);
            let wb = self.to_rocks_batch(&wb)?;
            self.db
                .write_opt(wb, &self.bulk_write_opts)
                .map_err(|e| access_error(&self.path, "storing the changelog offset of a loaded batch", e))?;
        }
        Ok(())
    }

    fn persist(&self) -> Result<()> {
        if self.bulk_written.swap(false, Ordering::AcqRel) {
            // Unlogged writes live only in memtables: flush every column
            // family (atomically, see options) to make them durable.
            let names: Vec<String> = self.known_cfs.read().iter().cloned().collect();
            let handles: Vec<_> = names.iter().filter_map(|n| self.handle(n)).collect();
            let refs: Vec<&Arc<BoundColumnFamily<'_>>> = handles.iter().collect();
            let mut fo = rocksdb::FlushOptions::default();
            fo.set_wait(true);
            self.db
                .flush_cfs_opt(&refs, &fo)
                .map_err(|e| access_error(&self.path, "flushing memtables", e))?;
        }
        self.db
            .flush_wal(true)
            .map_err(|e| access_error(&self.path, "syncing the write-ahead log", e))
    }

    fn column_families(&self) -> Result<Vec<String>> {
        Ok(self.known_cfs.read().iter().cloned().collect())
    }

    fn read_view(&self) -> Result<Box<dyn ReadView + '_>> {
        Ok(Box::new(RocksView {
            partition: self,
            snapshot: self.db.snapshot(),
        }))
    }

    /// A RocksDB checkpoint: every column family is flushed at once
    /// (`atomic_flush`), so unlogged bulk writes are in it too; SST files
    /// are hard-linked (no copy, on the same filesystem), the MANIFEST and
    /// WAL tail copied. The changelog offset is read back from the
    /// checkpoint itself, so it is the one its data holds.
    fn snapshot(&self, dir: &Path) -> Result<Option<state_core::LocalSnapshot>> {
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.db)
            .map_err(|e| Error::backend_on(BACKEND, "starting a checkpoint", self.path.display(), e))?;
        checkpoint
            .create_checkpoint(dir)
            .map_err(|e| Error::backend_on(BACKEND, "creating a checkpoint", dir.display(), e))?;
        make_private(dir)?;
        let copy = RocksDbPartition::open_read_only(dir, &RocksDbOptions::default())?;
        let offset = copy.changelog_offset()?;
        drop(copy);
        Ok(Some(state_core::LocalSnapshot::new(
            dir,
            BACKEND,
            SNAPSHOT_LAYOUT,
            offset,
        )))
    }

    fn stats(&self) -> PartitionStats {
        let names: Vec<String> = self.known_cfs.read().iter().cloned().collect();
        let sum = |property: &str| -> Option<u64> {
            let mut total = 0u64;
            for name in &names {
                let h = self.handle(name)?;
                total += self.db.property_int_value_cf(&h, property).ok().flatten()?;
            }
            Some(total)
        };
        let mut stats = PartitionStats::default();
        stats.live_data_bytes = sum("rocksdb.estimate-live-data-size");
        stats.memtable_bytes = sum("rocksdb.cur-size-all-mem-tables");
        stats.pending_compaction_bytes = sum("rocksdb.estimate-pending-compaction-bytes");
        stats.table_readers_bytes = sum("rocksdb.estimate-table-readers-mem");
        stats.block_cache_bytes = self.db.property_int_value("rocksdb.block-cache-usage").ok().flatten();
        stats.disk_bytes = dir_size(&self.path).ok();
        stats
    }
}

/// Read options bounding an iteration to `lower..upper`, and where it
/// starts; `None` for an empty range.
fn range_options(
    lower: &[u8],
    upper: Option<&[u8]>,
    direction: Direction,
) -> Option<(ReadOptions, IteratorMode<'static>)> {
    if upper.is_some_and(|u| u <= lower) {
        return None;
    }
    let mut ro = ReadOptions::default();
    ro.set_iterate_lower_bound(lower.to_vec());
    if let Some(u) = upper {
        ro.set_iterate_upper_bound(u.to_vec());
    }
    let mode = match direction {
        Direction::Forward => IteratorMode::Start,
        Direction::Backward => IteratorMode::End,
    };
    Some((ro, mode))
}

fn boxed<'a>(it: rocksdb::DBIteratorWithThreadMode<'a, Db>, path: &'a Path) -> KvIter<'a> {
    Box::new(it.map(move |r| {
        r.map(|(k, v)| (k.into_vec(), v.into_vec()))
            .map_err(|e| access_error(path, "iterating", e))
    }))
}

/// A [`RocksDbPartition`] as of one RocksDB snapshot.
struct RocksView<'a> {
    partition: &'a RocksDbPartition,
    snapshot: rocksdb::SnapshotWithThreadMode<'a, Db>,
}

impl ReadView for RocksView<'_> {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(h) = self.partition.handle(cf) else {
            return Ok(None);
        };
        self.snapshot
            .get_cf(&h, key)
            .map_err(|e| access_error(&self.partition.path, "reading a key from a snapshot", e))
    }

    fn iter_range<'b>(
        &'b self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'b>> {
        let Some(h) = self.partition.handle(cf) else {
            return Ok(Box::new(std::iter::empty()));
        };
        Ok(match range_options(lower, upper, direction) {
            None => Box::new(std::iter::empty()),
            Some((ro, mode)) => boxed(self.snapshot.iterator_cf_opt(&h, ro, mode), &self.partition.path),
        })
    }
}

/// Owner only (0700), as every state directory: RocksDB creates the
/// checkpoint directory with the default mode.
fn make_private(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(state_core::PRIVATE_DIR_MODE)).map_err(
            |source| Error::Io {
                path: dir.to_owned(),
                source,
            },
        )?;
    }
    let _ = dir;
    Ok(())
}

/// Bytes of the files under `dir` (recursively).
fn dir_size(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
