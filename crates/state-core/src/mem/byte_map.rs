//! [`ByteMap`]: entries looked up by byte keys through one hash index, the
//! storage under every cache, change set and index of the layers above.

use std::hash::BuildHasher;
use std::ops::Range;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use super::clock::Clock;
use super::inline_bytes::InlineBytes;

/// The hash a [`ByteMap`] files a plain byte key under (Fx: fast, not
/// collision-resistant, which in-process caches of trusted keys do not need).
#[inline]
pub fn hash_bytes(key: &[u8]) -> u64 {
    FxBuildHasher.hash_one(key)
}

/// `a == b`, inline for keys up to 32 bytes (a few word compares instead
/// of a call to `memcmp`): every lookup in a map compares the key it finds,
/// and the layers above look up tens of short keys per record (a window key
/// is its prefix and 17 bytes).
#[inline]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    #[inline(always)]
    fn word(s: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(w)
    }
    #[inline(always)]
    fn half(s: &[u8], at: usize) -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&s[at..at + 4]);
        u32::from_ne_bytes(w)
    }
    // Overlapping loads from both ends cover every byte.
    match n {
        0 => true,
        1..=3 => a == b,
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        17..=32 => {
            word(a, 0) == word(b, 0)
                && word(a, 8) == word(b, 8)
                && word(a, n - 16) == word(b, n - 16)
                && word(a, n - 8) == word(b, n - 8)
        }
        _ => a == b,
    }
}

/// Where a [`ByteMap`]'s entries keep their key bytes.
pub trait KeyStore: Default {
    /// What an entry holds to find its key.
    type Key: Default;

    /// Stores a copy of `key`.
    fn store(&mut self, key: &[u8]) -> Self::Key;

    /// The bytes of a stored key.
    fn bytes<'a>(&'a self, key: &'a Self::Key) -> &'a [u8];

    /// Forgets every stored key, keeping allocations for reuse.
    fn clear(&mut self);
}

/// Keys inside their entry up to `N` bytes, on the heap beyond
/// ([`InlineBytes`]): for maps that remove entries one by one (caches that
/// evict), where a lookup that finds the entry finds its key bytes too.
#[derive(Clone, Copy, Debug, Default)]
pub struct InlineKeys<const N: usize>;

impl<const N: usize> KeyStore for InlineKeys<N> {
    type Key = InlineBytes<N>;

    #[inline]
    fn store(&mut self, key: &[u8]) -> InlineBytes<N> {
        InlineBytes::new(key)
    }

    #[inline]
    fn bytes<'a>(&'a self, key: &'a InlineBytes<N>) -> &'a [u8] {
        key
    }

    fn clear(&mut self) {}
}

/// Where some bytes live in an [`Arena`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    start: usize,
    len: usize,
}

impl Span {
    /// The span of `len` bytes at `start` (for owners that keep spans in a
    /// packed form of their own).
    #[inline]
    pub fn new(start: usize, len: usize) -> Self {
        Span { start, len }
    }

    /// Where the bytes start in their arena.
    #[inline]
    pub fn start(self) -> usize {
        self.start
    }

    /// Length in bytes.
    pub fn len(self) -> usize {
        self.len
    }

    /// True if it holds no bytes.
    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    fn range(self) -> Range<usize> {
        self.start..self.start + self.len
    }
}

/// Keys (and whatever else the owner appends, such as values) back to back
/// in one growing buffer: for maps that are emptied all at once (a
/// transaction's change set), where thousands of entries then cost a few
/// allocations instead of one or two each, and dropping them frees one
/// buffer. Bytes of replaced or removed entries stay until
/// [`clear`](KeyStore::clear).
#[derive(Clone, Debug, Default)]
pub struct Arena {
    bytes: Vec<u8>,
}

impl Arena {
    /// Appends `data`; returns where it is.
    #[inline]
    pub fn append(&mut self, data: &[u8]) -> Span {
        let span = Span {
            start: self.bytes.len(),
            len: data.len(),
        };
        self.bytes.extend_from_slice(data);
        span
    }

    /// The bytes at `span`.
    #[inline]
    pub fn get(&self, span: Span) -> &[u8] {
        &self.bytes[span.range()]
    }

