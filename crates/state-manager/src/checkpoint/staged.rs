//! [`StagedPartition`]: a store partition as the transactions of a
//! pipelined checkpoint see it. Their local write is set aside (a
//! [`PendingWrite`]) instead of reaching the partition, and the
//! transactions of the next checkpoint read through the write set aside by
//! the one still in flight.
//!
//! Why: under at-least-once, local state must never hold a checkpoint
//! whose source offsets are not committed, or a restart would count its
//! records twice (restores skip changelog records of uncommitted
//! checkpoints, local state cannot). So a checkpoint's local write waits
//! for its delivery and offset commit; the records processed meanwhile
//! must still see its changes. Under exactly-once the write follows the
//! transaction's commit on a helper thread (see `writer`), and the records
//! processed meanwhile read through it the same way.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use state_core::{BatchOp, Direction, KeyValue, KvIter, PartitionStats, ReadView, Result, StorePartition, WriteBatch};

/// A key and its value after a write set aside (`None`: deleted).
type Change = (Vec<u8>, Option<Vec<u8>>);

/// A checkpoint's local write of one store partition, set aside until it
/// may land (pipelined at-least-once: its changelog records delivered and
/// its source offsets committed; exactly-once: its transaction committed
/// and the write done behind the poll loop), with a view of what it
/// changes for the reads of the next checkpoint.
///
/// The view is an index into the batch itself, not a copy of its changes:
/// per column family, the positions of its operations by key, one per key
/// (the last, which wins in the batch). A batch built for RocksDB is in
/// key order per column family already, so the index is built in one
/// pass; other batches are sorted once.
pub(super) struct PendingWrite {
    batch: WriteBatch,
    /// Column family -> positions in `batch` of its operations, by key.
    index: Vec<(String, Vec<usize>)>,
}

impl PendingWrite {
    /// The write `batch` does (a later operation on a key wins, as in the
    /// batch).
    pub(super) fn new(batch: WriteBatch) -> Self {
        let mut index: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, op) in batch.iter().enumerate() {
            match index.iter_mut().find(|(cf, _)| cf == op.cf) {
                Some((_, ops)) => ops.push(i),
                None => index.push((op.cf.to_owned(), vec![i])),
            }
        }
        let key = |i: usize| batch.get(i).map_or(&[][..], |op| op.key);
        for (_, ops) in &mut index {
            if ops.windows(2).all(|w| key(w[0]) < key(w[1])) {
                continue;
            }
            // Stable: operations on one key stay in batch order, and the
            // last of them is kept.
            ops.sort_by(|&a, &b| key(a).cmp(key(b)));
            ops.dedup_by(|later, kept| {
                let same = key(*later) == key(*kept);
                if same {
                    *kept = *later;
                }
                same
            });
        }
        PendingWrite { batch, index }
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

    /// The batch as it is to be written.
    pub(super) fn batch(&self) -> &WriteBatch {
        &self.batch
    }

    /// The positions of `cf`'s operations, by key.
    fn ops(&self, cf: &str) -> &[usize] {
        self.index
            .iter()
            .find(|(name, _)| name == cf)
            .map_or(&[][..], |(_, ops)| ops.as_slice())
    }

