//! Manager configuration with validated defaults.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use state_changelog::{OffsetReset, RecoveryConfig};
use state_core::{Backend, MemoryBudget, TopicPartition};

use crate::partitioner::Partitioner;
use crate::snapshots::SnapshotSettings;

use crate::error::{ManagerError, Result};

/// What a checkpoint promises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// Changelog flushed, then source offsets committed, then local state
    /// flushed. A crash can make records be processed again (never lost).
    #[default]
    AtLeastOnce,
    /// Changelog records, output records and source offsets commit in one
    /// Kafka transaction; local state is flushed only after it commits.
    ExactlyOnce,
}

/// Which partitions this instance keeps standby replicas of: warm copies of
/// store partitions it does not own, tailing their changelogs, so a
/// takeover replays only what changed since.
///
/// librdkafka has no custom assignor, so standbys cannot steer assignment
/// as Kafka Streams' do; these policies work without it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StandbyPolicy {
    /// No standbys (default).
    #[default]
    None,
    /// Standbys of these source partitions whenever they are not assigned
    /// here.
    Partitions(std::collections::BTreeSet<TopicPartition>),
    /// Standbys of every partition of every stream with a changelogged
    /// store (small groups: every instance holds all the state).
    AllPartitions,
    /// A partition revoked from this instance stays as a standby for
    /// `keep_for` (cooperative rebalances often move partitions back).
    RecentlyRevoked {
        /// How long a revoked partition is kept warm.
        keep_for: Duration,
    },
}

impl StandbyPolicy {
    /// True if a partition revoked from this instance stays as a standby.
    pub fn keeps(&self, partition: &TopicPartition) -> bool {
        match self {
            StandbyPolicy::None => false,
            StandbyPolicy::Partitions(set) => set.contains(partition),
            StandbyPolicy::AllPartitions | StandbyPolicy::RecentlyRevoked { .. } => true,
        }
    }
}

