//! The read-your-writes cache of a transaction: per column family, the new
//! value (or a delete marker) of every key the transaction changed.

use std::collections::BTreeMap;
use std::ops::Bound;

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

/// Changes of one column family, ordered by key so range reads can merge
/// them with the store. `None` is a delete marker.
pub(crate) type CfChanges = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

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
                self.cfs.push((cf.to_owned(), CfChanges::new()));
                self.cfs.len() - 1
            }
        };
        &mut self.cfs[idx].1
    }

    pub(crate) fn get(&self, cf: &str, key: &[u8]) -> Cached<'_> {
        match self.changes(cf).and_then(|c| c.get(key)) {
            None => Cached::Unknown,
            Some(None) => Cached::Deleted,
            Some(Some(v)) => Cached::Value(v),
        }
    }

    pub(crate) fn set(&mut self, cf: &str, key: Vec<u8>, value: Vec<u8>) {
        self.changes_mut(cf).insert(key, Some(value));
    }

    pub(crate) fn delete(&mut self, cf: &str, key: Vec<u8>) {
        self.changes_mut(cf).insert(key, None);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.cfs.iter().all(|(_, c)| c.is_empty())
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
            .filter(|(_, c)| !c.is_empty())
            .map(|(n, c)| (n.as_str(), c))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// Changes in `cf` with `lower <= key < upper`.
    pub(crate) fn range<'a>(
        &'a self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
    ) -> impl DoubleEndedIterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)> + 'a {
        let upper_bound = match upper {
            Some(u) => Bound::Excluded(u.to_vec()),
            None => Bound::Unbounded,
        };
        let valid = upper.is_none_or(|u| lower < u);
        let lower_bound = Bound::Included(lower.to_vec());
        self.changes(cf)
            .filter(|_| valid)
            .into_iter()
            .flat_map(move |c| c.range((lower_bound.clone(), upper_bound.clone())))
    }
}
