//! Errors of the state manager: [`ManagerError`], and [`CheckpointError`],
//! what made a checkpoint fail, keeping the underlying error so a caller
//! can tell a fenced producer ([`ManagerError::is_fenced`]) from a
//! transient failure ([`ManagerError::is_retriable`]).

use std::error::Error as StdError;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use state_changelog::{ChangelogError, FailureKind};
use state_txn::TxnError;

use crate::stage::CheckpointStage;

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

    /// A producer's `partitioner` setting differs from
    /// [`crate::ManagerConfig::partitioner`]: its keyed records would land
    /// where readers do not look for their state.
    #[error(
        "{place} sets partitioner={found:?}, but the manager routes keys with {expected} \
         (ManagerConfig::partitioner): readers would look for keys in the wrong partition. Set \
         ManagerConfig::partitioner to the partitioner the source topics' producers use, or remove the setting"
    )]
    PartitionerMismatch {
        /// The manager's partitioner.
        expected: crate::partitioner::Partitioner,
        /// The `partitioner` value found.
        found: String,
        /// Where it was found.
        place: &'static str,
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
         (or is still restoring); ask the instance that owns it (StateReader::partition_of says which \
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

    /// The checkpoint failed before it reached `stage`; under exactly-once
    /// its Kafka transaction was aborted.
    ///
    /// * Before [`CheckpointStage::Committed`] its source offsets are not
    ///   committed and nothing of it was applied locally: rewind the
    ///   consumer to the committed offsets (or restart) and process its
    ///   records again.
    /// * Before [`CheckpointStage::Flushed`] its offsets (and changelog
    ///   records) are committed but local state is behind them: restart,
    ///   and the partitions restore what is missing from their changelogs.
    ///
    /// [`ManagerError::is_fenced`] and [`ManagerError::is_retriable`] say
    /// whether this process can go on.
    #[error("checkpoint failed while {}: {cause}; {}", step(.stage), advice(.stage, .cause))]
    CheckpointFailed {
        /// The stage the checkpoint did not reach: the step towards it
        /// failed.
        stage: CheckpointStage,
        /// What failed, with the underlying error as its source. Boxed, so
        /// every `Result` of this crate stays small; match on `*cause`.
        #[source]
        cause: Box<CheckpointError>,
    },

    /// A blocking task running a manager call on tokio's blocking pool did
    /// not complete: it panicked or the runtime is shutting down.
    #[cfg(feature = "tokio")]
    #[error(
        "the blocking task running {operation} did not complete ({source}); the manager's state is unknown: \
         restart the application"
    )]
    BlockingTask {
        /// The manager call (`commit`, `maintain`).
        operation: &'static str,
        /// Why the task did not complete.
        #[source]
        source: tokio::task::JoinError,
    },

    /// `AsyncStateManager::close` was given a consumer other tasks still
    /// hold: it would not leave the group when dropped.
    #[cfg(feature = "tokio")]
    #[error(
        "cannot close: {references} references to the consumer are alive; stop the tasks that hold clones of \
         the Arc and pass the last one"
    )]
    ConsumerShared {
        /// References alive, the one passed included.
        references: usize,
    },

    /// A store partition is damaged (corrupt files, or a stored changelog
    /// offset past the changelog's end) and the
    /// [`crate::CorruptionPolicy::Rebuild`] policy cannot rebuild it: its
    /// store has no changelog to rebuild from. Nothing was moved or deleted.
    #[error(
        "partition {partition} of store {store:?} on stream {stream:?} is damaged and cannot be rebuilt \
         automatically because the store has no changelog: {source}. Move {path} aside (the partition \
         then starts empty) or restore it from a backup"
    )]
    CannotRebuild {
        /// Store name.
        store: String,
        /// Stream id (source topic).
        stream: String,
        /// Partition number.
        partition: u32,
        /// The partition directory.
        path: std::path::PathBuf,
        /// What was found wrong with it (boxed: the enum stays small).
        #[source]
        source: Box<state_core::Error>,
    },

    /// The filesystem holding the state directory is full: a local write,
    /// flush or open failed with `ENOSPC` (the backend's
    /// [`state_core::Error::DiskFull`] is in the chain of causes:
    /// [`ManagerError::disk_full_cause`] finds it).
    ///
    /// Nothing is committed for state that could not be written: the
    /// store partitions of `partitions` (whose checkpoint was committed to
    /// Kafka with its changelog records but not written locally, or whose
    /// restore could not write) are closed, their source partitions paused,
    /// and every [`maintain`](crate::StateStoreManager::maintain) retries
    /// (at most once a second) to reopen them and reload them from their
    /// changelogs; they resume at their committed offsets once reloaded. A
    /// write-behind cache that could not be written keeps its changes and
    /// retries. So once space is freed the application goes on calling
    /// `maintain` and `commit` and loses or doubles nothing.
    #[error(
        "no space left on the filesystem holding {dir}{}: {operation} failed. {}Free space on that filesystem \
         (or grow it) and keep running the poll loop: maintain() retries every second and nothing committed is \
         lost or counted twice",
        needed(.needed_bytes), paused(.partitions)
    )]
    DiskFull {
        /// The partition directory whose write failed.
        dir: std::path::PathBuf,
        /// How many more bytes were needed, when the backend says.
        needed_bytes: Option<u64>,
        /// What failed (the backend's operation: `writing a batch`, ...).
        operation: &'static str,
        /// Source partitions paused until their state is reloaded.
        partitions: Vec<state_core::TopicPartition>,
        /// The failure, with the backend's [`state_core::Error::DiskFull`]
        /// below it (boxed: the enum stays small).
        #[source]
        source: Box<ManagerError>,
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

    /// A window operator failed to process a record (its transaction is
    /// then failed: the checkpoint must be aborted).
    #[cfg(feature = "windows")]
    #[error(transparent)]
    Window(#[from] state_windows::WindowError),
}

/// A `Result` whose error is [`ManagerError`].
pub type Result<T, E = ManagerError> = std::result::Result<T, E>;

/// What made a checkpoint fail ([`ManagerError::CheckpointFailed`]); its
/// source is the underlying error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The transaction of a store partition failed to prepare (its
    /// changelog records) or to flush locally.
    #[error("the transaction of {store}[{partition}] failed: {source}")]
    Transaction {
        /// The store, as `stream/store`.
        store: String,
        /// The store partition.
        partition: u32,
        /// The transaction's error (a local write, or a changelog record the
        /// producer refused).
        #[source]
        source: TxnError,
    },

    /// The producer did not deliver every changelog and output record.
    #[error("{source}")]
    Changelog {
        /// The producer's error.
        #[source]
        source: ChangelogError,
    },

    /// A Kafka call failed: committing the source offsets, adding them to
    /// the transaction, committing the transaction.
    #[error("{operation} failed: {source}")]
    Kafka {
        /// What was being done.
        operation: &'static str,
        /// The client's error.
        #[source]
        source: KafkaError,
    },

    /// The consumer has no group metadata to add the offsets to the Kafka
    /// transaction with.
    #[error(
        "the consumer has no consumer-group metadata to add the offsets to the transaction with; commit with the \
         consumer that is a member of the group (group.id set, subscribed)"
    )]
    NoGroupMetadata,
}

