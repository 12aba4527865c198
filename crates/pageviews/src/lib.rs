//! The stateful pipeline demo behind `cargo run --release -p pageviews`.
//!
//! A click stream keyed by user flows through one consumer group member with
//! two stateful steps, the way Kafka Streams would run it:
//!
//! 1. `pageviews` (keyed by user): running view totals per user in a
//!    key-value store; every view is forwarded, re-keyed by page, to the
//!    `pageviews-by-page` repartition topic.
//!    Each user's views also form sessions (a window operator, inactivity
//!    gap [`Config::session_gap`]): when a session closes, its views,
//!    landing and exit page go to `user-sessions`.
//! 2. `pageviews-by-page`: view counts per page in tumbling windows (a
//!    window operator with grace [`Config::window_grace`]); when a window
//!    closes, its count goes to `page-window-counts`.
//!
//! Every store has a changelog; repartition records, closed windows and
//! sessions, changelogs and source offsets commit together (exactly-once)
//! or in order (at-least-once). Part-way through, the processor is dropped
//! without a checkpoint and its local state deleted; a new one recovers
//! from the changelogs and finishes. The end state and the output are then
//! compared with what the input alone says: every user total, every window
//! and session emitted exactly once with its exact content, or still open
//! in the state with it.
//!
//! With [`Config::http`] the run serves Prometheus metrics and interactive
//! queries of the committed state over HTTP while it runs (see [`http`]);
//! [`Config::metrics`] serves the metrics alone. Neither has
//! authentication, and both refuse non-loopback addresses unless
//! [`Config::http_allow_remote`] is set.
#![warn(missing_docs)]

mod align;
mod bare;
mod deliveries;
pub mod events;
pub mod http;
pub mod limits;
mod pipeline;
mod processor;
mod progress;
mod restores;
mod thread_time;
mod topics;
mod verify;
mod windows;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use bare::BareRun;
pub use pipeline::{run, Report};
pub use processor::{SnapshotRestores, TimeSplit};
pub use state_manager::ProcessingGuarantee;
pub use verify::Verdict;

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Events in the click stream.
    pub events: u64,
    /// Distinct users.
    pub users: u32,
    /// Distinct pages.
    pub pages: u32,
    /// Partitions of every topic.
    pub partitions: u32,
    /// Tumbling window size.
    pub window: Duration,
    /// How late a record may come for its page window: more than the
    /// repartition topic can reorder records, so none is dropped.
    pub window_grace: Duration,
    /// Inactivity gap of the user sessions.
    pub session_gap: Duration,
    /// Exactly-once (default) or at-least-once.
    pub guarantee: ProcessingGuarantee,
    /// Kafka to use; `None` starts the in-process mock cluster.
    pub brokers: Option<String>,
    /// librdkafka properties for every Kafka client (TLS, SASL, ...);
    /// `brokers` overrides its `bootstrap.servers`. `Debug` redacts secrets.
    pub kafka: state_changelog::KafkaSettings,
    /// Crash after this fraction of the input (0 = never).
    pub crash_at: f64,
    /// Records per checkpoint.
    pub commit_every: usize,
    /// Seed of the click stream.
    pub seed: u64,
    /// Where state lives (default: a temporary directory).
    pub state_dir: Option<PathBuf>,
    /// Take snapshots of the stores' partitions into this directory (a
    /// local-filesystem snapshot store, see `state_manager::SnapshotSettings`)
    /// while running; the processor after the crash restores from the
    /// newest ones plus the changelogs after them. Keep it outside
    /// `state_dir` (the crash deletes that). Default: none.
    pub snapshots: Option<PathBuf>,
    /// The backend of both stores (default: RocksDB).
    pub backend: Arc<dyn state_manager::Backend>,
    /// Put both stores behind write-behind caches
    /// ([`state_manager::StoreSpec::write_behind`], default bounds): the
    /// changelogs get every checkpoint, the backend one coalesced batch
    /// per flush.
    pub write_behind: bool,
    /// Pipelined checkpoints ([`state_manager::ManagerConfig::pipelined_checkpoints`]):
    /// a checkpoint's local write runs behind the processing of the next
    /// records (exactly-once), or its delivery and offset commit do
    /// (at-least-once). Default true; the HTTP queries then see a
    /// checkpoint once its local write landed. Not used with
    /// [`write_behind`](Self::write_behind), whose caches already take the
    /// local write off the poll loop (pipelining on top measured slower,
    /// docs/performance.md).
    pub pipelined: bool,
    /// Report progress on stderr: bars on a terminal, a plain line every
    /// few seconds otherwise.
    pub progress: bool,
    /// Serve `/metrics`, the queries (`/users/<id>/views`,
    /// `/pages/<page>/windows`) and `/status` over HTTP here while the run
    /// lasts (port 0: any free port, see [`Config::listening`]). No
    /// authentication.
    pub http: Option<SocketAddr>,
    /// Serve only `/metrics` here. No authentication.
    pub metrics: Option<SocketAddr>,
    /// Allow [`Config::http`] and [`Config::metrics`] on addresses other
    /// than loopback. The endpoints have no authentication: anyone who can
    /// connect reads every count.
    pub http_allow_remote: bool,
    /// Told each listener's address once it is bound.
    pub listening: Option<crossbeam_channel::Sender<http::Listening>>,
    /// How long a finished run (verified) keeps serving its final state
    /// before `run` returns.
    pub hold: Hold,
}

