//! The error of every `statectl` command.

use std::path::PathBuf;
use std::time::Duration;

use state_core::Codec;

use crate::engine::Engine;

/// A `Result` whose error is [`CliError`].
pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// What can stop a `statectl` command. Messages say what to check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The partition could not be opened or read.
    #[error(transparent)]
    Store(#[from] state_core::Error),

    /// Reading the changelog failed.
    #[error(transparent)]
    Changelog(#[from] state_changelog::ChangelogError),

    /// A restore or verify was stopped (Ctrl-C, SIGTERM:
    /// [`crate::ReplaySource::stop`]) before it finished.
    #[error("interrupted: the {command} of {} stopped before it finished; {outcome}", path.display())]
    Interrupted {
        /// `restore` or `verify`.
        command: &'static str,
        /// The partition directory.
        path: PathBuf,
        /// What was kept, and what to do.
        outcome: &'static str,
    },

    /// Kafka client settings are invalid (`-X`, `--kafka-config`).
    #[error(transparent)]
    Settings(#[from] state_changelog::SettingsError),

    /// No brokers were given.
    #[error(
        "no Kafka brokers: pass --brokers HOST:PORT, or set bootstrap.servers with -X or in the \
         --kafka-config file"
    )]
    NoBrokers,

    /// The brokers did not answer in time.
    #[error(
        "cannot reach the Kafka brokers at {brokers} within {:.1} s ({reason}); \
         check --brokers, the security settings (-X, --kafka-config) and that the cluster is up",
        .timeout.as_secs_f64()
    )]
    Unreachable {
        /// The bootstrap servers.
        brokers: String,
        /// How long we waited.
        timeout: Duration,
        /// What the client reported.
        reason: String,
    },

    /// The changelog topic does not exist.
    #[error(
        "topic {topic:?} does not exist on {brokers}; check --topic (changelog topics are \
         named changelog__<group>--<stream>--<store>)"
    )]
    UnknownTopic {
        /// The topic.
        topic: String,
        /// The bootstrap servers.
        brokers: String,
    },

    /// The topic has fewer partitions than asked for.
    #[error("topic {topic:?} has {partitions} partitions; there is no partition {partition}")]
    NoSuchPartition {
        /// The topic.
        topic: String,
        /// Its partition count.
        partitions: usize,
        /// The partition asked for.
        partition: i32,
    },

    /// A `--committed` argument is not `TOPIC=OFFSET`.
    #[error("--committed {0:?} is not TOPIC=OFFSET (e.g. --committed clicks=1200)")]
    BadCommitted(String),

    /// The committed source offsets could not be found out.
    #[error("cannot find the committed source offsets: {reason}; pass them with --committed TOPIC=OFFSET")]
    NoCommittedOffsets {
        /// Why.
        reason: String,
    },

    /// `--cf` names a column family the partition does not have.
    #[error("partition at {path} has no column family {cf:?}; it has: {known}")]
    UnknownColumnFamily {
        /// Partition directory.
        path: PathBuf,
        /// The requested column family.
        cf: String,
        /// The column families it has.
        known: String,
    },

    /// `--backend` names another engine than the partition's files show.
    #[error(
        "partition at {path} is a {found} partition, not {asked}; pass --backend {found}, or leave \
         --backend out and statectl finds the engine from the files"
    )]
    EngineMismatch {
        /// Partition directory.
        path: PathBuf,
        /// The engine `--backend` asked for.
        asked: Engine,
        /// The engine whose files are there.
        found: Engine,
    },

    /// `restore` was pointed at a directory that holds files but no
    /// partition of a known engine.
    #[error(
        "{path} is not empty and holds no rocksdb or fjall partition (it has: {found}); restore \
         into a new or empty directory, or into an existing partition (a partition directory is \
         <state-dir>/<group>/<store>/<stream>/<partition>)"
    )]
    ForeignTarget {
        /// The directory.
        path: PathBuf,
        /// Some of its entries.
        found: String,
    },

    /// The partition records a store kind this `statectl` does not know.
    #[error(
        "partition at {path} records store kind {recorded:?}, which this statectl does not know \
         (it knows key-value, windowed and timestamped); use the statectl of the library version \
         that wrote it"
    )]
    UnknownStoreKind {
        /// Partition directory.
        path: PathBuf,
        /// The recorded kind (lossy UTF-8).
        recorded: String,
    },

    /// The partition records a value codec this `statectl` does not know.
    #[error(
        "partition at {path} records value codec {recorded:?}, which this statectl does not know \
         (it knows msgpack, json and raw); use the statectl of the library version that wrote it"
    )]
    UnknownCodec {
        /// Partition directory.
        path: PathBuf,
        /// The recorded codec (lossy UTF-8).
        recorded: String,
    },

    /// `--codec` names another codec than the one the partition records.
    #[error(
        "partition at {path} records value codec {recorded}; decoding its values as {asked} would \
         misread them (JSON 7 is MessagePack 55); leave --codec out (the recorded codec is used), \
         or pass --codec raw for the bytes as they are"
    )]
    CodecMismatch {
        /// Partition directory.
        path: PathBuf,
        /// The codec the partition records.
        recorded: Codec,
        /// The codec `--codec` asked for.
        asked: Codec,
    },

    /// The partition records no codec, and `--codec` names one its values
    /// are not in, while they all are in the other.
    #[error(
        "partition at {path} records no value codec, and {failed} of {sampled} sampled values do \
         not decode as {asked} while all decode as {looks_like}; pass --codec {looks_like}, or \
         leave --codec out and let the values decide"
    )]
    CodecUnrecorded {
        /// Partition directory.
        path: PathBuf,
        /// The codec `--codec` asked for.
        asked: Codec,
        /// The codec every sampled value decodes with.
        looks_like: Codec,
        /// Sampled values that do not decode with `asked`.
        failed: usize,
        /// Values sampled.
        sampled: usize,
    },

    /// The partition records no codec, and its values do not tell: they
    /// decode as both JSON and MessagePack, or not all as either.
    #[error("partition at {path} records no value codec, and {}", undecided(*.sampled, *.json, *.msgpack))]
    CodecUndecided {
        /// Partition directory.
        path: PathBuf,
        /// Values sampled.
        sampled: usize,
        /// Of those, how many decode as JSON.
        json: usize,
        /// Of those, how many decode as MessagePack.
        msgpack: usize,
    },

    /// A snapshot store failed, or a snapshot is damaged.
    #[error(transparent)]
    Snapshot(#[from] state_snapshot::SnapshotError),

    /// The store holds no usable snapshot of the partition.
    #[error("{store} holds no usable snapshot of store {scope}; `statectl snapshot list` shows what is there")]
    NoSnapshot {
        /// The store's URL (no credentials).
        store: String,
        /// The store name and partition.
        scope: String,
    },

    /// A store option on the command line is not `KEY=VALUE`, or is a
    /// secret (secrets belong in `--store-config` or the environment).
    #[error("-O {key}: {reason}")]
    StoreOption {
        /// The option's key (never its value).
        key: String,
        /// Why it was refused.
        reason: String,
    },

    /// Writing to stdout or reading the filesystem failed.
    #[error("I/O error on {what}: {source}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Why the values of a partition without a recorded codec do not tell it,
/// and what to pass.
fn undecided(sampled: usize, json: usize, msgpack: usize) -> String {
    if json == sampled && msgpack == sampled {
        format!(
            "all {sampled} sampled values decode as both JSON and MessagePack (single digits do: the \
             byte 0x37 is JSON 7 and MessagePack 55); pass --codec json (quixstreams' default) or \
             --codec msgpack (this library's default)"
        )
    } else {
        format!(
            "of {sampled} sampled values, {json} decode as JSON and {msgpack} as MessagePack; pass \
             --codec raw to see the bytes, or --codec json or --codec msgpack to decode the values \
             that do (the others show as null)"
        )
    }
}
