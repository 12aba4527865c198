//! [`WindowIndex`]: the per-prefix metadata of one windowed store
//! partition, served from memory.
//!
//! For each prefix it knows the latest timestamp, the last expired start
//! (the `__latest-timestamps__` and `__expiration-index__` slots) and the
//! set of stored windows. With it, [`super::WindowedTransaction`] answers
//! `get_window` of a window that does not exist without reading the
//! partition, finds the windows `expire_windows` must expire (usually
//! none) without creating an iterator, and marks the windows it creates as
//! new ([`state_core::WriteBatch::put_new`]), so that a write-behind cache
//! can drop a window created and expired between two of its flushes.
//!
//! The index holds *committed* state only. A prefix is loaded on its first
//! touch: by one scan of the whole partition the first time the index is
//! used, if the partition holds at most [`WindowIndex::max_prefixes`]
//! prefixes (then a prefix never seen has nothing stored and costs no read
//! at all), otherwise by one range scan of the prefix's windows and two
//! point reads. A transaction made with the index updates it after its
//! flush succeeded, from the changes it wrote; an aborted transaction
//! leaves it unchanged. At most `max_prefixes` prefixes are held; others
//! are evicted (second chance) and loaded again on their next touch.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use parking_lot::Mutex;
use rustc_hash::FxBuildHasher;
use state_core::{cf, keys, Codec, Direction, StorePartition};

use super::index_value::IndexValue;
use super::{LATEST_EXPIRED_KEY, LATEST_TIMESTAMP_KEY};
use crate::cache::UpdateCache;
use crate::error::Result;
use crate::small::{Bytes, Few};

/// Default bound of [`WindowIndex::new`]: prefixes held.
pub const DEFAULT_MAX_PREFIXES: usize = 100_000;

/// A prefix with more stored windows than this keeps only its index
/// values in memory; its windows are read from the partition.
pub(crate) const MAX_WINDOWS_PER_PREFIX: usize = 256;

/// Prefixes up to this long live inside their entry.
const INLINE_PREFIX: usize = 30;

/// Bytes of the `prefix | start | end` suffix after the prefix: separator
/// plus the u64 pair.
const WINDOW_SUFFIX: usize = 1 + keys::U64_PAIR_LEN;

/// What the index knows about one prefix.
#[derive(Debug)]
pub(crate) struct PrefixEntry {
    prefix: Bytes<INLINE_PREFIX>,
    hash: u64,
    /// The stored windows `(start, end)`, sorted; `None` when not indexed
    /// (the empty prefix, whose 17-byte window keys cannot be scanned by
    /// prefix, or more than [`MAX_WINDOWS_PER_PREFIX`] windows).
    pub(crate) windows: Option<Few<(u64, u64)>>,
    /// The stored latest timestamp slot.
    pub(crate) latest: Option<i128>,
    /// The stored last-expired slot.
    pub(crate) expired: Option<i128>,
    referenced: bool,
}

#[derive(Debug, Default)]
struct State {
    entries: Vec<PrefixEntry>,
    table: HashTable<u32>,
    clock: usize,
    /// Every prefix with anything stored has an entry: a whole-partition
    /// load succeeded and nothing was evicted since.
    complete: bool,
    /// The whole-partition load was tried.
    tried_full: bool,
    loads: u64,
    evictions: u64,
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
    /// Prefixes evicted to respect the bound.
    pub evictions: u64,
}

/// The in-memory per-prefix metadata of one windowed store partition (see
/// the [module documentation](self)).
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
    scratch: Mutex<Option<super::Scratch>>,
}

impl Default for WindowIndex {
    fn default() -> Self {
        WindowIndex::new(DEFAULT_MAX_PREFIXES)
    }
}

fn hash_of(prefix: &[u8]) -> u64 {
    FxBuildHasher.hash_one(prefix)
}

/// A window key split into prefix, start and end; `Err` for a key of the
/// layout's shape whose pair is malformed.
type SplitKey<'a> = std::result::Result<(&'a [u8], u64, u64), ()>;

/// The prefix and `(start, end)` of a key in the window layout, if it is
/// one.
fn split_window_key(key: &[u8]) -> Option<SplitKey<'_>> {
    let (prefix, pair) = if key.len() == keys::U64_PAIR_LEN {
        (&key[..0], key)
    } else if key.len() > WINDOW_SUFFIX && key[key.len() - WINDOW_SUFFIX] == keys::SEPARATOR {
        let split = key.len() - keys::U64_PAIR_LEN;
        (&key[..split - 1], &key[split..])
    } else {
        return None;
    };
    Some(keys::decode_u64_pair(pair).map(|(s, e)| (prefix, s, e)).map_err(|_| ()))
}