/// ` (it needed N more bytes)` when known, for [`ManagerError::DiskFull`].
fn needed(bytes: &Option<u64>) -> String {
    bytes
        .map(|n| format!(" (it needed {n} more bytes)"))
        .unwrap_or_default()
}

/// Which partitions wait for space, for [`ManagerError::DiskFull`].
fn paused(partitions: &[state_core::TopicPartition]) -> String {
    if partitions.is_empty() {
        return String::new();
    }
    let names: Vec<String> = partitions.iter().map(ToString::to_string).collect();
    format!(
        "Partitions {} are paused: their local state lacks committed changes, which they reload from their \
         changelogs once there is space (nothing is committed for them until then). ",
        names.join(", ")
    )
}

/// The step that reaches `stage`, for messages.
fn step(stage: &CheckpointStage) -> &'static str {
    match stage {
        CheckpointStage::Produced => "producing its changelog records",
        CheckpointStage::Committed => "committing its offsets",
        CheckpointStage::Flushed => "flushing local state",
    }
}

/// What to do after a checkpoint failed before `stage` because of `cause`.
fn advice(stage: &CheckpointStage, cause: &CheckpointError) -> &'static str {
    if fenced(cause) {
        return "another instance with the same transactional id (group id and instance_id) has taken over: stop \
                this one, and give every instance its own instance_id";
    }
    match stage {
        CheckpointStage::Produced | CheckpointStage::Committed => {
            "its offsets are not committed: rewind the consumer to the committed offsets (or restart) and process \
             its records again"
        }
        CheckpointStage::Flushed => {
            "its offsets are committed but local state is behind them: restart, so the partitions restore from \
             their changelogs"
        }
    }
}

