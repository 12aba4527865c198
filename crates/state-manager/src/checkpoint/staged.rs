//! [`StagedPartition`]: a store partition as the transactions of a
//! pipelined at-least-once checkpoint see it. Their local write is set
//! aside (a [`PendingWrite`]) instead of reaching the partition, and the
//! transactions of the next checkpoint read through the write set aside by
//! the one still in flight.
//!
//! Why: local state must never hold a checkpoint whose source offsets are
//! not committed, or a restart would count its records twice (restores
//! skip changelog records of uncommitted checkpoints, local state cannot).
//! So a checkpoint's local write waits for its delivery and offset
//! commit; the records processed meanwhile must still see its changes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use state_core::{Direction, KeyValue, KvIter, PartitionStats, ReadView, Result, StorePartition, WriteBatch};

/// A key and its value after a write set aside (`None`: deleted).
type Change = (Vec<u8>, Option<Vec<u8>>);

/// A checkpoint's local write of one store partition, set aside until its
/// changelog records are delivered and its source offsets committed, with
/// a view of what it changes for the reads of the next checkpoint.
pub(super) struct PendingWrite {
    batch: WriteBatch,
    /// Column family -> key -> value after the batch (`None`: deleted).
    changes: HashMap<String, BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl PendingWrite {
    /// The write `batch` does (a later operation on a key wins, as in the
    /// batch).
    pub(super) fn new(batch: WriteBatch) -> Self {
        let mut changes: HashMap<String, BTreeMap<Vec<u8>, Option<Vec<u8>>>> = HashMap::new();
        for op in batch.iter() {
            let cf = match changes.get_mut(op.cf) {
                Some(cf) => cf,
                None => changes.entry(op.cf.to_owned()).or_default(),
            };
            cf.insert(op.key.to_vec(), op.value.map(<[u8]>::to_vec));
        }
        PendingWrite { batch, changes }
    }

    /// The batch, with `changelog_offset` (the last record of the
    /// partition's changelog known delivered) if given.
    pub(super) fn batch_at(&self, changelog_offset: Option<u64>) -> WriteBatch {
        let mut batch = self.batch.clone();
        if let Some(offset) = changelog_offset {
            batch.set_changelog_offset(offset);
        }
        batch
    }

    /// `Some(value)` if the write sets (`Some`) or deletes (`None`) `key`.
    fn get(&self, cf: &str, key: &[u8]) -> Option<Option<&[u8]>> {
        self.changes.get(cf)?.get(key).map(Option::as_deref)
    }

    /// The changes to `cf` in `lower..upper`, in `direction`'s order.
    fn range(&self, cf: &str, lower: &[u8], upper: Option<&[u8]>, direction: Direction) -> Vec<Change> {
        let Some(changes) = self.changes.get(cf) else {
            return Vec::new();
        };
        let upper_ok = |k: &[u8]| upper.is_none_or(|u| k < u);
        let in_range = changes
            .range::<[u8], _>((std::ops::Bound::Included(lower), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| upper_ok(k))
            .map(|(k, v)| (k.clone(), v.clone()));
        let mut out: Vec<_> = in_range.collect();
        if direction == Direction::Backward {
            out.reverse();
        }
        out
    }
}

/// See the [module docs](self).
pub(super) struct StagedPartition {
    inner: Arc<dyn StorePartition>,
    /// The write of the checkpoint in flight, not yet in `inner`.
    below: Option<Arc<PendingWrite>>,
    /// What this checkpoint's transactions wrote, set aside.
    captured: Mutex<Option<WriteBatch>>,
}

impl StagedPartition {
    /// `inner` as a new checkpoint's transactions see it, `below` the write
    /// of the checkpoint still in flight on it, if any.
    pub(super) fn new(inner: Arc<dyn StorePartition>, below: Option<Arc<PendingWrite>>) -> Self {
        StagedPartition {
            inner,
            below,
            captured: Mutex::new(None),
        }
    }

    /// The partition the write set aside goes to.
    pub(super) fn inner(&self) -> &Arc<dyn StorePartition> {
        &self.inner
    }

    /// Takes what the transactions wrote, if anything.
    pub(super) fn take_captured(&self) -> Option<WriteBatch> {
        self.captured.lock().take()
    }
}

impl StorePartition for StagedPartition {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.below.as_ref().and_then(|b| b.get(cf, key)) {
            Some(v) => Ok(v.map(<[u8]>::to_vec)),
            None => self.inner.get(cf, key),
        }
    }

    fn exists(&self, cf: &str, key: &[u8]) -> Result<bool> {
        match self.below.as_ref().and_then(|b| b.get(cf, key)) {
            Some(v) => Ok(v.is_some()),
            None => self.inner.exists(cf, key),
        }
    }

    fn iter_range<'a>(
        &'a self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>> {
        let inner = self.inner.iter_range(cf, lower, upper, direction)?;
        let changes = match &self.below {
            Some(b) => b.range(cf, lower, upper, direction),
            None => Vec::new(),
        };
        if changes.is_empty() {
            return Ok(inner);
        }
        Ok(Box::new(Merged {
            inner: inner.peekable(),
            changes: changes.into_iter().peekable(),
            direction,
        }))
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        let mut captured = self.captured.lock();
        match captured.as_mut() {
            None => *captured = Some(batch.clone()),
            Some(into) => {
                for op in batch.iter() {
                    match op.value {
                        Some(v) if op.new_key => into.put_new(op.cf, op.key, v),
                        value => into.push(op.cf, op.key, value),
                    }
                }
                if let Some(offset) = batch.changelog_offset() {
                    into.set_changelog_offset(offset);
                }
            }
        }
        Ok(())
    }

