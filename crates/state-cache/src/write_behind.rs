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
//!   [`StorePartition::persist`].
//!
//! A crash (or dropping the wrapper without a flush) loses only the cache:
//! the partition below holds the data of a prefix of the writes, with the
//! changelog offset of that prefix, so recovery replays exactly the rest.
//!
//! Reads see the cache first. Keys read from the partition below are kept
//! as a read cache, absent keys too, so a key that is created and deleted
//! between two flushes never reaches the partition below (see
//! [`WriteBatch::put_new`] for the hint that lets writers say a key is new
//! without reading it).
//!
//! Use it only for partitions whose every committed write is also in a
//! changelog: without one, a crash loses the writes since the last flush.

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashTable;
use parking_lot::Mutex;
use rustc_hash::FxBuildHasher;
use state_core::mem::{key_head, InlineBytes as Bytes};
use state_core::{
    cf, keys, Backend, BackendInfo, Direction, KeyValue, KvIter, PartitionStats, ReadView, Result, StoreLocation,
    StorePartition, WriteBatch,
};

/// Bytes charged per cache entry on top of its key and value: the slot,
/// its place in the hash table and the allocator's headers of its two
/// heap blocks. An estimate; `peak_rss_mb` in the benchmark shows the
/// truth.
pub const ENTRY_OVERHEAD: usize = 96;

/// Bytes charged per key in a column family's ordered view of its dirty
/// keys (built for range reads), on top of the key itself.
pub const ORDERED_OVERHEAD: usize = 48;

/// Bytes charged for the pending changelog offset.
const OFFSET_CHARGE: usize = 32;

/// The bounds of a [`WriteBehindPartition`].
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
    /// the cache first; so does [`WriteBehindPartition::flush_if_due`].
    /// Together with the checkpoint interval this bounds how much of the
    /// changelog a restart replays.
    pub max_dirty_age: Duration,
}

impl Default for WriteBehindConfig {
    /// 64 MiB resident, flushed at 32 MiB of changes or 30 s (Kafka
    /// Streams' default commit interval).
    fn default() -> Self {
        WriteBehindConfig {
            max_bytes: 64 << 20,
            max_dirty_bytes: 32 << 20,
            max_dirty_age: Duration::from_secs(30),
        }
    }
}

/// What a [`WriteBehindPartition`] holds and has done, for metrics.
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
}

/// One cached key.
///
/// | `value` | `dirty` | meaning |
/// |---|---|---|
/// | `Some` | no  | the value below (clean) |
/// | `None` | no  | known absent below |
/// | `Some` | yes | a put not yet written; `new_key`: nothing below |
/// | `None` | yes | a delete not yet written (something below) |
#[derive(Debug)]
struct Slot {
    hash: u64,
    key: Bytes<INLINE_KEY>,
    value: Option<Bytes<INLINE_VALUE>>,
    cf: u16,
    live: bool,
    dirty: bool,
    new_key: bool,
    referenced: bool,
}

impl Slot {
    fn charge(&self) -> usize {
        self.key.len() + self.value.as_ref().map_or(0, |v| v.len()) + ENTRY_OVERHEAD
    }

    /// True if the partition below has no value for the key.
    fn absent_below(&self) -> bool {
        if self.dirty {
            self.new_key
        } else {
            self.value.is_none()
        }
    }
}

/// Keys up to this long live inside their slot (no allocation, and a
/// lookup that finds the slot finds the key without another cache miss).
const INLINE_KEY: usize = 38;
/// Values up to this long live inside their slot.
const INLINE_VALUE: usize = 22;

/// The ordered view of one column family's dirty keys.
#[derive(Debug, Default)]
struct Ordered {
    keys: BTreeSet<Box<[u8]>>,
    /// Keys added since the last range read: a view nobody reads is
    /// dropped once this outgrows it, so writes do not keep paying for it.
    added_since_read: usize,
}

#[derive(Debug, Default)]
struct CfState {
    name: String,
    /// Written through the wrapper (so it exists, for `column_families`).
    written: bool,
    dirty_entries: usize,
    ordered: Option<Ordered>,
    /// Every key the partition below holds in this column family is
    /// cached: a key not in the cache has no value, without a read.
    complete: bool,
    /// Loading the whole column family was tried (see [`State::load_cf`]).
    load_tried: bool,
}

#[derive(Debug)]
struct State {
    cfs: Vec<CfState>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    table: HashTable<u32>,
    clock: usize,
    resident: usize,
    dirty_bytes: usize,
    dirty_entries: usize,
    /// The offset of the last batch written through (None: never set).
    offset: Option<u64>,
    /// The offset the partition below holds.
    flushed_offset: Option<u64>,
    offset_dirty: bool,
    first_dirty_at: Option<Instant>,
    flushes: u64,
    elided: u64,
}

/// Which of a batch's column families an operation names: operations
/// come grouped by column family, so the last answer usually holds and
/// costs a pointer comparison instead of string comparisons.
#[derive(Default)]
struct CfMemo {
    last: Option<(*const u8, usize, usize)>,
}

impl CfMemo {
    /// The position of `name` in `names` (`names.len()` if absent).
    fn index(&mut self, name: &str, names: &[String]) -> usize {
        if let Some((ptr, len, i)) = self.last {
            if std::ptr::eq(ptr, name.as_ptr()) && len == name.len() {
                return i;
            }
        }
        let i = names.iter().position(|n| n == name).unwrap_or(names.len());
        self.last = Some((name.as_ptr(), name.len(), i));
        i
    }
}

fn hash_of(cf: u16, key: &[u8]) -> u64 {
    FxBuildHasher.hash_one((cf, key))
}

/// A [`StorePartition`] that defers and coalesces writes to the partition
/// below (see the [module documentation](self)).
///
/// # Guarantees
/// * Reads (`get`, `exists`, `iter_range`, `changelog_offset`) see every
///   batch whose `write` returned `Ok`, in order, and nothing of a batch
///   whose `write` failed.
/// * The partition below only ever receives whole flushes: each is one
///   atomic batch holding every change written through the wrapper up to
///   some batch, with that batch's changelog offset. After a crash it holds
///   a prefix of the writes whose data and offset agree.
/// * [`stats`](Self::cache_stats)`.resident_bytes` never exceeds
///   [`WriteBehindConfig::max_bytes`].
/// * `write_bulk` (recovery) goes straight to the partition below, after
///   flushing the cache, and drops the cached entries of its keys.
/// * `persist` flushes, then persists the partition below.
///
/// Every write to the partition below must go through the wrapper once it
/// exists, or the cache goes stale. Dropping the wrapper discards what it
/// has not flushed (recovery replays it from the changelog): call
/// [`flush`](Self::flush) first on a clean shutdown.
pub struct WriteBehindPartition {
    inner: Arc<dyn StorePartition>,
    config: WriteBehindConfig,
    state: Mutex<State>,
}

impl std::fmt::Debug for WriteBehindPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBehindPartition")
            .field("config", &self.config)
            .field("stats", &self.cache_stats())
            .finish()
    }
}

impl WriteBehindPartition {
    /// Wraps `inner` with an empty cache. Reads `inner`'s changelog offset
    /// (an error if it is corrupt). `max_dirty_bytes` is capped at
    /// `max_bytes`.
    pub fn new(inner: Arc<dyn StorePartition>, config: WriteBehindConfig) -> Result<Self> {
        let offset = inner.changelog_offset()?;
        let config = WriteBehindConfig {
            max_dirty_bytes: config.max_dirty_bytes.min(config.max_bytes),
            ..config
        };
        Ok(WriteBehindPartition {
            inner,
            config,
            state: Mutex::new(State {
                cfs: Vec::new(),
                slots: Vec::new(),
                free: Vec::new(),
                table: HashTable::new(),
                clock: 0,
                resident: 0,
                dirty_bytes: 0,
                dirty_entries: 0,
                offset,
                flushed_offset: offset,
                offset_dirty: false,
                first_dirty_at: None,
                flushes: 0,
                elided: 0,
            }),
        })
    }

    /// The partition below.
    pub fn inner(&self) -> &Arc<dyn StorePartition> {
        &self.inner
    }

    /// The bounds in force.
    pub fn config(&self) -> WriteBehindConfig {
        self.config
    }

    /// Writes every unflushed change to the partition below as one atomic
    /// batch with the newest changelog offset written through the wrapper.
    /// Nothing to write: nothing happens. On error the changes stay cached
    /// (reads still see them) and the next flush retries.
    pub fn flush(&self) -> Result<()> {
        self.state.lock().flush(&*self.inner)
    }

