//! [`SortedBatch`]: a batch's final operations in key order, for backends
//! that load a large batch as sorted table files instead of inserting it
//! key by key (`StorePartition::load_bulk`).

use crate::batch::{BatchOp, WriteBatch};

/// A batch's operations sorted by column family and key; of several
/// operations on one key the batch's last one is kept, so loading them in
/// this order gives the state that applying the batch in order gives.
pub struct SortedBatch<'b> {
    ops: Vec<BatchOp<'b>>,
}

impl<'b> SortedBatch<'b> {
    /// Below this many operations a backend loads a batch through its
    /// usual write path instead: a table file (or more, one per column
    /// family) per small batch would only give compaction work.
    pub const MIN_OPERATIONS: usize = 1024;

    /// Sorts `batch`'s operations (one allocation, the operations borrow
    /// the batch's bytes).
    pub fn new(batch: &'b WriteBatch) -> Self {
        let mut ops: Vec<BatchOp<'b>> = batch.iter().collect();
        // Stable: operations on one key keep the batch's order, so the last
        // of each run of equal keys is the one that wins.
        ops.sort_by(|a, b| a.cf.cmp(b.cf).then_with(|| a.key.cmp(b.key)));
        let mut last_wins: Vec<BatchOp<'b>> = Vec::with_capacity(ops.len());
        for op in ops {
            match last_wins.last_mut() {
                Some(prev) if prev.cf == op.cf && prev.key == op.key => *prev = op,
                _ => last_wins.push(op),
            }
        }
        SortedBatch { ops: last_wins }
    }

    /// The operations of each column family, in key order (strictly
    /// ascending: one key once).
    pub fn by_column_family(&self) -> impl Iterator<Item = (&'b str, &[BatchOp<'b>])> + '_ {
        self.ops.chunk_by(|a, b| a.cf == b.cf).map(|run| (run[0].cf, run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_by_column_family_and_key_and_keeps_the_last_operation_of_a_key() {
        let mut b = WriteBatch::new();
        b.put("b", b"k2", b"1");
        b.put("a", b"k9", b"1");
        b.put("b", b"k1", b"1");
        b.delete("b", b"k2");
        b.put("a", b"k9", b"2");
        b.put("b", b"k1", b"3");
        let sorted = SortedBatch::new(&b);
        type Run<'a> = (&'a str, Vec<(&'a [u8], Option<&'a [u8]>)>);
        let runs: Vec<Run<'_>> = sorted
            .by_column_family()
            .map(|(cf, ops)| (cf, ops.iter().map(|o| (o.key, o.value)).collect()))
            .collect();
        assert_eq!(
            runs,
            vec![
                ("a", vec![(&b"k9"[..], Some(&b"2"[..]))]),
                ("b", vec![(&b"k1"[..], Some(&b"3"[..])), (&b"k2"[..], None)]),
            ]
        );
    }
}
