//! [`WindowIndex`]: the per-prefix metadata of one windowed store
//! partition, served from memory.

use parking_lot::Mutex;
use state_core::mem::{hash_bytes, ByteMap, InlineBytes, InlineKeys};
use state_core::{cf, keys, BudgetPool, Codec, Direction, MemoryBudget, Reservation, StorePartition};

use super::index_value::IndexValue;
use super::layout::{
    key_prefix_guess, split_slot_key, split_window_key, LATEST_EXPIRED_KEY, LATEST_TIMESTAMP_KEY, WINDOW_SUFFIX_LEN,
};
use super::prefix_cache::{Scratch, TouchedIter};
use crate::cache::UpdateCache;
use crate::error::Result;
use crate::few::Few;

/// Default bound of [`WindowIndex::new`]: prefixes held.
pub const DEFAULT_MAX_PREFIXES: usize = 100_000;

/// A prefix with more stored windows than this keeps only its index
/// values in memory; its windows are read from the partition.
pub(crate) const MAX_WINDOWS_PER_PREFIX: usize = 256;

/// Prefixes up to this long live inside their entry.
const INLINE_PREFIX: usize = 30;

/// Window values up to this long are kept next to their window
/// ([`PrefixEntry::values`]); longer ones are read from the partition.
const INDEXED_VALUE: usize = 38;

/// The stored value of one indexed window, if the index knows it (`None`:
/// read the partition).
pub(crate) type IndexedValue = Option<InlineBytes<INDEXED_VALUE>>;

/// The value a window written with `value` is indexed with.
fn indexed_value(value: &[u8]) -> IndexedValue {
    (value.len() <= INDEXED_VALUE).then(|| InlineBytes::new(value))
}

/// Bytes charged per prefix held (its slot in the map, its place in the
/// hash index, allocator slack), on top of the heap bytes of a long prefix
/// or a long window list. An estimate; a test keeps it above the slot's
/// size.
pub const PREFIX_OVERHEAD: usize = 192;

/// The bytes a prefix and its entry are charged.
fn charge(prefix: &[u8], entry: &PrefixEntry) -> usize {
    let key_heap = if prefix.len() > INLINE_PREFIX {
        prefix.len() + 16
    } else {
        0
    };
    let windows_heap = entry.windows.as_ref().map_or(0, Few::heap_bytes);
    let values_heap = match entry.values.capacity() {
        0 => 0,
        n => n * std::mem::size_of::<IndexedValue>() + 16,
    };
    PREFIX_OVERHEAD + key_heap + windows_heap + values_heap
}

/// What the index knows about one prefix (whose bytes are the key of its
/// entry).
#[derive(Debug, Default)]
pub(crate) struct PrefixEntry {
    /// The stored windows `(start, end)`, sorted; `None` when not indexed
    /// (the empty prefix, whose 17-byte window keys cannot be scanned by
    /// prefix, or more than [`MAX_WINDOWS_PER_PREFIX`] windows).
    pub(crate) windows: Option<Few<(u64, u64)>>,
    /// The stored values of `windows`, position for position, where a
    /// transaction with the index wrote them (loads leave them unknown):
    /// expiry reads a closing window here instead of in the partition
    /// (a hopping record closes ten windows written a checkpoint or more
    /// before, ten random reads of the cache below). Empty, or as long as
    /// `windows`; any other length means none is known.
    pub(crate) values: Vec<IndexedValue>,
    /// The stored latest timestamp slot.
    pub(crate) latest: Option<i64>,
    /// The stored last-expired slot.
    pub(crate) expired: Option<i64>,
}

#[derive(Debug)]
struct State {
    /// Every prefix held, evicted by second chance.
    prefixes: ByteMap<InlineKeys<INLINE_PREFIX>, PrefixEntry>,
    /// Every prefix with anything stored has an entry: a whole-partition
    /// load succeeded and nothing was evicted since.
    complete: bool,
    /// The whole-partition load was tried.
    tried_full: bool,
    loads: u64,
    evictions: u64,
    /// What the prefixes held are charged ([`charge`]).
    bytes: usize,
    /// What a memory budget lets the index hold (unlimited without one);
    /// covers `bytes`.
    reservation: Reservation,
}

impl Default for State {
    fn default() -> Self {
        State::new(Reservation::unlimited())
    }
}

/// Counters of a [`WindowIndex`], for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowIndexStats {
    /// Prefixes held.
    pub prefixes: usize,
    /// True if every stored prefix is held (a prefix not held has nothing
    /// stored).
    pub complete: bool,
    /// Prefixes loaded one by one from the partition.
    pub prefix_loads: u64,
    /// Prefixes evicted to respect the bound (or the memory budget).
    pub evictions: u64,
    /// Bytes the prefixes held are charged (see [`PREFIX_OVERHEAD`]).
    pub bytes: usize,
}

