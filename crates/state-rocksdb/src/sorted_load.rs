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
use state_core::BatchOp;

/// The subdirectory of a partition where table files are built before
/// ingestion moves them into the database. Whatever a crash left there is
/// removed when the partition opens.
pub(crate) const BUILD_DIR: &str = "sorted-load.tmp";

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
