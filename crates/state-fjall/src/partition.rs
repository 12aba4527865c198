//! [`FjallPartition`]: one store partition in one [fjall] database.
//!
//! # Layout
//! A partition is a directory holding one fjall `Database`; each column
//! family is a fjall keyspace of the same name, created on first write
//! (fjall persists keyspace creation in its own meta keyspace, so the set of
//! column families survives a restart). `default` and `__metadata__` are
//! created when the partition is opened.
//!
//! fjall refuses empty keys (it asserts), which the partition contract
//! allows, so every key is stored behind a one-byte tag ([`KEY_TAG`]). A
//! common prefix keeps the byte order of keys, so ranges map one to one.
//!
//! # Guarantees
//! * [`StorePartition::write`] applies the batch with one fjall
//!   `WriteBatch`, which is atomic across keyspaces: it is appended to the
//!   database's single journal as one checksummed record (start marker,
//!   items, end marker with an xxh3 checksum). On recovery, an incomplete or
//!   corrupt trailing batch is discarded and the journal truncated, so after
//!   a crash a batch — its changelog offset included — is visible entirely
//!   or not at all.
//! * By default `write` uses `PersistMode::Buffer`: the batch is handed to
//!   the OS (`write(2)`) before `write` returns, so it survives a crash of
//!   the process but not a power loss or kernel crash. With
//!   [`FjallOptions::sync_writes`] every batch is fsynced
//!   (`PersistMode::SyncAll`) before `write` returns.
//! * [`StorePartition::write_bulk`] (recovery) commits with no persist at
//!   all: the batch may sit in fjall's journal buffer inside the process
//!   until the next `write` or [`StorePartition::persist`]. Still atomic.
//! * [`StorePartition::load_bulk`] (a restore into an empty partition)
//!   loads a batch of at least [`SortedBatch::MIN_OPERATIONS`] through fjall's
//!   ingestion, one keyspace after another: the tables are fsynced as
//!   they go in, the changelog offset is written after the last, so after
//!   a crash the data may be ahead of the stored offset, never behind it
//!   (the trait's rule; the restore replays from that offset).
//! * [`StorePartition::persist`] flushes the journal buffer and fsyncs it
//!   (`PersistMode::SyncAll`): everything written before is durable.
//! * Every read goes through a cross-keyspace fjall `Snapshot` (fjall's
//!   plain `Keyspace::get`/`range` read at the newest sequence number and can
//!   see part of a batch that another thread is still applying, or, for
//!   `range`, writes made while the iterator is consumed). A point read sees
//!   a batch entirely or not at all; [`StorePartition::iter_range`] reflects
//!   the state when the iterator was created. [`FjallPartition::snapshot`]
//!   exposes such a view for readers on other threads (interactive queries).
//!
//! # Locking and closing
//! fjall takes an advisory lock (`flock`) on a lock file in the directory;
//! a second open of the same directory — from this process or another —
//! fails while the first is alive ([`Error::PartitionLocked`] after the
//! configured retries). The lock and the background threads are released
//! when the last handle (partition, snapshot, iterator) is dropped;
//! [`FjallPartition::close`] persists first and reports its error.
//!
//! [fjall]: https://docs.rs/fjall/3.1.13

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, PersistMode, Readable};
use parking_lot::{Mutex, RwLock};
use state_core::{
    cf, keys, open_with_retries, Direction, Error, KeyValue, KvIter, OpenAttempt, OpenRetry, PartitionStats, ReadView,
    Result, SortedBatch, StorePartition, WriteBatch,
};

use crate::memory::PartitionMemory;
use crate::options::FjallOptions;

pub(crate) const BACKEND: &str = "fjall";

/// The layout of a fjall snapshot: a new fjall database holding a copy of
/// every keyspace (fjall 3.1 has no checkpoint or backup of its own).
pub const SNAPSHOT_LAYOUT: &str = "fjall-export";

/// The byte stored in front of every key (see the module documentation).
pub const KEY_TAG: u8 = 0;

