//! Damaged files, told apart from other backend failures wherever a
//! backend reports them, and found on purpose where a command claims a
//! partition is healthy (every block read, so that its checksum is
//! verified).

use std::path::Path;

use state_core::{Direction, Error, StorePartition};

use crate::error::CliError;

/// Whether `error` or one of its causes reports damaged files: a RocksDB
/// `Corruption` status (a block checksum mismatch, a bad block or file),
/// or fjall's checksum, decompression, format and recovery errors.
pub(crate) fn is_corruption(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(e) = e.downcast_ref::<rocksdb::Error>() {
            return e.kind() == rocksdb::ErrorKind::Corruption;
        }
        if let Some(e) = e.downcast_ref::<fjall::Error>() {
            return state_fjall::is_corruption(e);
        }
        if let Some(e) = e.downcast_ref::<fjall::LsmError>() {
            return state_fjall::is_lsm_corruption(e);
        }
        cause = e.source();
    }
    false
}

impl CliError {
    /// This error as [`Error::PartitionCorrupt`] of the partition at
    /// `path` when it is a backend error that reports damaged files (as
    /// docs/operations.md promises for checksum errors); otherwise as it
    /// is.
    pub(crate) fn corrupt_at(self, path: &Path) -> CliError {
        match self {
            CliError::Store(e) => CliError::Store(store_corrupt_at(e, path)),
            CliError::Changelog(state_changelog::ChangelogError::State(e)) => {
                CliError::Store(store_corrupt_at(e, path))
            }
            e => e,
        }
    }
}

fn store_corrupt_at(e: Error, path: &Path) -> Error {
    match e {
        Error::Backend {
            backend, ref source, ..
        } if is_corruption(source.as_ref()) => Error::PartitionCorrupt {
            backend,
            path: path.to_owned(),
            reason: e.to_string(),
        },
        e => e,
    }
}

/// Reads every key and value of every column family of `partition`, so
/// that the backend verifies the checksum of every block that holds live
/// data; returns the number of keys read. Damaged blocks are the backend's
/// error (see [`CliError::corrupt_at`]).
pub(crate) fn read_everything(partition: &dyn StorePartition) -> Result<u64, Error> {
    let mut keys = 0;
    for name in partition.column_families()? {
        for item in partition.iter_range(&name, b"", None, Direction::Forward)? {
            item?;
            keys += 1;
        }
    }
    Ok(keys)
}
