//! The read-your-writes cache of a transaction: per column family, the new
//! value (or a delete marker) of every key the transaction changed.
//!
//! Point reads and writes go to a hash table: they are the hot path of every
//! store (a B-tree costs a dozen key comparisons per access). Key order is
//! needed only by range reads and by the changelog, so it is built lazily:
//! the first range read of a column family builds a sorted key set, which
//! later writes keep up to date. The changes in key order, needed by both
//! `prepare` (the changelog) and `flush` (the batch), are sorted once and
//! kept until the next write.
//!
//! Keys and values live in one growing byte buffer per column family (a
//! [`state_core::mem::ByteMap`] over an [`Arena`]) and the entries hold
//! spans into it: a checkpoint of tens of thousands of changes then costs a
//! few allocations instead of two per change, and dropping it frees two
//! buffers instead of every key and value (the drop alone was 11% of the
//! windowed benchmark, w2, before).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ops::Bound;

use state_core::mem::{hash_bytes, sort_by_key, Arena, ByteMap, Span};

/// What the cache knows about a key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cached<'a> {
    /// Not changed by this transaction: read the store.
    Unknown,
    /// Deleted by this transaction: do not read the store.
    Deleted,
    /// Set by this transaction.
    Value(&'a [u8]),
}

/// A change: `Some(value)` for a put, `None` for a delete.
pub(crate) type Change<'a> = (&'a [u8], Option<&'a [u8]>);

/// A change and whether its key is known to have no committed value.
pub(crate) type FlaggedChange<'a> = (&'a [u8], Option<&'a [u8]>, bool);

/// The change of one key; the key is the map's.
///
/// Packed into 16 bytes (an `Option<Span>` and a flag took 32): a
/// checkpoint writes one entry per changed key (200,000 for a hopping
/// window benchmark), so the entries' size is memory traffic on the
/// transaction's hot path.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// Where the new value starts in the arena.
    value_start: usize,
    /// The value's length `<< 2`, [`DELETED`] and [`NEW_KEY`].
    bits: usize,
}

/// The key is deleted (no value).
const DELETED: usize = 0b10;
/// The writer knew the key had no committed value (see
/// [`state_core::WriteBatch::put_new`]).
const NEW_KEY: usize = 0b01;

impl Entry {
    fn new(value: Option<Span>, new_key: bool) -> Self {
        let mut e = Entry::default();
        e.set_value(value);
        e.bits |= if new_key { NEW_KEY } else { 0 };
        e
    }

    /// Where the new value is in the arena; `None`: deleted.
    fn value(&self) -> Option<Span> {
        (self.bits & DELETED == 0).then(|| Span::new(self.value_start, self.bits >> 2))
    }

    fn set_value(&mut self, value: Option<Span>) {
        let new_key = self.bits & NEW_KEY;
        // An arena (a `Vec`) holds at most `isize::MAX` bytes, so a
        // length fits in the 62 bits left.
        (self.value_start, self.bits) = match value {
            Some(v) => (v.start(), v.len() << 2 | new_key),
            None => (0, DELETED | new_key),
        };
    }

    fn new_key(&self) -> bool {
        self.bits & NEW_KEY != 0
    }
}

/// The changes of one column family.
#[derive(Debug, Default)]
pub(crate) struct CfChanges {
    /// Every key and value written, back to back in the arena. A value
    /// replaced by one of the same length is overwritten in place;
    /// otherwise the new value is appended and the old bytes stay unused
    /// until the transaction ends.
    entries: ByteMap<Arena, Entry>,
    /// The keys of `entries` in order, once a range read asked for them.
    ordered: RefCell<Option<BTreeSet<Vec<u8>>>>,
    /// The numbers of `entries` by key, once [`sorted`](Self::sorted) was
    /// asked; any write drops it.
    sorted: RefCell<Option<Vec<u32>>>,
}

impl CfChanges {
    fn find(&self, key: &[u8]) -> Option<&Entry> {
        self.entries.find(hash_bytes(key), key).map(|i| self.entries.get(i))
    }

    fn value(&self, e: &Entry) -> Option<&[u8]> {
        e.value().map(|v| self.entries.store().get(v))
    }