/// Longest key this backend accepts: fjall's keys carry a 16-bit length, one
/// byte of which is the tag.
pub const MAX_KEY_LEN: usize = u16::MAX as usize - 1;

/// `key` behind [`KEY_TAG`], written into `buf`.
fn tag_into<'b>(buf: &'b mut Vec<u8>, key: &[u8]) -> &'b [u8] {
    buf.clear();
    buf.reserve(key.len() + 1);
    buf.push(KEY_TAG);
    buf.extend_from_slice(key);
    buf
}

/// `key` behind [`KEY_TAG`].
fn tagged(key: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    tag_into(&mut buf, key);
    buf
}

/// Runs `f` on `key` behind [`KEY_TAG`], without allocating per call.
fn with_tagged<T>(key: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => f(tag_into(&mut buf, key)),
        // Re-entered from `f` (not done here, but cheap to allow).
        Err(_) => f(&tagged(key)),
    })
}

/// The stored key without its tag.
fn untagged(stored: &[u8]) -> &[u8] {
    stored.get(1..).unwrap_or_default()
}

/// Longest keyspace name fjall accepts (it panics on longer or empty ones).
const MAX_CF_NAME_LEN: usize = u8::MAX as usize;

/// One partition of a store in its own fjall database. The documentation
/// of its module (`src/partition.rs`) says what is guaranteed.
pub struct FjallPartition {
    db: Database,
    path: PathBuf,
    options: FjallOptions,
    /// Handles of every keyspace that exists, by name.
    keyspaces: RwLock<BTreeMap<String, Keyspace>>,
    /// Serialises keyspace creation.
    create_lock: Mutex<()>,
    /// Its share of a memory budget, if any.
    memory: PartitionMemory,
}

impl std::fmt::Debug for FjallPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallPartition").field("path", &self.path).finish()
    }
}

/// A fjall error raised while doing `operation`, as a backend error.
fn backend_error(operation: &'static str, e: fjall::Error) -> Error {
    Error::backend(BACKEND, operation, e)
}

/// Whether `e` reports damaged files: fjall's checksum, decompression,
/// format and recovery errors (the errors this backend maps to
/// [`Error::PartitionCorrupt`]).
pub fn is_corruption(e: &fjall::Error) -> bool {
    use fjall::Error as E;
    match e {
        E::Storage(e) => is_lsm_corruption(e),
        E::JournalRecovery(_)
        | E::InvalidVersion(_)
        | E::Decompress(_)
        | E::InvalidTrailer
        | E::InvalidTag(_)
        | E::Unrecoverable => true,
        _ => false,
    }
}

/// [`is_corruption`] for an error of fjall's tree layer.
pub fn is_lsm_corruption(e: &fjall::LsmError) -> bool {
    use fjall::LsmError as L;
    matches!(
        e,
        L::ChecksumMismatch { .. }
            | L::Decompress(_)
            | L::InvalidVersion(_)
            | L::Unrecoverable
            | L::InvalidTag(_)
            | L::InvalidTrailer
            | L::InvalidHeader(_)
    )
}

/// The typed error for a failed read or write: damaged files (a block
/// whose checksum fails) are [`Error::PartitionCorrupt`] of the partition
/// at `path`, so that the manager's self-healing can rebuild it; anything
/// else is a backend error.
fn access_error(path: Option<&Path>, operation: &'static str, e: fjall::Error) -> Error {
    match path {
        Some(path) if is_corruption(&e) => Error::PartitionCorrupt {
            backend: BACKEND,
            path: path.to_owned(),
            reason: format!("{operation}: {e}"),
        },
        // A full disk is told apart (`Error::DiskFull`).
        Some(path) => Error::storage(BACKEND, operation, path, e),
        None => backend_error(operation, e),
    }
}