    fn op(&self, i: usize) -> Option<BatchOp<'_>> {
        self.batch.get(i)
    }

    /// `Some(value)` if the write sets (`Some`) or deletes (`None`) `key`.
    fn get(&self, cf: &str, key: &[u8]) -> Option<Option<&[u8]>> {
        let ops = self.ops(cf);
        let at = ops
            .binary_search_by(|&i| self.op(i).map_or(&[][..], |op| op.key).cmp(key))
            .ok()?;
        self.op(ops[at]).map(|op| op.value)
    }

    /// The changes to `cf` in `lower..upper`, in `direction`'s order.
    fn range(&self, cf: &str, lower: &[u8], upper: Option<&[u8]>, direction: Direction) -> Vec<Change> {
        let ops = self.ops(cf);
        let first = ops.partition_point(|&i| self.op(i).is_some_and(|op| op.key < lower));
        let mut out: Vec<Change> = ops[first..]
            .iter()
            .filter_map(|&i| self.op(i))
            .take_while(|op| upper.is_none_or(|u| op.key < u))
            .map(|op| (op.key.to_vec(), op.value.map(<[u8]>::to_vec)))
            .collect();
        if direction == Direction::Backward {
            out.reverse();
        }
        out
    }

    /// The column families the write touches.
    fn column_families(&self) -> impl Iterator<Item = &String> + '_ {
        self.index.iter().map(|(cf, _)| cf)
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
            cfs.extend(b.column_families().cloned());
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

    #[test]
    fn a_write_out_of_key_order_reads_as_its_last_operation_per_key() {
        let mut pending = WriteBatch::new();
        pending.put("default", b"m", b"first");
        pending.put("default", b"c", b"1");
        pending.delete("default", b"x");
        pending.put("default", b"m", b"last");
        pending.put("default", b"a", b"0");
        pending.delete("default", b"c");
        let write = PendingWrite::new(pending);
        assert_eq!(write.get("default", b"m"), Some(Some(&b"last"[..])));
        assert_eq!(write.get("default", b"c"), Some(None), "deleted after its put");
        assert_eq!(write.get("default", b"b"), None);
        assert_eq!(write.get("other", b"m"), None);
        let keys = |lower: &[u8], upper: Option<&[u8]>, d| {
            write
                .range("default", lower, upper, d)
                .into_iter()
                .map(|(k, v)| (String::from_utf8(k).unwrap(), v.map(|v| String::from_utf8(v).unwrap())))
                .collect::<Vec<_>>()
        };
        let all = vec![
            ("a".to_owned(), Some("0".to_owned())),
            ("c".to_owned(), None),
            ("m".to_owned(), Some("last".to_owned())),
            ("x".to_owned(), None),
        ];
        assert_eq!(keys(b"", None, Direction::Forward), all);
        assert_eq!(
            keys(b"b", Some(b"x"), Direction::Backward),
            vec![all[2].clone(), all[1].clone()]
        );
    }

    /// The staged view against a model: the stored state with the pending
    /// write's operations applied in batch order.
    mod model {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::*;

        const CFS: [&str; 2] = ["default", "other"];

        fn key(k: u8) -> Vec<u8> {
            vec![b'k', k]
        }

        type Model = BTreeMap<(usize, Vec<u8>), Vec<u8>>;

        proptest! {
            /// Point reads, existence and every range in both directions
            /// read what the model holds: the pending write's last
            /// operation per key wins over the stored value, its deletes
            /// hide stored keys, and keys it does not touch read as
            /// stored. `in_order` builds the pending batch in key order
            /// with one operation per key, as RocksDB-bound batches are
            /// (the index's one-pass case).
            #[test]
            fn the_staged_view_reads_as_the_stored_state_with_the_pending_write_applied(
                stored in proptest::collection::vec((0usize..2, 0u8..16, 0u8..4), 0..20),
                pending in proptest::collection::vec((0usize..2, 0u8..16, proptest::option::weighted(0.7, 4u8..8)), 0..24),
                in_order in any::<bool>(),
                ranges in proptest::collection::vec((0u8..17, proptest::option::of(0u8..17), any::<bool>()), 1..8),
            ) {
                let inner: Arc<dyn StorePartition> = Arc::new(state_core::MemoryPartition::new());
                let mut model = Model::new();
                let mut batch = WriteBatch::new();
                for &(cf, k, v) in &stored {
                    batch.put(CFS[cf], &key(k), &[v]);
                    model.insert((cf, key(k)), vec![v]);
                }
                if !batch.is_empty() {
                    inner.write(&batch).unwrap();
                }

                let mut ops = pending.clone();
                if in_order {
                    // The last operation per key, in key order.
                    let mut last = BTreeMap::new();
                    for (cf, k, v) in ops {
                        last.insert((cf, k), v);
                    }
                    ops = last.into_iter().map(|((cf, k), v)| (cf, k, v)).collect();
                }
                let mut write = WriteBatch::new();
                for &(cf, k, v) in &ops {
                    write.push(CFS[cf], &key(k), v.map(|v| [v]).as_ref().map(|v| &v[..]));
                    match v {
                        Some(v) => model.insert((cf, key(k)), vec![v]),
                        None => model.remove(&(cf, key(k))),
                    };
                }
                let staged = StagedPartition::new(inner, Some(Arc::new(PendingWrite::new(write))));

                for (cf, name) in CFS.iter().enumerate() {
                    for k in 0u8..17 {
                        let want = model.get(&(cf, key(k))).cloned();
                        prop_assert_eq!(staged.get(name, &key(k)).unwrap(), want.clone());
                        prop_assert_eq!(staged.exists(name, &key(k)).unwrap(), want.is_some());
                    }
                    for &(lower, upper, backward) in &ranges {
                        let (lower, upper) = (key(lower), upper.map(key));
                        let direction = if backward { Direction::Backward } else { Direction::Forward };
                        let got: Vec<KeyValue> = staged
                            .iter_range(name, &lower, upper.as_deref(), direction)
                            .unwrap()
                            .collect::<Result<_>>()
                            .unwrap();
                        let mut want: Vec<KeyValue> = model
                            .iter()
                            .filter(|((c, k), _)| {
                                *c == cf && *k >= lower && upper.as_ref().is_none_or(|u| k < u)
                            })
                            .map(|((_, k), v)| (k.clone(), v.clone()))
                            .collect();
                        if backward {
                            want.reverse();
                        }
                        prop_assert_eq!(got, want);
                    }
                }
            }
        }
    }
}
