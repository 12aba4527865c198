//! Telling a full disk apart from other storage failures.
//!
//! Engines report a full filesystem in their own ways: an `io::Error` with
//! `ENOSPC` (fjall, the standard library), or a status message (RocksDB's
//! `IO error: No space left on device: While appending to file ...`, also
//! repeated by every write once its background error has made the database
//! read-only). Backends pass their errors through [`Error::storage`] so a
//! full disk becomes [`Error::DiskFull`], which the layers above match on
//! (they stop committing, and reload the partition once space is back).

use std::error::Error as StdError;
use std::path::Path;

use crate::error::{BoxError, Error};

/// `ENOSPC` on Linux and the BSDs.
const ENOSPC: i32 = 28;

/// What the C library and RocksDB say for `ENOSPC`.
const NO_SPACE_MESSAGE: &str = "No space left on device";

/// True if `e`, or any error in its chain of causes, says the filesystem
/// has no space left (`ENOSPC`, `ErrorKind::StorageFull`, or an engine's
/// message quoting `strerror(ENOSPC)`), or is already an
/// [`Error::DiskFull`].
pub fn is_no_space(e: &(dyn StdError + 'static)) -> bool {
    causes(e).any(|e| {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.raw_os_error() == Some(ENOSPC) || io.kind() == std::io::ErrorKind::StorageFull {
                return true;
            }
        }
        matches!(e.downcast_ref::<Error>(), Some(Error::DiskFull { .. })) || e.to_string().contains(NO_SPACE_MESSAGE)
    })
}

impl Error {
    /// The error for a storage call of `backend` on the partition at `path`
    /// that failed with `source` while doing `operation`:
    /// [`Error::DiskFull`] if `source` says the disk is full, an
    /// [`Error::Backend`] about `path` otherwise.
    pub fn storage(backend: &'static str, operation: &'static str, path: &Path, source: impl Into<BoxError>) -> Self {
        let source = source.into();
        if is_no_space(&*source) {
            return Error::DiskFull {
                backend,
                operation,
                path: path.to_owned(),
                needed_bytes: None,
                source,
            };
        }
        Error::backend_on(backend, operation, path.display(), source)
    }

    /// True if this is [`Error::DiskFull`]: the write can be retried once
    /// space is freed.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::DiskFull { .. })
    }
}

/// The [`Error::DiskFull`] in `e` or its chain of causes, if any.
pub fn disk_full_in<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a Error> {
    causes(e)
        .filter_map(|e| e.downcast_ref::<Error>())
        .find(|e| e.is_disk_full())
}

/// `e` and its causes, outermost first.
fn causes<'a>(e: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |e: &&'a (dyn StdError + 'static)| (*e).source())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_becomes_disk_full_and_other_errors_stay_backend_errors() {
        let path = Path::new("/state/g/counts/input/0");
        let io = std::io::Error::from_raw_os_error(ENOSPC);
        let err = Error::storage("fjall", "writing a batch", path, io);
        assert!(err.is_disk_full(), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("/state/g/counts/input/0") && msg.contains("free space") && msg.contains("retried"),
            "{msg}"
        );
        assert!(disk_full_in(&err).is_some());

        // RocksDB's status text.
        let rocks =
            "IO error: No space left on device: While appending to file: /s/000012.log: No space left on device";
        assert!(Error::storage("rocksdb", "writing a batch", path, rocks).is_disk_full());

        let other = Error::storage("rocksdb", "writing a batch", path, "IO error: Permission denied");
        assert!(matches!(other, Error::Backend { .. }), "{other}");
        assert!(disk_full_in(&other).is_none());
    }

    #[test]
    fn a_disk_full_error_is_found_below_other_errors() {
        #[derive(Debug, thiserror::Error)]
        #[error("restore failed")]
        struct Outer(#[source] Error);
        let inner = Error::storage(
            "rocksdb",
            "writing a bulk batch",
            Path::new("/s"),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        let outer = Outer(inner);
        assert!(is_no_space(&outer));
        assert!(disk_full_in(&outer).is_some_and(Error::is_disk_full));
    }
}