    fn write_bulk(&self, batch: &WriteBatch) -> Result<()> {
        self.write(batch)
    }

    fn persist(&self) -> Result<()> {
        self.inner.persist()
    }

    fn changelog_offset(&self) -> Result<Option<u64>> {
        self.inner.changelog_offset()
    }

    fn prefers_sorted_batches(&self) -> bool {
        self.inner.prefers_sorted_batches()
    }

    fn column_families(&self) -> Result<Vec<String>> {
        let mut cfs = self.inner.column_families()?;
        if let Some(b) = &self.below {
            cfs.extend(b.changes.keys().cloned());
            cfs.sort();
            cfs.dedup();
        }
        Ok(cfs)
    }

    fn read_view(&self) -> Result<Box<dyn ReadView + '_>> {
        self.inner.read_view()
    }

    fn snapshot(&self, dir: &Path) -> Result<Option<state_core::LocalSnapshot>> {
        self.inner.snapshot(dir)
    }

    fn stats(&self) -> PartitionStats {
        self.inner.stats()
    }
}

/// The partition's keys merged with the changes set aside, which win;
/// deleted keys are skipped.
struct Merged<'a> {
    inner: std::iter::Peekable<KvIter<'a>>,
    changes: std::iter::Peekable<std::vec::IntoIter<Change>>,
    direction: Direction,
}

impl Iterator for Merged<'_> {
    type Item = Result<KeyValue>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_change = match (self.inner.peek(), self.changes.peek()) {
                (Some(Err(_)), _) => return self.inner.next(),
                (None, None) => return None,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(Ok((stored, _))), Some((changed, _))) => {
                    let order = stored.cmp(changed);
                    if order == std::cmp::Ordering::Equal {
                        // The change replaces the stored value.
                        self.inner.next();
                        true
                    } else {
                        (order == std::cmp::Ordering::Greater) == (self.direction == Direction::Forward)
                    }
                }
            };
            if !take_change {
                return self.inner.next();
            }
            match self.changes.next() {
                Some((key, Some(value))) => return Some(Ok((key, value))),
                Some((_, None)) => continue,
                None => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Arc<dyn StorePartition> {
        let p: Arc<dyn StorePartition> = Arc::new(state_core::MemoryPartition::new());
        let mut b = WriteBatch::new();
        for k in [b"a", b"c", b"e"] {
            b.put("default", k, b"stored");
        }
        p.write(&b).unwrap();
        p
    }

    #[test]
    fn reads_see_the_write_set_aside_and_writes_are_set_aside() {
        let inner = stored();
        let mut pending = WriteBatch::new();
        pending.put("default", b"b", b"pending");
        pending.delete("default", b"c");
        pending.put("default", b"e", b"pending");
        pending.put("other", b"x", b"1");
        let staged = StagedPartition::new(inner.clone(), Some(Arc::new(PendingWrite::new(pending))));

        assert_eq!(staged.get("default", b"b").unwrap().as_deref(), Some(&b"pending"[..]));
        assert_eq!(staged.get("default", b"c").unwrap(), None);
        assert_eq!(staged.get("default", b"a").unwrap().as_deref(), Some(&b"stored"[..]));
        assert!(!staged.exists("default", b"c").unwrap());
        let keys = |d| {
            staged
                .iter_range("default", b"", None, d)
                .unwrap()
                .map(|kv| {
                    let (k, v) = kv.unwrap();
                    (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap())
                })
                .collect::<Vec<_>>()
        };
        let forward = vec![
            ("a".to_owned(), "stored".to_owned()),
            ("b".to_owned(), "pending".to_owned()),
            ("e".to_owned(), "pending".to_owned()),
        ];
        assert_eq!(keys(Direction::Forward), forward);
        let mut backward = forward.clone();
        backward.reverse();
        assert_eq!(keys(Direction::Backward), backward);
        let bounded: Vec<_> = staged
            .iter_range("default", b"b", Some(b"e"), Direction::Forward)
            .unwrap()
            .map(|kv| kv.unwrap().0)
            .collect();
        assert_eq!(bounded, vec![b"b".to_vec()]);
        assert!(staged.column_families().unwrap().contains(&"other".to_owned()));

        let mut next = WriteBatch::new();
        next.put("default", b"z", b"next");
        staged.write(&next).unwrap();
        assert_eq!(inner.get("default", b"z").unwrap(), None, "set aside, not written");
        assert_eq!(staged.take_captured().map(|b| b.len()), Some(1));
    }
}