/// The in-memory per-prefix metadata of one windowed store partition.
///
/// For each prefix it knows the latest timestamp, the last expired start
/// (the `__latest-timestamps__` and `__expiration-index__` slots), the
/// set of stored windows and, for the windows transactions with the index
/// wrote, their stored values up to a few dozen bytes (so expiry does not
/// read back the windows it closes). With it, [`WindowedTransaction`](super::WindowedTransaction) answers
/// `get_window` of a window that does not exist without reading the
/// partition, finds the windows `expire_windows` must expire (usually
/// none) without creating an iterator, and marks the windows it creates as
/// new ([`state_core::WriteBatch::put_new`]), so that a write-behind cache
/// can drop a window created and expired between two of its flushes.
///
/// The index holds *committed* state only. A prefix is loaded on its first
/// touch: by one scan of the whole partition the first time the index is
/// used, if the partition holds at most [`max_prefixes`](Self::max_prefixes)
/// prefixes (then a prefix never seen has nothing stored and costs no read
/// at all), otherwise by one range scan of the prefix's windows and two
/// point reads. A transaction made with the index updates it after its
/// flush succeeded, from the changes it wrote; an aborted transaction
/// leaves it unchanged. At most `max_prefixes` prefixes are held; others
/// are evicted (second chance) and loaded again on their next touch.
///
/// Made [`with_budget`](Self::with_budget), the index also keeps its bytes
/// ([`PREFIX_OVERHEAD`] per prefix plus long prefixes and window lists)
/// within what the budget's [`BudgetPool::Caches`] lets it reserve: it
/// evicts earlier when the budget has no room (a prefix that finds no room
/// at all is served once without being kept), and gives back down to its
/// fair share after a commit when another holder of the budget was
/// refused.
///
/// # Contract
/// Create one per partition and pass it to every
/// [`WindowedTransaction::with_index`](super::WindowedTransaction::with_index)
/// on that partition. Any write to the partition that does not go through
/// such a transaction (recovery, a standby catching up, a transaction made
/// without the index) must be followed by [`clear`](Self::clear) before
/// the next transaction with the index starts. Transactions on one
/// partition run one after the other (as the manager runs them).
#[derive(Debug)]
pub struct WindowIndex {
    state: Mutex<State>,
    max_prefixes: usize,
    /// Buffers the last finished transaction left for the next one.
    scratch: Mutex<Option<Scratch>>,
}

impl Default for WindowIndex {
    fn default() -> Self {
        WindowIndex::new(DEFAULT_MAX_PREFIXES)
    }
}

fn decode_slot(codec: Codec, bytes: &[u8]) -> Result<i64> {
    Ok(codec.decode::<IndexValue>(bytes)?.millis())
}

impl PrefixEntry {
    /// Records that window `(start, end)` is now stored with `value`
    /// (`Some`) or not stored; a prefix with too many windows stops
    /// listing them.
    fn note_window(&mut self, start: u64, end: u64, value: Option<&[u8]>) {
        let Some(w) = self.windows.as_mut() else { return };
        if self.values.len() != w.len() {
            // Loaded windows: their values are not known.
            self.values.clear();
            self.values.resize(w.len(), None);
        }
        match (w.as_slice().binary_search(&(start, end)), value) {
            (Err(at), Some(v)) => {
                w.insert(at, (start, end));
                self.values.insert(at, indexed_value(v));
            }
            (Ok(at), Some(v)) => self.values[at] = indexed_value(v),
            (Ok(at), None) => {
                w.remove(at);
                self.values.remove(at);
            }
            (Err(_), None) => {}
        }
        if w.len() > MAX_WINDOWS_PER_PREFIX {
            self.windows = None;
            self.values = Vec::new();
        }
    }

    /// The known values of `windows`, position for position; empty if
    /// none is known.
    pub(crate) fn known_values(&self) -> &[IndexedValue] {
        match &self.windows {
            Some(w) if w.len() == self.values.len() => &self.values,
            _ => &[],
        }
    }
}

impl State {
    fn new(reservation: Reservation) -> Self {
        State {
            prefixes: ByteMap::default(),
            complete: false,
            tried_full: false,
            loads: 0,
            evictions: 0,
            bytes: 0,
            reservation,
        }
    }

    /// The entry of `prefix`; created empty when the index is complete
    /// and the change stores something (`stores`), else `None` (the prefix
    /// is loaded on its next touch).
    fn entry_for(&mut self, prefix: &[u8], stores: bool, max: usize) -> Option<u32> {
        match self.find(prefix) {
            Some(i) => Some(i),
            None if self.complete && stores => {
                let held = self.insert(prefix, empty_entry(prefix), max).ok();
                if held.is_none() {
                    // Not held, yet stored: the index no longer knows all.
                    self.complete = false;
                }
                held
            }
            None => None,
        }
    }

    /// The entry of `prefix`, created empty if there is room for one
    /// more without evicting; `None` when the index (or its budget) is
    /// full (a full scan then gives up).
    fn entry_within(&mut self, prefix: &[u8], max: usize) -> Option<u32> {
        if let Some(i) = self.find(prefix) {
            return Some(i);
        }
        let entry = empty_entry(prefix);
        let c = charge(prefix, &entry);
        if self.prefixes.len() >= max || !self.reservation.try_grow_to(self.bytes + c) {
            return None;
        }
        self.bytes += c;
        Some(self.prefixes.insert(hash_bytes(prefix), prefix, entry))
    }

    fn find(&self, prefix: &[u8]) -> Option<u32> {
        self.prefixes.find(hash_bytes(prefix), prefix)
    }