    fn flagged_change(&self, i: u32) -> FlaggedChange<'_> {
        let e = self.entries.get(i);
        (self.entries.key(i), self.value(e), e.new_key())
    }

    fn put(&mut self, key: &[u8], value: Option<&[u8]>, new_key: bool) {
        let h = hash_bytes(key);
        *self.sorted.get_mut() = None;
        if let Some(i) = self.entries.find(h, key) {
            let old = self.entries.get(i).value();
            let arena = self.entries.store_mut();
            let value = match (old, value) {
                (Some(old), Some(v)) if old.len() == v.len() => {
                    arena.get_mut(old).copy_from_slice(v);
                    Some(old)
                }
                (_, Some(v)) => Some(arena.append(v)),
                (_, None) => None,
            };
            let e = self.entries.get_mut(i);
            e.set_value(value);
            // Newness is a fact about the stored state, not about this write.
            if new_key {
                e.bits |= NEW_KEY;
            }
            return;
        }
        let value = value.map(|v| self.entries.store_mut().append(v));
        self.entries.insert(h, key, Entry::new(value, new_key));
        if let Some(ordered) = self.ordered.get_mut() {
            ordered.insert(key.to_vec());
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn clear(&mut self) {
        self.entries.clear();
        *self.ordered.get_mut() = None;
        *self.sorted.get_mut() = None;
    }

    /// Every change, unordered.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Change<'_>> {
        self.entries.iter().map(|(_, k, e)| (k, self.value(e)))
    }

    /// Every change, by key.
    pub(crate) fn sorted(&self) -> Vec<Change<'_>> {
        self.with_sorted(|order| {
            order
                .iter()
                .map(|&i| {
                    let (k, v, _) = self.flagged_change(i);
                    (k, v)
                })
                .collect()
        })
    }

    /// Calls `f` with every change and whether the key is known to be new:
    /// in key order if `sorted` or if that order is at hand anyway, else
    /// unordered. Visited, not collected: a checkpoint's changes (200,000
    /// for a hopping window benchmark) made a list of several MiB, grown by
    /// doubling and mapped afresh at every flush.
    pub(crate) fn for_each_flagged<'a>(&'a self, sorted: bool, mut f: impl FnMut(FlaggedChange<'a>)) {
        if sorted || self.sorted.borrow().is_some() {
            return self.with_sorted(|order| order.iter().for_each(|&i| f(self.flagged_change(i))));
        }
        for (i, _, _) in self.entries.iter() {
            f(self.flagged_change(i));
        }
    }

    /// Every change by key, with whether the key is known to be new (no
    /// committed value).
    #[cfg(test)]
    pub(crate) fn sorted_flagged(&self) -> Vec<FlaggedChange<'_>> {
        self.with_sorted(|order| order.iter().map(|&i| self.flagged_change(i)).collect())
    }

    fn with_sorted<T>(&self, f: impl FnOnce(&[u32]) -> T) -> T {
        let mut sorted = self.sorted.borrow_mut();
        let order = sorted.get_or_insert_with(|| {
            let mut order: Vec<u32> = self.entries.iter().map(|(i, _, _)| i).collect();
            sort_by_key(&mut order, |_| (), |i| self.entries.key(i));
            order
        });
        f(order)
    }

    /// Changes with `lower <= key < upper`, by key.
    fn range(&self, lower: &[u8], upper: Option<&[u8]>) -> Vec<Change<'_>> {
        let mut ordered = self.ordered.borrow_mut();
        let keys = ordered.get_or_insert_with(|| self.iter().map(|(k, _)| k.to_vec()).collect());
        let upper = match upper {
            Some(u) => Bound::Excluded(u),
            None => Bound::Unbounded,
        };
        keys.range::<[u8], _>((Bound::Included(lower), upper))
            .filter_map(|k| {
                let i = self.entries.find(hash_bytes(k), k)?;
                Some((self.entries.key(i), self.value(self.entries.get(i))))
            })
            .collect()
    }
}

#[derive(Debug, Default)]
pub(crate) struct UpdateCache {
    // Few column families per transaction: a vector beats a hash map here.
    cfs: Vec<(String, CfChanges)>,
}

impl UpdateCache {
    fn changes(&self, cf: &str) -> Option<&CfChanges> {
        self.cfs.iter().find(|(name, _)| name == cf).map(|(_, c)| c)
    }

    fn changes_mut(&mut self, cf: &str) -> &mut CfChanges {
        let idx = match self.cfs.iter().position(|(name, _)| name == cf) {
            Some(i) => i,
            None => {
                self.cfs.push((cf.to_owned(), CfChanges::default()));
                self.cfs.len() - 1
            }
        };
        &mut self.cfs[idx].1
    }

    /// The changes of `cf`, if any.
    pub(crate) fn cf_changes(&self, cf: &str) -> Option<&CfChanges> {
        self.changes(cf)
    }

