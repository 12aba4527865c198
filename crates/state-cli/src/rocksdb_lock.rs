//! [`RocksDbLock`]: RocksDB's lock on a partition, taken by statectl
//! before RocksDB opens it.
//!
//! RocksDB rotates the partition's info log (`LOG` becomes `LOG.old.<ts>`)
//! before it takes its lock, so an open that then fails with
//! `PartitionLocked` has already touched the running application's files.
//! Taking the same lock first (an `fcntl` write lock on the whole `LOCK`
//! file, as RocksDB takes it) fails before anything is touched.
//!
//! `fcntl` locks belong to the process: RocksDB, opening the partition in
//! this process afterwards, gets the lock too, and closing any descriptor
//! of the file releases it for both. So the lock must be dropped after the
//! database is closed, never before (`partition_dir` keeps them in
//! that order).

use std::fs::{File, OpenOptions};
use std::path::Path;

use state_core::Error;

use crate::error::{CliError, Result};

/// The `fcntl` lock on `<partition>/LOCK`, held until dropped.
#[derive(Debug)]
pub(crate) struct RocksDbLock {
    /// Closing it releases the lock.
    _file: File,
}

impl RocksDbLock {
    /// Takes the lock of the RocksDB partition at `dir` (which must
    /// exist), creating `LOCK` as RocksDB would; a lock held by another
    /// process is [`Error::PartitionLocked`] at once.
    pub fn acquire(dir: &Path) -> Result<RocksDbLock> {
        let path = dir.join("LOCK");
        let io = |source| CliError::Io {
            what: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        lock(&file).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::PermissionDenied => {
                CliError::Store(Error::PartitionLocked {
                    path: dir.to_owned(),
                    attempts: 1,
                })
            }
            _ => io(e),
        })?;
        Ok(RocksDbLock { _file: file })
    }
}

/// A non-blocking `fcntl` write lock on the whole file (`F_SETLK`,
/// `F_WRLCK`, from 0 to the end), RocksDB's `PosixEnv::LockFile`.
#[cfg(unix)]
fn lock(file: &File) -> std::io::Result<()> {
    use rustix::fs::{fcntl_lock, FlockOperation};
    fcntl_lock(file, FlockOperation::NonBlockingLockExclusive).map_err(std::io::Error::from)
}

/// Elsewhere RocksDB's own lock is all there is.
#[cfg(not(unix))]
fn lock(_file: &File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use state_rocksdb::{RocksDbOptions, RocksDbPartition};

    use super::*;

    #[test]
    fn rocksdb_opens_under_our_lock_and_a_second_taker_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RocksDbLock::acquire(dir.path()).unwrap();
        // RocksDB in the same process shares the process's lock.
        let p = RocksDbPartition::open(dir.path(), &RocksDbOptions::default()).unwrap();
        drop(p);
        drop(lock);
        // fcntl locks do not conflict within a process: another process is
        // needed to see a refusal (tests/cli.rs does it with statectl).
        assert!(RocksDbLock::acquire(dir.path()).is_ok());
    }
}
