//! [`TestError`]: what the test cluster and the test driver report.

use std::time::Duration;

use state_changelog::rdkafka::error::KafkaError;
use state_changelog::ChangelogError;
use state_manager::{AppError, ManagerError};

/// A failure of the test cluster or the test driver. Every variant says
/// what the driver was doing, so a failing test reads as a sentence.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestError {
    /// The application failed (its processor, the manager, the consumer).
    /// Boxed, like the next two, so a test's `Result<(), TestError>` stays
    /// small.
    #[error(transparent)]
    App(Box<AppError>),

    /// The state manager failed.
    #[error(transparent)]
    Manager(Box<ManagerError>),

    /// Topic metadata or creation failed.
    #[error(transparent)]
    Changelog(Box<ChangelogError>),

    /// A Kafka client call of the test cluster or driver failed.
    #[error("Kafka {operation} failed: {source}")]
    Kafka {
        /// What was being done.
        operation: &'static str,
        /// The client's error.
        #[source]
        source: KafkaError,
    },

    /// The application did not become idle in time.
    #[error(
        "the application was not idle after {waited:?}: {status}. A processor that never finishes a record, \
         input on a topic the application does not read, or a restore that cannot finish keeps it busy"
    )]
    NotIdle {
        /// How long the driver waited ([`crate::testing::TestDriverBuilder::idle_timeout`]).
        waited: Duration,
        /// What was still going on.
        status: String,
    },

    /// Something the driver waits for (records to process, outputs to
    /// arrive) did not happen in time.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// What the driver waited for.
        what: String,
        /// How long.
        waited: Duration,
    },

    /// A topic the test named is not one the application declared, or
    /// does not exist on the cluster.
    #[error("unknown topic {topic:?}: {problem}")]
    UnknownTopic {
        /// The topic.
        topic: String,
        /// Why it is unknown (not a source/output of the topology, not on the cluster).
        problem: &'static str,
    },

    /// A record was piped with a timestamp that is not positive.
    #[error(
        "timestamp {timestamp} is not a positive number of milliseconds since the epoch (librdkafka would \
         stamp the record with the current time)"
    )]
    InvalidTimestamp {
        /// The timestamp given.
        timestamp: i64,
    },

    /// A topic exists with another partition count than asked for.
    #[error("topic {topic:?} exists with {actual} partitions, not {expected}")]
    PartitionCount {
        /// The topic.
        topic: String,
        /// Partitions asked for.
        expected: u32,
        /// Partitions it has.
        actual: u32,
    },

    /// The state directory could not be made or removed.
    #[error("state directory {path}: {source}")]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl From<AppError> for TestError {
    fn from(e: AppError) -> Self {
        TestError::App(Box::new(e))
    }
}

impl From<ManagerError> for TestError {
    fn from(e: ManagerError) -> Self {
        TestError::Manager(Box::new(e))
    }
}

impl From<ChangelogError> for TestError {
    fn from(e: ChangelogError) -> Self {
        TestError::Changelog(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    /// Under clippy's `result_large_err` bound, so tests returning
    /// `Result<(), TestError>` pass `clippy -D warnings`.
    #[test]
    fn a_test_error_is_small() {
        let size = std::mem::size_of::<super::TestError>();
        assert!(size < 128, "{size}");
    }
}
