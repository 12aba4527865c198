//! [`Slots`]: the entries of a cache, one per cached key (a value, a key
//! known absent, a pending put or delete), in one
//! [`ByteMap`](state_core::mem::ByteMap) keyed by column family and key,
//! with the bytes they are charged and second-chance eviction of the clean
//! ones. Both the write-behind and the write-through cache keep theirs
//! here.

use std::hash::BuildHasher;

use rustc_hash::FxBuildHasher;
use state_core::mem::{ByteMap, InlineBytes, InlineKeys};
use state_core::{Direction, Reservation, Result, StorePartition};

use crate::config::ENTRY_OVERHEAD;

/// Keys up to this long live inside their slot (no allocation, and a
/// lookup that finds the slot finds the key without another cache miss).
const INLINE_KEY: usize = 38;
/// Values up to this long live inside their slot. Window aggregates of a
/// few named aggregations (`{"count/Count":9,"sum/Sum":45}`, ~30 bytes)
/// fit: on a heap block each, every expiry read took one more cache miss
/// and every write one more allocation (hopping, 10 windows set and 10
/// expired per record: ~7% of its time).
const INLINE_VALUE: usize = 38;

/// One cached key (the key is the map's).
///
/// | `value` | `dirty` | meaning |
/// |---|---|---|
/// | `Some` | no  | the value below (clean) |
/// | `None` | no  | known absent below |
/// | `Some` | yes | a put not yet written; `new_key`: nothing below |
/// | `None` | yes | a delete not yet written (something below) |
#[derive(Debug, Default)]
pub(crate) struct Entry {
    pub(crate) value: Option<InlineBytes<INLINE_VALUE>>,
    pub(crate) cf: u16,
    pub(crate) dirty: bool,
    pub(crate) new_key: bool,
}

impl Entry {
    /// What the partition below holds: `value` (`None`: nothing).
    pub(crate) fn clean(cf: u16, value: Option<&[u8]>) -> Self {
        Entry {
            value: value.map(InlineBytes::new),
            cf,
            dirty: false,
            new_key: false,
        }
    }

    /// True if the partition below has no value for the key.
    pub(crate) fn absent_below(&self) -> bool {
        if self.dirty {
            self.new_key
        } else {
            self.value.is_none()
        }
    }
}

/// The bytes an entry for `key` holding `value` is charged.
pub(crate) fn charge(key: &[u8], value: Option<&[u8]>) -> usize {
    key.len() + value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD
}

fn hash_of(cf: u16, key: &[u8]) -> u64 {
    FxBuildHasher.hash_one((cf, key))
}

/// What the slots know of one column family.
#[derive(Debug)]
struct CfSlots {
    name: String,
    /// Every key the partition below holds in this column family is
    /// cached: a key not in the cache has no value, without a read.
    complete: bool,
    /// Loading the whole column family was tried (see [`Slots::load_cf`]).
    load_tried: bool,
}

/// The entries of a cache and the bytes it holds (see the
/// [module documentation](self)).
#[derive(Debug)]
pub(crate) struct Slots {
    entries: ByteMap<InlineKeys<INLINE_KEY>, Entry>,
    cfs: Vec<CfSlots>,
    /// Every byte the cache is charged: its entries, and what its owner
    /// adds for structures of its own (an ordered view, an offset).
    pub(crate) resident: usize,
    /// What a memory budget lets the cache hold; grown before `resident`
    /// is (unlimited without a budget).
    reservation: Reservation,
}

impl Default for Slots {
    fn default() -> Self {
        Slots::new(Reservation::unlimited())
    }
}

impl Slots {
    /// Empty slots whose bytes `reservation` must cover.
    pub(crate) fn new(reservation: Reservation) -> Self {
        Slots {
            entries: ByteMap::default(),
            cfs: Vec::new(),
            resident: 0,
            reservation,
        }
    }

    /// True if `need` more bytes fit under `max` and the budget covers
    /// them (growing the reservation if it can).
    #[inline]
    pub(crate) fn fits(&mut self, need: usize, max: usize) -> bool {
        let want = self.resident.saturating_add(need);
        want <= max && self.reservation.try_grow_to(want)
    }

