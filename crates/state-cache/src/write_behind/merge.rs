//! Merged reads: what a range read sees of the cache (its dirty entries
//! and pending offset, `State::dirty_view` and `State::dirty_snapshot`),
//! [`Merge`], which walks a range of the partition below and those entries
//! as one, the cache winning, and [`WriteBehindView`], a read view of the
//! cache over a read view of the partition below.

use std::cmp::Ordering;
use std::iter::Peekable;

use parking_lot::MutexGuard;
use state_core::{cf, Direction, KeyValue, KvIter, ReadView, Result, StorePartition};

use super::ordered::OrderedKeys;
use super::state::{cf_dirty, is_offset_key, offset_bytes, State};
use crate::config::WriteBehindConfig;

/// A dirty key and its value (`None`: a pending delete).
pub(super) type DirtyEntry = (Vec<u8>, Option<Vec<u8>>);

/// True if `lower <= key < upper` (no `upper`: no bound).
fn in_range(key: &[u8], lower: &[u8], upper: Option<&[u8]>) -> bool {
    lower <= key && upper.is_none_or(|u| key < u)
}

/// Merges the partition below with the cache's dirty entries of a range
/// (both in the same direction): a dirty key replaces the key below, a
/// pending delete hides it.
pub(super) struct Merge<'a> {
    inner: Peekable<KvIter<'a>>,
    dirty: Peekable<std::vec::IntoIter<DirtyEntry>>,
    forward: bool,
}

impl<'a> Merge<'a> {
    /// `inner` with `dirty` merged in; `inner` itself if nothing is dirty.
    pub(super) fn over(inner: KvIter<'a>, dirty: Vec<DirtyEntry>, direction: Direction) -> KvIter<'a> {
        if dirty.is_empty() {
            return inner;
        }
        Box::new(Merge {
            inner: inner.peekable(),
            dirty: dirty.into_iter().peekable(),
            forward: direction == Direction::Forward,
        })
    }
}

impl Iterator for Merge<'_> {
    type Item = Result<KeyValue>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.inner.peek(), self.dirty.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => return self.inner.next(),
                (Some(_), None) => return self.inner.next(),
                (None, Some(_)) => Ordering::Greater,
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
                Ordering::Less => return self.inner.next(),
                Ordering::Equal => {
                    self.inner.next();
                }
                Ordering::Greater => {}
            }
            if let Some((k, Some(v))) = self.dirty.next() {
                return Some(Ok((k, v)));
            }
        }
    }
}

/// A [`WriteBehindPartition`](super::WriteBehindPartition) as of one
/// moment: its cache, locked, over a read view of the partition below.
pub(super) struct WriteBehindView<'a> {
    pub(super) state: MutexGuard<'a, State>,
    pub(super) inner: Box<dyn ReadView + 'a>,
}

impl ReadView for WriteBehindView<'_> {
    fn get(&self, cf_name: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if is_offset_key(cf_name, key) {
            return Ok(offset_bytes(self.state.offset));
        }
        match self.state.peek(cf_name, key) {
            Some(value) => Ok(value),
            None => self.inner.get(cf_name, key),
        }
    }

    fn iter_range<'a>(
        &'a self,
        cf_name: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>> {
        let dirty = self.state.dirty_snapshot(cf_name, lower, upper, direction);
        let inner = self.inner.iter_range(cf_name, lower, upper, direction)?;
        Ok(Merge::over(inner, dirty, direction))
    }
}

impl State {
    fn dirty_keys(&self, cf: u16) -> impl Iterator<Item = &[u8]> {
        self.slots
            .iter()
            .filter(move |(_, _, e)| e.dirty && e.cf == cf)
            .map(|(_, k, _)| k)
    }