    /// Flushes if the oldest unflushed change is at least
    /// [`WriteBehindConfig::max_dirty_age`] old; returns whether it did.
    /// For the owner's maintenance loop, so an idle partition still
    /// reaches the partition below within the bound.
    pub fn flush_if_due(&self) -> Result<bool> {
        let mut st = self.state.lock();
        if st.due(&self.config, Instant::now()) {
            st.flush(&*self.inner)?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// True if there are changes not yet written below.
    pub fn is_dirty(&self) -> bool {
        let st = self.state.lock();
        st.dirty_entries > 0 || st.offset_dirty
    }

    /// Sizes and counters of the cache.
    pub fn cache_stats(&self) -> WriteBehindStats {
        let st = self.state.lock();
        WriteBehindStats {
            resident_bytes: st.resident,
            dirty_bytes: st.dirty_bytes,
            entries: st.slots.len() - st.free.len(),
            dirty_entries: st.dirty_entries,
            flushes: st.flushes,
            elided: st.elided,
            changelog_offset: st.offset,
            flushed_offset: st.flushed_offset,
        }
    }

    fn offset_bytes(offset: Option<u64>) -> Option<Vec<u8>> {
        offset.map(|o| keys::encode_u64(o).to_vec())
    }
}

fn is_offset_key(cf_name: &str, key: &[u8]) -> bool {
    cf_name == cf::METADATA && key == cf::CHANGELOG_OFFSET_KEY
}

impl State {
    fn cf_index(&self, name: &str) -> Option<u16> {
        self.cfs.iter().position(|c| c.name == name).map(|i| i as u16)
    }

    fn cf_index_or_add(&mut self, name: &str) -> u16 {
        match self.cf_index(name) {
            Some(i) => i,
            None => {
                self.cfs.push(CfState {
                    name: name.to_owned(),
                    ..CfState::default()
                });
                (self.cfs.len() - 1) as u16
            }
        }
    }

    fn find(&self, cf: u16, key: &[u8]) -> Option<u32> {
        let slots = &self.slots;
        self.table
            .find(hash_of(cf, key), |&i| {
                let s = &slots[i as usize];
                s.cf == cf && &*s.key == key
            })
            .copied()
    }

    fn due(&self, config: &WriteBehindConfig, now: Instant) -> bool {
        self.first_dirty_at
            .is_some_and(|t| now.saturating_duration_since(t) >= config.max_dirty_age)
    }

    fn mark_dirty_time(&mut self) {
        if self.first_dirty_at.is_none() {
            self.first_dirty_at = Some(Instant::now());
        }
    }

    /// The bytes a batch can add at most.
    fn estimate(&self, batch: &WriteBatch) -> usize {
        // The offset is charged even if one is pending: a flush between
        // this estimate and the write would clear it.
        let mut need = if batch.changelog_offset().is_some() {
            OFFSET_CHARGE
        } else {
            0
        };
        let ordered: Vec<bool> = batch
            .column_families()
            .iter()
            .map(|name| {
                self.cf_index(name)
                    .is_some_and(|i| self.cfs[i as usize].ordered.is_some())
            })
            .collect();
        let mut last = CfMemo::default();
        for op in batch.iter() {
            need += op.key.len() + op.value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD;
            let i = last.index(op.cf, batch.column_families());
            if ordered.get(i).copied().unwrap_or(true) {
                need += op.key.len() + ORDERED_OVERHEAD;
            }
        }
        need
    }

    fn new_slot(&mut self, slot: Slot) -> u32 {
        let hash = slot.hash;
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        self.table.insert_unique(hash, idx, |&i| slots[i as usize].hash);
        idx
    }

    /// Drops a clean entry. Its column family stops being complete unless
    /// the entry said "absent below" (forgetting that changes nothing).
    fn remove_slot(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        debug_assert!(s.live && !s.dirty);
        if s.value.is_some() || s.new_key {
            self.cfs[s.cf as usize].complete = false;
        }
        let hash = s.hash;
        self.resident -= s.charge();
        s.live = false;
        s.key = Bytes::default();
        s.value = None;
        if let Ok(entry) = self.table.find_entry(hash, |&i| i == idx) {
            entry.remove();
        }
        self.free.push(idx);
    }

    fn ordered_add(&mut self, cf: u16, key: &[u8]) {
        let c = &mut self.cfs[cf as usize];
        c.dirty_entries += 1;
        self.dirty_entries += 1;
        if let Some(o) = c.ordered.as_mut() {
            if o.keys.insert(key.into()) {
                self.resident += key.len() + ORDERED_OVERHEAD;
            }
            o.added_since_read += 1;
            // Nobody has read this view for longer than it took to build
            // it: stop paying for it; a range read rebuilds it.
            if o.added_since_read > 4096 && o.added_since_read > 2 * o.keys.len() {
                let freed: usize = o.keys.iter().map(|k| k.len() + ORDERED_OVERHEAD).sum();
                self.resident -= freed;
                c.ordered = None;
            }
        }
    }

    fn ordered_remove(&mut self, cf: u16, key: &[u8]) {
        let c = &mut self.cfs[cf as usize];
        c.dirty_entries -= 1;
        self.dirty_entries -= 1;
        if let Some(o) = c.ordered.as_mut() {
            if o.keys.remove(key) {
                self.resident -= key.len() + ORDERED_OVERHEAD;
            }
        }
    }

    /// Evicts clean entries (second chance) until `need` more bytes fit;
    /// false if only dirty entries are left to evict.
    fn evict_for(&mut self, need: usize, max: usize) -> bool {
        if self.resident + need <= max {
            return true;
        }
        let n = self.slots.len();
        if n == 0 {
            return false;
        }
        // Two sweeps: the first clears reference bits, the second evicts.
        for _ in 0..2 * n + 1 {
            let i = self.clock % n;
            self.clock = (self.clock + 1) % n;
            let s = &mut self.slots[i];
            if !s.live || s.dirty {
                continue;
            }
            if s.referenced {
                s.referenced = false;
                continue;
            }
            self.remove_slot(i as u32);
            if self.resident + need <= max {
                return true;
            }
        }
        self.resident + need <= max
    }

    /// Makes room for `need` bytes: evicts clean entries, flushes if that
    /// is not enough, evicts again. `need` must be at most `max`.
    fn ensure_room(&mut self, need: usize, config: &WriteBehindConfig, inner: &dyn StorePartition) -> Result<()> {
        if self.evict_for(need, config.max_bytes) {
            return Ok(());
        }
        self.flush(inner)?;
        // Everything is clean now; the ordered views are empty.
        self.evict_for(need, config.max_bytes);
        Ok(())
    }

    /// Writes all dirty entries below in one batch.
    fn flush(&mut self, inner: &dyn StorePartition) -> Result<()> {
        if self.dirty_entries == 0 && !self.offset_dirty {
            return Ok(());
        }
        let mut dirty: Vec<u32> = Vec::with_capacity(self.dirty_entries);
        let mut bytes = 0;
        for (i, s) in self.slots.iter().enumerate() {
            if s.live && s.dirty {
                dirty.push(i as u32);
                bytes += s.key.len() + s.value.as_ref().map_or(0, |v| v.len());
            }
        }
        // Key order per column family: RocksDB's memtable inserts reuse
        // their search path between neighbouring keys. Sorted by column
        // family rank and the first 8 key bytes as integers first, which
        // settles most comparisons without comparing bytes.
        let slots = &self.slots;
        let cfs = &self.cfs;
        let mut by_name: Vec<usize> = (0..cfs.len()).collect();
        by_name.sort_unstable_by(|&a, &b| cfs[a].name.cmp(&cfs[b].name));
        let mut rank = vec![0u16; cfs.len()];
        for (r, &i) in by_name.iter().enumerate() {
            rank[i] = r as u16;
        }
        let mut keyed: Vec<(u16, u64, u32)> = dirty
            .iter()
            .map(|&i| {
                let s = &slots[i as usize];
                (rank[s.cf as usize], key_head(&s.key), i)
            })
            .collect();
        keyed.sort_unstable_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| (*slots[a.2 as usize].key).cmp(&*slots[b.2 as usize].key))
        });
        dirty.clear();
        dirty.extend(keyed.iter().map(|k| k.2));
        let mut batch = WriteBatch::with_capacity(dirty.len(), bytes);
        for &i in &dirty {
            let s = &slots[i as usize];
            let name = &cfs[s.cf as usize].name;
            match &s.value {
                Some(v) if s.new_key => batch.put_new(name, &s.key, v),
                Some(v) => batch.put(name, &s.key, v),
                None => batch.delete(name, &s.key),
            }
        }
        if let Some(offset) = self.offset.filter(|_| self.offset_dirty) {
            batch.set_changelog_offset(offset);
        }
        inner.write(&batch)?;
        for &i in &dirty {
            let s = &mut self.slots[i as usize];
            s.dirty = false;
            s.new_key = false;
        }
        for c in &mut self.cfs {
            c.dirty_entries = 0;
            if let Some(o) = c.ordered.as_mut() {
                let freed: usize = o.keys.iter().map(|k| k.len() + ORDERED_OVERHEAD).sum();
                self.resident -= freed;
                o.keys.clear();
            }
        }
        if self.offset_dirty {
            self.resident -= OFFSET_CHARGE;
            self.offset_dirty = false;
            self.flushed_offset = self.offset;
        }
        self.dirty_entries = 0;
        self.dirty_bytes = 0;
        self.first_dirty_at = None;
        self.flushes += 1;
        Ok(())
    }

    /// Applies `batch` to the cache (room was made by the caller).
    fn apply(&mut self, batch: &WriteBatch) {
        // The batch's column families, as indexes of ours.
        let ours: Vec<u16> = batch
            .column_families()
            .iter()
            .map(|name| {
                let cf = self.cf_index_or_add(name);
                self.cfs[cf as usize].written = true;
                cf
            })
            .collect();
        let mut last = CfMemo::default();
        for op in batch.iter() {
            let cf = match ours.get(last.index(op.cf, batch.column_families())) {
                Some(&cf) => cf,
                None => {
                    let cf = self.cf_index_or_add(op.cf);
                    self.cfs[cf as usize].written = true;
                    cf
                }
            };
            let hash = hash_of(cf, op.key);
            match self.find(cf, op.key) {
                Some(idx) => self.update(idx, op.value, op.new_key),
                None if op.value.is_none() && self.cfs[cf as usize].complete => {
                    // Deleting a key nothing holds: nothing to do.
                }
                None => {
                    // Not cached: new if the writer says so, or if the
                    // cache holds the whole column family.
                    let new_key = op.new_key || self.cfs[cf as usize].complete;
                    let slot = Slot {
                        hash,
                        key: Bytes::new(op.key),
                        value: op.value.map(Bytes::new),
                        cf,
                        live: true,
                        dirty: true,
                        new_key: op.value.is_some() && new_key,
                        referenced: false,
                    };
                    let charge = slot.charge();
                    self.new_slot(slot);
                    self.resident += charge;
                    self.dirty_bytes += charge;
                    self.ordered_add(cf, op.key);
                    self.mark_dirty_time();
                }
            }
        }
        if let Some(offset) = batch.changelog_offset() {
            self.offset = Some(offset);
            if !self.offset_dirty {
                self.offset_dirty = true;
                self.resident += OFFSET_CHARGE;
                self.dirty_bytes += OFFSET_CHARGE;
            }
            self.mark_dirty_time();
        }
    }

    fn update(&mut self, idx: u32, value: Option<&[u8]>, _hint: bool) {
        let s = &mut self.slots[idx as usize];
        let before = s.charge();
        let was_dirty = s.dirty;
        // A hint on a key the cache knows is only trusted where the cache
        // agrees: a cached value or a pending delete means something is
        // (or may be) below.
        let absent_below = s.absent_below();
        let cf = s.cf;
        match value {
            Some(v) => {
                match &mut s.value {
                    Some(old) => old.set(v),
                    slot => *slot = Some(Bytes::new(v)),
                }
                s.dirty = true;
                s.new_key = absent_below;
            }
            None if absent_below => {
                // Created and deleted between two flushes: nothing to write.
                s.value = None;
                s.dirty = false;
                s.new_key = false;
            }
            None => {
                s.value = None;
                s.dirty = true;
                s.new_key = false;
            }
        }
        s.referenced = true;
        let after = s.charge();
        let now_dirty = s.dirty;
        let key: Option<Box<[u8]>> = (was_dirty != now_dirty).then(|| s.key.as_ref().into());
        self.resident = self.resident + after - before;
        if was_dirty {
            self.dirty_bytes -= before;
        }
        if now_dirty {
            self.dirty_bytes += after;
        }
        match (was_dirty, now_dirty, key) {
            (false, true, Some(k)) => {
                self.ordered_add(cf, &k);
                self.mark_dirty_time();
            }
            (true, false, Some(k)) => {
                self.ordered_remove(cf, &k);
                self.elided += 1;
                // Nothing is below and nothing is pending: forget the key
                // (a window created and expired is never read again).
                self.remove_slot(idx);
            }
            _ => {}
        }
    }

    /// Drops the cached entries of the keys of `batch`, flushing first if
    /// anything is cached (it is older than the batch), and marks the
    /// batch's column families incomplete: the batch is about to be
    /// written below behind the cache's back.
    fn forget_keys(&mut self, batch: &WriteBatch, inner: &dyn StorePartition) -> Result<()> {
        for name in batch.column_families() {
            if let Some(cf) = self.cf_index(name) {
                let c = &mut self.cfs[cf as usize];
                c.complete = false;
                // Worth loading again once the bulk writes are over.
                c.load_tried = false;
            }
        }
        if self.slots.len() == self.free.len() {
            return Ok(());
        }
        self.flush(inner)?;
        for op in batch.iter() {
            let Some(cf) = self.cf_index(op.cf) else { continue };
            if let Some(idx) = self.find(cf, op.key) {
                self.remove_slot(idx);
            }
        }
        Ok(())
    }

    /// Loads every key of `cf_name` from below as clean entries if they
    /// take at most a quarter of the bound, so that later misses in the
    /// column family need no read (a fresh partition loads nothing and is
    /// complete at once). Tried once per column family; a bigger one stays
    /// a read-through cache (with whatever was loaded).
    fn load_cf(&mut self, cf_name: &str, max: usize, inner: &dyn StorePartition) -> Result<()> {
        let cf = self.cf_index_or_add(cf_name);
        if self.cfs[cf as usize].load_tried {
            return Ok(());
        }
        self.cfs[cf as usize].load_tried = true;
        let budget = max / 4;
        let stats = inner.stats();
        if let (Some(live), Some(mem)) = (stats.live_data_bytes, stats.memtable_bytes) {
            if live.saturating_add(mem) > budget as u64 {
                return Ok(());
            }
        }
        let mut loaded = 0usize;
        for item in inner.iter_range(cf_name, b"", None, Direction::Forward)? {
            let (key, value) = item?;
            let charge = key.len() + value.len() + ENTRY_OVERHEAD;
            loaded += charge;
            if loaded > budget || self.resident + charge > max {
                return Ok(());
            }
            if self.find(cf, &key).is_none() {
                let slot = Slot {
                    hash: hash_of(cf, &key),
                    key: Bytes::new(&key),
                    value: Some(Bytes::new(&value)),
                    cf,
                    live: true,
                    dirty: false,
                    new_key: false,
                    referenced: false,
                };
                self.new_slot(slot);
                self.resident += charge;
            }
        }
        self.cfs[cf as usize].complete = true;
        Ok(())
    }

    /// What the cache says about `key`: `Some(value)` if it knows.
    fn lookup(
        &mut self,
        cf_name: &str,
        key: &[u8],
        max: usize,
        inner: &dyn StorePartition,
    ) -> Result<Option<Option<Vec<u8>>>> {
        let cf = match self.cf_index(cf_name) {
            Some(cf) if self.cfs[cf as usize].load_tried => cf,
            _ => {
                self.load_cf(cf_name, max, inner)?;
                self.cf_index_or_add(cf_name)
            }
        };
        if let Some(idx) = self.find(cf, key) {
            let s = &mut self.slots[idx as usize];
            s.referenced = true;
            return Ok(Some(s.value.as_ref().map(|v| v.to_vec())));
        }
        Ok(self.cfs[cf as usize].complete.then_some(None))
    }

    /// Caches a value read from below, if there is room without flushing.
    fn cache_read(&mut self, cf_name: &str, key: &[u8], value: Option<&[u8]>, max: usize) {
        let charge = key.len() + value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD;
        if charge > max / 4 || !self.evict_for(charge, max) {
            return;
        }
        let cf = self.cf_index_or_add(cf_name);
        let slot = Slot {
            hash: hash_of(cf, key),
            key: Bytes::new(key),
            value: value.map(Bytes::new),
            cf,
            live: true,
            dirty: false,
            new_key: false,
            referenced: false,
        };
        self.new_slot(slot);
        self.resident += charge;
    }

    /// The dirty entries of `cf` in `[lower, upper)`, in `direction` order.
    fn dirty_range(
        &mut self,
        cf_name: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
        config: &WriteBehindConfig,
        inner: &dyn StorePartition,
    ) -> Result<Vec<DirtyEntry>> {
        let mut out = Vec::new();
        let Some(cf) = self.cf_index(cf_name) else {
            return Ok(out);
        };
        if self.cfs[cf as usize].dirty_entries > 0 && self.cfs[cf as usize].ordered.is_none() {
            // Build the view: room for it first (a flush empties it).
            let need: usize = self
                .slots
                .iter()
                .filter(|s| s.live && s.dirty && s.cf == cf)
                .map(|s| s.key.len() + ORDERED_OVERHEAD)
                .sum();
            self.ensure_room(need.min(config.max_bytes), config, inner)?;
            let mut keys = BTreeSet::new();
            let mut charged = 0;
            for s in self.slots.iter().filter(|s| s.live && s.dirty && s.cf == cf) {
                charged += s.key.len() + ORDERED_OVERHEAD;
                keys.insert(Box::from(&*s.key));
            }
            self.resident += charged;
            self.cfs[cf as usize].ordered = Some(Ordered {
                keys,
                added_since_read: 0,
            });
        }
        if let Some(ordered) = self.cfs[cf as usize].ordered.as_mut() {
            ordered.added_since_read = 0;
        }
        let Some(ordered) = self.cfs[cf as usize].ordered.as_ref() else {
            return Ok(out);
        };
        if upper.is_some_and(|u| u <= lower) {
            return Ok(out);
        }
        let upper = match upper {
            Some(u) => Bound::Excluded(u),
            None => Bound::Unbounded,
        };
        let range = ordered.keys.range::<[u8], _>((Bound::Included(lower), upper));
        let keys: Vec<&Box<[u8]>> = match direction {
            Direction::Forward => range.collect(),
            Direction::Backward => range.rev().collect(),
        };
        for k in keys {
            if let Some(idx) = self.find(cf, k) {
                let s = &self.slots[idx as usize];
                out.push((k.to_vec(), s.value.as_ref().map(|v| v.to_vec())));
            }
        }
        Ok(out)
    }

    /// [`dirty_range`](Self::dirty_range) plus the changelog offset not yet
    /// flushed, which reads as its key in `__metadata__`.
    fn dirty_view(
        &mut self,
        cf_name: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
        config: &WriteBehindConfig,
        inner: &dyn StorePartition,
    ) -> Result<Vec<DirtyEntry>> {
        let mut out = self.dirty_range(cf_name, lower, upper, direction, config, inner)?;
        let key = cf::CHANGELOG_OFFSET_KEY;
        if is_offset_key(cf_name, key) && self.offset_dirty && lower <= key && upper.is_none_or(|u| key < u) {
            out.retain(|(k, _)| k.as_slice() != key);
            let at = out.partition_point(|(k, _)| match direction {
                Direction::Forward => k.as_slice() < key,
                Direction::Backward => k.as_slice() > key,
            });
            out.insert(at, (key.to_vec(), WriteBehindPartition::offset_bytes(self.offset)));
        }
        Ok(out)
    }
}