/// The prefix of `prefix | suffix` (the bare suffix for the empty prefix).
fn split_slot_key<'a>(key: &'a [u8], suffix: &[u8]) -> Option<&'a [u8]> {
    if key == suffix {
        return Some(&key[..0]);
    }
    let rest = key.strip_suffix(suffix)?;
    let prefix = rest.strip_suffix(&[keys::SEPARATOR])?;
    (!prefix.is_empty()).then_some(prefix)
}

fn decode_slot(codec: Codec, bytes: &[u8]) -> Result<i128> {
    Ok(codec.decode::<IndexValue>(bytes)?.0)
}

impl PrefixEntry {
    /// Records that window `(start, end)` is now stored (`present`) or not;
    /// a prefix with too many windows stops listing them.
    fn note_window(&mut self, start: u64, end: u64, present: bool) {
        let Some(w) = self.windows.as_mut() else { return };
        match (w.as_slice().binary_search(&(start, end)), present) {
            (Err(at), true) => w.insert(at, (start, end)),
            (Ok(at), false) => {
                w.remove(at);
            }
            _ => {}
        }
        if w.len() > MAX_WINDOWS_PER_PREFIX {
            self.windows = None;
        }
    }
}

impl State {
    /// The entry of `prefix`; created empty when the index is complete
    /// and the change stores something (`stores`), else `None` (the prefix
    /// is loaded on its next touch).
    fn entry_for(&mut self, prefix: &[u8], stores: bool, max: usize) -> Option<u32> {
        match self.find(prefix) {
            Some(i) => Some(i),
            None if self.complete && stores => Some(self.insert(empty_entry(prefix), max)),
            None => None,
        }
    }

    /// The entry of `prefix`, created empty if there is room for one
    /// more without evicting; `None` when the index is full (a full scan
    /// then gives up).
    fn entry_within(&mut self, prefix: &[u8], max: usize) -> Option<u32> {
        if self.find(prefix).is_none() && self.entries.len() >= max {
            return None;
        }
        Some(self.entry_or_empty(prefix, max))
    }

    fn find(&self, prefix: &[u8]) -> Option<u32> {
        let entries = &self.entries;
        self.table
            .find(hash_of(prefix), |&i| &*entries[i as usize].prefix == prefix)
            .copied()
    }

    fn evict_one(&mut self) {
        let n = self.entries.len();
        if n == 0 {
            return;
        }
        let mut victim = None;
        for _ in 0..2 * n {
            let i = self.clock % n;
            self.clock = (self.clock + 1) % n;
            let e = &mut self.entries[i];
            if e.referenced {
                e.referenced = false;
            } else {
                victim = Some(i);
                break;
            }
        }
        let i = victim.unwrap_or(self.clock % n);
        self.remove(i as u32);
        self.complete = false;
        self.evictions += 1;
    }

    fn remove(&mut self, idx: u32) {
        let hash = self.entries[idx as usize].hash;
        if let Ok(e) = self.table.find_entry(hash, |&i| i == idx) {
            e.remove();
        }
        let last = (self.entries.len() - 1) as u32;
        self.entries.swap_remove(idx as usize);
        if idx != last {
            // The last entry moved to `idx`.
            let moved = self.entries[idx as usize].hash;
            if let Some(slot) = self.table.find_mut(moved, |&i| i == last) {
                *slot = idx;
            }
        }
    }

    fn insert(&mut self, entry: PrefixEntry, max: usize) -> u32 {
        if self.entries.len() >= max.max(1) {
            self.evict_one();
        }
        let hash = entry.hash;
        self.entries.push(entry);
        let idx = (self.entries.len() - 1) as u32;
        let entries = &self.entries;
        self.table.insert_unique(hash, idx, |&i| entries[i as usize].hash);
        idx
    }