/// The typed error for a failed open (other than a held lock).
fn open_error(path: &Path, e: fjall::Error) -> Error {
    use fjall::Error as E;
    if state_core::is_no_space(&e) {
        return Error::storage(BACKEND, "opening the partition", path, e);
    }
    match e {
        E::Io(source) | E::Storage(fjall::LsmError::Io(source)) => Error::Io {
            path: path.to_owned(),
            source,
        },
        E::JournalRecovery(_)
        | E::InvalidVersion(_)
        | E::Decompress(_)
        | E::InvalidTrailer
        | E::InvalidTag(_)
        | E::Unrecoverable
        | E::Storage(_) => Error::PartitionCorrupt {
            backend: BACKEND,
            path: path.to_owned(),
            reason: e.to_string(),
        },
        e => Error::backend_on(BACKEND, "opening the partition", path.display(), e),
    }
}

impl FjallPartition {
    /// Opens (or creates) the partition in directory `path`.
    pub fn open(path: impl AsRef<Path>, options: &FjallOptions) -> Result<Self> {
        Self::open_with(path.as_ref(), options, &AtomicBool::new(false))
    }

    /// Opens the partition at `path`. If another handle holds its lock,
    /// retries with exponential backoff up to `options.open_max_retries`
    /// times, giving up early with [`Error::OpenCancelled`] when `stop` is
    /// set.
    pub fn open_with(path: &Path, options: &FjallOptions, stop: &AtomicBool) -> Result<Self> {
        // Owner only (0700): state can hold personal data.
        state_core::create_private_dir(path)?;
        let retry = OpenRetry {
            max_attempts: options.open_max_retries,
            backoff: options.open_retry_backoff,
        };
        let memory = match &options.memory_budget {
            Some(budget) => PartitionMemory::of_budget(budget),
            None => PartitionMemory::unbudgeted(),
        };
        let db = open_with_retries(path, retry, stop, || {
            let config = Database::builder(path)
                .cache_size(options.cache_size)
                .max_journaling_size(options.max_journaling_size.max(64 << 20))
                .worker_threads(options.worker_threads.max(1))
                .into_config();
            Database::open(memory.configure(config)).map_err(|e| match e {
                fjall::Error::Locked => OpenAttempt::Locked,
                e => OpenAttempt::Failed(open_error(path, e)),
            })
        })?;
        let mut keyspaces = BTreeMap::new();
        for name in db.list_keyspace_names() {
            let name: &str = &name;
            let ks = db
                .keyspace(name, || keyspace_options(options))
                .map_err(|e| open_error(path, e))?;
            keyspaces.insert(name.to_owned(), ks);
        }
        let partition = FjallPartition {
            db,
            path: path.to_owned(),
            options: options.clone(),
            keyspaces: RwLock::new(keyspaces),
            create_lock: Mutex::new(()),
            memory,
        };
        partition.keyspace_or_create(cf::DEFAULT)?;
        partition.keyspace_or_create(cf::METADATA)?;
        tracing::debug!(path = %path.display(), "opened fjall partition");
        Ok(partition)
    }

    /// The partition's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A consistent view of every column family as of now, for readers on
    /// any thread (interactive queries). Later writes are not seen. Keep it
    /// short-lived: fjall keeps the versions it needs until it is dropped.
    pub fn snapshot(&self) -> FjallSnapshot {
        FjallSnapshot {
            snapshot: self.db.snapshot(),
            keyspaces: self.keyspaces.read().clone(),
        }
    }

    /// Capacity of the block cache the partition reads through (under a
    /// memory budget, the one every partition on the budget shares).
    pub fn cache_capacity(&self) -> u64 {
        self.db.cache_capacity()
    }

    /// Bytes in the partition's memtables (active and sealed).
    pub fn write_buffer_bytes(&self) -> u64 {
        self.db.write_buffer_size()
    }

    /// Bytes the partition's write buffers hold of its memory budget
    /// (`None` without one).
    pub fn budget_reserved(&self) -> Option<usize> {
        self.memory.reserved()
    }

    /// Bytes the partition takes on disk (journal and segments).
    pub fn disk_space(&self) -> Result<u64> {
        self.db
            .disk_space()
            .map_err(|e| backend_error("measuring disk space", e))
    }

    fn keyspace(&self, name: &str) -> Option<Keyspace> {
        self.keyspaces.read().get(name).cloned()
    }