    pub(crate) fn get(&self, cf: &str, key: &[u8]) -> Cached<'_> {
        let Some(c) = self.changes(cf) else {
            return Cached::Unknown;
        };
        match c.find(key).map(Entry::value) {
            None => Cached::Unknown,
            Some(None) => Cached::Deleted,
            Some(Some(v)) => Cached::Value(c.entries.store().get(v)),
        }
    }

    pub(crate) fn set(&mut self, cf: &str, key: &[u8], value: &[u8]) {
        self.changes_mut(cf).put(key, Some(value), false);
    }

    /// [`set`](Self::set) of a key the caller knows has no committed value.
    pub(crate) fn set_new(&mut self, cf: &str, key: &[u8], value: &[u8]) {
        self.changes_mut(cf).put(key, Some(value), true);
    }

    pub(crate) fn delete(&mut self, cf: &str, key: &[u8]) {
        self.changes_mut(cf).put(key, None, false);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cfs.iter().all(|(_, c)| c.len() == 0)
    }

    /// Forgets every change, keeping the buffers for reuse.
    pub(crate) fn clear(&mut self) {
        for (_, c) in &mut self.cfs {
            c.clear();
        }
    }

    /// Number of changed keys over all column families.
    pub(crate) fn len(&self) -> usize {
        self.cfs.iter().map(|(_, c)| c.len()).sum()
    }

    /// Column families with changes, sorted by name (the changelog order).
    pub(crate) fn sorted_cfs(&self) -> Vec<(&str, &CfChanges)> {
        let mut out: Vec<_> = self
            .cfs
            .iter()
            .filter(|(_, c)| c.len() > 0)
            .map(|(n, c)| (n.as_str(), c))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// Changes in `cf` with `lower <= key < upper`, by key.
    pub(crate) fn range(&self, cf: &str, lower: &[u8], upper: Option<&[u8]>) -> Vec<Change<'_>> {
        if upper.is_some_and(|u| u <= lower) {
            return Vec::new();
        }
        match self.changes(cf) {
            Some(c) if c.len() > 0 => c.range(lower, upper),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_writes_made_after_the_first_range_read() {
        let mut c = UpdateCache::default();
        c.set("default", b"b", b"1");
        assert_eq!(c.range("default", b"a", Some(b"c")).len(), 1);
        // The ordered key set exists now; later writes must reach it.
        c.set("default", b"a", b"2");
        c.delete("default", b"bb");
        c.set("default", b"b", b"3");
        let got = c.range("default", b"a", Some(b"c"));
        assert_eq!(
            got,
            vec![
                (&b"a"[..], Some(&b"2"[..])),
                (&b"b"[..], Some(&b"3"[..])),
                (&b"bb"[..], None)
            ]
        );
        assert!(c.range("default", b"c", Some(b"a")).is_empty());
        assert_eq!(c.range("default", b"b", None).len(), 2);
        assert!(c.range("other", b"", None).is_empty());
    }

    #[test]
    fn sorted_changes_are_in_key_order() {
        let mut c = UpdateCache::default();
        for k in [b"c", b"a", b"b"] {
            c.set("x", k, k);
        }
        let cfs = c.sorted_cfs();
        let keys: Vec<&[u8]> = cfs[0].1.sorted().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![&b"a"[..], b"b", b"c"]);
    }

    #[test]
    fn sorted_changes_follow_writes_made_after_sorting() {
        let mut c = UpdateCache::default();
        c.set("x", b"b", b"1");
        c.set("x", b"a", b"1");
        assert_eq!(c.sorted_cfs()[0].1.sorted().len(), 2);
        c.set("x", b"b", b"longer"); // a new value span for an existing key
        c.delete("x", b"a");
        c.set("x", b"c", b"3");
        assert_eq!(
            c.sorted_cfs()[0].1.sorted(),
            vec![
                (&b"a"[..], None),
                (&b"b"[..], Some(&b"longer"[..])),
                (&b"c"[..], Some(&b"3"[..]))
            ]
        );
    }

    #[test]
    fn newness_sticks_to_a_key_whatever_is_written_after() {
        let mut c = UpdateCache::default();
        c.set_new("x", b"n", b"1");
        c.set("x", b"n", b"22");
        c.set("x", b"o", b"1");
        c.delete("x", b"d");
        c.set_new("x", b"d", b"1");
        c.delete("x", b"d");
        let flagged = c.sorted_cfs()[0].1.sorted_flagged();
        assert_eq!(
            flagged,
            vec![
                (&b"d"[..], None, true),
                (&b"n"[..], Some(&b"22"[..]), true),
                (&b"o"[..], Some(&b"1"[..]), false)
            ]
        );
    }

    #[test]
    fn replaced_values_of_any_length_and_deletes_read_back() {
        let mut c = UpdateCache::default();
        c.set("d", b"k", b"abc");
        c.set("d", b"k", b"xyz"); // same length: in place
        assert_eq!(c.get("d", b"k"), Cached::Value(b"xyz"));
        c.set("d", b"k", b"longer value"); // appended
        assert_eq!(c.get("d", b"k"), Cached::Value(b"longer value"));
        c.delete("d", b"k");
        assert_eq!(c.get("d", b"k"), Cached::Deleted);
        c.set("d", b"k", b"");
        assert_eq!(c.get("d", b"k"), Cached::Value(b""));
        c.set("d", b"j", b"1");
        assert_eq!(c.len(), 2, "a key is counted once however often it changes");
        assert_eq!(c.get("d", b"missing"), Cached::Unknown);
        assert_eq!(c.get("e", b"k"), Cached::Unknown);
    }
}
