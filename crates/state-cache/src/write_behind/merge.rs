//! Merged reads: [`Merge`] walks a range of the partition below and the
//! cache's dirty entries of the same range as one, the cache winning;
//! [`WriteBehindView`] is a read view of the cache over a read view of the
//! partition below.

use std::cmp::Ordering;
use std::iter::Peekable;

use parking_lot::MutexGuard;
use state_core::{Direction, KeyValue, KvIter, ReadView, Result};

use super::state::{is_offset_key, offset_bytes, DirtyEntry, State};

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