    fn entry_or_empty(&mut self, prefix: &[u8], max: usize) -> u32 {
        match self.find(prefix) {
            Some(i) => i,
            None => self.insert(empty_entry(prefix), max),
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.table.clear();
        self.clock = 0;
        self.complete = false;
        self.tried_full = false;
    }
}

fn empty_entry(prefix: &[u8]) -> PrefixEntry {
    PrefixEntry {
        prefix: Bytes::new(prefix),
        hash: hash_of(prefix),
        // The empty prefix's windows are not indexed (see `windows`).
        windows: (!prefix.is_empty()).then(Few::default),
        latest: None,
        expired: None,
        referenced: false,
    }
}

impl WindowIndex {
    /// An empty index holding at most `max_prefixes` prefixes (at least 1).
    pub fn new(max_prefixes: usize) -> Self {
        WindowIndex {
            state: Mutex::new(State::default()),
            max_prefixes: max_prefixes.max(1),
            scratch: Mutex::new(None),
        }
    }

    /// Empty buffers for a new transaction (those of the last one, if any).
    pub(crate) fn take_scratch(&self) -> super::Scratch {
        self.scratch.lock().take().unwrap_or_default()
    }

    /// Keeps a finished transaction's emptied buffers for the next one.
    pub(crate) fn put_scratch(&self, scratch: super::Scratch) {
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
            prefixes: st.entries.len(),
            complete: st.complete,
            prefix_loads: st.loads,
            evictions: st.evictions,
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
        let idx = match st.find(prefix) {
            Some(i) => i,
            None if st.complete => st.insert(empty_entry(prefix), self.max_prefixes),
            None => {
                let entry = load_prefix(partition, codec, prefix)?;
                st.loads += 1;
                st.insert(entry, self.max_prefixes)
            }
        };
        let e = &mut st.entries[idx as usize];
        e.referenced = true;
        Ok(f(e, idx))
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
            let entry = &mut st.entries[idx as usize];
            if let Some(w) = entry.windows.as_mut() {
                w.push((s, e));
                if w.len() > MAX_WINDOWS_PER_PREFIX {
                    entry.windows = None;
                }
            }
        }
        for (cf_name, suffix, slot) in [
            (cf::LATEST_TIMESTAMPS, LATEST_TIMESTAMP_KEY, Slot::Latest),
            (cf::EXPIRATION_INDEX, LATEST_EXPIRED_KEY, Slot::Expired),
        ] {
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
                slot.set(&mut st.entries[idx as usize], Some(v));
            }
        }
        for e in &mut st.entries {
            if let Some(w) = e.windows.as_mut() {
                let mut sorted = w.as_slice().to_vec();
                sorted.sort_unstable();
                sorted.dedup();
                *w = Few::from_slice(&sorted);
            }
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
            if t.windows.is_empty() && t.latest.is_none() && t.expired.is_none() {
                continue;
            }
            let hinted = t
                .position
                .filter(|&i| st.entries.get(i as usize).is_some_and(|e| &*e.prefix == t.prefix));
            let stores = t.windows.iter().any(|w| w.2) || t.latest.is_some() || t.expired.is_some();
            let idx = match hinted {
                Some(i) => i,
                None => match st.entry_for(t.prefix, stores, max) {
                    Some(i) => i,
                    None => continue,
                },
            };
            let entry = &mut st.entries[idx as usize];
            for &(s, e, present) in t.windows {
                entry.note_window(s, e, present);
            }
            if let Some(v) = t.latest {
                entry.latest = Some(v);
            }
            if let Some(v) = t.expired {
                entry.expired = Some(v);
            }
        }
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
                    if let Some(i) = st.find(key_prefix_guess(key)) {
                        st.remove(i);
                    }
                    st.complete = false;
                    continue;
                };
                let Some(idx) = st.entry_for(prefix, value.is_some(), max) else {
                    continue;
                };
                st.entries[idx as usize].note_window(s, e, value.is_some());
            }
        }
        for (cf_name, suffix, slot) in [
            (cf::LATEST_TIMESTAMPS, LATEST_TIMESTAMP_KEY, Slot::Latest),
            (cf::EXPIRATION_INDEX, LATEST_EXPIRED_KEY, Slot::Expired),
        ] {
            let Some(c) = changes.cf_changes(cf_name) else { continue };
            for (key, value) in c.iter() {
                let Some(prefix) = split_slot_key(key, suffix) else {
                    continue;
                };
                let decoded = match value.map(|v| decode_slot(codec, v)).transpose() {
                    Ok(d) => d,
                    Err(_) => {
                        // Unreadable: let a later read report it.
                        if let Some(i) = st.find(prefix) {
                            st.remove(i);
                        }
                        st.complete = false;
                        continue;
                    }
                };
                let Some(idx) = st.entry_for(prefix, decoded.is_some(), max) else {
                    continue;
                };
                slot.set(&mut st.entries[idx as usize], decoded);
            }
        }
    }
}

