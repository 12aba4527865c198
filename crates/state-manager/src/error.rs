//! Errors of the state manager.

/// What can go wrong managing stores, assignments and checkpoints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// A name used as a directory component is empty or could escape the
    /// state directory.
    #[error("invalid {what} {value:?}: it must be non-empty and contain no '/', '\\\\' or '..'")]
    InvalidName {
        /// Which name (group, store, stream).
        what: &'static str,
        /// The value given.
        value: String,
    },

    /// A configuration field has an invalid value.
    #[error("invalid configuration: {field} {problem}")]
    InvalidConfig {
        /// The field, e.g. `commit_interval`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },

    /// A store with this name is already registered for the stream.
    #[error("store {store:?} is already registered for stream {stream:?}")]
    DuplicateStore {
        /// Stream id (source topic).
        stream: String,
        /// Store name.
        store: String,
    },

    /// A store handle was used with a manager other than the one that
    /// registered it.
    #[error(
        "the handle of store {store:?} of stream {stream:?} belongs to another manager; \
         use the handle this manager's register_store returned"
    )]
    ForeignHandle {
        /// Stream id.
        stream: String,
        /// Store name.
        store: String,
    },

    /// The partition of the stream is not assigned to this instance.
    #[error("partition {partition} of stream {stream:?} is not assigned to this instance")]
    NotAssigned {
        /// Stream id.
        stream: String,
        /// Partition.
        partition: u32,
    },

    /// The partition is assigned here but its stores are still restoring
    /// from their changelogs; its records stay paused until they are done.
    #[error(
        "partition {partition} of stream {stream:?} is still restoring its state; \
         its records are paused until then (call maintain() in the poll loop to resume it)"
    )]
    Restoring {
        /// Stream id.
        stream: String,
        /// Partition.
        partition: u32,
    },

    /// A reader asked for a store partition this instance does not own (or
    /// has not restored yet): its state lives on another instance.
    #[error(
        "partition {partition} of store {store:?} (stream {stream:?}) is not owned by this instance \
         (or is still restoring); ask the instance that owns it (partition_for_key says which \
         partition a key is in)"
    )]
    NotOwned {
        /// Stream id.
        stream: String,
        /// Store name.
        store: String,
        /// Partition.
        partition: u32,
    },

    /// `clear_state` was called while partitions are assigned.
    #[error(
        "cannot clear the state directory while partitions are assigned ({assigned} partitions); revoke them first"
    )]
    StillAssigned {
        /// How many store partitions are open.
        assigned: usize,
    },

    /// A Kafka client call failed.
    #[error("Kafka {operation} failed: {source}")]
    Kafka {
        /// What was being done.
        operation: &'static str,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },

    /// The checkpoint failed; nothing of it was applied locally. Under
    /// exactly-once the Kafka transaction was aborted: rewind the consumer to
    /// the committed offsets (or restart) and process again.
    #[error("checkpoint failed ({stage}): {reason}")]
    CheckpointFailed {
        /// Which step failed.
        stage: &'static str,
        /// Why.
        reason: String,
    },

    /// A filesystem operation on the state directory failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },

    /// Changelog production, administration or recovery failed.
    #[error(transparent)]
    Changelog(#[from] state_changelog::ChangelogError),

    /// A transaction failed.
    #[error(transparent)]
    Txn(#[from] state_txn::TxnError),

    /// The state backend failed.
    #[error(transparent)]
    State(#[from] state_core::Error),
}

/// A `Result` whose error is [`ManagerError`].
pub type Result<T, E = ManagerError> = std::result::Result<T, E>;