    /// The dirty entries of `cf_name` in `[lower, upper)` in `direction`
    /// order, plus the changelog offset not yet flushed, which reads as its
    /// key in `__metadata__`. Builds the column family's ordered view of
    /// its dirty keys first if it has none.
    pub(super) fn dirty_view(
        &mut self,
        cf_name: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
        config: &WriteBehindConfig,
        inner: &dyn StorePartition,
    ) -> Result<Vec<DirtyEntry>> {
        let mut out = Vec::new();
        if let Some(cf) = self.slots.cf_index(cf_name) {
            let c = self.cfs.get(cf as usize);
            if c.is_some_and(|c| c.dirty_entries > 0 && c.ordered.is_none()) {
                // Build the view: room for it first (a flush empties it).
                let need = OrderedKeys::charge_of(self.dirty_keys(cf));
                if !self.ensure_room(need, config.max_bytes, inner)? {
                    // No room for a view (the budget): sort what is dirty
                    // for this read only.
                    return Ok(self.dirty_snapshot(cf_name, lower, upper, direction));
                }
                let (view, charged) = OrderedKeys::build(self.dirty_keys(cf));
                self.slots.resident += charged;
                cf_dirty(&mut self.cfs, cf).ordered = Some(view);
            }
            if let Some(ordered) = self.cfs.get_mut(cf as usize).and_then(|c| c.ordered.as_mut()) {
                for k in ordered.range(lower, upper, direction) {
                    if let Some(idx) = self.slots.find(cf, k) {
                        out.push((k.to_vec(), self.slots.entry(idx).value.as_ref().map(|v| v.to_vec())));
                    }
                }
            }
        }
        if let Some(entry) = self.pending_offset(cf_name, lower, upper) {
            out.retain(|(k, _)| *k != entry.0);
            let at = out.partition_point(|(k, _)| match direction {
                Direction::Forward => *k < entry.0,
                Direction::Backward => *k > entry.0,
            });
            out.insert(at, entry);
        }
        Ok(out)
    }

    /// The dirty entries of `cf_name` in `[lower, upper)`, plus the pending
    /// changelog offset, in `direction` order, without building or
    /// changing anything (for read views, which hold the lock).
    pub(super) fn dirty_snapshot(
        &self,
        cf_name: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Vec<DirtyEntry> {
        let mut out: Vec<DirtyEntry> = match self.slots.cf_index(cf_name) {
            Some(cf) => self
                .slots
                .iter()
                .filter(|(_, k, e)| e.dirty && e.cf == cf && in_range(k, lower, upper))
                .map(|(_, k, e)| (k.to_vec(), e.value.as_ref().map(|v| v.to_vec())))
                .collect(),
            None => Vec::new(),
        };
        if let Some(entry) = self.pending_offset(cf_name, lower, upper) {
            out.retain(|(k, _)| *k != entry.0);
            out.push(entry);
        }
        out.sort_unstable_by(|a, b| match direction {
            Direction::Forward => a.0.cmp(&b.0),
            Direction::Backward => b.0.cmp(&a.0),
        });
        out
    }

    /// The changelog offset not yet flushed, as the entry of its key, if
    /// `cf_name` and `[lower, upper)` hold that key.
    fn pending_offset(&self, cf_name: &str, lower: &[u8], upper: Option<&[u8]>) -> Option<DirtyEntry> {
        let key = cf::CHANGELOG_OFFSET_KEY;
        (is_offset_key(cf_name, key) && self.offset_dirty && in_range(key, lower, upper))
            .then(|| (key.to_vec(), offset_bytes(self.offset)))
    }

    /// The value the cache holds for `key`, dirty or clean, without
    /// marking it used (for read views); `None` if it holds nothing.
    pub(super) fn peek(&self, cf_name: &str, key: &[u8]) -> Option<Option<Vec<u8>>> {
        let cf = self.slots.cf_index(cf_name)?;
        let idx = self.slots.find(cf, key)?;
        Some(self.slots.entry(idx).value.as_ref().map(|v| v.to_vec()))
    }
}