    /// Evicts one prefix (second chance); false if none is held.
    fn evict_one(&mut self) -> bool {
        let Some(i) = self.prefixes.next_victim(|_| true) else {
            return false;
        };
        self.remove(i);
        self.complete = false;
        self.evictions += 1;
        true
    }

    fn remove(&mut self, i: u32) {
        self.bytes -= charge(self.prefixes.key(i), self.prefixes.get(i));
        self.prefixes.remove(i);
    }

    /// Holds `entry` for `prefix`, evicting to stay within `max` prefixes
    /// and the budget; gives `entry` back if even an empty index has no
    /// room for it (the budget covers less).
    fn insert(&mut self, prefix: &[u8], entry: PrefixEntry, max: usize) -> Result<u32, PrefixEntry> {
        if self.prefixes.len() >= max.max(1) {
            self.evict_one();
        }
        let c = charge(prefix, &entry);
        if !self.reservation.try_grow_to(self.bytes + c) {
            // Ask the budget once, then make room within what it covers.
            let covered = self.reservation.held();
            while self.bytes + c > covered {
                if !self.evict_one() {
                    return Err(entry);
                }
            }
        }
        self.bytes += c;
        Ok(self.prefixes.insert(hash_bytes(prefix), prefix, entry))
    }

    /// Changes the entry `i` with `f`, charging its new size.
    fn update<T>(&mut self, i: u32, f: impl FnOnce(&mut PrefixEntry) -> T) -> T {
        let before = charge(self.prefixes.key(i), self.prefixes.get(i));
        let out = f(self.prefixes.get_mut(i));
        let after = charge(self.prefixes.key(i), self.prefixes.get(i));
        self.bytes = self.bytes + after - before;
        out
    }

    /// After entries grew: evicts until the budget covers the index
    /// again; and gives back beyond the fair share when the budget asks.
    fn settle(&mut self) {
        if !self.reservation.try_grow_to(self.bytes) {
            let covered = self.reservation.held();
            while self.bytes > covered && self.evict_one() {}
        }
        if self.reservation.pressure() {
            let share = self.reservation.fair_share();
            if self.reservation.held() > share {
                while self.bytes > share && self.evict_one() {}
                if self.prefixes.free_slots() > self.prefixes.len() {
                    // Entry positions handed to transactions go stale:
                    // they check them before use.
                    self.prefixes.compact();
                }
                self.reservation.shrink_to(self.bytes);
            }
        }
    }

    /// Forgets `prefix` (it is loaded again on its next touch) and that
    /// the index was complete.
    fn forget(&mut self, prefix: &[u8]) {
        if let Some(i) = self.find(prefix) {
            self.remove(i);
        }
        self.complete = false;
    }

    fn clear(&mut self) {
        if self.reservation.is_limited() {
            // Under a budget the memory goes back too.
            self.prefixes = ByteMap::default();
        } else {
            self.prefixes.clear();
        }
        self.bytes = 0;
        self.reservation.shrink_to(0);
        self.complete = false;
        self.tried_full = false;
    }
}

fn empty_entry(prefix: &[u8]) -> PrefixEntry {
    PrefixEntry {
        // The empty prefix's windows are not indexed (see `windows`).
        windows: (!prefix.is_empty()).then(Few::default),
        values: Vec::new(),
        latest: None,
        expired: None,
    }
}

impl WindowIndex {
    /// An empty index holding at most `max_prefixes` prefixes (at least 1).
    pub fn new(max_prefixes: usize) -> Self {
        Self::with_reservation(max_prefixes, Reservation::unlimited())
    }

    /// [`new`](Self::new), keeping its bytes within what `budget`'s
    /// [`BudgetPool::Caches`] lets it reserve as well.
    pub fn with_budget(max_prefixes: usize, budget: &MemoryBudget) -> Self {
        Self::with_reservation(max_prefixes, budget.reserve(BudgetPool::Caches))
    }

    fn with_reservation(max_prefixes: usize, reservation: Reservation) -> Self {
        WindowIndex {
            state: Mutex::new(State::new(reservation)),
            max_prefixes: max_prefixes.max(1),
            scratch: Mutex::new(None),
        }
    }

    /// Empty buffers for a new transaction (those of the last one, if any).
    pub(crate) fn take_scratch(&self) -> Scratch {
        self.scratch.lock().take().unwrap_or_default()
    }

    /// Keeps a finished transaction's emptied buffers for the next one.
    pub(crate) fn put_scratch(&self, scratch: Scratch) {
        *self.scratch.lock() = Some(scratch);
    }

    /// The bound on prefixes held.
    pub fn max_prefixes(&self) -> usize {
        self.max_prefixes
    }

    /// Forgets everything: the next use loads from the partition again.
    /// Call it after anything but a transaction with this index wrote to
    /// the partition (recovery, standby).
    pub fn clear(&self) {
        self.state.lock().clear();
    }

    /// Counters.
    pub fn stats(&self) -> WindowIndexStats {
        let st = self.state.lock();
        WindowIndexStats {
            prefixes: st.prefixes.len(),
            complete: st.complete,
            prefix_loads: st.loads,
            evictions: st.evictions,
            bytes: st.bytes,
        }
    }

