//! [`OrderedKeys`]: one column family's dirty keys in key order, built on
//! the first range read of the column family (point reads and writes need
//! only the hash index) and kept up to date by later writes while someone
//! reads ranges.

use std::collections::BTreeSet;
use std::ops::Bound;

use state_core::Direction;

use crate::config::ORDERED_OVERHEAD;

/// The bytes one key of the view is charged.
fn charge(key: &[u8]) -> usize {
    key.len() + ORDERED_OVERHEAD
}

/// The ordered view of one column family's dirty keys. Every method that
/// adds or drops keys returns the bytes charged or freed, for the cache's
/// resident bytes.
#[derive(Debug, Default)]
pub(super) struct OrderedKeys {
    keys: BTreeSet<Box<[u8]>>,
    /// Keys added since the last range read: a view nobody reads is
    /// dropped once this outgrows it, so writes do not keep paying for it.
    added_since_read: usize,
}

impl OrderedKeys {
    /// The view of `keys`, and the bytes it is charged.
    pub(super) fn build<'a>(keys: impl Iterator<Item = &'a [u8]>) -> (Self, usize) {
        let mut view = OrderedKeys::default();
        let mut charged = 0;
        for k in keys {
            charged += charge(k);
            view.keys.insert(Box::from(k));
        }
        (view, charged)
    }

    /// The bytes [`build`](Self::build) would charge for `keys`.
    pub(super) fn charge_of<'a>(keys: impl Iterator<Item = &'a [u8]>) -> usize {
        keys.map(charge).sum()
    }

    /// Adds `key`; returns the bytes charged (0 if it was there).
    pub(super) fn add(&mut self, key: &[u8]) -> usize {
        self.added_since_read += 1;
        if self.keys.insert(key.into()) {
            charge(key)
        } else {
            0
        }
    }

    /// Drops `key`; returns the bytes freed.
    pub(super) fn remove(&mut self, key: &[u8]) -> usize {
        if self.keys.remove(key) {
            charge(key)
        } else {
            0
        }
    }

    /// True if nobody has read this view for longer than it took to build
    /// it: it is then cheaper to drop it and let a range read rebuild it.
    pub(super) fn unread(&self) -> bool {
        self.added_since_read > 4096 && self.added_since_read > 2 * self.keys.len()
    }

    /// The bytes the view is charged.
    pub(super) fn charged(&self) -> usize {
        self.keys.iter().map(|k| charge(k)).sum()
    }

    /// Drops every key; returns the bytes freed.
    pub(super) fn clear(&mut self) -> usize {
        let freed = self.charged();
        self.keys.clear();
        freed
    }

    /// The keys in `[lower, upper)`, in `direction` order; counts as a read.
    pub(super) fn range(&mut self, lower: &[u8], upper: Option<&[u8]>, direction: Direction) -> Vec<&[u8]> {
        self.added_since_read = 0;
        if upper.is_some_and(|u| u <= lower) {
            return Vec::new();
        }
        let upper = match upper {
            Some(u) => Bound::Excluded(u),
            None => Bound::Unbounded,
        };
        let range = self
            .keys
            .range::<[u8], _>((Bound::Included(lower), upper))
            .map(|k| &**k);
        match direction {
            Direction::Forward => range.collect(),
            Direction::Backward => range.rev().collect(),
        }
    }
}
