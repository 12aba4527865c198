//! [`State`]: what a write-behind cache holds beyond its slots (per column
//! family dirty counts and ordered views, the pending changelog offset,
//! counters), how writes and point reads change it, and its flush policy:
//! when a write must flush first, how room is made, and what one flush
//! writes below. What range reads see of it is in `merge`.

use std::time::Instant;

use state_core::mem::{sort_by_key, InlineBytes};
use state_core::{cf, keys, Reservation, Result, StorePartition, WriteBatch};

use super::behind::Pending;
use super::ordered::OrderedKeys;
use crate::config::{WriteBehindConfig, WriteBehindStats, ENTRY_OVERHEAD, OFFSET_CHARGE, ORDERED_OVERHEAD};
use crate::slots::{charge, Entry, Slots};

/// The changelog offset as the partition below stores it.
pub(super) fn offset_bytes(offset: Option<u64>) -> Option<Vec<u8>> {
    offset.map(|o| keys::encode_u64(o).to_vec())
}

/// True for the key the changelog offset is stored under.
pub(super) fn is_offset_key(cf_name: &str, key: &[u8]) -> bool {
    cf_name == cf::METADATA && key == cf::CHANGELOG_OFFSET_KEY
}

/// The dirty side of one column family (numbered as in [`Slots`]).
#[derive(Debug, Default)]
pub(super) struct CfDirty {
    /// Written through the wrapper (so it exists, for `column_families`).
    written: bool,
    pub(super) dirty_entries: usize,
    pub(super) ordered: Option<OrderedKeys>,
}