/// A dirty key and its value (`None`: a pending delete).
type DirtyEntry = (Vec<u8>, Option<Vec<u8>>);

/// Merges the partition below with the cache's dirty entries of a range.
struct Merge<'a> {
    inner: std::iter::Peekable<KvIter<'a>>,
    dirty: std::iter::Peekable<std::vec::IntoIter<DirtyEntry>>,
    forward: bool,
}

impl Iterator for Merge<'_> {
    type Item = Result<KeyValue>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.inner.peek(), self.dirty.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => return self.inner.next(),
                (Some(_), None) => return self.inner.next(),
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(Ok((ik, _))), Some((dk, _))) => {
                    let o = ik.as_slice().cmp(dk.as_slice());
                    if self.forward {
                        o
                    } else {
                        o.reverse()
                    }
                }
            };
            match order {
                std::cmp::Ordering::Less => return self.inner.next(),
                std::cmp::Ordering::Equal => {
                    self.inner.next();
                }
                std::cmp::Ordering::Greater => {}
            }
            if let Some((k, Some(v))) = self.dirty.next() {
                return Some(Ok((k, v)));
            }
        }
    }
}

impl StorePartition for WriteBehindPartition {
    fn get(&self, cf_name: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut st = self.state.lock();
        if is_offset_key(cf_name, key) {
            return Ok(Self::offset_bytes(st.offset));
        }
        if let Some(known) = st.lookup(cf_name, key, self.config.max_bytes, &*self.inner)? {
            return Ok(known);
        }
        let value = self.inner.get(cf_name, key)?;
        st.cache_read(cf_name, key, value.as_deref(), self.config.max_bytes);
        Ok(value)
    }