/// How long a finished run keeps serving its final state over HTTP, its
/// manager maintained (so partition metrics stay fresh).
#[derive(Clone, Debug, Default)]
pub enum Hold {
    /// Return at once.
    #[default]
    No,
    /// For this long.
    For(Duration),
    /// Until this channel receives a message or all its senders are gone.
    Until(crossbeam_channel::Receiver<()>),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            events: 1_000_000,
            users: 10_000,
            pages: 500,
            partitions: 4,
            window: Duration::from_secs(10),
            window_grace: Duration::from_secs(60),
            session_gap: Duration::from_secs(30),
            guarantee: ProcessingGuarantee::ExactlyOnce,
            brokers: None,
            kafka: Default::default(),
            crash_at: 0.5,
            commit_every: 20_000,
            seed: 42,
            state_dir: None,
            snapshots: None,
            backend: state_manager::RocksDbBackend::shared(Default::default()),
            write_behind: false,
            pipelined: true,
            progress: false,
            http: None,
            metrics: None,
            http_allow_remote: false,
            listening: None,
            hold: Hold::No,
        }
    }
}

/// What can stop the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The state manager failed.
    #[error(transparent)]
    Manager(#[from] state_manager::ManagerError),
    /// Kafka failed.
    #[error("Kafka failed while {operation}: {source}")]
    Kafka {
        /// What we were doing.
        operation: &'static str,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Topic administration failed.
    #[error(transparent)]
    Changelog(#[from] state_changelog::ChangelogError),
    /// A store read or write failed.
    #[error(transparent)]
    Txn(#[from] state_txn::TxnError),
    /// A window operator failed.
    #[error(transparent)]
    Window(#[from] state_windows::WindowError),
    /// The pipeline made no progress.
    #[error("the pipeline made no progress for {0:?}: {1}")]
    Stuck(Duration, String),
    /// A record in a topic is not what the demo wrote.
    #[error("unexpected record in {topic}: {reason}")]
    BadRecord {
        /// Topic.
        topic: String,
        /// What is wrong.
        reason: String,
    },
    /// The snapshot store (`--snapshots`) cannot be used.
    #[error(transparent)]
    Snapshots(#[from] state_manager::state_snapshot::SnapshotError),
    /// Local files.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Bad configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The brokers (`--brokers`) did not answer a metadata request.
    #[error(
        "cannot reach the Kafka brokers at {brokers} within {:.1} s: {source}; check --brokers, \
         the security settings (-X, --kafka-config) and that the cluster is up",
        .timeout.as_secs_f64()
    )]
    Unreachable {
        /// The bootstrap servers.
        brokers: String,
        /// How long the probe waited.
        timeout: Duration,
        /// What the client reported, naming the broker and the cause when
        /// librdkafka reported a connection failure.
        #[source]
        source: Box<state_changelog::ChangelogError>,
    },
    /// An HTTP listener could not be started.
    #[error("cannot serve HTTP on {addr}: {reason}")]
    Http {
        /// The address asked for.
        addr: SocketAddr,
        /// Why (address in use, permission denied, ...).
        reason: String,
    },
    /// The Prometheus recorder could not be installed (another `metrics`
    /// recorder is installed in this process).
    #[error("cannot install the Prometheus metrics recorder: {0}")]
    Metrics(String),
    /// The embedded mock cluster dropped the oldest records of a partition:
    /// librdkafka's mock keeps at most 5 MB (or 100,000 batches) per
    /// partition, so the run cannot be verified.
    #[error(
        "the embedded mock cluster dropped the first {low} records of {topic} [{partition}] \
         (it keeps at most 5 MB per partition), so this run cannot be verified; \
         use more --partitions, fewer --events, or a real broker with --brokers"
    )]
    MockRetention {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The partition's first offset still held.
        low: i64,
    },
}

/// A `Result` whose error is [`DemoError`].
pub type Result<T, E = DemoError> = std::result::Result<T, E>;

pub(crate) fn kafka<T>(operation: &'static str, r: rdkafka::error::KafkaResult<T>) -> Result<T> {
    r.map_err(|source| DemoError::Kafka { operation, source })
}