    fn keyspace_or_create(&self, name: &str) -> Result<Keyspace> {
        if let Some(ks) = self.keyspace(name) {
            return Ok(ks);
        }
        if name.is_empty() || name.len() > MAX_CF_NAME_LEN {
            return Err(Error::backend(
                BACKEND,
                "creating a column family",
                format!("column family name {name:?} must be 1 to {MAX_CF_NAME_LEN} bytes"),
            ));
        }
        let _guard = self.create_lock.lock();
        if let Some(ks) = self.keyspace(name) {
            return Ok(ks);
        }
        let ks = self
            .db
            .keyspace(name, || keyspace_options(&self.options))
            .map_err(|e| backend_error("creating a column family", e))?;
        self.keyspaces.write().insert(name.to_owned(), ks.clone());
        tracing::debug!(cf = name, path = %self.path.display(), "created column family");
        Ok(ks)
    }

    /// Commits `batch` as one fjall batch, persisted with `mode`.
    fn commit(&self, batch: &WriteBatch, mode: Option<PersistMode>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // One handle per column family of the batch, in the batch's order.
        let names = batch.column_families();
        let mut handles = Vec::with_capacity(names.len());
        for name in names {
            handles.push(self.keyspace_or_create(name)?);
        }
        let mut fb = OwnedWriteBatch::with_capacity(self.db.clone(), batch.len() + 1).durability(mode);
        let mut key = Vec::new();
        for op in batch.iter() {
            check_key_len(op.key, "writing a batch")?;
            // Batches touch one or two column families: a linear search
            // beats hashing.
            let i = names.iter().position(|n| n == op.cf).unwrap_or(0);
            let ks = &handles[i];
            let key = tag_into(&mut key, op.key);
            match op.value {
                Some(v) => fb.insert(ks, key, v),
                None => fb.remove(ks, key),
            }
        }
        if let Some(offset) = batch.changelog_offset() {
            let meta = self.keyspace_or_create(cf::METADATA)?;
            fb.insert(
                &meta,
                tagged(cf::CHANGELOG_OFFSET_KEY),
                keys::encode_u64(offset).as_slice(),
            );
        }
        fb.commit()
            .map_err(|e| access_error(Some(&self.path), "writing a batch", e))?;
        self.memory
            .after_write(&self.db, || self.keyspaces.read().values().cloned().collect());
        Ok(())
    }
}

/// Refuses a key fjall cannot store (longer than [`MAX_KEY_LEN`]).
fn check_key_len(key: &[u8], operation: &'static str) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::backend(
            BACKEND,
            operation,
            format!(
                "key of {} bytes is longer than fjall's limit of {MAX_KEY_LEN}",
                key.len()
            ),
        ));
    }
    Ok(())
}

/// Options of a new keyspace.
fn keyspace_options(options: &FjallOptions) -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default().max_memtable_size(options.max_memtable_size)
}

/// Boxes a fjall iterator as a [`KvIter`] in `direction`.
fn boxed<'a>(iter: fjall::Iter, direction: Direction, path: Option<PathBuf>) -> KvIter<'a> {
    let item = move |g: fjall::Guard| -> Result<KeyValue> {
        g.into_inner()
            .map(|(k, v)| (untagged(&k).to_vec(), v.to_vec()))
            .map_err(|e| access_error(path.as_deref(), "iterating", e))
    };
    match direction {
        Direction::Forward => Box::new(iter.map(item)),
        Direction::Backward => Box::new(iter.rev().map(item)),
    }
}

fn range_iter<'a>(
    snapshot: &fjall::Snapshot,
    ks: Option<&Keyspace>,
    lower: &[u8],
    upper: Option<&[u8]>,
    direction: Direction,
    path: Option<&Path>,
) -> KvIter<'a> {
    match (ks, key_range(lower, upper)) {
        (Some(ks), Some((lo, hi))) => {
            let range = (lo.map(tagged), hi.map(tagged));
            boxed(
                snapshot.range::<Vec<u8>, _>(ks, range),
                direction,
                path.map(Path::to_owned),
            )
        }
        _ => Box::new(std::iter::empty()),
    }
}

