//! A full disk under the manager: raising [`ManagerError::DiskFull`] over
//! an error with the backend's [`state_core::Error::DiskFull`] below it
//! (found by [`crate::error::disk_full_cause`]).

use std::time::Duration;

use state_core::TopicPartition;

use crate::error::{disk_full_cause, ManagerError};

/// How often the manager tries again what a full disk refused (reopening
/// paused partitions, flushing write-behind caches): a disk stays full
/// until someone frees space, and each try costs a failed write and a log
/// line.
pub(crate) const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// `e` as a [`ManagerError::DiskFull`] naming the source partitions paused
/// until they are reloaded, if a full disk caused it; `e` unchanged
/// otherwise.
pub(crate) fn raise(e: ManagerError, partitions: Vec<TopicPartition>) -> ManagerError {
    if matches!(e, ManagerError::DiskFull { .. }) {
        return e;
    }
    let Some(state_core::Error::DiskFull {
        path,
        needed_bytes,
        operation,
        ..
    }) = disk_full_cause(&e)
    else {
        return e;
    };
    let (dir, needed_bytes, operation) = (path.clone(), *needed_bytes, *operation);
    crate::metrics::disk_full(operation);
    tracing::error!(
        dir = %dir.display(),
        needed_bytes,
        operation,
        paused = ?partitions,
        "disk full: local state could not be written; nothing more is committed for it until space is freed"
    );
    ManagerError::DiskFull {
        dir,
        needed_bytes,
        operation,
        partitions,
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use state_changelog::ChangelogError;
    use state_txn::TxnError;

    use super::*;
    use crate::error::CheckpointError;
    use crate::stage::CheckpointStage;

    fn full() -> state_core::Error {
        state_core::Error::storage(
            "rocksdb",
            "writing a batch",
            Path::new("/state/g/counts/input/2"),
            "IO error: No space left on device: While appending to file: /state/g/counts/input/2/000009.log",
        )
    }

    #[test]
    fn a_full_disk_under_a_failed_local_flush_becomes_disk_full() {
        let flush = ManagerError::CheckpointFailed {
            stage: CheckpointStage::Flushed,
            cause: Box::new(CheckpointError::Transaction {
                store: "input/counts".into(),
                partition: 2,
                source: TxnError::Core(full()),
            }),
        };
        assert!(flush.is_disk_full());
        let err = raise(flush, vec![TopicPartition::new("input", 2)]);
        let ManagerError::DiskFull { dir, operation, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(dir, Path::new("/state/g/counts/input/2"));
        assert_eq!(*operation, "writing a batch");
        let msg = err.to_string();
        assert!(
            msg.contains("/state/g/counts/input/2")
                && msg.contains("input[2]")
                && msg.contains("Free space")
                && msg.contains("retries"),
            "{msg}"
        );
        assert!(err.disk_full_cause().is_some_and(state_core::Error::is_disk_full));
        // Raising twice keeps one layer.
        let again = raise(err, Vec::new());
        assert!(
            matches!(&again, ManagerError::DiskFull { source, .. } if !matches!(**source, ManagerError::DiskFull { .. }))
        );
    }

    #[test]
    fn a_full_disk_under_a_restore_is_found_through_transparent_wrappers() {
        let restore = ManagerError::Changelog(ChangelogError::State(full()));
        assert!(restore.is_disk_full());
        let raised = raise(restore, Vec::new());
        assert!(matches!(raised, ManagerError::DiskFull { .. }));
        assert!(raised.is_disk_full(), "found below the box");
        let reopen = raise(ManagerError::State(full()), Vec::new());
        assert!(reopen.disk_full_cause().is_some_and(state_core::Error::is_disk_full));
        let other = ManagerError::State(state_core::Error::backend("rocksdb", "writing a batch", "I/O error"));
        assert!(!other.is_disk_full());
        assert!(matches!(raise(other, Vec::new()), ManagerError::State(_)));
    }
}