    /// Runs `f` on the entry of `prefix`, loading it first if needed.
    pub(crate) fn with_prefix<T, P: StorePartition + ?Sized>(
        &self,
        partition: &P,
        codec: Codec,
        prefix: &[u8],
        f: impl FnOnce(&PrefixEntry, u32) -> T,
    ) -> Result<T> {
        let mut st = self.state.lock();
        if !st.tried_full {
            if let Err(e) = self.load_all(&mut st, partition, codec) {
                // Half a scan is no index: try again next time.
                st.clear();
                return Err(e);
            }
        }
        let entry = match st.find(prefix) {
            Some(i) => {
                st.prefixes.touch(i);
                return Ok(f(st.prefixes.get(i), i));
            }
            None if st.complete => empty_entry(prefix),
            None => {
                st.loads += 1;
                load_prefix(partition, codec, prefix)?
            }
        };
        match st.insert(prefix, entry, self.max_prefixes) {
            Ok(idx) => {
                st.prefixes.touch(idx);
                Ok(f(st.prefixes.get(idx), idx))
            }
            // No room in the budget: served, not held (at a position no
            // entry has, so the transaction's hint is never trusted).
            Err(entry) => Ok(f(&entry, u32::MAX)),
        }
    }

    /// Loads every prefix of the partition in one pass, if there are at
    /// most `max_prefixes` of them (and at most a few times as many keys);
    /// leaves the index empty and incomplete otherwise.
    fn load_all<P: StorePartition + ?Sized>(&self, st: &mut State, partition: &P, codec: Codec) -> Result<()> {
        st.clear();
        st.tried_full = true;
        let max = self.max_prefixes;
        let key_budget = max.saturating_mul(4);
        let mut scanned = 0usize;
        let give_up = |st: &mut State| {
            st.clear();
            st.tried_full = true;
        };
        for item in partition.iter_range(cf::DEFAULT, b"", None, Direction::Forward)? {
            let (key, _) = item?;
            scanned += 1;
            if scanned > key_budget {
                give_up(st);
                return Ok(());
            }
            let Some(parsed) = split_window_key(&key) else { continue };
            let Ok((prefix, s, e)) = parsed else {
                // A malformed window key: leave its prefix to a per-prefix
                // load, which reports it when the prefix is touched.
                give_up(st);
                return Ok(());
            };
            let Some(idx) = st.entry_within(prefix, max) else {
                give_up(st);
                return Ok(());
            };
            let entry = st.prefixes.get_mut(idx);
            if let Some(w) = entry.windows.as_mut() {
                w.push((s, e));
                if w.len() > MAX_WINDOWS_PER_PREFIX {
                    entry.windows = None;
                }
            }
        }
        for (cf_name, suffix, slot) in SLOTS {
            for item in partition.iter_range(cf_name, b"", None, Direction::Forward)? {
                let (key, value) = item?;
                scanned += 1;
                if scanned > key_budget {
                    give_up(st);
                    return Ok(());
                }
                let Some(prefix) = split_slot_key(&key, suffix) else {
                    continue;
                };
                let Ok(v) = decode_slot(codec, &value) else {
                    give_up(st);
                    return Ok(());
                };
                let Some(idx) = st.entry_within(prefix, max) else {
                    give_up(st);
                    return Ok(());
                };
                slot.set(st.prefixes.get_mut(idx), Some(v));
            }
        }
        for (_, e) in st.prefixes.iter_mut() {
            if let Some(w) = e.windows.as_mut() {
                let mut sorted = w.as_slice().to_vec();
                sorted.sort_unstable();
                sorted.dedup();
                *w = Few::from_slice(&sorted);
            }
        }
        // Window lists grew during the scan: charge them now.
        st.bytes = st.prefixes.iter().map(|(_, p, e)| charge(p, e)).sum();
        if !st.reservation.try_grow_to(st.bytes) {
            give_up(st);
            return Ok(());
        }
        st.complete = true;
        Ok(())
    }

