//! [`AppError`]: why an [`crate::App`] stopped.

use rdkafka::error::KafkaError;

use super::processor::ProcessError;
use crate::error::ManagerError;

/// What stopped an [`crate::App`] (or failed to start one).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The setup function (the topology) failed.
    #[error("setting up the application failed: {0}")]
    Setup(#[source] ProcessError),

    /// The state manager failed: a checkpoint, a restore, a rebalance
    /// callback, creating topics or the consumer. See
    /// [`ManagerError`] for what to do; after a failed checkpoint, close
    /// the app and restart (its records are processed again).
    #[error(transparent)]
    Manager(#[from] ManagerError),

    /// Polling the consumer returned an error. [`crate::App::run`] logs
    /// and goes on unless it is fatal ([`AppError::is_fatal`]).
    #[error("polling the consumer failed: {source}")]
    Consume {
        /// The consumer's error.
        #[source]
        source: KafkaError,
    },

    /// The processor failed on a record. The current checkpoint was
    /// aborted; a restart processes its records again from the last
    /// committed offsets.
    #[error(
        "processing the record at {topic}[{partition}]@{offset} failed: {source}; the current checkpoint was \
         aborted, and after a restart its records are processed again from the last committed offsets"
    )]
    Process {
        /// The record's topic.
        topic: String,
        /// Its partition.
        partition: u32,
        /// Its offset.
        offset: i64,
        /// The processor's error.
        #[source]
        source: ProcessError,
    },

    /// The app stopped after an earlier error; it processes nothing more.
    #[error(
        "the application stopped after an error and processes nothing more; close it and start a new one \
         (its uncommitted records are processed again)"
    )]
    Stopped,
}

impl AppError {
    /// True if the app cannot go on: anything but a non-fatal consumer
    /// error (librdkafka reports transient broker trouble this way and
    /// recovers by itself) or a full disk ([`ManagerError::DiskFull`]: only
    /// the partitions that could not write stop, and they reload once
    /// there is space).
    pub fn is_fatal(&self) -> bool {
        match self {
            AppError::Consume { source } => matches!(source, KafkaError::MessageConsumptionFatal(_)),
            AppError::Manager(ManagerError::DiskFull { .. }) => false,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_does_not_stop_the_app_but_other_manager_errors_do() {
        let full = state_core::Error::storage(
            "rocksdb",
            "writing a batch",
            std::path::Path::new("/state/g/counts/input/0"),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        let disk_full = AppError::Manager(ManagerError::DiskFull {
            dir: "/state/g/counts/input/0".into(),
            needed_bytes: None,
            operation: "writing a batch",
            partitions: Vec::new(),
            source: Box::new(ManagerError::State(full)),
        });
        assert!(!disk_full.is_fatal(), "{disk_full}");
        let other = AppError::Manager(ManagerError::StillAssigned { assigned: 1 });
        assert!(other.is_fatal());
    }
}