/// What a transaction changed under one prefix, for
/// [`WindowIndex::apply_tracked`].
pub(crate) struct Tracked<'a> {
    pub(crate) prefix: &'a [u8],
    /// Where the index held the prefix when the transaction looked.
    pub(crate) position: Option<u32>,
    /// Windows set (`true`) or deleted (`false`).
    pub(crate) windows: &'a [(u64, u64, bool)],
    /// The latest timestamp written, if written.
    pub(crate) latest: Option<i128>,
    /// The last expired start written, if written.
    pub(crate) expired: Option<i128>,
}

/// The prefix a malformed window-shaped key would belong to.
fn key_prefix_guess(key: &[u8]) -> &[u8] {
    if key.len() > WINDOW_SUFFIX {
        &key[..key.len() - WINDOW_SUFFIX]
    } else {
        &key[..0]
    }
}

#[derive(Clone, Copy)]
enum Slot {
    Latest,
    Expired,
}

impl Slot {
    fn set(self, e: &mut PrefixEntry, v: Option<i128>) {
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
        let want = prefix.len() + WINDOW_SUFFIX;
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
    for (cf_name, suffix, slot) in [
        (cf::LATEST_TIMESTAMPS, LATEST_TIMESTAMP_KEY, Slot::Latest),
        (cf::EXPIRATION_INDEX, LATEST_EXPIRED_KEY, Slot::Expired),
    ] {
        if let Some(bytes) = partition.get(cf_name, &keys::prefixed_key(prefix, suffix))? {
            slot.set(&mut entry, Some(decode_slot(codec, &bytes)?));
        }
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use state_core::{KvIter, MemoryPartition, WriteBatch};

    use super::*;
    use crate::{ExpireOptions, ExpiredWindow, WindowedTransaction};

    /// A memory partition counting reads and recording written ops.
    #[derive(Default)]
    struct Counting {
        inner: MemoryPartition,
        gets: AtomicUsize,
        scans: AtomicUsize,
        written: Mutex<Vec<(Vec<u8>, bool, bool)>>,
    }

    impl Counting {
        fn reads(&self) -> (usize, usize) {
            (self.gets.load(Ordering::SeqCst), self.scans.load(Ordering::SeqCst))
        }
    }

    impl StorePartition for Counting {
        fn get(&self, cf: &str, key: &[u8]) -> state_core::Result<Option<Vec<u8>>> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.inner.get(cf, key)
        }
        fn iter_range<'a>(
            &'a self,
            cf: &str,
            lower: &[u8],
            upper: Option<&[u8]>,
            direction: Direction,
        ) -> state_core::Result<KvIter<'a>> {
            self.scans.fetch_add(1, Ordering::SeqCst);
            self.inner.iter_range(cf, lower, upper, direction)
        }
        fn write(&self, batch: &WriteBatch) -> state_core::Result<()> {
            self.written.lock().extend(
                batch
                    .iter()
                    .filter(|op| op.cf == cf::DEFAULT)
                    .map(|op| (op.key.to_vec(), op.value.is_some(), op.new_key)),
            );
            self.inner.write(batch)
        }
        fn read_view(&self) -> state_core::Result<Box<dyn state_core::ReadView + '_>> {
            self.inner.read_view()
        }
        fn column_families(&self) -> state_core::Result<Vec<String>> {
            self.inner.column_families()
        }
    }

    fn txn(p: &Arc<Counting>, index: &Arc<WindowIndex>) -> WindowedTransaction<Counting> {
        WindowedTransaction::with_index(p.clone(), Codec::MsgPack, None, index.clone())
    }

    #[test]
    fn missing_windows_and_nothing_to_expire_read_nothing() {
        let p = Arc::new(Counting::default());
        let index = Arc::new(WindowIndex::default());
        let mut t = txn(&p, &index);
        t.update_window(0, 10, &1u64, 5, b"k").unwrap();
        t.commit().unwrap();
        let loads = p.reads();
        assert_eq!(loads.0, 0, "the whole-partition load scans, it does not point-read");
        let mut t = txn(&p, &index);
        assert_eq!(t.get_window::<u64>(10, 20, b"k").unwrap(), None);
        assert_eq!(t.get_window::<u64>(0, 10, b"new-prefix").unwrap(), None);
        let none: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(-5, b"k", ExpireOptions::delete()).unwrap();
        assert!(none.is_empty());
        assert_eq!(t.get_latest_timestamp(b"k").unwrap(), 5);
        let none: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(0, b"other", ExpireOptions::delete()).unwrap();
        assert!(none.is_empty());
        assert_eq!(p.reads(), loads, "served from memory");
        // A window that exists is read (one point read), and expired.
        assert_eq!(t.get_window::<u64>(0, 10, b"k").unwrap(), Some(1));
        let one: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(0, b"k", ExpireOptions::delete()).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(p.reads().1, loads.1, "no iterator either way");
        t.commit().unwrap();
        assert_eq!(index.stats().prefix_loads, 0, "the first use loaded everything");
        assert!(index.stats().complete);
    }

    #[test]
    fn created_windows_are_new_and_one_created_and_deleted_writes_nothing() {
        let p = Arc::new(Counting::default());
        let index = Arc::new(WindowIndex::default());
        let mut t = txn(&p, &index);
        t.update_window(0, 10, &1u64, 5, b"k").unwrap();
        t.update_window(10, 20, &1u64, 15, b"k").unwrap();
        t.delete_window(10, 20, b"k").unwrap();
        t.commit().unwrap();
        let written = p.written.lock().clone();
        assert_eq!(written, vec![(keys::window_key(b"k", 0, 10), true, true)]);
        p.written.lock().clear();
        let mut t = txn(&p, &index);
        t.update_window(0, 10, &2u64, 6, b"k").unwrap();
        t.commit().unwrap();
        assert_eq!(
            p.written.lock().clone(),
            vec![(keys::window_key(b"k", 0, 10), true, false)],
            "an update of a stored window is not new"
        );
    }

    #[test]
    fn windows_written_through_the_base_transaction_reach_the_index() {
        let p = Arc::new(Counting::default());
        let index = Arc::new(WindowIndex::default());
        let mut t = txn(&p, &index);
        t.update_window(0, 10, &1u64, 5, b"k").unwrap();
        t.commit().unwrap();
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
        let p = Arc::new(Counting::default());
        let index = Arc::new(WindowIndex::default());
        let mut t = txn(&p, &index);
        t.update_window(0, 10, &1u64, 5, b"k").unwrap();
        t.commit().unwrap();
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
        let p = Arc::new(Counting::default());
        // Written without the index: 5 prefixes, 2 windows each.
        let mut t = WindowedTransaction::new(p.clone(), Codec::MsgPack, None);
        for k in 0u8..5 {
            t.update_window(0, 10, &1u64, 5, &[b'p', k]).unwrap();
            t.update_window(10, 20, &2u64, 15, &[b'p', k]).unwrap();
        }
        t.commit().unwrap();
        let index = Arc::new(WindowIndex::new(2));
        for round in 0..3 {
            let mut t = txn(&p, &index);
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
    fn keys_split_into_prefix_and_window() {
        let k = keys::window_key(b"user", 10, 20);
        assert_eq!(split_window_key(&k), Some(Ok((&b"user"[..], 10, 20))));
        let bare = keys::window_key(b"", 1, 2);
        assert_eq!(split_window_key(&bare), Some(Ok((&b""[..], 1, 2))));
        let nested = keys::window_key(b"a|b", 1, 2);
        assert_eq!(split_window_key(&nested), Some(Ok((&b"a|b"[..], 1, 2))));
        assert_eq!(split_window_key(b"short"), None);
        let mut bad = k.clone();
        let n = bad.len();
        bad[n - 9] = b'x';
        assert_eq!(split_window_key(&bad), Some(Err(())));
        assert_eq!(
            split_slot_key(LATEST_TIMESTAMP_KEY, LATEST_TIMESTAMP_KEY),
            Some(&b""[..])
        );
        assert_eq!(
            split_slot_key(&keys::prefixed_key(b"k", LATEST_TIMESTAMP_KEY), LATEST_TIMESTAMP_KEY),
            Some(&b"k"[..])
        );
        assert_eq!(split_slot_key(b"|__latest_timestamp__", LATEST_TIMESTAMP_KEY), None);
        assert_eq!(split_slot_key(b"k__latest_timestamp__", LATEST_TIMESTAMP_KEY), None);
    }

    #[test]
    fn eviction_keeps_the_bound_and_the_table_consistent() {
        let mut st = State::default();
        for i in 0u32..50 {
            st.insert(empty_entry(&i.to_be_bytes()), 8);
            assert!(st.entries.len() <= 8);
            for (j, e) in st.entries.iter().enumerate() {
                assert_eq!(st.find(&e.prefix), Some(j as u32));
            }
        }
        assert_eq!(st.evictions, 42);
    }
}
