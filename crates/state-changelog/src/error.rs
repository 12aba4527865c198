//! Errors of the changelog layer.

use rdkafka::error::KafkaError;

use std::fmt;
use std::path::PathBuf;

/// A `Result` whose error is [`ChangelogError`].
pub type Result<T, E = ChangelogError> = std::result::Result<T, E>;

/// What can go wrong producing, administering or recovering a changelog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChangelogError {
    /// A changelog record has no `__column_family__` header.
    #[error(
        "changelog record at {topic}[{partition}]@{offset} has no __column_family__ \
         header; the topic was not written by this library or quixstreams — \
         check the topic name, or clear the local state and the topic"
    )]
    MissingColumnFamilyHeader {
        /// Changelog topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Record offset.
        offset: i64,
    },

    /// A changelog record's column family header is not UTF-8, is empty, or
    /// names the local-only `__metadata__` column family.
    #[error(
        "changelog record at {topic}[{partition}]@{offset} has an invalid __column_family__ \
         header (not UTF-8, empty, or __metadata__); the topic holds records not written by a \
         state store — check the topic, or clear the local state and the topic"
    )]
    InvalidColumnFamilyHeader {
        /// Changelog topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Record offset.
        offset: i64,
    },

    /// A changelog record has no key (state keys are never null).
    #[error(
        "changelog record at {topic}[{partition}]@{offset} has a null key; \
         the topic holds records not written by a state store"
    )]
    NullKey {
        /// Changelog topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Record offset.
        offset: i64,
    },

    /// The `__processed_tp_offsets__` header is not a JSON object of offsets.
    #[error(
        "changelog record at {topic}[{partition}]@{offset} has an invalid __processed_tp_offsets__ header: {reason}"
    )]
    InvalidProcessedOffsets {
        /// Changelog topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Record offset.
        offset: i64,
        /// The parse error.
        reason: String,
    },

    /// The stored changelog offset is at or beyond the changelog's high
    /// watermark: the topic was recreated or truncated.
    #[error(
        "stored changelog offset {stored} of {topic}[{partition}] is at or beyond \
         the high watermark {high_watermark}: the changelog topic was recreated or \
         truncated. Delete the local state of this partition ({path}) so it is \
         rebuilt from the changelog, or restore the topic"
    )]
    InvalidStoredOffset {
        /// Changelog topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset stored in the partition.
        stored: u64,
        /// The changelog's high watermark.
        high_watermark: i64,
        /// The local partition directory (or a description of it).
        path: String,
    },

    /// A record could not be handed to the producer.
    #[error("cannot produce to changelog {topic}[{partition}]: {source}")]
    Produce {
        /// Changelog topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The producer's error (boxed: the enum stays small).
        #[source]
        source: Box<KafkaError>,
    },

    /// Records were handed to the producer but the broker did not take them.
    /// The checkpoint must fail: the changelog misses changes.
    #[error(
        "{failed} changelog record(s) were not delivered (first: {first}); the \
         checkpoint failed and its local changes must not be flushed"
    )]
    Delivery {
        /// How many records failed.
        failed: u64,
        /// The first failure: where, why, and the last broker error if any.
        first: String,
        /// The client's error for the first failed record (a timeout, a
        /// fenced producer, ...).
        #[source]
        source: Option<KafkaError>,
    },

    /// The producer did not deliver everything within the timeout.
    #[error(
        "changelog producer flush did not finish within {timeout_ms} ms ({in_flight} records in flight); \
         {}",
        unreachable_hint(.last_broker_failure)
    )]
    FlushTimeout {
        /// The timeout.
        timeout_ms: u128,
        /// Records still in flight.
        in_flight: i32,
        /// The last broker connection failure librdkafka reported, if any
        /// (a TLS handshake or authentication failure, say).
        last_broker_failure: Option<Box<BrokerFailure>>,
    },

    /// A changelog topic exists with another partition count than its source.
    #[error(
        "changelog topic {topic} has {actual} partitions but its source topic has \
         {expected}; changelog partitions must match source partitions one to one. \
         Delete the changelog topic (and local state) or restore the source's partition count"
    )]
    PartitionCountMismatch {
        /// Changelog topic.
        topic: String,
        /// Partitions of the source topic.
        expected: usize,
        /// Partitions of the changelog topic.
        actual: usize,
    },

    /// A topic was to be created on librdkafka's in-process mock cluster,
    /// which does not create topics through the admin API (librdkafka
    /// would wait for its timeout and fail), and no test cluster
    /// registered a way to create it there
    /// ([`crate::register_mock_cluster`]).
    #[error(
        "cannot create topic {topic:?} ({partitions} partitions): the broker is librdkafka's in-process mock \
         cluster, which does not create topics through the admin API. Create it first with \
         MockCluster::create_topic({topic:?}, {partitions}, 1), or run on kafka_state::testing::TestCluster, \
         which creates the topics of the registered stores"
    )]
    MockClusterTopic {
        /// The topic.
        topic: String,
        /// Its partitions.
        partitions: usize,
    },

    /// A Kafka client setting was refused (by name or value). The message
    /// never contains the value of a secret setting.
    #[error(transparent)]
    Settings(#[from] SettingsError),

    /// A Kafka call failed after librdkafka reported a broker connection
    /// failure: the message names the broker and the cause (TLS handshake,
    /// authentication, refused connection).
    #[error("Kafka {operation} failed ({source}): {failure}")]
    Broker {
        /// What was being done.
        operation: &'static str,
        /// The client's error.
        #[source]
        source: KafkaError,
        /// What librdkafka reported about the connection.
        failure: Box<BrokerFailure>,
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

    /// Recovery made no progress for the configured stall timeout.
    #[error(
        "recovery of {remaining} changelog partition(s) made no progress for {timeout_ms} ms; {}",
        unreachable_hint(.last_broker_failure)
    )]
    Stalled {
        /// Partitions not finished.
        remaining: usize,
        /// The stall timeout.
        timeout_ms: u128,
        /// The last broker connection failure librdkafka reported, if any.
        last_broker_failure: Option<Box<BrokerFailure>>,
    },

    /// A thread could not be started.
    #[error("could not start the restore thread: {0}; the process may be out of threads or memory")]
    Thread(String),

    /// Recovery was stopped by the stop signal before it finished.
    #[error("recovery was stopped before it finished; the partitions keep what was applied so far")]
    Stopped,

    /// The state backend failed.
    #[error(transparent)]
    State(#[from] state_core::Error),
}

