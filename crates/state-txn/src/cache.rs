//! The read-your-writes cache of a transaction: per column family, the new
//! value (or a delete marker) of every key the transaction changed.
//!
//! Point reads and writes go to a hash map: they are the hot path of every
//! store (a B-tree costs a dozen key comparisons per access). Key order is
//! needed only by range reads and by the changelog, so it is built lazily:
//! the first range read of a column family builds a sorted key set, which
//! later writes keep up to date; the changelog sorts once per `prepare`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ops::Bound;

use rustc_hash::FxHashMap;

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

/// The changes of one column family.
#[derive(Debug, Default)]
pub(crate) struct CfChanges {
    map: FxHashMap<Vec<u8>, Option<Vec<u8>>>,
    /// The keys of `map` in order, once a range read asked for them.
    ordered: RefCell<Option<BTreeSet<Vec<u8>>>>,
}

impl CfChanges {
    fn put(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        if let Some(ordered) = self.ordered.get_mut() {
            if !self.map.contains_key(&key) {
                ordered.insert(key.clone());
            }
        }
        self.map.insert(key, value);
    }

    /// Every change, unordered.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Change<'_>> {
        self.map.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    /// Every change, by key.
    pub(crate) fn sorted(&self) -> Vec<Change<'_>> {
        let mut out: Vec<Change<'_>> = self.iter().collect();
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// Changes with `lower <= key < upper`, by key.
    fn range(&self, lower: &[u8], upper: Option<&[u8]>) -> Vec<Change<'_>> {
        let mut ordered = self.ordered.borrow_mut();
        let keys = ordered.get_or_insert_with(|| self.map.keys().cloned().collect());
        let upper = match upper {
            Some(u) => Bound::Excluded(u),
            None => Bound::Unbounded,
        };
        keys.range::<[u8], _>((Bound::Included(lower), upper))
            .filter_map(|k| self.map.get_key_value(k.as_slice()))
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
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

    pub(crate) fn get(&self, cf: &str, key: &[u8]) -> Cached<'_> {
        match self.changes(cf).and_then(|c| c.map.get(key)) {
            None => Cached::Unknown,
            Some(None) => Cached::Deleted,
            Some(Some(v)) => Cached::Value(v),
        }
    }

    pub(crate) fn set(&mut self, cf: &str, key: Vec<u8>, value: Vec<u8>) {
        self.changes_mut(cf).put(key, Some(value));
    }

    pub(crate) fn delete(&mut self, cf: &str, key: Vec<u8>) {
        self.changes_mut(cf).put(key, None);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cfs.iter().all(|(_, c)| c.map.is_empty())
    }

    /// Number of changed keys over all column families.
    pub(crate) fn len(&self) -> usize {
        self.cfs.iter().map(|(_, c)| c.map.len()).sum()
    }

    /// Column families with changes, sorted by name (the changelog order).
    pub(crate) fn sorted_cfs(&self) -> Vec<(&str, &CfChanges)> {
        let mut out: Vec<_> = self
            .cfs
            .iter()
            .filter(|(_, c)| !c.map.is_empty())
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
            Some(c) if !c.map.is_empty() => c.range(lower, upper),
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
        c.set("default", b"b".to_vec(), b"1".to_vec());
        assert_eq!(c.range("default", b"a", Some(b"c")).len(), 1);
        // The ordered key set exists now; later writes must reach it.
        c.set("default", b"a".to_vec(), b"2".to_vec());
        c.delete("default", b"bb".to_vec());
        c.set("default", b"b".to_vec(), b"3".to_vec());
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
            c.set("x", k.to_vec(), k.to_vec());
        }
        let cfs = c.sorted_cfs();
        let keys: Vec<&[u8]> = cfs[0].1.sorted().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![&b"a"[..], b"b", b"c"]);
    }
}