    fn iter_range<'a>(
        &'a self,
        cf_name: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>> {
        let mut st = self.state.lock();
        let dirty = st.dirty_view(cf_name, lower, upper, direction, &self.config, &*self.inner)?;
        // Both views are taken under the lock: a flush cannot fall between.
        let inner = self.inner.iter_range(cf_name, lower, upper, direction)?;
        drop(st);
        if dirty.is_empty() {
            return Ok(inner);
        }
        Ok(Box::new(Merge {
            inner: inner.peekable(),
            dirty: dirty.into_iter().peekable(),
            forward: direction == Direction::Forward,
        }))
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        let mut st = self.state.lock();
        let need = st.estimate(batch);
        if need > self.config.max_bytes {
            // Larger than the whole cache: write it through, after
            // everything older.
            st.forget_keys(batch, &*self.inner)?;
            self.inner.write(batch)?;
            if let Some(offset) = batch.changelog_offset() {
                st.offset = Some(offset);
                st.flushed_offset = Some(offset);
            }
            return Ok(());
        }
        if st.due(&self.config, Instant::now()) || st.dirty_bytes + need > self.config.max_dirty_bytes {
            st.flush(&*self.inner)?;
        }
        st.ensure_room(need, &self.config, &*self.inner)?;
        st.apply(batch);
        Ok(())
    }

    fn write_bulk(&self, batch: &WriteBatch) -> Result<()> {
        let mut st = self.state.lock();
        st.forget_keys(batch, &*self.inner)?;
        self.inner.write_bulk(batch)?;
        if let Some(offset) = batch.changelog_offset() {
            st.offset = Some(offset);
            st.flushed_offset = Some(offset);
        }
        Ok(())
    }

    fn persist(&self) -> Result<()> {
        self.flush()?;
        self.inner.persist()
    }

    fn changelog_offset(&self) -> Result<Option<u64>> {
        Ok(self.state.lock().offset)
    }

    /// Writes go into a hash table; the flush sorts what it writes below.
    fn prefers_sorted_batches(&self) -> bool {
        false
    }

    fn column_families(&self) -> Result<Vec<String>> {
        let mut names = self.inner.column_families()?;
        let st = self.state.lock();
        names.extend(st.cfs.iter().filter(|c| c.written).map(|c| c.name.clone()));
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn stats(&self) -> PartitionStats {
        self.inner.stats()
    }

    /// Holds the cache's lock for the view's life (no flush can fall
    /// between the cache and the partition below; writers wait, so keep
    /// views short) and reads the cache over a view of the partition below
    /// taken under the same lock. Reads through the view cache nothing.
    fn read_view(&self) -> Result<Box<dyn ReadView + '_>> {
        let state = self.state.lock();
        let inner = self.inner.read_view()?;
        Ok(Box::new(WriteBehindView { state, inner }))
    }
}

/// A [`WriteBehindPartition`] as of one moment: its cache, locked, over a
/// read view of the partition below.
struct WriteBehindView<'a> {
    state: parking_lot::MutexGuard<'a, State>,
    inner: Box<dyn ReadView + 'a>,
}