fn unreachable_hint(failure: &Option<Box<BrokerFailure>>) -> String {
    match failure {
        Some(f) => format!("last broker error: {f}"),
        None => "is the broker reachable and serving the changelog topics?".to_owned(),
    }
}

impl ChangelogError {
    /// The broker connection failure this error reports, if any.
    pub fn broker_failure(&self) -> Option<&BrokerFailure> {
        match self {
            ChangelogError::Broker { failure, .. } => Some(&**failure),
            ChangelogError::FlushTimeout {
                last_broker_failure, ..
            }
            | ChangelogError::Stalled {
                last_broker_failure, ..
            } => last_broker_failure.as_deref(),
            _ => None,
        }
    }
}

/// What kind of broker connection failure librdkafka reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The TLS handshake failed (certificate not trusted, host name
    /// mismatch, the port does not speak TLS, ...).
    Tls,
    /// SASL authentication failed or was refused.
    Authentication,
    /// Any other connection failure (refused, reset, name resolution).
    Connection,
}

/// The last connection failure librdkafka reported for a broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerFailure {
    /// The broker as librdkafka names it, e.g. `ssl://10.0.0.5:9093/1`
    /// (or `ssl://host:9093/bootstrap` before metadata is known).
    pub broker: String,
    /// What kind of failure.
    pub kind: FailureKind,
    /// librdkafka's message (secret setting values removed).
    pub reason: String,
}

impl fmt::Display for BrokerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FailureKind::Tls => write!(
                f,
                "TLS connection to broker {} failed: {}. Check that ssl.ca.location holds the CA \
                 that signed the broker's certificate, that the certificate names the host in \
                 bootstrap.servers, and that the port serves TLS",
                self.broker, self.reason
            ),
            FailureKind::Authentication => write!(
                f,
                "authentication with broker {} failed: {}. Check sasl.mechanisms, sasl.username \
                 and sasl.password",
                self.broker, self.reason
            ),
            FailureKind::Connection => write!(f, "connection to broker {} failed: {}", self.broker, self.reason),
        }
    }
}

/// What is wrong with Kafka client settings. No message ever contains the
/// value of a secret property (see [`is_secret_key`](crate::is_secret_key)); a line or argument
/// that cannot be parsed is identified by its position, never shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A properties file could not be read.
    #[error("cannot read Kafka settings file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A line of a properties file is not `key=value` (or `key: value`,
    /// `key value`).
    #[error(
        "{} line {line}: {problem}; Kafka settings files hold one key=value per line \
         (the line is not shown in case it holds a secret)",
        path.display()
    )]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: &'static str,
    },

    /// A `-X` argument is not `key=value`.
    #[error(
        "-X argument number {index} is not KEY=VALUE, e.g. -X security.protocol=ssl \
         (it is not shown in case it holds a secret)"
    )]
    BadOverride {
        /// 1-based position among the `-X` arguments.
        index: usize,
    },

    /// librdkafka rejects a property or its value.
    #[error("Kafka setting {key} ({origin}) is not accepted by librdkafka: {reason}{hint}")]
    Invalid {
        /// The property.
        key: String,
        /// Where it was set (`from -X`, `from FILE line N`, `set in code`).
        origin: String,
        /// librdkafka's message, with secret values replaced.
        reason: String,
        /// Advice for settings of the Java client that librdkafka spells
        /// differently (empty, or starting with `; `).
        hint: String,
    },
}