impl ManagerError {
    /// The Kafka client's error at the root of this one, if any (found
    /// through the chain of causes): what to look at for a code this
    /// crate does not classify.
    pub fn kafka_error(&self) -> Option<&KafkaError> {
        causes(self).find_map(kafka_of)
    }

    /// True if the filesystem holding the state is full
    /// ([`ManagerError::DiskFull`], or an error with a
    /// [`state_core::Error::DiskFull`] below it): free space and call
    /// again.
    pub fn is_disk_full(&self) -> bool {
        self.disk_full_cause().is_some()
    }

    /// The backend's [`state_core::Error::DiskFull`] at the root of this
    /// error, if any (found through the chain of causes, transparent
    /// wrappers included): its `path`, `operation` and `needed_bytes`.
    pub fn disk_full_cause(&self) -> Option<&state_core::Error> {
        disk_full_cause(self)
    }

    /// The backend's [`state_core::Error::PartitionCorrupt`] at the root of
    /// this error, if any (through the chain of causes, transparent
    /// wrappers included): a damaged file of the partition at its `path`.
    /// Under [`crate::CorruptionPolicy::Rebuild`] the manager rebuilds such
    /// a partition itself; this error reaches the caller under `Fail`.
    pub fn corruption_cause(&self) -> Option<&state_core::Error> {
        causes(self)
            .filter_map(as_state)
            .find(|s| matches!(s, state_core::Error::PartitionCorrupt { .. }))
    }

    /// True if the producer was fenced: another instance started with the
    /// same transactional id (`<group_id>-<instance_id>`), so this one is a
    /// zombie and must stop (its Kafka transaction can never commit). Under
    /// exactly-once, two instances must never share an `instance_id`.
    pub fn is_fenced(&self) -> bool {
        fenced(self)
    }

    /// True if the failure is transient (a timeout producing or delivering
    /// records, an unreachable or busy broker or coordinator, a rebalance in
    /// progress, an abortable transaction error): after a failed
    /// checkpoint, rewinding to the committed offsets and processing again
    /// in this process is expected to succeed. False for a fenced or fatal
    /// producer, a Kafka transaction whose commit timed out (librdkafka goes
    /// on committing it, so its outcome is unknown until a restart settles
    /// it), refused credentials, local storage failures and everything
    /// else, which need a restart or an operator.
    pub fn is_retriable(&self) -> bool {
        if self.is_fenced() {
            return false;
        }
        match self {
            ManagerError::CheckpointFailed { cause, .. } => cause.is_retriable(),
            ManagerError::Kafka { source, .. } => kafka_retriable(source),
            ManagerError::Changelog(e) => changelog_retriable(e),
            _ => false,
        }
    }
}