impl WriteBehindView<'_> {
    /// The cached dirty entries of `cf` in `[lower, upper)`, plus the
    /// pending changelog offset, without building anything.
    fn dirty(&self, cf_name: &str, lower: &[u8], upper: Option<&[u8]>, direction: Direction) -> Vec<DirtyEntry> {
        let st = &*self.state;
        let in_range = |k: &[u8]| lower <= k && upper.is_none_or(|u| k < u);
        let mut out: Vec<DirtyEntry> = match st.cf_index(cf_name) {
            Some(cf) => st
                .slots
                .iter()
                .filter(|s| s.live && s.dirty && s.cf == cf && in_range(&s.key))
                .map(|s| (s.key.to_vec(), s.value.as_ref().map(|v| v.to_vec())))
                .collect(),
            None => Vec::new(),
        };
        let key = cf::CHANGELOG_OFFSET_KEY;
        if is_offset_key(cf_name, key) && st.offset_dirty && in_range(key) {
            out.retain(|(k, _)| k.as_slice() != key);
            out.push((key.to_vec(), WriteBehindPartition::offset_bytes(st.offset)));
        }
        out.sort_unstable_by(|a, b| match direction {
            Direction::Forward => a.0.cmp(&b.0),
            Direction::Backward => b.0.cmp(&a.0),
        });
        out
    }
}

impl ReadView for WriteBehindView<'_> {
    fn get(&self, cf_name: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let st = &*self.state;
        if is_offset_key(cf_name, key) {
            return Ok(WriteBehindPartition::offset_bytes(st.offset));
        }
        if let Some(cf) = st.cf_index(cf_name) {
            if let Some(idx) = st.find(cf, key) {
                return Ok(st.slots[idx as usize].value.as_ref().map(|v| v.to_vec()));
            }
        }
        self.inner.get(cf_name, key)
    }

    fn iter_range<'a>(
        &'a self,
        cf_name: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>> {
        let dirty = self.dirty(cf_name, lower, upper, direction);
        let inner = self.inner.iter_range(cf_name, lower, upper, direction)?;
        if dirty.is_empty() {
            return Ok(inner);
        }
        Ok(Box::new(Merge {
            inner: inner.peekable(),
            dirty: dirty.into_iter().peekable(),
            forward: direction == Direction::Forward,
        }))
    }
}

/// A [`Backend`] whose partitions are [`WriteBehindPartition`]s over the
/// partitions of another backend: write-behind for a whole store without
/// changing its owner. Use it only for stores with a changelog.
///
/// Partitions dropped without a flush lose their cache (recovery replays
/// it); an owner that can should call [`flush_all`](Self::flush_all) before
/// closing partitions and [`flush_due`](Self::flush_due) from its
/// maintenance loop.
pub struct WriteBehindBackend {
    inner: Arc<dyn Backend>,
    config: WriteBehindConfig,
    /// Each open partition with its directory (`StoreLocation::partition_dir`).
    open: Mutex<Vec<(std::path::PathBuf, std::sync::Weak<WriteBehindPartition>)>>,
}

impl std::fmt::Debug for WriteBehindBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBehindBackend")
            .field("inner", &self.inner.info().name)
            .field("config", &self.config)
            .finish()
    }
}

impl WriteBehindBackend {
    /// `inner`'s partitions behind write-behind caches with `config`.
    pub fn new(inner: Arc<dyn Backend>, config: WriteBehindConfig) -> Self {
        WriteBehindBackend {
            inner,
            config,
            open: Mutex::new(Vec::new()),
        }
    }

    /// The same, shareable as `Arc<dyn Backend>`.
    pub fn shared(inner: Arc<dyn Backend>, config: WriteBehindConfig) -> Arc<dyn Backend> {
        Arc::new(WriteBehindBackend::new(inner, config))
    }

    fn partitions(&self) -> Vec<Arc<WriteBehindPartition>> {
        let mut open = self.open.lock();
        open.retain(|(_, w)| w.strong_count() > 0);
        open.iter().filter_map(|(_, w)| w.upgrade()).collect()
    }

    /// The open partition `partition` of `store`, if any.
    pub fn partition(&self, store: &StoreLocation, partition: u32) -> Option<Arc<WriteBehindPartition>> {
        let dir = store.partition_dir(partition);
        let mut open = self.open.lock();
        open.retain(|(_, w)| w.strong_count() > 0);
        open.iter().find(|(d, _)| *d == dir).and_then(|(_, w)| w.upgrade())
    }

    /// Flushes the open partition `partition` of `store` (nothing if it is
    /// not open): call it before closing the partition, so its cache is not
    /// lost and the next owner replays nothing of it.
    pub fn flush_partition(&self, store: &StoreLocation, partition: u32) -> Result<()> {
        match self.partition(store, partition) {
            Some(p) => p.flush(),
            None => Ok(()),
        }
    }

    /// The cache figures of every open partition, summed.
    pub fn stats(&self) -> WriteBehindStats {
        let mut total = WriteBehindStats::default();
        for p in self.partitions() {
            let s = p.cache_stats();
            total.resident_bytes += s.resident_bytes;
            total.dirty_bytes += s.dirty_bytes;
            total.entries += s.entries;
            total.dirty_entries += s.dirty_entries;
            total.flushes += s.flushes;
            total.elided += s.elided;
        }
        total
    }

