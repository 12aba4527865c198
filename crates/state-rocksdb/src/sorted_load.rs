//! Loading a large batch as sorted table files: what
//! [`RocksDbPartition::load_bulk`](crate::RocksDbPartition) does for a
//! restore into an empty partition.
//!
//! Inserting a restore key by key costs a memtable (skip list) insert per
//! record, about half of a restore's CPU, and then a flush that sorts and
//! writes the same data once more. Sorting a batch once and handing RocksDB
//! finished table files skips both: ingestion gives each file a sequence
//! number newer than everything in the database, so a later file wins over
//! an earlier one as a later write would.

use std::path::Path;

use rocksdb::SstFileWriter;
use state_core::{BatchOp, WriteBatch};

/// The subdirectory of a partition where table files are built before
/// ingestion moves them into the database. Whatever a crash left there is
/// removed when the partition opens.
pub(crate) const BUILD_DIR: &str = "sorted-load.tmp";

/// Below this many operations a batch goes through the memtable: a table
/// file per small batch would only give compaction work.
pub(crate) const MIN_OPERATIONS: usize = 1024;

/// A batch's operations sorted by column family and key; of several
/// operations on one key the batch's last one is kept.
pub(crate) struct SortedBatch<'b> {
    ops: Vec<BatchOp<'b>>,
}

impl<'b> SortedBatch<'b> {
    pub(crate) fn new(batch: &'b WriteBatch) -> Self {
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

    /// The operations of each column family, in key order, one key once.
    pub(crate) fn by_column_family(&self) -> impl Iterator<Item = (&'b str, &[BatchOp<'b>])> + '_ {
        self.ops.chunk_by(|a, b| a.cf == b.cf).map(|run| (run[0].cf, run))
    }
}

/// Writes `ops` (one column family's, sorted, one per key) to a table
/// file at `file` built with the column family's `options`; deletes are
/// written as tombstones, so they hide older values once ingested.
pub(crate) fn write_table(options: &rocksdb::Options, file: &Path, ops: &[BatchOp<'_>]) -> Result<(), rocksdb::Error> {
    let mut writer = SstFileWriter::create(options);
    writer.open(file)?;
    for op in ops {
        match op.value {
            Some(value) => writer.put(op.key, value)?,
            None => writer.delete(op.key)?,
        }
    }
    writer.finish()
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