    /// The bytes at `span`, to overwrite in place.
    #[inline]
    pub fn get_mut(&mut self, span: Span) -> &mut [u8] {
        &mut self.bytes[span.range()]
    }
}

impl KeyStore for Arena {
    type Key = Span;

    #[inline]
    fn store(&mut self, key: &[u8]) -> Span {
        self.append(key)
    }

    #[inline]
    fn bytes<'a>(&'a self, key: &'a Span) -> &'a [u8] {
        self.get(*key)
    }

    fn clear(&mut self) {
        self.bytes.clear();
    }
}

#[derive(Clone, Debug)]
struct Slot<K, V> {
    hash: u64,
    key: K,
    value: V,
    live: bool,
    referenced: bool,
}

/// Entries numbered by `u32` in one vector, found by key bytes through a
/// hash index of their numbers, with second-chance eviction ([`Clock`]).
///
/// The caller chooses the hash (so a key can be namespaced, say by column
/// family, without copying it) and how keys are stored (`S`: [`InlineKeys`]
/// or an [`Arena`]). An entry keeps its number until it is removed; the
/// numbers of removed entries are reused. Lookups never allocate.
#[derive(Clone, Debug)]
pub struct ByteMap<S: KeyStore, V> {
    keys: S,
    slots: Vec<Slot<S::Key, V>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    clock: Clock,
}

impl<S: KeyStore, V> Default for ByteMap<S, V> {
    fn default() -> Self {
        ByteMap {
            keys: S::default(),
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            clock: Clock::new(),
        }
    }
}

impl<S: KeyStore, V> ByteMap<S, V> {
    /// An empty map.
    pub fn new() -> Self {
        ByteMap::default()
    }