    /// Applies what transactions that recorded their changes per prefix
    /// just flushed (the windowed API records them; see [`Tracked`]).
    pub(crate) fn apply_tracked<'a>(&self, items: impl Iterator<Item = Tracked<'a>>) {
        let mut st = self.state.lock();
        let max = self.max_prefixes;
        for t in items {
            if t.windows.clone().next().is_none() && t.latest.is_none() && t.expired.is_none() {
                continue;
            }
            let hinted = t
                .position
                .filter(|&i| st.prefixes.is_live(i) && st.prefixes.key(i) == t.prefix);
            let stores = t.windows.clone().any(|w| w.2.is_some()) || t.latest.is_some() || t.expired.is_some();
            let idx = match hinted {
                Some(i) => i,
                None => match st.entry_for(t.prefix, stores, max) {
                    Some(i) => i,
                    None => continue,
                },
            };
            st.update(idx, |entry| {
                // Deletes first: a hopping record's windows close at the
                // front of the list and open at its end, and removing them
                // from a shorter list moves less.
                for (s, e, _) in t.windows.clone().filter(|w| w.2.is_none()) {
                    entry.note_window(s, e, None);
                }
                for (s, e, value) in t.windows.filter(|w| w.2.is_some()) {
                    entry.note_window(s, e, value);
                }
                if let Some(v) = t.latest {
                    entry.latest = Some(v);
                }
                if let Some(v) = t.expired {
                    entry.expired = Some(v);
                }
            });
        }
        st.settle();
    }

    /// Applies the changes a transaction just flushed, read from its
    /// change set.
    pub(crate) fn apply(&self, changes: &UpdateCache, codec: Codec) {
        let mut st = self.state.lock();
        let max = self.max_prefixes;
        if let Some(c) = changes.cf_changes(cf::DEFAULT) {
            for (key, value) in c.iter() {
                let Some(parsed) = split_window_key(key) else { continue };
                let Ok((prefix, s, e)) = parsed else {
                    // Malformed: reload the prefix on its next touch.
                    st.forget(key_prefix_guess(key));
                    continue;
                };
                let Some(idx) = st.entry_for(prefix, value.is_some(), max) else {
                    continue;
                };
                st.update(idx, |entry| entry.note_window(s, e, value));
            }
        }
        for (cf_name, suffix, slot) in SLOTS {
            let Some(c) = changes.cf_changes(cf_name) else { continue };
            for (key, value) in c.iter() {
                let Some(prefix) = split_slot_key(key, suffix) else {
                    continue;
                };
                let decoded = match value.map(|v| decode_slot(codec, v)).transpose() {
                    Ok(d) => d,
                    Err(_) => {
                        // Unreadable: let a later read report it.
                        st.forget(prefix);
                        continue;
                    }
                };
                let Some(idx) = st.entry_for(prefix, decoded.is_some(), max) else {
                    continue;
                };
                slot.set(st.prefixes.get_mut(idx), decoded);
            }
        }
        st.settle();
    }
}

/// What a transaction changed under one prefix, for
/// [`WindowIndex::apply_tracked`].
pub(crate) struct Tracked<'a> {
    pub(crate) prefix: &'a [u8],
    /// Where the index held the prefix when the transaction looked.
    pub(crate) position: Option<u32>,
    /// Windows set (with their value) or deleted (`None`).
    pub(crate) windows: TouchedIter<'a>,
    /// The latest timestamp written, if written.
    pub(crate) latest: Option<i64>,
    /// The last expired start written, if written.
    pub(crate) expired: Option<i64>,
}

/// The index slots the index holds: column family, key suffix, field.
const SLOTS: [(&str, &[u8], Slot); 2] = [
    (cf::LATEST_TIMESTAMPS, LATEST_TIMESTAMP_KEY, Slot::Latest),
    (cf::EXPIRATION_INDEX, LATEST_EXPIRED_KEY, Slot::Expired),
];

#[derive(Clone, Copy)]
enum Slot {
    Latest,
    Expired,
}

impl Slot {
    fn set(self, e: &mut PrefixEntry, v: Option<i64>) {
        match self {
            Slot::Latest => e.latest = v,
            Slot::Expired => e.expired = v,
        }
    }
}

/// Loads one prefix: a range scan of its windows, two point reads.
fn load_prefix<P: StorePartition + ?Sized>(partition: &P, codec: Codec, prefix: &[u8]) -> Result<PrefixEntry> {
    let mut entry = empty_entry(prefix);
    if !prefix.is_empty() {
        let mut lower = prefix.to_vec();
        lower.push(keys::SEPARATOR);
        let mut upper = prefix.to_vec();
        upper.push(keys::SEPARATOR + 1);
        let want = prefix.len() + WINDOW_SUFFIX_LEN;
        let mut windows = Vec::new();
        let mut scanned = 0usize;
        for item in partition.iter_range(cf::DEFAULT, &lower, Some(&upper), Direction::Forward)? {
            let (key, _) = item?;
            scanned += 1;
            if scanned > 4 * MAX_WINDOWS_PER_PREFIX {
                windows.clear();
                entry.windows = None;
                break;
            }
            if key.len() != want {
                continue; // a key of a longer prefix inside the range
            }
            let (_, s, e) = keys::parse_window_key(&key)?;
            windows.push((s, e));
            if windows.len() > MAX_WINDOWS_PER_PREFIX {
                entry.windows = None;
                break;
            }
        }
        if entry.windows.is_some() {
            entry.windows = Some(Few::from_slice(&windows));
        }
    }
    for (cf_name, suffix, slot) in SLOTS {
        if let Some(bytes) = partition.get(cf_name, &keys::prefixed_key(prefix, suffix))? {
            slot.set(&mut entry, Some(decode_slot(codec, &bytes)?));
        }
    }
    Ok(entry)
}