/// Configuration of a [`crate::StateStoreManager`].
///
/// ```
/// use state_manager::{ManagerConfig, MemoryBackend, ProcessingGuarantee};
/// let mut config = ManagerConfig::with_backend("my-app", "./state", MemoryBackend::shared());
/// config.guarantee = ProcessingGuarantee::ExactlyOnce;
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// Consumer group id (also part of changelog topic names and paths).
    pub group_id: String,
    /// Root of the local state: `<state_dir>/<group_id>/<store>/<stream>/<partition>`.
    pub state_dir: PathBuf,
    /// At-least-once (default) or exactly-once.
    pub guarantee: ProcessingGuarantee,
    /// How often the application should commit (the manager reports it via
    /// [`crate::StateStoreManager::commit_due`]); default 1 s.
    pub commit_interval: Duration,
    /// Timeout of producer flushes and transaction calls; default 30 s.
    pub kafka_timeout: Duration,
    /// Id of this instance, used for the transactional id under
    /// exactly-once (`<group_id>-<instance_id>`). Two live managers of a
    /// group must never share one: the second fences the first.
    ///
    /// `None` (the default): each manager picks its own,
    /// `<process id>-<n>` with `n` counting the managers of this process,
    /// so two managers in one process (tests, one manager per thread) never
    /// share it, whatever config they were made from; see
    /// [`StateStoreManager::instance_id`](crate::StateStoreManager::instance_id).
    /// Set it to a stable name (a pod name, say) to have a restarted
    /// instance fence its predecessor's unfinished transaction at once.
    pub instance_id: Option<String>,
    /// The backend of every store registered without one of its own
    /// ([`crate::StoreSpec::backend`]). [`ManagerConfig::new`] uses RocksDB
    /// with default options (feature `rocksdb`).
    pub backend: Arc<dyn Backend>,
    /// Restore and standby tuning.
    pub recovery: RecoveryConfig,
    /// Standby replicas (default none).
    pub standby: StandbyPolicy,
    /// Exactly-once only: after the Kafka transaction commits, commit the
    /// same source offsets again through the consumer. Harmless on a real
    /// broker (the offsets are already committed); needed on brokers that
    /// do not store `TxnOffsetCommit`, such as librdkafka's mock cluster.
    /// Default false.
    pub mirror_transactional_offsets: bool,
    /// Pipelined checkpoints: the poll loop goes on while part of a
    /// checkpoint is still to land. At most one checkpoint is in flight;
    /// records processed meanwhile read its changes, and the next
    /// checkpoint (or [`crate::StateStoreManager::finish_checkpoint`], a
    /// revocation, a rebuild, a close) first waits for it.
    ///
    /// * At-least-once: a checkpoint prepares its changelog records and
    ///   sets its local write aside, and processing goes on while the
    ///   broker acknowledges them; then its source offsets commit and its
    ///   local state is written, in that order (the write on a helper
    ///   thread while the next checkpoint prepares). [`commit`](crate::StateStoreManager::commit)
    ///   returns before the checkpoint's offsets are committed, and its
    ///   delivery or offset-commit error comes from the next call.
    /// * Exactly-once: a checkpoint's transaction commits as without
    ///   pipelining; its local write then runs on a helper thread while
    ///   the next records are processed. A failed local write comes from
    ///   the next call, which then aborts its own checkpoint (it read
    ///   through the failed write) and moves its records back.
    ///
    /// Either way, readers outside the checkpoint's transactions
    /// ([`crate::StateReader`], [`partition`](crate::StateStoreManager::partition))
    /// see a checkpoint's state once its local write landed. Stores behind
    /// a write-behind cache ([`crate::StoreSpec::write_behind`]) have
    /// little to gain from it: their local write is a cache update already
    /// (docs/performance.md, "The exactly-once local write behind the poll
    /// loop", measured the combination slower). See
    /// docs/guarantees.md ("Pipelined checkpoints") for why no record is
    /// lost or counted twice. Default false.
    pub pipelined_checkpoints: bool,
    /// How the producers of the source topics route keyed records
    /// (librdkafka's `partitioner`; default
    /// [`Partitioner::Murmur2Random`], the Java client's default). The
    /// manager's own producer (changelog and output records) is set to it,
    /// [`producer_config`](Self::producer_config) sets it on the producers
    /// you create, [`crate::StateReader::partition_of`] routes keys with
    /// it, and a client configuration that sets another `partitioner` is
    /// refused ([`crate::ManagerError::PartitionerMismatch`]).
    pub partitioner: Partitioner,
    /// Where the processing consumer starts on a partition without a
    /// committed offset ([`consumer_config`](Self::consumer_config)):
    /// default [`OffsetReset::Earliest`], as Kafka Streams.
    pub auto_offset_reset: OffsetReset,
    /// Extra librdkafka properties for the manager's producer only (the
    /// changelog and, under exactly-once, output producer), applied over the
    /// client configuration: for example `compression.type`, `linger.ms`.
    /// Kept apart so consumer-side clients do not warn about producer
    /// properties. Default empty.
    pub producer_properties: Vec<(String, String)>,
    /// One memory budget for the process (default none). The write-behind
    /// caches and window indexes of every store draw from it; the storage
    /// engines draw from it when their backends were made with the same
    /// budget (`RocksDbOptions::memory_budget`, `FjallOptions::memory_budget`;
    /// [`ManagerConfig::with_budget`] does it for the default backend).
    /// Give every manager of the process the same budget (clones are the
    /// same budget) to bound them together. A store whose durable backend
    /// has no budget, or another one, is logged at registration: its engine
    /// is not bounded by this one. See `docs/operations.md`, "Memory".
    pub memory_budget: Option<MemoryBudget>,
    /// What to do with a store partition whose files are corrupt
    /// (`PartitionCorrupt` at open or during its restore) or whose stored
    /// changelog offset is past the changelog's end (`InvalidStoredOffset`):
    /// default [`CorruptionPolicy::Rebuild`].
    pub on_corrupt: CorruptionPolicy,
    /// How many moved-aside partition directories are kept, and for how
    /// long (see [`QuarantineLimits`]).
    pub quarantine: QuarantineLimits,
    /// Removes, in the background, the local partitions of registered
    /// stores that have not been assigned here (as active or standby) for
    /// this long (Kafka Streams' `state.cleanup.delay.ms`). `None` (the
    /// default): never; local state stays until
    /// [`crate::StateStoreManager::clear_state`].
    pub state_cleanup_delay: Option<Duration>,
    /// Partition snapshots in an object store (default none): partitions
    /// without local state restore from the newest usable snapshot plus the
    /// changelog after it, and active partitions are snapshotted in the
    /// background. See [`SnapshotSettings`] and docs/operations.md,
    /// "Snapshots".
    pub snapshots: Option<SnapshotSettings>,
}

/// What the manager does with a store partition it finds damaged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CorruptionPolicy {
    /// Move the partition directory aside to the quarantine folder
    /// (`<state_dir>/<group_id>/.quarantine/`, never deleted at once), count
    /// and log it, and restore the partition from its changelog as a new
    /// one; only that partition waits. A store without a changelog cannot
    /// be rebuilt: [`crate::ManagerError::CannotRebuild`].
    #[default]
    Rebuild,
    /// Fail with the typed error (`PartitionCorrupt`, `InvalidStoredOffset`)
    /// and touch nothing: an operator decides.
    Fail,
}

/// Bounds of the quarantine folder: after each move, the oldest entries
/// beyond `max_entries` and every entry older than `max_age` are removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuarantineLimits {
    /// Entries kept at most (default 5; 0 keeps none once a rebuild moved
    /// the partition aside, which still never deletes before moving).
    pub max_entries: usize,
    /// Entries older than this are removed (default 7 days; `None`: no
    /// age limit).
    pub max_age: Option<Duration>,
}