    /// The number of the entry filed under `hash` whose key is `key`.
    #[inline]
    pub fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        self.find_with(hash, key, |_| true)
    }

    /// [`find`](Self::find), also requiring `matches` of the entry's value
    /// (for keys namespaced by something the value holds).
    #[inline]
    pub fn find_with(&self, hash: u64, key: &[u8], matches: impl Fn(&V) -> bool) -> Option<u32> {
        let (slots, keys) = (&self.slots, &self.keys);
        self.index
            .find(hash, |&i| {
                let s = &slots[i as usize];
                bytes_eq(keys.bytes(&s.key), key) && matches(&s.value)
            })
            .copied()
    }

    /// Adds an entry for `key` under `hash` (its reference bit clear) and
    /// returns its number. The caller makes sure no entry with the same key
    /// (and namespace) exists: [`find`](Self::find) first.
    pub fn insert(&mut self, hash: u64, key: &[u8], value: V) -> u32 {
        let slot = Slot {
            hash,
            key: self.keys.store(key),
            value,
            live: true,
            referenced: false,
        };
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
        self.index.insert_unique(hash, idx, |&i| slots[i as usize].hash);
        idx
    }

    /// Removes entry `idx` and returns its value; its number is reused.
    /// `idx` must be live.
    pub fn remove(&mut self, idx: u32) -> V
    where
        V: Default,
    {
        let s = &mut self.slots[idx as usize];
        debug_assert!(s.live, "removing a free slot");
        let hash = s.hash;
        s.live = false;
        s.referenced = false;
        // Frees a heap key now rather than when the slot is reused.
        s.key = S::Key::default();
        let value = std::mem::take(&mut s.value);
        if let Ok(entry) = self.index.find_entry(hash, |&i| i == idx) {
            entry.remove();
        }
        self.free.push(idx);
        value
    }

    /// The key of entry `idx`.
    #[inline]
    pub fn key(&self, idx: u32) -> &[u8] {
        self.keys.bytes(&self.slots[idx as usize].key)
    }

    /// The value of entry `idx`.
    #[inline]
    pub fn get(&self, idx: u32) -> &V {
        &self.slots[idx as usize].value
    }

    /// The value of entry `idx`, to change (not its key).
    #[inline]
    pub fn get_mut(&mut self, idx: u32) -> &mut V {
        &mut self.slots[idx as usize].value
    }

    /// True if entry `idx` exists (a number may be stale: entries move
    /// when removed numbers are reused).
    pub fn is_live(&self, idx: u32) -> bool {
        self.slots.get(idx as usize).is_some_and(|s| s.live)
    }

    /// Sets the reference bit of entry `idx`: the clock spares it once.
    #[inline]
    pub fn touch(&mut self, idx: u32) {
        self.slots[idx as usize].referenced = true;
    }

    /// The number of the next entry to evict, by second chance among the
    /// entries whose value is `evictable` (the others are pinned); `None`
    /// if none is. The caller removes it (or not).
    pub fn next_victim(&mut self, evictable: impl Fn(&V) -> bool) -> Option<u32> {
        self.clock
            .next_victim(&mut self.slots, |s| {
                if s.live && evictable(&s.value) {
                    Some(&mut s.referenced)
                } else {
                    None
                }
            })
            .map(|i| i as u32)
    }

    /// Every entry: number, key and value, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &[u8], &V)> + '_ {
        let keys = &self.keys;
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live)
            .map(move |(i, s)| (i as u32, keys.bytes(&s.key), &s.value))
    }

    /// Every entry's key and value, the values to change, in slot order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&[u8], &mut V)> + '_ {
        let keys = &self.keys;
        self.slots
            .iter_mut()
            .filter(|s| s.live)
            .map(move |s| (keys.bytes(&s.key), &mut s.value))
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// True if there are no entries.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every entry, keeping the allocations for reuse.
    pub fn clear(&mut self) {
        self.slots.clear();
        self.free.clear();
        self.index.clear();
        self.keys.clear();
        self.clock.reset();
    }

    /// Removed entries whose room is kept for reuse.
    pub fn free_slots(&self) -> usize {
        self.free.len()
    }

    /// Gives the room of removed entries back to the allocator: the live
    /// entries are renumbered from 0 (in their order) into allocations of
    /// their size. Every number handed out before is stale. For owners
    /// that shrank for good (a cache giving memory back to a budget).
    pub fn compact(&mut self) {
        let old = std::mem::take(&mut self.slots);
        let mut slots = Vec::with_capacity(old.len() - self.free.len());
        slots.extend(old.into_iter().filter(|s| s.live));
        let mut index = HashTable::with_capacity(slots.len());
        for (i, s) in slots.iter().enumerate() {
            index.insert_unique(s.hash, i as u32, |&j: &u32| slots[j as usize].hash);
        }
        self.slots = slots;
        self.index = index;
        self.free = Vec::new();
        self.clock.reset();
    }

    /// The key store (an [`Arena`] also holds what the owner appended).
    #[inline]
    pub fn store(&self) -> &S {
        &self.keys
    }

    /// The key store, to append to or overwrite what the owner keeps there
    /// (never the keys).
    #[inline]
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_removed_and_their_numbers_reused() {
        let mut m: ByteMap<InlineKeys<4>, u32> = ByteMap::new();
        let a = m.insert(hash_bytes(b"a"), b"a", 1);
        let long = m.insert(hash_bytes(b"longer key"), b"longer key", 2);
        assert_eq!(m.find(hash_bytes(b"a"), b"a"), Some(a));
        assert_eq!(m.find(hash_bytes(b"longer key"), b"longer key"), Some(long));
        assert_eq!(m.find(hash_bytes(b"b"), b"b"), None);
        assert_eq!((m.key(long), *m.get(long)), (&b"longer key"[..], 2));
        assert_eq!(m.remove(a), 1);
        assert!(!m.is_live(a));
        assert_eq!(m.find(hash_bytes(b"a"), b"a"), None);
        assert_eq!(m.len(), 1);
        let b = m.insert(hash_bytes(b"b"), b"b", 3);
        assert_eq!(b, a, "the free number is reused");
        *m.get_mut(b) += 1;
        let all: Vec<(u32, &[u8], u32)> = m.iter().map(|(i, k, v)| (i, k, *v)).collect();
        assert_eq!(all, vec![(b, &b"b"[..], 4), (long, &b"longer key"[..], 2)]);
        m.clear();
        assert!(m.is_empty());
        assert_eq!(m.find(hash_bytes(b"b"), b"b"), None);
    }

    #[test]
    fn bytes_eq_is_slice_equality_for_every_length() {
        let a: Vec<u8> = (0u8..40).collect();
        for n in 0..a.len() {
            let x = &a[..n];
            let copy = x.to_vec();
            assert!(bytes_eq(x, &copy), "a copy of {n} bytes");
            assert!(!bytes_eq(x, &a[..n + 1]), "lengths differ");
            for i in 0..n {
                let mut y = x.to_vec();
                y[i] ^= 0x80;
                assert!(!bytes_eq(x, &y), "byte {i} of {n} differs");
            }
        }
    }

    #[test]
    fn compaction_renumbers_the_live_entries_and_keeps_them_findable() {
        let mut m: ByteMap<InlineKeys<4>, u32> = ByteMap::new();
        let ids: Vec<u32> = (0u32..100)
            .map(|n| m.insert(hash_bytes(&n.to_be_bytes()), &n.to_be_bytes(), n))
            .collect();
        for &i in ids.iter().filter(|&&i| i % 10 != 0) {
            m.remove(i);
        }
        assert_eq!(m.free_slots(), 90);
        m.compact();
        assert_eq!((m.len(), m.free_slots()), (10, 0));
        for n in (0u32..100).step_by(10) {
            let i = m.find(hash_bytes(&n.to_be_bytes()), &n.to_be_bytes()).unwrap();
            assert_eq!(*m.get(i), n);
        }
        assert_eq!(m.find(hash_bytes(&5u32.to_be_bytes()), &5u32.to_be_bytes()), None);
        assert!(m.next_victim(|_| true).is_some());
    }

    #[test]
    fn a_namespace_in_the_value_separates_equal_keys() {
        let mut m: ByteMap<InlineKeys<8>, u16> = ByteMap::new();
        let h = |ns: u16, k: &[u8]| FxBuildHasher.hash_one((ns, k));
        let zero = m.insert(h(0, b"k"), b"k", 0);
        let one = m.insert(h(1, b"k"), b"k", 1);
        assert_eq!(m.find_with(h(0, b"k"), b"k", |&ns| ns == 0), Some(zero));
        assert_eq!(m.find_with(h(1, b"k"), b"k", |&ns| ns == 1), Some(one));
    }

    #[test]
    fn an_arena_holds_keys_and_the_owners_bytes() {
        let mut m: ByteMap<Arena, Option<Span>> = ByteMap::new();
        let v = m.store_mut().append(b"value");
        let i = m.insert(hash_bytes(b"key"), b"key", Some(v));
        assert_eq!(m.key(i), b"key");
        let span = m.get(i).unwrap_or_default();
        m.store_mut().get_mut(span).copy_from_slice(b"VALUE");
        assert_eq!(m.store().get(span), b"VALUE");
        for n in 0u32..1000 {
            let k = n.to_be_bytes();
            m.insert(hash_bytes(&k), &k, None);
        }
        assert_eq!(m.find(hash_bytes(b"key"), b"key"), Some(i), "found after growth");
        m.clear();
        assert!(m.is_empty());
    }

    #[test]
    fn eviction_spares_referenced_entries_and_skips_pinned_ones() {
        // Value: pinned.
        let mut m: ByteMap<InlineKeys<8>, bool> = ByteMap::new();
        let keys: Vec<[u8; 1]> = (0u8..4).map(|k| [k]).collect();
        let ids: Vec<u32> = keys
            .iter()
            .enumerate()
            .map(|(n, k)| m.insert(hash_bytes(k), k, n == 1))
            .collect();
        m.touch(ids[0]);
        assert_eq!(m.next_victim(|&pinned| !pinned), Some(ids[2]));
        m.remove(ids[2]);
        assert_eq!(m.next_victim(|&pinned| !pinned), Some(ids[3]));
        m.remove(ids[3]);
        assert_eq!(
            m.next_victim(|&pinned| !pinned),
            Some(ids[0]),
            "its second chance is used up"
        );
        m.remove(ids[0]);
        assert_eq!(m.next_victim(|&pinned| !pinned), None, "only the pinned entry is left");
    }
}