    /// If the budget asked holders above their fair share to give memory
    /// back, evicts clean entries down to the share (dirty ones stay) and
    /// gives back what is no longer used; true if it asked. Cheap when it
    /// did not ask.
    pub(crate) fn give_back_if_asked(&mut self) -> bool {
        if !self.reservation.pressure() {
            return false;
        }
        let share = self.reservation.fair_share();
        if self.reservation.held() <= share {
            return true;
        }
        while self.resident > share {
            match self.entries.next_victim(|e| !e.dirty) {
                Some(idx) => self.remove(idx),
                None => break,
            }
        }
        if self.entries.free_slots() > self.entries.len() {
            // The room of evicted entries would stay with the process.
            self.entries.compact();
        }
        self.reservation.shrink_to(self.resident);
        true
    }

    /// The number of column family `name`, if it has one yet.
    pub(crate) fn cf_index(&self, name: &str) -> Option<u16> {
        self.cfs.iter().position(|c| c.name == name).map(|i| i as u16)
    }

    /// The number of column family `name` (numbers are given in order).
    pub(crate) fn cf_index_or_add(&mut self, name: &str) -> u16 {
        match self.cf_index(name) {
            Some(i) => i,
            None => {
                self.cfs.push(CfSlots {
                    name: name.to_owned(),
                    complete: false,
                    load_tried: false,
                });
                (self.cfs.len() - 1) as u16
            }
        }
    }

    /// The name of column family `cf`.
    pub(crate) fn cf_name(&self, cf: u16) -> &str {
        &self.cfs[cf as usize].name
    }

    /// How many column families have numbers.
    pub(crate) fn cf_count(&self) -> usize {
        self.cfs.len()
    }

    /// True if every key of `cf` below is cached.
    pub(crate) fn is_complete(&self, cf: u16) -> bool {
        self.cfs[cf as usize].complete
    }

    /// True if loading the whole of column family `cf` was tried.
    pub(crate) fn load_tried(&self, cf: u16) -> bool {
        self.cfs[cf as usize].load_tried
    }

    /// Written below behind the cache's back: `cf` is not complete, and
    /// worth loading again once such writes are over.
    pub(crate) fn forget_loaded(&mut self, cf: u16) {
        let c = &mut self.cfs[cf as usize];
        c.complete = false;
        c.load_tried = false;
    }

    /// The entry of `key` in `cf`.
    #[inline]
    pub(crate) fn find(&self, cf: u16, key: &[u8]) -> Option<u32> {
        self.entries.find_with(hash_of(cf, key), key, |e| e.cf == cf)
    }

    /// The key of entry `idx`.
    pub(crate) fn key(&self, idx: u32) -> &[u8] {
        self.entries.key(idx)
    }

    /// Entry `idx`.
    pub(crate) fn entry(&self, idx: u32) -> &Entry {
        self.entries.get(idx)
    }

    /// The bytes entry `idx` is charged.
    pub(crate) fn charge_of(&self, idx: u32) -> usize {
        charge(self.key(idx), self.entry(idx).value.as_deref())
    }

    /// Changes entry `idx` with `f`, marks it used, and charges its new
    /// size; returns its charges before and after.
    pub(crate) fn update(&mut self, idx: u32, f: impl FnOnce(&mut Entry)) -> (usize, usize) {
        let before = self.charge_of(idx);
        f(self.entries.get_mut(idx));
        self.entries.touch(idx);
        let after = self.charge_of(idx);
        self.resident = self.resident + after - before;
        (before, after)
    }

    /// Entry `idx` was written below: it is clean now (its charge stays,
    /// it is not marked used).
    pub(crate) fn mark_clean(&mut self, idx: u32) {
        let e = self.entries.get_mut(idx);
        e.dirty = false;
        e.new_key = false;
    }

    /// Adds `entry` for `key` (not cached yet) and charges it; returns its
    /// number.
    pub(crate) fn insert(&mut self, key: &[u8], entry: Entry) -> u32 {
        self.resident += charge(key, entry.value.as_deref());
        self.entries.insert(hash_of(entry.cf, key), key, entry)
    }