impl StorePartition for FjallPartition {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(ks) = self.keyspace(cf) else { return Ok(None) };
        // Through a snapshot: `Keyspace::get` reads at the newest sequence
        // number and could see part of a batch another thread is applying.
        with_tagged(key, |key| self.db.snapshot().get(&ks, key))
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| access_error(Some(&self.path), "reading a key", e))
    }

    fn exists(&self, cf: &str, key: &[u8]) -> Result<bool> {
        let Some(ks) = self.keyspace(cf) else { return Ok(false) };
        with_tagged(key, |key| self.db.snapshot().contains_key(&ks, key))
            .map_err(|e| access_error(Some(&self.path), "reading a key", e))
    }

    fn iter_range<'a>(
        &'a self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>> {
        // `Keyspace::range` reads at the newest sequence number, so it can
        // see batches committed while it is consumed; a snapshot cannot.
        Ok(range_iter(
            &self.db.snapshot(),
            self.keyspace(cf).as_ref(),
            lower,
            upper,
            direction,
            Some(&self.path),
        ))
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        let mode = if self.options.sync_writes {
            PersistMode::SyncAll
        } else {
            PersistMode::Buffer
        };
        self.commit(batch, Some(mode))
    }

    fn write_bulk(&self, batch: &WriteBatch) -> Result<()> {
        self.commit(batch, None)
    }

    /// A batch of at least [`SortedBatch::MIN_OPERATIONS`] operations is sorted
    /// and handed to fjall's ingestion, one keyspace after another: fjall
    /// writes (and fsyncs) the tables directly, with no journal entry, no
    /// memtable insert and no later flush of the same data, and gives them
    /// a sequence number newer than everything in the keyspace, so a later
    /// load wins over an earlier one and deletes (written as tombstones)
    /// hide older values. The changelog offset is stored after the last
    /// keyspace went in; the trait says why that is enough. Smaller
    /// batches take [`write_bulk`](StorePartition::write_bulk): each
    /// ingestion also flushes the keyspace's memtable first.
    fn load_bulk(&self, batch: &WriteBatch) -> Result<()> {
        if batch.len() < SortedBatch::MIN_OPERATIONS {
            return self.write_bulk(batch);
        }
        let sorted = SortedBatch::new(batch);
        let failed = |e| access_error(Some(&self.path), "loading a batch", e);
        let mut key = Vec::new();
        for (name, ops) in sorted.by_column_family() {
            let ks = self.keyspace_or_create(name)?;
            let mut ingestion = ks.start_ingestion().map_err(failed)?;
            // Strictly ascending, as fjall requires (it panics otherwise):
            // `SortedBatch` keeps one operation per key, and the tag keeps
            // the keys' order.
            for op in ops {
                check_key_len(op.key, "loading a batch")?;
                let key = tag_into(&mut key, op.key);
                match op.value {
                    Some(v) => ingestion.write(key, v),
                    None => ingestion.write_tombstone(key),
                }
                .map_err(failed)?;
            }
            ingestion.finish().map_err(failed)?;
        }
        if let Some(offset) = batch.changelog_offset() {
            let mut offset_only = WriteBatch::new();
            offset_only.set_changelog_offset(offset);
            self.commit(&offset_only, None)?;
        }
        Ok(())
    }

    fn persist(&self) -> Result<()> {
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(|e| access_error(Some(&self.path), "syncing the journal", e))
    }

    fn column_families(&self) -> Result<Vec<String>> {
        // BTreeMap keys: already sorted.
        Ok(self.keyspaces.read().keys().cloned().collect())
    }

    fn read_view(&self) -> Result<Box<dyn ReadView + '_>> {
        Ok(Box::new(self.snapshot()))
    }

    /// An export: one cross-keyspace fjall snapshot is read into a new
    /// database at `dir`, each keyspace bulk-loaded in key order with
    /// fjall's ingestion (tables written directly, no journal). fjall 3.1
    /// has no checkpoint that could share files, so this reads and writes
    /// all the data every time, and every file of every snapshot is new to
    /// the object store (no incremental upload): see docs/operations.md.
    fn snapshot(&self, dir: &Path) -> Result<Option<state_core::LocalSnapshot>> {
        let view = self.snapshot();
        let offset = match view.get(cf::METADATA, cf::CHANGELOG_OFFSET_KEY)? {
            None => None,
            Some(bytes) => {
                Some(keys::decode_u64(&bytes).map_err(|_| Error::CorruptChangelogOffset { len: bytes.len() })?)
            }
        };
        state_core::create_private_dir(dir)?;
        let export = Database::builder(dir)
            .worker_threads(1)
            .open()
            .map_err(|e| open_error(dir, e))?;
        for (name, source) in &view.keyspaces {
            let target = export
                .keyspace(name.as_str(), || keyspace_options(&self.options))
                .map_err(|e| backend_error("creating a keyspace of a snapshot", e))?;
            let mut items = view.snapshot.iter(source).peekable();
            if items.peek().is_none() {
                continue;
            }
            let mut ingestion = target
                .start_ingestion()
                .map_err(|e| backend_error("starting a snapshot's bulk load", e))?;
            for item in items {
                let (key, value) = item.into_inner().map_err(|e| backend_error("reading a snapshot", e))?;
                ingestion
                    .write(key, value)
                    .map_err(|e| backend_error("writing a snapshot", e))?;
            }
            ingestion
                .finish()
                .map_err(|e| backend_error("finishing a snapshot's bulk load", e))?;
        }
        export
            .persist(PersistMode::SyncAll)
            .map_err(|e| backend_error("syncing a snapshot", e))?;
        // Dropping the database joins its worker threads: no file changes
        // once this returns.
        drop(export);
        Ok(Some(state_core::LocalSnapshot::new(
            dir,
            BACKEND,
            SNAPSHOT_LAYOUT,
            offset,
        )))
    }

    fn stats(&self) -> PartitionStats {
        let mut stats = PartitionStats::default();
        stats.disk_bytes = self.db.disk_space().ok();
        stats
    }
}