impl CheckpointError {
    /// See [`ManagerError::is_retriable`].
    pub fn is_retriable(&self) -> bool {
        match self {
            CheckpointError::Transaction { source, .. } => match source {
                // A changelog record the producer refused.
                TxnError::Core(state_core::Error::Changelog(cause)) => {
                    cause.downcast_ref::<ChangelogError>().is_some_and(changelog_retriable)
                }
                _ => false,
            },
            CheckpointError::Changelog { source } => changelog_retriable(source),
            CheckpointError::Kafka { source, .. } => kafka_retriable(source),
            CheckpointError::NoGroupMetadata => false,
        }
    }
}

/// `e` and its causes, outermost first.
fn causes<'a>(e: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |e: &&'a (dyn StdError + 'static)| (*e).source())
}

/// The backend error `e` is or transparently wraps, if any.
fn as_state<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a state_core::Error> {
    if let Some(state) = e.downcast_ref::<state_core::Error>() {
        return Some(state);
    }
    if let Some(TxnError::Core(state)) = e.downcast_ref::<TxnError>() {
        return Some(state);
    }
    if let Some(ChangelogError::State(state)) = e.downcast_ref::<ChangelogError>() {
        return Some(state);
    }
    let manager = e
        .downcast_ref::<ManagerError>()
        .or_else(|| e.downcast_ref::<Box<ManagerError>>().map(|b| &**b))?;
    match manager {
        ManagerError::State(state)
        | ManagerError::Txn(TxnError::Core(state))
        | ManagerError::Changelog(ChangelogError::State(state)) => Some(state),
        _ => None,
    }
}

/// The [`state_core::Error::DiskFull`] at the root of `e`, if any: found
/// inside the transparent wrappers (`ManagerError::State`,
/// `TxnError::Core`, `ChangelogError::State`), whose `source()` skips the
/// wrapped error itself, and through boxed manager errors (the source of
/// [`ManagerError::DiskFull`]).
pub(crate) fn disk_full_cause<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a state_core::Error> {
    causes(e).filter_map(as_state).find(|s| s.is_disk_full())
}

/// `e` as the Kafka client's error, if it is one (alone or boxed).
fn kafka_of<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a KafkaError> {
    e.downcast_ref::<KafkaError>()
        .or_else(|| e.downcast_ref::<Box<KafkaError>>().map(|b| &**b))
}

/// True if `e` or one of its causes says the producer was fenced.
fn fenced(e: &(dyn StdError + 'static)) -> bool {
    causes(e).filter_map(kafka_of).any(is_fencing)
}

/// True if `e` says the producer was fenced by a newer one.
fn is_fencing(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch)
    )
}

/// True if `e` is transient (see [`ManagerError::is_retriable`]).
fn kafka_retriable(e: &KafkaError) -> bool {
    if is_fencing(e) {
        return false;
    }
    if let KafkaError::Transaction(t) = e {
        // Abortable: the failed checkpoint's abort clears it and the next
        // transaction starts afresh. A call librdkafka calls retriable (a
        // commit that timed out) goes on in the background, so the
        // checkpoint's outcome is unknown until a restart settles it.
        return !t.is_fatal() && t.txn_requires_abort();
    }
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::TimedOutQueue
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::NotEnoughReplicas
                | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
                | RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::ConcurrentTransactions
                | RDKafkaErrorCode::QueueFull
        )
    )
}