impl Default for QuarantineLimits {
    fn default() -> Self {
        QuarantineLimits {
            max_entries: 5,
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

impl ManagerConfig {
    /// Defaults for `group_id` with state under `state_dir`, on RocksDB
    /// with default options.
    #[cfg(feature = "rocksdb")]
    pub fn new(group_id: impl Into<String>, state_dir: impl Into<PathBuf>) -> Self {
        let backend = state_rocksdb::RocksDbBackend::shared(state_rocksdb::RocksDbOptions::default());
        Self::with_backend(group_id, state_dir, backend)
    }

    /// Defaults for `group_id` with state under `state_dir`, on RocksDB
    /// with default options and `budget`: its block cache and memtables,
    /// and every store's write-behind caches and window indexes, share
    /// `budget` ([`ManagerConfig::memory_budget`]).
    #[cfg(feature = "rocksdb")]
    pub fn with_budget(group_id: impl Into<String>, state_dir: impl Into<PathBuf>, budget: MemoryBudget) -> Self {
        let options = state_rocksdb::RocksDbOptions {
            memory_budget: Some(budget.clone()),
            ..state_rocksdb::RocksDbOptions::default()
        };
        let mut config = Self::with_backend(group_id, state_dir, state_rocksdb::RocksDbBackend::shared(options));
        config.memory_budget = Some(budget);
        config
    }

    /// Defaults for `group_id` with state under `state_dir`, with `backend`
    /// as the default backend of its stores.
    pub fn with_backend(group_id: impl Into<String>, state_dir: impl Into<PathBuf>, backend: Arc<dyn Backend>) -> Self {
        ManagerConfig {
            group_id: group_id.into(),
            state_dir: state_dir.into(),
            guarantee: ProcessingGuarantee::AtLeastOnce,
            commit_interval: Duration::from_secs(1),
            kafka_timeout: Duration::from_secs(30),
            instance_id: None,
            backend,
            recovery: RecoveryConfig::default(),
            standby: StandbyPolicy::None,
            mirror_transactional_offsets: false,
            pipelined_checkpoints: false,
            producer_properties: Vec::new(),
            memory_budget: None,
            partitioner: Partitioner::default(),
            auto_offset_reset: OffsetReset::default(),
            on_corrupt: CorruptionPolicy::default(),
            quarantine: QuarantineLimits::default(),
            state_cleanup_delay: None,
            snapshots: None,
        }
    }

    /// The same with partition snapshots in `settings`' store
    /// ([`ManagerConfig::snapshots`]).
    pub fn with_snapshots(mut self, settings: SnapshotSettings) -> Self {
        self.snapshots = Some(settings);
        self
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, problem: &str| {
            Err(ManagerError::InvalidConfig {
                field,
                problem: problem.to_owned(),
            })
        };
        if self.group_id.is_empty() {
            return bad("group_id", "must not be empty");
        }
        if self.commit_interval.is_zero() {
            return bad("commit_interval", "must be greater than zero");
        }
        if self.kafka_timeout < Duration::from_millis(100) {
            return bad("kafka_timeout", "must be at least 100 ms");
        }
        if self.instance_id.as_deref().is_some_and(str::is_empty) {
            return bad("instance_id", "must not be empty (None picks one per manager)");
        }
        if self.recovery.batch_records == 0 {
            return bad("recovery.batch_records", "must be greater than zero");
        }
        if self.state_cleanup_delay.is_some_and(|d| d.is_zero()) {
            return bad(
                "state_cleanup_delay",
                "must be greater than zero (None turns the cleaner off)",
            );
        }
        if self.state_dir.as_os_str().is_empty() {
            return bad("state_dir", "must not be empty");
        }
        Ok(())
    }
}

/// Logs a store whose durable backend does not draw from `budget`: its
/// engine (block cache, memtables) is then bounded on its own, not by the
/// process's budget. Not an error: a store may be meant to stay outside.
pub(crate) fn warn_if_outside(budget: &MemoryBudget, backend: &dyn Backend, store: &str, stream: &str) {
    let info = backend.info();
    if !info.durable {
        return;
    }
    match backend.memory_budget() {
        Some(b) if b.same_as(budget) => {}
        Some(_) => tracing::warn!(
            store,
            stream,
            backend = info.name,
            "the store's backend has another memory budget than the manager's: the process's memory is \
             bounded by both together; give the backend the manager's budget to bound them as one"
        ),
        None => tracing::warn!(
            store,
            stream,
            backend = info.name,
            "the store's backend has no memory budget: its block cache and memtables are bounded per backend, \
             outside the manager's budget; set memory_budget in its options (or use ManagerConfig::with_budget)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let mem = state_core::MemoryBackend::shared;
        let mut c = ManagerConfig::with_backend("g", "/tmp/x", mem());
        assert!(c.validate().is_ok());
        c.commit_interval = Duration::ZERO;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("commit_interval"), "{err}");
        let mut c = ManagerConfig::with_backend("", "/tmp/x", mem());
        assert!(c.validate().unwrap_err().to_string().contains("group_id"));
        c.group_id = "g".into();
        c.recovery.batch_records = 0;
        assert!(c.validate().unwrap_err().to_string().contains("recovery.batch_records"));
    }
}