/// The dirty side of column family `cf`, made if the slots numbered it
/// after this list was last grown.
pub(super) fn cf_dirty(cfs: &mut Vec<CfDirty>, cf: u16) -> &mut CfDirty {
    let i = cf as usize;
    if cfs.len() <= i {
        cfs.resize_with(i + 1, CfDirty::default);
    }
    &mut cfs[i]
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

/// Everything a write-behind cache holds (see the
/// [module documentation](self)).
#[derive(Debug)]
pub(super) struct State {
    pub(super) slots: Slots,
    pub(super) cfs: Vec<CfDirty>,
    dirty_bytes: usize,
    dirty_entries: usize,
    /// The offset of the last batch written through (None: never set).
    pub(super) offset: Option<u64>,
    /// The offset the partition below holds.
    pub(super) flushed_offset: Option<u64>,
    pub(super) offset_dirty: bool,
    first_dirty_at: Option<Instant>,
    flushes: u64,
    elided: u64,
    /// A batch `write` accepted but has not applied yet (see `behind`).
    pub(super) pending: Option<Pending>,
    /// The buffers of the last batch applied behind, for the next one
    /// (not charged to the budget; dropped when the budget asks for
    /// memory back).
    pub(super) spare: WriteBatch,
    /// What the helper's panic said, if it panicked applying this cache's
    /// batch: the next caller panics with it (see `behind`).
    pub(super) helper_panic: Option<String>,
    pub(super) applied_behind: u64,
    pub(super) finished_by_caller: u64,
    /// Large batches still to apply inside `write`, and the length of the
    /// last such run (see `behind`).
    pub(super) inline_for: u32,
    pub(super) inline_run: u32,
}

impl State {
    /// An empty cache over a partition that holds `offset`, whose bytes
    /// `reservation` covers.
    pub(super) fn new(offset: Option<u64>, reservation: Reservation) -> Self {
        State {
            slots: Slots::new(reservation),
            cfs: Vec::new(),
            dirty_bytes: 0,
            dirty_entries: 0,
            offset,
            flushed_offset: offset,
            offset_dirty: false,
            first_dirty_at: None,
            flushes: 0,
            elided: 0,
            pending: None,
            spare: WriteBatch::new(),
            helper_panic: None,
            applied_behind: 0,
            finished_by_caller: 0,
            inline_for: 0,
            inline_run: 0,
        }
    }

    fn cf_index_or_add(&mut self, name: &str) -> u16 {
        let cf = self.slots.cf_index_or_add(name);
        cf_dirty(&mut self.cfs, cf);
        cf
    }

    /// True if there are changes not yet written below.
    pub(super) fn is_dirty(&self) -> bool {
        self.dirty_entries > 0 || self.offset_dirty
    }

    /// The names of the column families written through the cache.
    pub(super) fn written_cfs(&self) -> impl Iterator<Item = &str> {
        self.cfs
            .iter()
            .enumerate()
            .filter(|(_, c)| c.written)
            .map(|(i, _)| self.slots.cf_name(i as u16))
    }

    /// Sizes and counters.
    pub(super) fn stats(&self) -> WriteBehindStats {
        WriteBehindStats {
            resident_bytes: self.slots.resident,
            dirty_bytes: self.dirty_bytes,
            entries: self.slots.len(),
            dirty_entries: self.dirty_entries,
            flushes: self.flushes,
            elided: self.elided,
            changelog_offset: self.offset,
            flushed_offset: self.flushed_offset,
            applied_behind: self.applied_behind,
            finished_by_caller: self.finished_by_caller,
        }
    }

    // ---- the flush policy ---------------------------------------------------

    /// True if the oldest unflushed change is at least
    /// [`WriteBehindConfig::max_dirty_age`] old at `now`.
    pub(super) fn due(&self, config: &WriteBehindConfig, now: Instant) -> bool {
        self.first_dirty_at
            .is_some_and(|t| now.saturating_duration_since(t) >= config.max_dirty_age)
    }

    /// True if `batch` (which adds at most `need` bytes) must wait for a
    /// flush: the oldest change is due, or the dirty bound would be passed.
    pub(super) fn must_flush_before(&self, need: usize, config: &WriteBehindConfig) -> bool {
        self.due(config, Instant::now()) || self.dirty_bytes + need > config.max_dirty_bytes
    }

    pub(super) fn mark_dirty_time(&mut self) {
        if self.first_dirty_at.is_none() {
            self.first_dirty_at = Some(Instant::now());
        }
    }

    /// The bytes a batch can add at most.
    pub(super) fn estimate(&self, batch: &WriteBatch) -> usize {
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
                self.slots
                    .cf_index(name)
                    .is_some_and(|i| self.cfs.get(i as usize).is_some_and(|c| c.ordered.is_some()))
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

    /// Makes room for `need` bytes under `max` and the memory budget:
    /// evicts clean entries, flushes if that is not enough, evicts again.
    /// False if even an empty cache has no room for them (the budget
    /// covers less): the caller writes through instead.
    pub(super) fn ensure_room(&mut self, need: usize, max: usize, inner: &dyn StorePartition) -> Result<bool> {
        if self.slots.evict_for(need, max) {
            return Ok(true);
        }
        self.flush(inner)?;
        // Everything is clean now; the ordered views are empty.
        Ok(self.slots.evict_for(need, max))
    }

    /// Writes all dirty entries below in one batch.
    pub(super) fn flush(&mut self, inner: &dyn StorePartition) -> Result<()> {
        if !self.is_dirty() {
            // A batch applied behind its write marks the time it was
            // written, even if all of it was elided.
            self.first_dirty_at = None;
            return Ok(());
        }
        let slots = &self.slots;
        let mut dirty: Vec<u32> = Vec::with_capacity(self.dirty_entries);
        let mut bytes = 0;
        for (i, key, e) in slots.iter() {
            if e.dirty {
                dirty.push(i);
                bytes += key.len() + e.value.as_ref().map_or(0, |v| v.len());
            }
        }
        // Key order per column family: RocksDB's memtable inserts reuse
        // their search path between neighbouring keys. Column families in
        // name order.
        let mut by_name: Vec<u16> = (0..slots.cf_count() as u16).collect();
        by_name.sort_unstable_by(|&a, &b| slots.cf_name(a).cmp(slots.cf_name(b)));
        let mut rank = vec![0u16; slots.cf_count()];
        for (r, &cf) in by_name.iter().enumerate() {
            rank[cf as usize] = r as u16;
        }
        sort_by_key(&mut dirty, |i| rank[slots.entry(i).cf as usize], |i| slots.key(i));
        let mut batch = WriteBatch::with_capacity(dirty.len(), bytes);
        for &i in &dirty {
            let (e, key) = (slots.entry(i), slots.key(i));
            let name = slots.cf_name(e.cf);
            match &e.value {
                Some(v) if e.new_key => batch.put_new(name, key, v),
                Some(v) => batch.put(name, key, v),
                None => batch.delete(name, key),
            }
        }
        if let Some(offset) = self.offset.filter(|_| self.offset_dirty) {
            batch.set_changelog_offset(offset);
        }
        inner.write(&batch)?;
        for &i in &dirty {
            self.slots.mark_clean(i);
        }
        for c in &mut self.cfs {
            c.dirty_entries = 0;
            if let Some(o) = c.ordered.as_mut() {
                self.slots.resident -= o.clear();
            }
        }
        if self.offset_dirty {
            self.slots.resident -= OFFSET_CHARGE;
            self.offset_dirty = false;
            self.flushed_offset = self.offset;
        }
        self.dirty_entries = 0;
        self.dirty_bytes = 0;
        self.first_dirty_at = None;
        self.flushes += 1;
        // Everything is clean: the moment to give memory back if asked.
        self.give_back_if_asked();
        Ok(())
    }

    // ---- writes --------------------------------------------------------------

    /// Applies `batch` to the cache (room was made by the caller).
    pub(super) fn apply(&mut self, batch: &WriteBatch) {
        self.apply_part(batch, 0, usize::MAX);
    }

    /// Applies up to `max_ops` operations of `batch` from the `first`-th
    /// on, and the batch's changelog offset with its last operation (room
    /// for all of it was made by the caller); returns how many it applied.
    pub(super) fn apply_part(&mut self, batch: &WriteBatch, first: usize, max_ops: usize) -> usize {
        // The batch's column families, as numbers of ours.
        let ours: Vec<u16> = batch
            .column_families()
            .iter()
            .map(|name| self.cf_written(name))
            .collect();
        let mut last = CfMemo::default();
        let count = batch.len().saturating_sub(first).min(max_ops);
        for op in batch.iter_from(first).take(count) {
            let cf = match ours.get(last.index(op.cf, batch.column_families())) {
                Some(&cf) => cf,
                None => self.cf_written(op.cf),
            };
            match self.slots.find(cf, op.key) {
                Some(idx) => self.update(idx, op.value),
                None if op.value.is_none() && self.slots.is_complete(cf) => {
                    // Deleting a key nothing holds: nothing to do.
                }
                None => {
                    // Not cached: new if the writer says so, or if the
                    // cache holds the whole column family.
                    let new_key = op.new_key || self.slots.is_complete(cf);
                    let entry = Entry {
                        value: op.value.map(InlineBytes::new),
                        cf,
                        dirty: true,
                        new_key: op.value.is_some() && new_key,
                    };
                    self.slots.insert(op.key, entry);
                    self.dirty_bytes += charge(op.key, op.value);
                    self.ordered_add(cf, op.key);
                    self.mark_dirty_time();
                }
            }
        }
        if first + count < batch.len() {
            return count;
        }
        if let Some(offset) = batch.changelog_offset() {
            self.offset = Some(offset);
            if !self.offset_dirty {
                self.offset_dirty = true;
                self.slots.resident += OFFSET_CHARGE;
                self.dirty_bytes += OFFSET_CHARGE;
            }
            self.mark_dirty_time();
        }
        count
    }

    /// Gives memory back if the budget asks: clean entries beyond the fair
    /// share, and the spare batch buffers.
    pub(super) fn give_back_if_asked(&mut self) {
        if self.slots.give_back_if_asked() {
            self.spare = WriteBatch::new();
        }
    }

    /// The number of column family `name`, marked written.
    fn cf_written(&mut self, name: &str) -> u16 {
        let cf = self.cf_index_or_add(name);
        cf_dirty(&mut self.cfs, cf).written = true;
        cf
    }

    /// Applies a put (`Some`) or delete of the key of cached entry `idx`.
    fn update(&mut self, idx: u32, value: Option<&[u8]>) {
        let e = self.slots.entry(idx);
        let was_dirty = e.dirty;
        // A hint on a key the cache knows is only trusted where the cache
        // agrees: a cached value or a pending delete means something is
        // (or may be) below.
        let absent_below = e.absent_below();
        let cf = e.cf;
        let (before, after) = self.slots.update(idx, |e| match value {
            Some(v) => {
                match &mut e.value {
                    Some(old) => old.set(v),
                    slot => *slot = Some(InlineBytes::new(v)),
                }
                e.dirty = true;
                e.new_key = absent_below;
            }
            None if absent_below => {
                // Created and deleted between two flushes: nothing to write.
                e.value = None;
                e.dirty = false;
                e.new_key = false;
            }
            None => {
                e.value = None;
                e.dirty = true;
                e.new_key = false;
            }
        });
        let now_dirty = self.slots.entry(idx).dirty;
        if was_dirty {
            self.dirty_bytes -= before;
        }
        if now_dirty {
            self.dirty_bytes += after;
        }
        if was_dirty == now_dirty {
            return;
        }
        // The key is copied only for an ordered view (it is the slots',
        // which the view's update borrows beside): elided deletes are one
        // per expired window.
        let key: Box<[u8]> = if cf_dirty(&mut self.cfs, cf).ordered.is_some() {
            self.slots.key(idx).into()
        } else {
            Box::default()
        };
        if now_dirty {
            self.ordered_add(cf, &key);
            self.mark_dirty_time();
        } else {
            self.ordered_remove(cf, &key);
            self.elided += 1;
            // Nothing is below and nothing is pending: forget the key
            // (a window created and expired is never read again).
            self.slots.remove(idx);
        }
    }

    fn ordered_add(&mut self, cf: u16, key: &[u8]) {
        self.dirty_entries += 1;
        let c = cf_dirty(&mut self.cfs, cf);
        c.dirty_entries += 1;
        if let Some(o) = c.ordered.as_mut() {
            self.slots.resident += o.add(key);
            if o.unread() {
                self.slots.resident -= o.charged();
                c.ordered = None;
            }
        }
    }

    fn ordered_remove(&mut self, cf: u16, key: &[u8]) {
        self.dirty_entries -= 1;
        let c = cf_dirty(&mut self.cfs, cf);
        c.dirty_entries -= 1;
        if let Some(o) = c.ordered.as_mut() {
            self.slots.resident -= o.remove(key);
        }
    }

    /// Flushes what is pending (it is older than the batch), then drops
    /// the cached entries of the keys of `batch` and marks the batch's
    /// column families incomplete: the batch is about to be written below
    /// behind the cache's back.
    pub(super) fn forget_keys(&mut self, batch: &WriteBatch, inner: &dyn StorePartition) -> Result<()> {
        for name in batch.column_families() {
            if let Some(cf) = self.slots.cf_index(name) {
                self.slots.forget_loaded(cf);
            }
        }
        // A pending changelog offset with no dirty entry must go below
        // first too: otherwise the partition below would hold the batch's
        // data with an offset older than the writes before it.
        self.flush(inner)?;
        if self.slots.is_empty() {
            return Ok(());
        }
        for op in batch.iter() {
            let Some(cf) = self.slots.cf_index(op.cf) else { continue };
            if let Some(idx) = self.slots.find(cf, op.key) {
                self.slots.remove(idx);
            }
        }
        Ok(())
    }

    /// Records that `batch` was written below directly.
    pub(super) fn written_through(&mut self, batch: &WriteBatch) {
        if let Some(offset) = batch.changelog_offset() {
            self.offset = Some(offset);
            self.flushed_offset = Some(offset);
        }
    }

    // ---- point reads -------------------------------------------------------------

    /// What the cache says about `key`: `Some(value)` if it knows. Loads
    /// the column family first if that was never tried.
    pub(super) fn lookup(
        &mut self,
        cf_name: &str,
        key: &[u8],
        max: usize,
        inner: &dyn StorePartition,
    ) -> Result<Option<Option<Vec<u8>>>> {
        let cf = match self.slots.cf_index(cf_name) {
            Some(cf) if self.slots.load_tried(cf) => cf,
            _ => {
                self.slots.load_cf(cf_name, max, inner)?;
                self.cf_index_or_add(cf_name)
            }
        };
        Ok(self.slots.lookup(cf, key))
    }
}