/// True if `e` is transient: timeouts and connection failures, unless the
/// broker refused the TLS handshake or the credentials (which waiting does
/// not fix).
fn changelog_retriable(e: &ChangelogError) -> bool {
    if matches!(
        e.broker_failure().map(|f| f.kind),
        Some(FailureKind::Tls | FailureKind::Authentication)
    ) {
        return false;
    }
    match e {
        ChangelogError::FlushTimeout { .. } | ChangelogError::Stalled { .. } => true,
        ChangelogError::Delivery { source, .. } => source.as_ref().is_some_and(kafka_retriable),
        ChangelogError::Produce { source, .. } => kafka_retriable(source),
        ChangelogError::Kafka { source, .. } | ChangelogError::Broker { source, .. } => kafka_retriable(source),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use state_changelog::BrokerFailure;

    use super::*;

    fn checkpoint(stage: CheckpointStage, cause: CheckpointError) -> ManagerError {
        ManagerError::CheckpointFailed {
            stage,
            cause: Box::new(cause),
        }
    }

    fn refused_record(code: RDKafkaErrorCode) -> TxnError {
        TxnError::Core(state_core::Error::Changelog(Box::new(ChangelogError::Produce {
            topic: "changelog__g--clicks--counts".into(),
            partition: 0,
            source: Box::new(KafkaError::MessageProduction(code)),
        })))
    }

    #[test]
    fn a_rebalance_during_the_offset_commit_is_retriable() {
        let err = checkpoint(
            CheckpointStage::Committed,
            CheckpointError::Kafka {
                operation: "committing the source offsets",
                source: KafkaError::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress),
            },
        );
        assert!(err.is_retriable() && !err.is_fenced(), "{err}");
        assert_eq!(
            err.kafka_error().and_then(KafkaError::rdkafka_error_code),
            Some(RDKafkaErrorCode::RebalanceInProgress)
        );
        assert!(err.source().is_some_and(|s| s.is::<Box<CheckpointError>>()));
        let msg = err.to_string();
        assert!(
            msg.starts_with("checkpoint failed while committing its offsets: committing the source offsets failed")
                && msg.contains("rewind the consumer"),
            "{msg}"
        );
    }

    #[test]
    fn a_fenced_producer_is_found_below_the_transaction_and_is_not_retriable() {
        for code in [
            RDKafkaErrorCode::Fenced,
            RDKafkaErrorCode::ProducerFenced,
            RDKafkaErrorCode::InvalidProducerEpoch,
        ] {
            let err = checkpoint(
                CheckpointStage::Produced,
                CheckpointError::Transaction {
                    store: "clicks/counts".into(),
                    partition: 0,
                    source: refused_record(code),
                },
            );
            assert!(err.is_fenced() && !err.is_retriable(), "{code:?}: {err}");
            assert_eq!(err.kafka_error().and_then(KafkaError::rdkafka_error_code), Some(code));
        }
        let timed_out = checkpoint(
            CheckpointStage::Produced,
            CheckpointError::Transaction {
                store: "clicks/counts".into(),
                partition: 0,
                source: refused_record(RDKafkaErrorCode::MessageTimedOut),
            },
        );
        assert!(!timed_out.is_fenced() && timed_out.is_retriable(), "{timed_out}");
    }

    #[test]
    fn undelivered_records_keep_the_clients_error() {
        let delivery = |code| {
            checkpoint(
                CheckpointStage::Produced,
                CheckpointError::Changelog {
                    source: ChangelogError::Delivery {
                        failed: 1,
                        first: "changelog[0]: timed out".into(),
                        source: Some(KafkaError::MessageProduction(code)),
                    },
                },
            )
        };
        let timed_out = delivery(RDKafkaErrorCode::MessageTimedOut);
        assert!(timed_out.is_retriable() && !timed_out.is_fenced(), "{timed_out}");
        let fenced = delivery(RDKafkaErrorCode::InvalidProducerEpoch);
        assert!(fenced.is_fenced() && !fenced.is_retriable(), "{fenced}");
    }

    #[test]
    fn a_flush_timeout_is_retriable_unless_the_broker_refused_the_handshake() {
        let timeout = |kind: Option<FailureKind>| {
            checkpoint(
                CheckpointStage::Produced,
                CheckpointError::Changelog {
                    source: ChangelogError::FlushTimeout {
                        timeout_ms: 30_000,
                        in_flight: 3,
                        last_broker_failure: kind.map(|kind| {
                            Box::new(BrokerFailure {
                                broker: "ssl://broker:9093/1".into(),
                                kind,
                                reason: "handshake failed".into(),
                            })
                        }),
                    },
                },
            )
        };
        assert!(timeout(None).is_retriable());
        assert!(timeout(Some(FailureKind::Connection)).is_retriable());
        assert!(!timeout(Some(FailureKind::Tls)).is_retriable());
        assert!(!timeout(Some(FailureKind::Authentication)).is_retriable());
    }

    /// Issue 25, item 5: a fenced producer, a broker timeout, a full disk
    /// and a corrupt file are told apart in code, each by one question.
    #[test]
    fn a_fenced_producer_a_broker_timeout_a_full_disk_and_a_corrupt_file_are_told_apart() {
        let in_txn = |stage, source| {
            checkpoint(
                stage,
                CheckpointError::Transaction {
                    store: "clicks/counts".into(),
                    partition: 1,
                    source,
                },
            )
        };
        let fenced = in_txn(
            CheckpointStage::Produced,
            refused_record(RDKafkaErrorCode::ProducerFenced),
        );
        let timeout = in_txn(
            CheckpointStage::Produced,
            refused_record(RDKafkaErrorCode::MessageTimedOut),
        );
        let full = in_txn(
            CheckpointStage::Flushed,
            TxnError::Core(state_core::Error::storage(
                "rocksdb",
                "writing a batch",
                std::path::Path::new("/state/clicks/counts/1"),
                std::io::Error::from_raw_os_error(28),
            )),
        );
        let corrupt = ManagerError::State(state_core::Error::PartitionCorrupt {
            backend: "rocksdb",
            path: "/state/clicks/counts/1".into(),
            reason: "reading a key: Corruption: block checksum mismatch".into(),
        });
        let answers = |e: &ManagerError| {
            (
                e.is_fenced(),
                e.is_retriable(),
                e.is_disk_full(),
                e.corruption_cause().is_some(),
            )
        };
        assert_eq!(answers(&fenced), (true, false, false, false), "{fenced}");
        assert_eq!(answers(&timeout), (false, true, false, false), "{timeout}");
        assert_eq!(answers(&full), (false, false, true, false), "{full}");
        assert_eq!(answers(&corrupt), (false, false, false, true), "{corrupt}");
        let path = |e: &state_core::Error| match e {
            state_core::Error::DiskFull { path, .. } | state_core::Error::PartitionCorrupt { path, .. } => {
                Some(path.clone())
            }
            _ => None,
        };
        assert_eq!(
            full.disk_full_cause().and_then(path),
            Some(std::path::PathBuf::from("/state/clicks/counts/1"))
        );
        assert_eq!(
            corrupt.corruption_cause().and_then(path),
            Some(std::path::PathBuf::from("/state/clicks/counts/1"))
        );
    }

    #[test]
    fn a_failed_local_flush_is_neither_and_says_to_restart() {
        let err = checkpoint(
            CheckpointStage::Flushed,
            CheckpointError::Transaction {
                store: "clicks/counts".into(),
                partition: 2,
                source: TxnError::Core(state_core::Error::backend("rocksdb", "writing a batch", "disk full")),
            },
        );
        assert!(!err.is_retriable() && !err.is_fenced() && err.kafka_error().is_none());
        let msg = err.to_string();
        assert!(
            msg.contains("flushing local state") && msg.contains("clicks/counts[2]") && msg.contains("restart"),
            "{msg}"
        );
        let txn = causes(&err).find_map(|e| e.downcast_ref::<TxnError>());
        assert!(
            matches!(txn, Some(TxnError::Core(state_core::Error::Backend { .. }))),
            "the backend's error is kept"
        );
        assert_eq!(
            causes(&err).last().map(ToString::to_string).as_deref(),
            Some("disk full")
        );
    }
}