    /// Flushes every open partition; the first error is returned after all
    /// were tried.
    pub fn flush_all(&self) -> Result<()> {
        let mut first = Ok(());
        for p in self.partitions() {
            if let Err(e) = p.flush() {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// [`WriteBehindPartition::flush_if_due`] on every open partition;
    /// returns how many flushed.
    pub fn flush_due(&self) -> Result<usize> {
        let mut flushed = 0;
        for p in self.partitions() {
            if p.flush_if_due()? {
                flushed += 1;
            }
        }
        Ok(flushed)
    }

    /// How many open partitions hold changes whose changelog offset the
    /// partition below does not have yet (what a crash now would make
    /// recovery replay).
    pub fn lagging_partitions(&self) -> usize {
        self.partitions()
            .iter()
            .filter(|p| {
                let s = p.cache_stats();
                s.changelog_offset != s.flushed_offset
            })
            .count()
    }
}

impl Backend for WriteBehindBackend {
    fn info(&self) -> BackendInfo {
        // Same files, same format: the cache is invisible on disk.
        self.inner.info()
    }

    fn open_partition(&self, store: &StoreLocation, partition: u32) -> Result<Arc<dyn StorePartition>> {
        let inner = self.inner.open_partition(store, partition)?;
        let wb = Arc::new(WriteBehindPartition::new(inner, self.config)?);
        self.open
            .lock()
            .push((store.partition_dir(partition), Arc::downgrade(&wb)));
        Ok(wb)
    }

    fn destroy_store(&self, store: &StoreLocation) -> Result<()> {
        self.inner.destroy_store(store)
    }

    fn partition_location(&self, store: &StoreLocation, partition: u32) -> String {
        self.inner.partition_location(store, partition)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};

    use proptest::prelude::*;
    use state_core::testkit::FailingWrites;
    use state_core::{Error, MemoryPartition};

    use super::*;

    /// A column family, key and value (`None`: delete) written below.
    type RecordedOp = (String, Vec<u8>, Option<Vec<u8>>);

    /// A memory partition that records every batch it is given.
    #[derive(Default)]
    struct Recording {
        inner: MemoryPartition,
        batches: Mutex<Vec<(usize, Option<u64>)>>,
        ops: Mutex<Vec<RecordedOp>>,
        /// Point reads asked of it.
        gets: std::sync::atomic::AtomicUsize,
    }

    impl Recording {
        fn new() -> Arc<Self> {
            Arc::new(Recording {
                inner: MemoryPartition::new(),
                ..Default::default()
            })
        }

        fn batches(&self) -> Vec<(usize, Option<u64>)> {
            self.batches.lock().clone()
        }

        fn touched(&self, key: &[u8]) -> bool {
            self.ops.lock().iter().any(|(_, k, _)| k == key)
        }
    }

    impl StorePartition for Recording {
        fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.inner.get(cf, key)
        }
        fn iter_range<'a>(
            &'a self,
            cf: &str,
            lower: &[u8],
            upper: Option<&[u8]>,
            direction: Direction,
        ) -> Result<KvIter<'a>> {
            self.inner.iter_range(cf, lower, upper, direction)
        }
        fn write(&self, batch: &WriteBatch) -> Result<()> {
            self.batches.lock().push((batch.len(), batch.changelog_offset()));
            self.ops.lock().extend(
                batch
                    .iter()
                    .map(|op| (op.cf.to_owned(), op.key.to_vec(), op.value.map(<[u8]>::to_vec))),
            );
            self.inner.write(batch)
        }
        fn read_view(&self) -> Result<Box<dyn state_core::ReadView + '_>> {
            self.inner.read_view()
        }
        fn column_families(&self) -> Result<Vec<String>> {
            self.inner.column_families()
        }
    }

    fn config(max_bytes: usize) -> WriteBehindConfig {
        WriteBehindConfig {
            max_bytes,
            max_dirty_bytes: max_bytes,
            max_dirty_age: Duration::from_secs(3600),
        }
    }

    fn batch(ops: &[(&[u8], Option<&[u8]>)], offset: Option<u64>) -> WriteBatch {
        let mut b = WriteBatch::new();
        for (k, v) in ops {
            b.push(cf::DEFAULT, k, *v);
        }
        if let Some(o) = offset {
            b.set_changelog_offset(o);
        }
        b
    }

    fn all(p: &dyn StorePartition, cf_name: &str, d: Direction) -> Vec<KeyValue> {
        p.iter_range(cf_name, b"", None, d)
            .unwrap()
            .collect::<Result<Vec<_>>>()
            .unwrap()
    }

    #[test]
    fn bytes_move_between_the_slot_and_the_heap() {
        let mut b: Bytes<4> = Bytes::new(b"abc");
        assert!(matches!(b, Bytes::Inline(3, _)));
        b.set(b"abcdef");
        assert_eq!(&*b, b"abcdef");
        assert!(matches!(b, Bytes::Heap(_)));
        b.set(b"uvwxyz");
        assert_eq!(&*b, b"uvwxyz");
        b.set(b"");
        assert_eq!(&*b, b"");
        assert!(matches!(b, Bytes::Inline(0, _)));
        b.set(b"1234");
        assert_eq!(&*b, b"1234");
    }

    #[test]
    fn checkpoints_coalesce_into_one_flush_with_the_newest_offset() {
        let below = Recording::new();
        let wb = WriteBehindPartition::new(below.clone(), config(1 << 20)).unwrap();
        wb.write(&batch(&[(b"a", Some(b"1")), (b"b", Some(b"1"))], Some(10)))
            .unwrap();
        wb.write(&batch(&[(b"a", Some(b"2")), (b"c", Some(b"1"))], Some(11)))
            .unwrap();
        wb.write(&batch(&[(b"b", None)], Some(12))).unwrap();
        assert!(below.batches().is_empty(), "nothing reaches the partition below");
        assert_eq!(
            wb.get(cf::DEFAULT, b"a").unwrap(),
            Some(b"2".to_vec()),
            "reads see the cache"
        );
        assert_eq!(wb.get(cf::DEFAULT, b"b").unwrap(), None);
        assert_eq!(wb.changelog_offset().unwrap(), Some(12));
        assert_eq!(below.changelog_offset().unwrap(), None);
        assert!(wb.is_dirty());
        wb.flush().unwrap();
        // b's put and delete coalesce into its delete (without a read or a
        // hint the cache cannot know that nothing is below).
        assert_eq!(below.batches(), vec![(3, Some(12))], "one batch, the newest offset");
        assert_eq!(below.get(cf::DEFAULT, b"a").unwrap(), Some(b"2".to_vec()));
        assert_eq!(below.changelog_offset().unwrap(), Some(12));
        wb.flush().unwrap();
        assert_eq!(below.batches().len(), 1, "a clean cache writes nothing");
        assert!(!wb.is_dirty());
        let s = wb.cache_stats();
        assert_eq!((s.flushes, s.dirty_bytes, s.flushed_offset), (1, 0, Some(12)));
    }

    #[test]
    fn a_key_created_and_deleted_between_flushes_never_reaches_the_partition_below() {
        let below = Recording::new();
        below.inner.put(cf::DEFAULT, b"old", b"x").unwrap();
        let wb = WriteBehindPartition::new(below.clone(), config(1 << 20)).unwrap();
        // The hint: the writer knows the key is new.
        let mut b = WriteBatch::new();
        b.put_new(cf::DEFAULT, b"w1", b"1");
        wb.write(&b).unwrap();
        wb.write(&batch(&[(b"w1", Some(b"2"))], None)).unwrap();
        wb.write(&batch(&[(b"w1", None)], Some(1))).unwrap();
        // Read as absent, then created and deleted: the cache knows.
        assert_eq!(wb.get(cf::DEFAULT, b"w2").unwrap(), None);
        wb.write(&batch(&[(b"w2", Some(b"1"))], None)).unwrap();
        wb.write(&batch(&[(b"w2", None)], None)).unwrap();
        // A hint on a key that is below is not trusted: the cache has it.
        assert_eq!(wb.get(cf::DEFAULT, b"old").unwrap(), Some(b"x".to_vec()));
        let mut b = WriteBatch::new();
        b.put_new(cf::DEFAULT, b"old", b"y");
        wb.write(&b).unwrap();
        wb.write(&batch(&[(b"old", None)], None)).unwrap();
        // A key flushed first is deleted below.
        wb.write(&batch(&[(b"kept", Some(b"1"))], None)).unwrap();
        wb.flush().unwrap();
        wb.write(&batch(&[(b"kept", None)], Some(2))).unwrap();
        wb.flush().unwrap();
        assert!(!below.touched(b"w1") && !below.touched(b"w2"));
        assert_eq!(
            below.get(cf::DEFAULT, b"old").unwrap(),
            None,
            "the delete reached below"
        );
        assert_eq!(below.get(cf::DEFAULT, b"kept").unwrap(), None);
        assert_eq!(wb.cache_stats().elided, 2);
        assert_eq!(below.changelog_offset().unwrap(), Some(2));
    }

    #[test]
    fn a_column_family_that_fits_is_loaded_once_and_misses_read_nothing() {
        let below = Recording::new();
        below.inner.put(cf::DEFAULT, b"a", b"1").unwrap();
        let gets = || below.gets.load(Ordering::SeqCst);
        let wb = WriteBehindPartition::new(below.clone(), config(1 << 20)).unwrap();
        let opened = gets(); // the stored offset
        assert_eq!(wb.get(cf::DEFAULT, b"a").unwrap(), Some(b"1".to_vec()));
        for k in 0u32..100 {
            assert_eq!(wb.get(cf::DEFAULT, &k.to_be_bytes()).unwrap(), None);
        }
        assert_eq!(gets(), opened, "the column family was loaded by one scan");
        // A key created in a complete column family is new: deleting it
        // before a flush leaves nothing below.
        wb.write(&batch(&[(b"n", Some(b"1"))], None)).unwrap();
        wb.write(&batch(&[(b"n", None), (b"never", None)], Some(1))).unwrap();
        assert_eq!(wb.cache_stats().elided, 1);
        // Bulk writes below make it incomplete until loaded again.
        wb.write_bulk(&batch(&[(b"b", Some(b"2"))], Some(2))).unwrap();
        assert_eq!(wb.get(cf::DEFAULT, b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(gets(), opened, "loaded again after the bulk write");
        // An eviction makes it incomplete for good: misses read below.
        let tiny = WriteBehindPartition::new(below.clone(), config(3 * (ENTRY_OVERHEAD + 8))).unwrap();
        assert_eq!(tiny.get(cf::DEFAULT, b"a").unwrap(), Some(b"1".to_vec()));
        for k in 0u8..6 {
            tiny.write(&batch(&[(&[b'x', k], Some(b"v"))], None)).unwrap();
        }
        let before = gets();
        assert_eq!(tiny.get(cf::DEFAULT, b"zz").unwrap(), None);
        assert_eq!(gets(), before + 1, "incomplete after evictions: misses read below");
    }

    #[test]
    fn ranges_merge_the_cache_with_the_partition_below_in_both_directions() {
        let below = Recording::new();
        for k in [b"a", b"c", b"e", b"g"] {
            below.inner.put(cf::DEFAULT, k, b"below").unwrap();
        }
        below.inner.put(cf::METADATA, b"zzz", b"m").unwrap();
        let wb = WriteBehindPartition::new(below.clone(), config(1 << 20)).unwrap();
        wb.write(&batch(
            &[
                (b"b", Some(b"new")),
                (b"c", None),
                (b"e", Some(b"upd")),
                (b"h", Some(b"new")),
            ],
            Some(5),
        ))
        .unwrap();
        let fwd = all(&wb, cf::DEFAULT, Direction::Forward);
        let want: Vec<KeyValue> = [("a", "below"), ("b", "new"), ("e", "upd"), ("g", "below"), ("h", "new")]
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(fwd, want);
        let mut back = all(&wb, cf::DEFAULT, Direction::Backward);
        back.reverse();
        assert_eq!(back, want);
        let bounded: Vec<Vec<u8>> = wb
            .iter_range(cf::DEFAULT, b"b", Some(b"g"), Direction::Forward)
            .unwrap()
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(bounded, vec![b"b".to_vec(), b"e".to_vec()]);
        // The pending offset reads as its metadata key, in order.
        let meta = all(&wb, cf::METADATA, Direction::Forward);
        assert_eq!(
            meta,
            vec![
                (cf::CHANGELOG_OFFSET_KEY.to_vec(), keys::encode_u64(5).to_vec()),
                (b"zzz".to_vec(), b"m".to_vec())
            ]
        );
        assert_eq!(
            wb.get(cf::METADATA, cf::CHANGELOG_OFFSET_KEY).unwrap(),
            Some(keys::encode_u64(5).to_vec())
        );
        // Writes after the ordered view was built reach it.
        wb.write(&batch(&[(b"d", Some(b"later")), (b"h", None)], None)).unwrap();
        let keys: Vec<Vec<u8>> = all(&wb, cf::DEFAULT, Direction::Forward)
            .into_iter()
            .map(|kv| kv.0)
            .collect();
        assert_eq!(keys, [&b"a"[..], b"b", b"d", b"e", b"g"].map(<[u8]>::to_vec));
        assert!(wb.column_families().unwrap().contains(&cf::DEFAULT.to_owned()));
    }

    #[test]
    fn bounds_flush_and_evict_and_a_huge_batch_is_written_through() {
        let below = Recording::new();
        let max = 10 * (ENTRY_OVERHEAD + 8);
        let wb = WriteBehindPartition::new(
            below.clone(),
            WriteBehindConfig {
                max_bytes: max,
                max_dirty_bytes: 4 * (ENTRY_OVERHEAD + 8),
                max_dirty_age: Duration::from_secs(3600),
            },
        )
        .unwrap();
        for i in 0u32..40 {
            wb.write(&batch(&[(&i.to_be_bytes(), Some(b"vvvv"))], Some(u64::from(i))))
                .unwrap();
            let s = wb.cache_stats();
            assert!(s.resident_bytes <= max, "{s:?}");
            assert!(s.dirty_bytes <= 4 * (ENTRY_OVERHEAD + 8), "{s:?}");
        }
        assert!(
            below.batches().len() >= 9,
            "the dirty bound flushed: {:?}",
            below.batches()
        );
        for i in 0u32..40 {
            assert_eq!(wb.get(cf::DEFAULT, &i.to_be_bytes()).unwrap(), Some(b"vvvv".to_vec()));
            assert!(wb.cache_stats().resident_bytes <= max);
        }
        let big: Vec<(Vec<u8>, Vec<u8>)> = (0u32..50).map(|i| (i.to_le_bytes().to_vec(), vec![7; 20])).collect();
        let mut b = WriteBatch::new();
        for (k, v) in &big {
            b.put(cf::DEFAULT, k, v);
        }
        b.set_changelog_offset(100);
        wb.write(&b).unwrap();
        assert_eq!(below.changelog_offset().unwrap(), Some(100), "written through");
        assert_eq!(wb.get(cf::DEFAULT, &big[3].0).unwrap(), Some(big[3].1.clone()));
        assert!(wb.cache_stats().resident_bytes <= max);
    }

    #[test]
    fn the_time_bound_flushes_on_the_next_write_and_on_flush_if_due() {
        let below = Recording::new();
        let wb = WriteBehindPartition::new(
            below.clone(),
            WriteBehindConfig {
                max_dirty_age: Duration::ZERO,
                ..config(1 << 20)
            },
        )
        .unwrap();
        assert!(!wb.flush_if_due().unwrap(), "nothing dirty, nothing due");
        wb.write(&batch(&[(b"a", Some(b"1"))], Some(1))).unwrap();
        assert!(below.batches().is_empty());
        wb.write(&batch(&[(b"b", Some(b"1"))], Some(2))).unwrap();
        assert_eq!(below.batches(), vec![(1, Some(1))], "the older write was due");
        assert!(wb.flush_if_due().unwrap());
        assert_eq!(below.changelog_offset().unwrap(), Some(2));

        let lazy = WriteBehindPartition::new(below.clone(), config(1 << 20)).unwrap();
        lazy.write(&batch(&[(b"c", Some(b"1"))], Some(3))).unwrap();
        assert!(!lazy.flush_if_due().unwrap(), "an hour has not passed");
        lazy.persist().unwrap();
        assert_eq!(below.changelog_offset().unwrap(), Some(3), "persist flushes");
    }

    #[test]
    fn bulk_writes_go_below_and_replace_cached_keys() {
        let below = Recording::new();
        let wb = WriteBehindPartition::new(below.clone(), config(1 << 20)).unwrap();
        wb.write(&batch(&[(b"a", Some(b"cached")), (b"b", Some(b"cached"))], Some(1)))
            .unwrap();
        assert_eq!(wb.get(cf::DEFAULT, b"z").unwrap(), None);
        wb.write_bulk(&batch(&[(b"a", Some(b"bulk")), (b"z", Some(b"bulk"))], Some(2)))
            .unwrap();
        assert_eq!(
            below.get(cf::DEFAULT, b"b").unwrap(),
            Some(b"cached".to_vec()),
            "older data first"
        );
        assert_eq!(wb.get(cf::DEFAULT, b"a").unwrap(), Some(b"bulk".to_vec()));
        assert_eq!(
            wb.get(cf::DEFAULT, b"z").unwrap(),
            Some(b"bulk".to_vec()),
            "no stale absent entry"
        );
        assert_eq!(wb.changelog_offset().unwrap(), Some(2));
        assert_eq!(below.changelog_offset().unwrap(), Some(2));
    }

    /// A memory partition whose writes fail ("disk full") while the flag is set.
    fn failing_below() -> (Arc<AtomicBool>, Arc<FailingWrites<MemoryPartition>>) {
        let fail = Arc::new(AtomicBool::new(false));
        let f = fail.clone();
        let below = Arc::new(FailingWrites::new(MemoryPartition::new(), move |_| {
            f.load(Ordering::SeqCst)
                .then(|| Error::backend("test", "writing", "disk full"))
        }));
        (fail, below)
    }

    #[test]
    fn a_failed_flush_keeps_the_changes_and_the_next_flush_writes_them() {
        let (fail, below) = failing_below();
        let wb = WriteBehindPartition::new(below.clone(), config(1 << 20)).unwrap();
        wb.write(&batch(&[(b"a", Some(b"1"))], Some(1))).unwrap();
        fail.store(true, Ordering::SeqCst);
        assert!(wb.flush().is_err());
        assert!(wb.persist().is_err());
        assert_eq!(wb.get(cf::DEFAULT, b"a").unwrap(), Some(b"1".to_vec()));
        assert!(wb.is_dirty());
        fail.store(false, Ordering::SeqCst);
        wb.flush().unwrap();
        assert_eq!(below.get(cf::DEFAULT, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(below.changelog_offset().unwrap(), Some(1));
    }

    #[test]
    fn a_write_that_needs_a_failing_flush_fails_whole() {
        let (fail, below) = failing_below();
        let max = 3 * (ENTRY_OVERHEAD + 2);
        let wb = WriteBehindPartition::new(below, config(max)).unwrap();
        wb.write(&batch(&[(b"a", Some(b"1")), (b"b", Some(b"1"))], Some(1)))
            .unwrap();
        fail.store(true, Ordering::SeqCst);
        let err = wb.write(&batch(&[(b"c", Some(b"1")), (b"d", Some(b"1"))], Some(2)));
        assert!(err.is_err(), "no room without a flush, and the flush failed");
        assert_eq!(wb.get(cf::DEFAULT, b"c").unwrap(), None, "nothing of the failed batch");
        assert_eq!(wb.changelog_offset().unwrap(), Some(1));
        assert!(wb.cache_stats().resident_bytes <= max);
    }

    #[test]
    fn the_backend_wraps_every_partition_and_flushes_them_on_demand() {
        let backend = WriteBehindBackend::new(state_core::MemoryBackend::shared(), config(1 << 20));
        let store = StoreLocation::new("s", "/nowhere");
        let p0 = backend.open_partition(&store, 0).unwrap();
        let p1 = backend.open_partition(&store, 1).unwrap();
        assert_eq!(backend.lagging_partitions(), 0);
        p0.write(&batch(&[(b"a", Some(b"1"))], Some(3))).unwrap();
        p1.write(&batch(&[(b"b", Some(b"1"))], Some(4))).unwrap();
        assert_eq!(backend.lagging_partitions(), 2);
        assert_eq!(backend.flush_due().unwrap(), 0, "nothing is an hour old");
        backend.flush_partition(&store, 1).unwrap();
        assert_eq!(backend.lagging_partitions(), 1, "only partition 1 was flushed");
        assert_eq!(
            backend.partition(&store, 1).unwrap().cache_stats().flushed_offset,
            Some(4)
        );
        assert!(backend.partition(&store, 2).is_none());
        backend.flush_all().unwrap();
        assert_eq!(backend.lagging_partitions(), 0);
        assert_eq!(backend.stats().flushes, 2);
        drop(p1);
        assert_eq!(backend.partitions().len(), 1, "dropped partitions are forgotten");
        assert_eq!(backend.info().name, "memory");
    }

    // ---- the crash model ------------------------------------------------------

    #[derive(Clone, Debug)]
    enum Op {
        Write(Vec<(u8, u8, Option<u8>, bool)>, bool),
        Bulk(Vec<(u8, u8, Option<u8>)>),
        Get(u8, u8),
        Range(u8, u8, u8, bool),
        Flush,
        FlushIfDue,
        Crash,
    }

    fn op() -> impl Strategy<Value = Op> {
        let change = (0u8..2, 0u8..12, proptest::option::weighted(0.7, 0u8..4), any::<bool>());
        prop_oneof![
            6 => (proptest::collection::vec(change, 1..6), any::<bool>()).prop_map(|(c, o)| Op::Write(c, o)),
            1 => proptest::collection::vec((0u8..2, 0u8..12, proptest::option::of(0u8..4)), 1..4).prop_map(Op::Bulk),
            3 => (0u8..2, 0u8..12).prop_map(|(c, k)| Op::Get(c, k)),
            2 => (0u8..2, 0u8..12, 0u8..13, any::<bool>()).prop_map(|(c, a, b, d)| Op::Range(c, a, b, d)),
            1 => Just(Op::Flush),
            1 => Just(Op::FlushIfDue),
            1 => Just(Op::Crash),
        ]
    }

    const CFS: [&str; 2] = [cf::DEFAULT, "__values__"];
    type Model = BTreeMap<(usize, Vec<u8>), Vec<u8>>;

    fn key(k: u8) -> Vec<u8> {
        vec![b'k', k]
    }

    fn value(v: u8, size: usize) -> Vec<u8> {
        vec![v; 1 + (v as usize * size) % 23]
    }

    fn below_state(p: &dyn StorePartition) -> Model {
        let mut out = Model::new();
        for (i, name) in CFS.iter().enumerate() {
            for (k, v) in all(p, name, Direction::Forward) {
                out.insert((i, k), v);
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Reads always agree with a model of every successful write; the
        /// partition below always holds the state after some earlier write
        /// with that write's offset (never a mix), and after a flush the
        /// latest one; a crash (dropping the wrapper unflushed) loses
        /// exactly the writes after that state; the resident bytes never
        /// exceed the bound.
        #[test]
        fn the_partition_below_holds_a_consistent_prefix_across_crashes(
            ops in proptest::collection::vec(op(), 1..60),
            max_entries in 2usize..12,
            dirty_entries in 1usize..12,
            age_zero in any::<bool>(),
            size in 1usize..5,
        ) {
            let below: Arc<MemoryPartition> = Arc::new(MemoryPartition::new());
            let max_bytes = max_entries * (ENTRY_OVERHEAD + 26) + OFFSET_CHARGE;
            let cfg = WriteBehindConfig {
                max_bytes,
                max_dirty_bytes: dirty_entries * (ENTRY_OVERHEAD + 26),
                max_dirty_age: if age_zero { Duration::ZERO } else { Duration::from_secs(3600) },
            };
            let open = || WriteBehindPartition::new(below.clone(), cfg).unwrap();
            let mut wb = open();
            let mut current = Model::new();
            let mut offset: Option<u64> = None;
            let mut next_offset = 0u64;
            // (offset, state) after every successful write; `floor` is the
            // earliest entry the partition below may still be at.
            let mut history: Vec<(Option<u64>, Model)> = vec![(None, Model::new())];
            let mut floor = 0usize;
            for op in ops {
                match op {
                    Op::Write(changes, with_offset) => {
                        let mut b = WriteBatch::new();
                        let mut next = current.clone();
                        for (c, k, v, hint) in changes {
                            let k = key(k);
                            match v {
                                Some(v) => {
                                    let v = value(v, size);
                                    // A truthful hint only.
                                    if hint && !next.contains_key(&(c as usize, k.clone())) {
                                        b.put_new(CFS[c as usize], &k, &v);
                                    } else {
                                        b.put(CFS[c as usize], &k, &v);
                                    }
                                    next.insert((c as usize, k), v);
                                }
                                None => {
                                    b.delete(CFS[c as usize], &k);
                                    next.remove(&(c as usize, k));
                                }
                            }
                        }
                        if with_offset {
                            b.set_changelog_offset(next_offset);
                            offset = Some(next_offset);
                            next_offset += 1;
                        }
                        wb.write(&b).unwrap();
                        current = next;
                        history.push((offset, current.clone()));
                    }
                    Op::Bulk(changes) => {
                        // Recovery: the partition below takes it at once.
                        let mut b = WriteBatch::new();
                        for (c, k, v) in changes {
                            let k = key(k);
                            match v {
                                Some(v) => {
                                    let v = value(v, size);
                                    b.put(CFS[c as usize], &k, &v);
                                    current.insert((c as usize, k), v);
                                }
                                None => {
                                    b.delete(CFS[c as usize], &k);
                                    current.remove(&(c as usize, k));
                                }
                            }
                        }
                        b.set_changelog_offset(next_offset);
                        offset = Some(next_offset);
                        next_offset += 1;
                        wb.write_bulk(&b).unwrap();
                        history.push((offset, current.clone()));
                        prop_assert_eq!(below_state(&*below), current.clone(), "bulk writes go below at once");
                        floor = history.len() - 1;
                    }
                    Op::Get(c, k) => {
                        let got = wb.get(CFS[c as usize], &key(k)).unwrap();
                        prop_assert_eq!(got.clone(), current.get(&(c as usize, key(k))).cloned());
                        prop_assert_eq!(wb.exists(CFS[c as usize], &key(k)).unwrap(), got.is_some());
                    }
                    Op::Range(c, a, b, forward) => {
                        let (lo, hi) = (key(a), key(b));
                        let d = if forward { Direction::Forward } else { Direction::Backward };
                        let got: Vec<KeyValue> = wb
                            .iter_range(CFS[c as usize], &lo, Some(&hi), d)
                            .unwrap()
                            .collect::<Result<_>>()
                            .unwrap();
                        let mut want: Vec<KeyValue> = current
                            .iter()
                            .filter(|((cc, k), _)| *cc == c as usize && *k >= lo && *k < hi)
                            .map(|((_, k), v)| (k.clone(), v.clone()))
                            .collect();
                        if !forward {
                            want.reverse();
                        }
                        prop_assert_eq!(got, want);
                    }
                    Op::Flush => {
                        wb.flush().unwrap();
                        prop_assert_eq!(below_state(&*below), current.clone());
                        prop_assert_eq!(below.changelog_offset().unwrap(), offset);
                        floor = history.len() - 1;
                    }
                    Op::FlushIfDue => {
                        let flushed = wb.flush_if_due().unwrap();
                        if age_zero {
                            prop_assert_eq!(below_state(&*below), current.clone());
                            floor = history.len() - 1;
                        } else {
                            prop_assert!(!flushed);
                        }
                    }
                    Op::Crash => {
                        drop(wb);
                        wb = open();
                        // The partition below is where the model goes back to.
                        let state = below_state(&*below);
                        let at = below.changelog_offset().unwrap();
                        let j = (floor..history.len())
                            .rev()
                            .find(|&j| history[j].0 == at && history[j].1 == state);
                        prop_assert!(j.is_some(), "below is no earlier state: {:?} at {:?}", state, at);
                        let j = j.unwrap_or(0);
                        history.truncate(j + 1);
                        floor = j;
                        current = state;
                        offset = at;
                        prop_assert_eq!(wb.changelog_offset().unwrap(), at);
                    }
                }
                // After every step: below is at some state since the floor.
                let state = below_state(&*below);
                let at = below.changelog_offset().unwrap();
                let j = (floor..history.len()).rev().find(|&j| history[j].0 == at && history[j].1 == state);
                prop_assert!(j.is_some(), "below holds a mix: {:?} at {:?}", state, at);
                floor = j.unwrap_or(floor);
                prop_assert!(wb.cache_stats().resident_bytes <= max_bytes, "{:?}", wb.cache_stats());
                prop_assert_eq!(wb.changelog_offset().unwrap(), offset);
            }
        }
    }
}