#[cfg(test)]
mod budget_tests;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use state_core::testkit::TestPartition;
    use state_core::MemoryPartition;

    use super::*;
    use crate::{ExpireOptions, ExpiredWindow, WindowedTransaction};

    /// A memory partition counting reads and keeping written batches.
    type Counting = TestPartition<MemoryPartition>;

    fn counting() -> Arc<Counting> {
        Arc::new(TestPartition::watching(MemoryPartition::new()))
    }

    fn reads(p: &Counting) -> (usize, usize) {
        (p.gets(), p.scans())
    }

    /// The operations written to `default`: key, put (else delete), new.
    fn written(p: &Counting) -> Vec<(Vec<u8>, bool, bool)> {
        p.written()
            .into_iter()
            .flat_map(|b| b.ops)
            .filter(|op| op.cf == cf::DEFAULT)
            .map(|op| (op.key, op.value.is_some(), op.new_key))
            .collect()
    }

    fn txn(p: &Arc<Counting>, index: &Arc<WindowIndex>) -> WindowedTransaction<Counting> {
        WindowedTransaction::with_index(p.clone(), Codec::MsgPack, None, index.clone())
    }

    /// Sets window `[0, 10)` of prefix `k` to `value` through the base
    /// transaction, where the window index cannot follow.
    fn set_behind_the_index(t: &mut WindowedTransaction<Counting>, value: u64) {
        let encoded = Codec::MsgPack.encode(&value).unwrap();
        t.base_mut()
            .set_raw(cf::DEFAULT, keys::window_key(b"k", 0, 10), encoded)
            .unwrap();
    }

    /// A partition holding window `[0, 10)` of prefix `k` (latest
    /// timestamp 5), written through its index.
    fn one_window() -> (Arc<Counting>, Arc<WindowIndex>) {
        let p = counting();
        let index = Arc::new(WindowIndex::default());
        let mut t = txn(&p, &index);
        t.update_window(0, 10, &1u64, 5, b"k").unwrap();
        t.commit().unwrap();
        (p, index)
    }

    #[test]
    fn missing_windows_and_nothing_to_expire_read_nothing() {
        let (p, index) = one_window();
        let loads = reads(&p);
        assert_eq!(loads.0, 0, "the whole-partition load scans, it does not point-read");
        let mut t = txn(&p, &index);
        assert_eq!(t.get_window::<u64>(10, 20, b"k").unwrap(), None);
        assert_eq!(t.get_window::<u64>(0, 10, b"new-prefix").unwrap(), None);
        let none: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(-5, b"k", ExpireOptions::delete()).unwrap();
        assert!(none.is_empty());
        assert_eq!(t.get_latest_timestamp(b"k").unwrap(), 5);
        let none: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(0, b"other", ExpireOptions::delete()).unwrap();
        assert!(none.is_empty());
        assert_eq!(reads(&p), loads, "served from memory");
        // A window that exists is read (from the value the index was
        // given), and expired.
        assert_eq!(t.get_window::<u64>(0, 10, b"k").unwrap(), Some(1));
        let one: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(0, b"k", ExpireOptions::delete()).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(reads(&p).1, loads.1, "no iterator either way");
        t.commit().unwrap();
        assert_eq!(index.stats().prefix_loads, 0, "the first use loaded everything");
        assert!(index.stats().complete);
    }

    #[test]
    fn expiry_reads_the_values_the_index_was_given_and_the_partition_for_the_others() {
        let (p, index) = one_window();
        let mut t = txn(&p, &index);
        t.update_window(10, 20, &2u64, 15, b"k").unwrap();
        t.commit().unwrap();
        let mut t = txn(&p, &index);
        t.update_window(10, 20, &3u64, 16, b"k").unwrap();
        t.commit().unwrap();
        let gets = p.gets();
        let mut t = txn(&p, &index);
        let got: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(10, b"k", ExpireOptions::delete()).unwrap();
        let got: Vec<(i64, u64)> = got.into_iter().map(|w| (w.start, w.value)).collect();
        assert_eq!(got, vec![(0, 1), (10, 3)], "the last value committed");
        assert_eq!(p.gets(), gets, "no point read");
        // Not committed: a new transaction expires them again, from memory.
        drop(t);
        let mut t = txn(&p, &index);
        let got: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(10, b"k", ExpireOptions::delete()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(p.gets(), gets);
        drop(t);
        // An index loaded from the partition does not know the values.
        let fresh = Arc::new(WindowIndex::default());
        let mut t = txn(&p, &fresh);
        let got: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(10, b"k", ExpireOptions::delete()).unwrap();
        let got: Vec<(i64, u64)> = got.into_iter().map(|w| (w.start, w.value)).collect();
        assert_eq!(got, vec![(0, 1), (10, 3)]);
        assert_eq!(p.gets(), gets + 2, "read from the partition");
        drop(t);
        // Written through the base transaction: the index learns the value
        // from the change set.
        let mut t = txn(&p, &index);
        set_behind_the_index(&mut t, 9);
        t.commit().unwrap();
        let gets = p.gets();
        let mut t = txn(&p, &index);
        let got: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(0, b"k", ExpireOptions::delete()).unwrap();
        let got: Vec<(i64, u64)> = got.into_iter().map(|w| (w.start, w.value)).collect();
        assert_eq!(got, vec![(0, 9)]);
        assert_eq!(p.gets(), gets);
    }

    #[test]
    fn a_stored_window_is_read_from_the_value_the_index_knows() {
        let (p, index) = one_window();
        let mut t = txn(&p, &index);
        t.update_window(10, 20, &2u64, 15, b"k").unwrap();
        t.commit().unwrap();
        let gets = p.gets();
        let mut t = txn(&p, &index);
        assert_eq!(t.get_window::<u64>(0, 10, b"k").unwrap(), Some(1));
        assert_eq!(t.get_window::<u64>(10, 20, b"k").unwrap(), Some(2));
        assert_eq!(p.gets(), gets, "no point read");
        // This transaction's change wins over the index's value.
        t.update_window(10, 20, &7u64, 16, b"k").unwrap();
        assert_eq!(t.get_window::<u64>(10, 20, b"k").unwrap(), Some(7));
        t.delete_window(0, 10, b"k").unwrap();
        assert_eq!(t.get_window::<u64>(0, 10, b"k").unwrap(), None);
        drop(t);
        // An index loaded from the partition does not know the values.
        let fresh = Arc::new(WindowIndex::default());
        let t = txn(&p, &fresh);
        assert_eq!(t.get_window::<u64>(10, 20, b"k").unwrap(), Some(2));
        assert_eq!(p.gets(), gets + 1, "read from the partition");
        drop(t);
        // Written through the base transaction, where the index cannot
        // follow: read from the change set.
        let mut t = txn(&p, &index);
        set_behind_the_index(&mut t, 9);
        assert_eq!(t.get_window::<u64>(0, 10, b"k").unwrap(), Some(9));
        t.commit().unwrap();
        let t = txn(&p, &index);
        assert_eq!(
            t.get_window::<u64>(0, 10, b"k").unwrap(),
            Some(9),
            "the value committed"
        );
    }

    #[test]
    fn a_window_this_transaction_changed_expires_with_its_new_value() {
        let (p, index) = one_window();
        let mut t = txn(&p, &index);
        t.update_window(0, 10, &4u64, 6, b"k").unwrap();
        let got: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(0, b"k", ExpireOptions::delete()).unwrap();
        assert_eq!(got.into_iter().map(|w| w.value).collect::<Vec<_>>(), vec![4]);
        t.commit().unwrap();
        let mut t = txn(&p, &index);
        assert_eq!(t.get_window::<u64>(0, 10, b"k").unwrap(), None);
        t.update_window(0, 10, &5u64, 7, b"k").unwrap();
        t.delete_window(0, 10, b"k").unwrap();
        let none: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(0, b"k", ExpireOptions::delete()).unwrap();
        assert!(none.is_empty(), "deleted in this transaction");
    }

    #[test]
    fn values_too_long_to_index_are_read_from_the_partition() {
        let p = counting();
        let index = Arc::new(WindowIndex::default());
        let long = "x".repeat(INDEXED_VALUE + 1);
        let mut t = txn(&p, &index);
        t.update_window(0, 10, &long, 5, b"k").unwrap();
        t.update_window(5, 15, &"short", 5, b"k").unwrap();
        t.commit().unwrap();
        let gets = p.gets();
        let mut t = txn(&p, &index);
        let got: Vec<ExpiredWindow<String, ()>> = t.expire_windows(5, b"k", ExpireOptions::delete()).unwrap();
        let got: Vec<String> = got.into_iter().map(|w| w.value).collect();
        assert_eq!(got, vec![long, "short".to_owned()]);
        assert_eq!(p.gets(), gets + 1, "only the long one is read");
    }

    #[test]
    fn created_windows_are_new_and_one_created_and_deleted_writes_nothing() {
        let p = counting();
        let index = Arc::new(WindowIndex::default());
        let mut t = txn(&p, &index);
        t.update_window(0, 10, &1u64, 5, b"k").unwrap();
        t.update_window(10, 20, &1u64, 15, b"k").unwrap();
        t.delete_window(10, 20, b"k").unwrap();
        t.commit().unwrap();
        assert_eq!(written(&p), vec![(keys::window_key(b"k", 0, 10), true, true)]);
        p.forget_written();
        let mut t = txn(&p, &index);
        t.update_window(0, 10, &2u64, 6, b"k").unwrap();
        t.commit().unwrap();
        assert_eq!(
            written(&p),
            vec![(keys::window_key(b"k", 0, 10), true, false)],
            "an update of a stored window is not new"
        );
    }

    /// The local batch skips the delete of a window created in the same
    /// transaction, but the changelog must still get its tombstone: it may
    /// hold a put of that window from a checkpoint whose offsets never
    /// committed. Restores skip such a put only until later commits move
    /// past its offsets; without the tombstone a later full replay would
    /// bring the window back (docs/performance.md, "Why no per-checkpoint
    /// dedup helps").
    #[test]
    fn a_window_created_and_deleted_in_one_transaction_still_sends_its_tombstone() {
        let (p, index) = one_window();
        let sink = Arc::new(state_core::RecordingSink::new());
        let changelog: Arc<dyn state_core::ChangelogSink> = sink.clone();
        let mut t = WindowedTransaction::with_index(p.clone(), Codec::MsgPack, Some(changelog), index.clone());
        // A session moving twice: the stored window and the one between go.
        t.update_window(0, 12, &2u64, 11, b"k").unwrap();
        t.delete_window(0, 10, b"k").unwrap();
        t.update_window(0, 14, &3u64, 13, b"k").unwrap();
        t.delete_window(0, 12, b"k").unwrap();
        t.commit().unwrap();
        let window_keys = [(0, 10), (0, 12), (0, 14)].map(|(s, e)| keys::window_key(b"k", s, e));
        let windows: Vec<(Vec<u8>, bool)> = sink
            .take()
            .into_iter()
            .filter(|r| r.cf == cf::DEFAULT && window_keys.contains(&r.key))
            .map(|r| (r.key, r.value.is_some()))
            .collect();
        assert_eq!(
            windows,
            vec![
                (keys::window_key(b"k", 0, 10), false),
                (keys::window_key(b"k", 0, 12), false),
                (keys::window_key(b"k", 0, 14), true),
            ],
            "both deleted windows' tombstones and the new window"
        );
        let deleted: Vec<Vec<u8>> = written(&p).into_iter().filter(|w| !w.1).map(|w| w.0).collect();
        assert_eq!(
            deleted,
            vec![keys::window_key(b"k", 0, 10)],
            "locally only the stored window is deleted"
        );
        let t = txn(&p, &index);
        assert_eq!(t.get_window::<u64>(0, 14, b"k").unwrap(), Some(3));
        assert_eq!(t.get_window::<u64>(0, 12, b"k").unwrap(), None);
        assert_eq!(t.get_window::<u64>(0, 10, b"k").unwrap(), None);
    }

    #[test]
    fn windows_written_through_the_base_transaction_reach_the_index() {
        let (p, index) = one_window();
        let mut t = txn(&p, &index);
        let encoded = Codec::MsgPack.encode(&7u64).unwrap();
        t.base_mut()
            .set_raw(cf::DEFAULT, keys::window_key(b"k", 20, 30), encoded)
            .unwrap();
        t.base_mut()
            .delete_raw(cf::DEFAULT, keys::window_key(b"k", 0, 10))
            .unwrap();
        let latest = Codec::MsgPack.encode(&25u64).unwrap();
        t.base_mut()
            .set_raw(
                cf::LATEST_TIMESTAMPS,
                keys::prefixed_key(b"k", LATEST_TIMESTAMP_KEY),
                latest,
            )
            .unwrap();
        assert_eq!(t.get_window::<u64>(20, 30, b"k").unwrap(), Some(7));
        assert_eq!(t.get_latest_timestamp(b"k").unwrap(), 25, "the change set first");
        t.commit().unwrap();
        let mut t = txn(&p, &index);
        assert_eq!(t.get_window::<u64>(20, 30, b"k").unwrap(), Some(7));
        assert_eq!(t.get_window::<u64>(0, 10, b"k").unwrap(), None);
        assert_eq!(t.get_latest_timestamp(b"k").unwrap(), 25);
        let w: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(20, b"k", ExpireOptions::delete()).unwrap();
        assert_eq!(w.iter().map(|w| w.start).collect::<Vec<_>>(), vec![20]);
    }

    #[test]
    fn an_aborted_transaction_leaves_the_index_unchanged() {
        let (p, index) = one_window();
        let mut t = txn(&p, &index);
        t.update_window(10, 20, &1u64, 15, b"k").unwrap();
        let _: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(5, b"k", ExpireOptions::delete()).unwrap();
        drop(t);
        let mut t = txn(&p, &index);
        assert_eq!(t.get_latest_timestamp(b"k").unwrap(), 5);
        assert_eq!(t.get_window::<u64>(0, 10, b"k").unwrap(), Some(1));
        assert_eq!(t.get_window::<u64>(10, 20, b"k").unwrap(), None);
        let w: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(5, b"k", ExpireOptions::delete()).unwrap();
        assert_eq!(w.len(), 1, "the aborted expiry did not move the cursor");
    }

    #[test]
    fn prefixes_beyond_the_bound_load_one_by_one_and_agree_with_the_store() {
        let p = counting();
        // Written without the index: 5 prefixes, 2 windows each.
        let mut t = WindowedTransaction::new(p.clone(), Codec::MsgPack, None);
        for k in 0u8..5 {
            t.update_window(0, 10, &1u64, 5, &[b'p', k]).unwrap();
            t.update_window(10, 20, &2u64, 15, &[b'p', k]).unwrap();
        }
        t.commit().unwrap();
        let index = Arc::new(WindowIndex::new(2));
        for round in 0..3 {
            let t = txn(&p, &index);
            for k in 0u8..5 {
                let prefix = [b'p', k];
                assert_eq!(t.get_window::<u64>(10, 20, &prefix).unwrap(), Some(2));
                assert_eq!(t.get_window::<u64>(20, 30, &prefix).unwrap(), None, "round {round}");
                assert_eq!(t.get_latest_timestamp(&prefix).unwrap(), 15);
            }
            t.commit().unwrap();
        }
        let stats = index.stats();
        assert!(!stats.complete);
        assert!(stats.prefixes <= 2);
        assert!(stats.prefix_loads >= 5 && stats.evictions > 0, "{stats:?}");
        index.clear();
        assert_eq!(index.stats().prefixes, 0);
    }

    #[test]
    fn eviction_keeps_the_bound_and_the_table_consistent() {
        let mut st = State::default();
        for i in 0u32..50 {
            let prefix = i.to_be_bytes();
            st.insert(&prefix, empty_entry(&prefix), 8).unwrap();
            assert!(st.prefixes.len() <= 8);
            for (j, prefix, _) in st.prefixes.iter() {
                assert_eq!(st.find(prefix), Some(j));
            }
        }
        assert_eq!(st.evictions, 42);
    }
}