    /// Drops clean entry `idx`. Its column family stops being complete
    /// unless the entry said "absent below" (forgetting that changes
    /// nothing).
    pub(crate) fn remove(&mut self, idx: u32) {
        self.resident -= self.charge_of(idx);
        let e = self.entries.remove(idx);
        debug_assert!(!e.dirty, "a dirty entry is never dropped");
        if e.value.is_some() || e.new_key {
            self.cfs[e.cf as usize].complete = false;
        }
    }

    /// Evicts clean entries (second chance) until `need` more bytes fit
    /// in `max` and in what the budget covers; false if only dirty entries
    /// are left to evict.
    pub(crate) fn evict_for(&mut self, need: usize, max: usize) -> bool {
        if self.fits(need, max) {
            return true;
        }
        // Ask the budget once, then make room within what it covers.
        let limit = max.min(self.reservation.held());
        while self.resident.saturating_add(need) > limit {
            match self.entries.next_victim(|e| !e.dirty) {
                Some(idx) => self.remove(idx),
                None => return false,
            }
        }
        true
    }

    /// What the cache knows of `key` in `cf`: `Some(value)` if it knows
    /// (`Some(None)`: no value), `None` if the partition below must be
    /// asked.
    pub(crate) fn lookup(&mut self, cf: u16, key: &[u8]) -> Option<Option<Vec<u8>>> {
        if let Some(idx) = self.find(cf, key) {
            self.entries.touch(idx);
            return Some(self.entries.get(idx).value.as_ref().map(|v| v.to_vec()));
        }
        self.cfs[cf as usize].complete.then_some(None)
    }

    /// Caches what the partition below holds for `key` (`value`), if there
    /// is room after evicting clean entries; an entry larger than a
    /// quarter of `max` is not worth it.
    pub(crate) fn cache_read(&mut self, cf_name: &str, key: &[u8], value: Option<&[u8]>, max: usize) {
        let charge = charge(key, value);
        if charge > max / 4 || !self.evict_for(charge, max) {
            return;
        }
        let cf = self.cf_index_or_add(cf_name);
        self.insert(key, Entry::clean(cf, value));
    }

    /// Loads every key of `cf_name` from `below` as clean entries if they
    /// take at most a quarter of `max`, so that later misses in the column
    /// family need no read (a fresh partition loads nothing and is
    /// complete at once). Tried once per column family; a bigger one stays
    /// a read-through cache (with whatever was loaded).
    pub(crate) fn load_cf(&mut self, cf_name: &str, max: usize, below: &dyn StorePartition) -> Result<()> {
        let cf = self.cf_index_or_add(cf_name);
        if self.cfs[cf as usize].load_tried {
            return Ok(());
        }
        self.cfs[cf as usize].load_tried = true;
        let budget = max / 4;
        let stats = below.stats();
        if let (Some(live), Some(mem)) = (stats.live_data_bytes, stats.memtable_bytes) {
            if live.saturating_add(mem) > budget as u64 {
                return Ok(());
            }
        }
        let mut loaded = 0usize;
        for item in below.iter_range(cf_name, b"", None, Direction::Forward)? {
            let (key, value) = item?;
            let charge = charge(&key, Some(&value));
            loaded += charge;
            if loaded > budget || !self.fits(charge, max) {
                return Ok(());
            }
            if self.find(cf, &key).is_none() {
                self.insert(&key, Entry::clean(cf, Some(&value)));
            }
        }
        self.cfs[cf as usize].complete = true;
        Ok(())
    }

    /// Every entry: number, key, entry.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &[u8], &Entry)> + '_ {
        self.entries.iter()
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing is cached.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops every entry and column family. Under a budget the memory
    /// goes back too (without one, the allocations are kept for reuse).
    pub(crate) fn clear(&mut self) {
        if self.reservation.is_limited() {
            self.entries = ByteMap::default();
        } else {
            self.entries.clear();
        }
        self.cfs.clear();
        self.resident = 0;
        self.reservation.shrink_to(0);
    }
}