impl ReadView for FjallSnapshot {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        FjallSnapshot::get(self, cf, key)
    }

    fn iter_range<'a>(
        &'a self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>> {
        Ok(FjallSnapshot::iter_range(self, cf, lower, upper, direction))
    }
}

/// A consistent read-only view of a [`FjallPartition`], across column
/// families, as of [`FjallPartition::snapshot`]. `Send + Sync + 'static`.
#[derive(Clone)]
pub struct FjallSnapshot {
    snapshot: fjall::Snapshot,
    keyspaces: BTreeMap<String, Keyspace>,
}

impl FjallSnapshot {
    /// Reads `key` in `cf` as of the snapshot.
    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(ks) = self.keyspaces.get(cf) else {
            return Ok(None);
        };
        with_tagged(key, |key| self.snapshot.get(ks, key))
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| backend_error("reading a key", e))
    }

    /// Iterates `cf` over `lower <= key < upper` as of the snapshot.
    pub fn iter_range(&self, cf: &str, lower: &[u8], upper: Option<&[u8]>, direction: Direction) -> KvIter<'static> {
        range_iter(&self.snapshot, self.keyspaces.get(cf), lower, upper, direction, None)
    }
}

/// A pair of key bounds, as fjall's range takes them.
type KeyBounds<'k> = (Bound<&'k [u8]>, Bound<&'k [u8]>);

/// `lower..upper` (`upper = None`: unbounded) as a pair of bounds, or `None`
/// if the range is empty (`upper <= lower`).
fn key_range<'k>(lower: &'k [u8], upper: Option<&'k [u8]>) -> Option<KeyBounds<'k>> {
    match upper {
        Some(u) if u <= lower => None,
        Some(u) => Some((Bound::Included(lower), Bound::Excluded(u))),
        None => Some((Bound::Included(lower), Bound::Unbounded)),
    }
}
