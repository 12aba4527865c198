//! [`StateStoreManager`]: stores per stream, partitions that follow the
//! consumer's assignment, recovery, and checkpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use state_changelog::{
    changelog_topic_name, ensure_changelog_topic, ChangelogProducer, ChangelogTopicConfig, RecoveredPartition,
    RecoveryManager, RecoveryPartition, RecoveryProgress,
};
use state_core::{ChangelogSink, MemoryStore, ProcessedOffsets, StorePartition};
use state_rocksdb::RocksDbStore;
use state_txn::{PartitionTransaction, TimestampedTransaction, WindowedTransaction};

use crate::checkpoint::{CheckpointState, Txn};
use crate::config::{ManagerConfig, ProcessingGuarantee};
use crate::error::{ManagerError, Result};
use crate::layout::StateDir;
use crate::registry::{Backend, Registered, StoreImpl, StoreKind, StoreSpec};

/// Recovery longer than this is logged as a warning (see `on_assign`).
const SLOW_RECOVERY: Duration = Duration::from_secs(60);

/// Receives recovery progress.
type ProgressListener = Box<dyn FnMut(&RecoveryProgress) + Send>;

/// Receives checkpoint stages.
type CheckpointObserver = Box<dyn FnMut(CheckpointStage) + Send>;

/// How far a checkpoint ([`StateStoreManager::commit`]) has got. Reported to
/// the observer set with [`StateStoreManager::set_checkpoint_observer`], in
/// this order, each only once the step before it succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointStage {
    /// Every changelog and output record is delivered; nothing is committed.
    Produced,
    /// Source offsets are committed (at-least-once) or the Kafka transaction
    /// is committed (exactly-once); local state is not flushed yet.
    Committed,
    /// Local state is flushed with its changelog offsets: the checkpoint is
    /// complete.
    Flushed,
}

/// Manages the state of one application instance in a consumer group.
///
/// * **Stores** are registered per stream (source topic) with
///   [`register_store`](Self::register_store); each has a changelog topic
///   `changelog__<group>--<stream>--<store>` unless registered without.
/// * **Assignment**: [`on_assign`](Self::on_assign) opens the store
///   partitions of the assigned source partitions and recovers them from
///   their changelogs before it returns, so no record of a partition is
///   processed on stale state; [`on_revoke`](Self::on_revoke) closes them.
///   [`crate::StateContext`] calls both from rdkafka's rebalance callbacks.
/// * **Checkpoints**: transactions of the current interval come from
///   [`kv`](Self::kv), [`windowed`](Self::windowed) and
///   [`timestamped`](Self::timestamped); [`commit`](Self::commit) commits all
///   of them with the configured guarantee (see [`ProcessingGuarantee`]).
pub struct StateStoreManager {
    config: ManagerConfig,
    kafka: ClientConfig,
    layout: StateDir,
    stores: Vec<Registered>,
    producer: Option<Arc<ChangelogProducer>>,
    assigned: BTreeSet<(String, u32)>,
    current: CheckpointState,
    last_commit: Instant,
    stop: Arc<AtomicBool>,
    progress: Option<ProgressListener>,
    observer: Option<CheckpointObserver>,
    pending_error: Option<ManagerError>,
}

impl std::fmt::Debug for StateStoreManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStoreManager")
            .field("group_id", &self.config.group_id)
            .field("assigned", &self.assigned)
            .finish_non_exhaustive()
    }
}

impl StateStoreManager {
    /// A manager for `config`, talking to Kafka with `kafka` (bootstrap
    /// servers and security settings; shared by the changelog producer and
    /// the recovery consumer).
    pub fn new(config: ManagerConfig, kafka: ClientConfig) -> Result<Self> {
        config.validate()?;
        let layout = StateDir::new(&config.state_dir, &config.group_id)?;
        Ok(StateStoreManager {
            config,
            kafka,
            layout,
            stores: Vec::new(),
            producer: None,
            assigned: BTreeSet::new(),
            current: CheckpointState::default(),
            last_commit: Instant::now(),
            stop: Arc::new(AtomicBool::new(false)),
            progress: None,
            observer: None,
            pending_error: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// Receives recovery progress (records done / total per partition).
    pub fn set_progress_listener(&mut self, f: impl FnMut(&RecoveryProgress) + Send + 'static) {
        self.progress = Some(Box::new(f));
    }

    /// Receives every [`CheckpointStage`] a checkpoint passes (for metrics,
    /// tracing, and crash tests that stop a process between two stages).
    pub fn set_checkpoint_observer(&mut self, f: impl FnMut(CheckpointStage) + Send + 'static) {
        self.observer = Some(Box::new(f));
    }

    fn observe(&mut self, stage: CheckpointStage) {
        if let Some(f) = &mut self.observer {
            f(stage);
        }
    }

    /// Set this flag to stop a running recovery or a wait for a locked
    /// partition (e.g. on shutdown).
    pub fn stop_signal(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Registers store `name` for stream `stream` (the source topic).
    pub fn register_store(&mut self, stream: &str, name: &str, spec: StoreSpec) -> Result<()> {
        if self.stores.iter().any(|s| s.stream == stream && s.name == name) {
            return Err(ManagerError::DuplicateStore {
                stream: stream.to_owned(),
                store: name.to_owned(),
            });
        }
        let base = self.layout.store_dir(name, stream)?;
        let store = match spec.backend {
            Backend::RocksDb => {
                let s = RocksDbStore::new(name, base, self.config.rocksdb.clone());
                StoreImpl::Rocks(s)
            }
            Backend::Memory => StoreImpl::Memory(MemoryStore::new(name)),
        };
        let changelog_topic = spec
            .changelog
            .then(|| changelog_topic_name(&self.config.group_id, stream, name));
        self.stores.push(Registered {
            stream: stream.to_owned(),
            name: name.to_owned(),
            spec,
            changelog_topic,
            store,
        });
        Ok(())
    }

    /// Changelog topics of the registered stores: `(source topic, changelog topic)`.
    pub fn changelog_topics(&self) -> Vec<(String, String)> {
        self.stores
            .iter()
            .filter_map(|s| s.changelog_topic.clone().map(|t| (s.stream.clone(), t)))
            .collect()
    }

    /// Creates missing changelog topics (compacted, with the source's
    /// partition count) and validates existing ones, through the admin API.
    pub fn ensure_changelog_topics(&self, config: &ChangelogTopicConfig) -> Result<()> {
        for (source, changelog) in self.changelog_topics() {
            ensure_changelog_topic(&self.kafka, &source, &changelog, config)?;
        }
        Ok(())
    }

    fn producer(&mut self) -> Result<Arc<ChangelogProducer>> {
        if let Some(p) = &self.producer {
            return Ok(p.clone());
        }
        let mut cfg = self.kafka.clone();
        for (key, value) in &self.config.producer_properties {
            cfg.set(key, value);
        }
        if self.config.guarantee == ProcessingGuarantee::ExactlyOnce {
            cfg.set(
                "transactional.id",
                format!("{}-{}", self.config.group_id, self.config.instance_id),
            );
            cfg.set("transaction.timeout.ms", "60000");
        }
        let p = Arc::new(ChangelogProducer::new(&cfg)?);
        if self.config.guarantee == ProcessingGuarantee::ExactlyOnce {
            p.kafka()
                .init_transactions(self.config.kafka_timeout)
                .map_err(|source| ManagerError::Kafka {
                    operation: "initialising transactions",
                    source,
                })?;
        }
        self.producer = Some(p.clone());
        Ok(p)
    }

    /// The producer for the application's own output records. Under
    /// exactly-once, records sent through it before [`commit`](Self::commit)
    /// belong to the checkpoint's Kafka transaction.
    pub fn output_producer(&mut self) -> Result<Arc<ChangelogProducer>> {
        self.begin_kafka_txn()?;
        self.producer()
    }

    fn begin_kafka_txn(&mut self) -> Result<()> {
        if self.config.guarantee != ProcessingGuarantee::ExactlyOnce || self.current.kafka_txn_open {
            return Ok(());
        }
        let p = self.producer()?;
        p.kafka().begin_transaction().map_err(|source| ManagerError::Kafka {
            operation: "beginning a transaction",
            source,
        })?;
        self.current.kafka_txn_open = true;
        Ok(())
    }

    /// True if `(stream, partition)` is assigned here.
    pub fn is_assigned(&self, stream: &str, partition: u32) -> bool {
        self.assigned.contains(&(stream.to_owned(), partition))
    }

    /// Opens the store partitions of the given source partitions and
    /// recovers them from their changelogs. `committed` holds the committed
    /// offset (next to consume) of each source partition; changelog records
    /// of checkpoints at or beyond it are skipped.
    pub fn on_assign(
        &mut self,
        partitions: &[(String, u32)],
        committed: &BTreeMap<(String, u32), i64>,
    ) -> Result<Vec<RecoveredPartition>> {
        let mut to_recover = Vec::new();
        for (stream, p) in partitions {
            if !self.assigned.insert((stream.clone(), *p)) {
                continue;
            }
            for s in self.stores.iter_mut().filter(|s| &s.stream == stream) {
                let partition = s.store.assign(*p)?;
                let location = s.store.location(*p);
                if let Err(e) = state_core::check_store_kind(
                    partition.as_ref(),
                    s.spec.kind.name(),
                    std::path::Path::new(&location),
                ) {
                    drop(partition);
                    s.store.revoke(*p)?;
                    self.assigned.remove(&(stream.clone(), *p));
                    return Err(e.into());
                }
                if let Some(topic) = &s.changelog_topic {
                    let mut offsets = BTreeMap::new();
                    if let Some(c) = committed.get(&(stream.clone(), *p)) {
                        offsets.insert(stream.clone(), *c);
                    }
                    to_recover.push(RecoveryPartition {
                        partition,
                        topic: topic.clone(),
                        changelog_partition: *p as i32,
                        committed_offsets: offsets,
                        location,
                        until: None,
                    });
                }
            }
            tracing::info!(stream, partition = p, "partition assigned");
        }
        if to_recover.is_empty() {
            return Ok(Vec::new());
        }
        let recovery = RecoveryManager::new(&self.kafka, self.config.recovery.clone(), self.stop.clone())?;
        let started = Instant::now();
        let mut noop = |_: &RecoveryProgress| {};
        let listener: &mut dyn FnMut(&RecoveryProgress) = match &mut self.progress {
            Some(f) => f.as_mut(),
            None => &mut noop,
        };
        let res = recovery.recover(to_recover, listener)?;
        let applied: u64 = res.iter().map(|r| r.stats.applied).sum();
        let elapsed = started.elapsed();
        tracing::info!(partitions = res.len(), applied, ?elapsed, "recovery finished");
        if elapsed >= SLOW_RECOVERY {
            // Run from the rebalance handler, recovery counts against the
            // consumer's max.poll.interval.ms; past it the member is dropped
            // from the group and the next assignment recovers again.
            tracing::warn!(
                ?elapsed,
                applied,
                "recovery inside the rebalance took long: keep the consumer's max.poll.interval.ms \
                 (default 300 s) well above this, or the member leaves the group mid-recovery"
            );
        }
        Ok(res)
    }

    /// [`on_assign`](Self::on_assign) with the committed offsets read from
    /// `consumer`'s group (what the rebalance callback and tests use).
    pub fn on_assign_from<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        partitions: &[(String, u32)],
    ) -> Result<Vec<RecoveredPartition>> {
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in partitions {
            tpl.add_partition(topic, *p as i32);
        }
        let committed = consumer
            .committed_offsets(tpl, self.config.kafka_timeout)
            .map_err(|source| ManagerError::Kafka {
                operation: "reading committed offsets on assignment",
                source,
            })?;
        let mut map = BTreeMap::new();
        for e in committed.elements() {
            if let Offset::Offset(o) = e.offset() {
                map.insert((e.topic().to_owned(), e.partition().max(0) as u32), o);
            }
        }
        self.on_assign(partitions, &map)
    }

    /// Closes the store partitions of the given source partitions. Changes
    /// of the current checkpoint for them are dropped (commit first to keep
    /// them; [`crate::StateContext`] does).
    pub fn on_revoke(&mut self, partitions: &[(String, u32)]) -> Result<()> {
        for (stream, p) in partitions {
            if !self.assigned.remove(&(stream.clone(), *p)) {
                continue;
            }
            self.current.txns.retain(|(s, _, q), _| !(s == stream && q == p));
            self.current.processed.remove(&(stream.clone(), *p));
            for s in self.stores.iter_mut().filter(|s| &s.stream == stream) {
                s.store.revoke(*p)?;
            }
            tracing::info!(stream, partition = p, "partition revoked");
        }
        Ok(())
    }

    /// Deletes the group's whole state directory. Refused while partitions
    /// are assigned.
    pub fn clear_state(&mut self) -> Result<()> {
        let open: usize = self.stores.iter().map(|s| s.store.assigned().len()).sum();
        if open > 0 || !self.assigned.is_empty() {
            return Err(ManagerError::StillAssigned {
                assigned: open.max(self.assigned.len()),
            });
        }
        let dir = self.layout.group_dir();
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ManagerError::Io { path: dir, source }),
        }
    }

    fn find(&self, stream: &str, store: &str) -> Result<&Registered> {
        self.stores
            .iter()
            .find(|s| s.stream == stream && s.name == store)
            .ok_or_else(|| ManagerError::UnknownStore {
                stream: stream.to_owned(),
                store: store.to_owned(),
            })
    }

    fn txn(&mut self, stream: &str, store: &str, partition: u32, wanted: &'static str) -> Result<&mut Txn> {
        let key = (stream.to_owned(), store.to_owned(), partition);
        if !self.current.txns.contains_key(&key) {
            if !self.is_assigned(stream, partition) {
                return Err(ManagerError::NotAssigned {
                    stream: stream.to_owned(),
                    partition,
                });
            }
            self.begin_kafka_txn()?;
            let (kind, codec, changelog, part) = {
                let s = self.find(stream, store)?;
                let part = s.store.partition(partition).ok_or_else(|| ManagerError::NotAssigned {
                    stream: stream.to_owned(),
                    partition,
                })?;
                (s.spec.kind, s.spec.codec, s.changelog_topic.clone(), part)
            };
            if kind.name() != wanted {
                return Err(ManagerError::WrongStoreKind {
                    stream: stream.to_owned(),
                    store: store.to_owned(),
                    actual: kind.name(),
                    wanted,
                });
            }
            let sink: Option<Arc<dyn ChangelogSink>> = match changelog {
                Some(topic) => Some(self.producer()?.sink(topic, partition as i32)),
                None => None,
            };
            let txn = match kind {
                StoreKind::KeyValue => Txn::KeyValue(PartitionTransaction::new(part, codec, sink)),
                StoreKind::Windowed => Txn::Windowed(WindowedTransaction::new(part, codec, sink)),
                StoreKind::Timestamped(cfg) => Txn::Timestamped(TimestampedTransaction::new(part, codec, sink, cfg)),
            };
            self.current.txns.insert(key.clone(), txn);
        }
        // Present: inserted above or earlier.
        self.current.txns.get_mut(&key).ok_or(ManagerError::NotAssigned {
            stream: stream.to_owned(),
            partition,
        })
    }

    /// The current checkpoint's transaction on a key-value store partition.
    pub fn kv(&mut self, stream: &str, store: &str, partition: u32) -> Result<&mut PartitionTransaction> {
        match self.txn(stream, store, partition, "key-value")? {
            Txn::KeyValue(t) => Ok(t),
            _ => unreachable!("kind checked when the transaction was created"),
        }
    }

    /// The current checkpoint's transaction on a windowed store partition.
    pub fn windowed(&mut self, stream: &str, store: &str, partition: u32) -> Result<&mut WindowedTransaction> {
        match self.txn(stream, store, partition, "windowed")? {
            Txn::Windowed(t) => Ok(t),
            _ => unreachable!("kind checked when the transaction was created"),
        }
    }

    /// The current checkpoint's transaction on a timestamped store partition.
    pub fn timestamped(&mut self, stream: &str, store: &str, partition: u32) -> Result<&mut TimestampedTransaction> {
        match self.txn(stream, store, partition, "timestamped")? {
            Txn::Timestamped(t) => Ok(t),
            _ => unreachable!("kind checked when the transaction was created"),
        }
    }

    /// Records that the record at `offset` of `topic[partition]` was
    /// processed in the current checkpoint.
    pub fn processed(&mut self, topic: &str, partition: u32, offset: i64) -> Result<()> {
        self.begin_kafka_txn()?;
        let e = self
            .current
            .processed
            .entry((topic.to_owned(), partition))
            .or_insert(offset);
        *e = (*e).max(offset);
        Ok(())
    }

    /// True once `commit_interval` has passed since the last commit.
    pub fn commit_due(&self) -> bool {
        self.last_commit.elapsed() >= self.config.commit_interval
    }

    /// Takes an error raised inside a rebalance callback, if any.
    pub fn take_error(&mut self) -> Option<ManagerError> {
        self.pending_error.take()
    }

    pub(crate) fn set_error(&mut self, e: ManagerError) {
        tracing::error!(error = %e, "state manager error in a rebalance callback");
        self.pending_error.get_or_insert(e);
    }

    /// Commits the current checkpoint with `consumer`'s group:
    ///
    /// * at-least-once — prepare every transaction (changelog records with
    ///   the processed offsets), flush the producer, commit the source
    ///   offsets, flush every transaction with its changelog offset;
    /// * exactly-once — the same inside the open Kafka transaction, with
    ///   `send_offsets_to_transaction` instead of a consumer commit; local
    ///   state is flushed only after the Kafka commit succeeds. On any
    ///   failure the Kafka transaction is aborted and nothing is flushed
    ///   locally: rewind the consumer to the committed offsets (or restart)
    ///   and process again.
    pub fn commit<C: ConsumerContext, K: Consumer<C>>(&mut self, consumer: &K) -> Result<()> {
        let mut state = std::mem::take(&mut self.current);
        self.last_commit = Instant::now();
        if state.is_empty() && !state.kafka_txn_open {
            return Ok(());
        }
        let res = self.commit_state(&mut state, consumer);
        if res.is_err() && state.kafka_txn_open {
            if let Some(p) = &self.producer {
                if let Err(e) = p.kafka().abort_transaction(self.config.kafka_timeout) {
                    tracing::error!(error = %e, "aborting the Kafka transaction failed");
                }
            }
        }
        res
    }

    fn commit_state<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        state: &mut CheckpointState,
        consumer: &K,
    ) -> Result<()> {
        let fail = |stage: &'static str| move |e: String| ManagerError::CheckpointFailed { stage, reason: e };
        // 1. Changelog records, tagged with the processed source offsets.
        for ((stream, store, partition), txn) in state.txns.iter_mut() {
            let offsets = state
                .processed
                .get(&(stream.clone(), *partition))
                .map(|o| ProcessedOffsets::new().with(stream.clone(), *o));
            txn.prepare(offsets.as_ref())
                .map_err(|e| fail("prepare")(format!("{stream}/{store}[{partition}]: {e}")))?;
        }
        // 2. Every changelog (and output) record delivered.
        if let Some(p) = &self.producer {
            p.flush(self.config.kafka_timeout)
                .map_err(|e| fail("producer flush")(e.to_string()))?;
        }
        self.observe(CheckpointStage::Produced);
        // 3. Source offsets.
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &state.processed {
            tpl.add_partition_offset(topic, *partition as i32, Offset::Offset(offset + 1))
                .map_err(|e| fail("offsets")(e.to_string()))?;
        }
        match self.config.guarantee {
            ProcessingGuarantee::AtLeastOnce => {
                if tpl.count() > 0 {
                    consumer
                        .commit(&tpl, CommitMode::Sync)
                        .map_err(|e| fail("offset commit")(e.to_string()))?;
                }
            }
            ProcessingGuarantee::ExactlyOnce => {
                let p = self.producer()?;
                if tpl.count() > 0 {
                    let meta = consumer
                        .group_metadata()
                        .ok_or_else(|| fail("send offsets")("the consumer has no group metadata".into()))?;
                    p.kafka()
                        .send_offsets_to_transaction(&tpl, &meta, self.config.kafka_timeout)
                        .map_err(|e| fail("send offsets")(e.to_string()))?;
                }
                p.kafka()
                    .commit_transaction(self.config.kafka_timeout)
                    .map_err(|e| fail("transaction commit")(e.to_string()))?;
                state.kafka_txn_open = false;
                if self.config.mirror_transactional_offsets && tpl.count() > 0 {
                    // Only a mirror: the transaction already holds the offsets.
                    if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                        tracing::warn!(error = %e, "mirrored offset commit failed");
                    }
                }
            }
        }
        self.observe(CheckpointStage::Committed);
        // 4. Local state, with the changelog offset it now includes.
        for ((stream, store, partition), txn) in state.txns.iter_mut() {
            let changelog = self.find(stream, store)?.changelog_topic.clone();
            let offset = match (&changelog, &self.producer) {
                (Some(topic), Some(p)) => p.last_offset(topic, *partition as i32).map(|o| o as u64),
                _ => None,
            };
            txn.flush(offset)
                .map_err(|e| fail("local flush")(format!("{stream}/{store}[{partition}]: {e}")))?;
        }
        self.observe(CheckpointStage::Flushed);
        Ok(())
    }

    /// Drops the current checkpoint without committing anything (aborting
    /// the Kafka transaction under exactly-once).
    pub fn abort(&mut self) -> Result<()> {
        let state = std::mem::take(&mut self.current);
        if state.kafka_txn_open {
            if let Some(p) = &self.producer {
                p.kafka()
                    .abort_transaction(self.config.kafka_timeout)
                    .map_err(|source| ManagerError::Kafka {
                        operation: "aborting the transaction",
                        source,
                    })?;
            }
        }
        Ok(())
    }

    /// The open store partition of `(stream, store, partition)`, for
    /// inspection (tests, tools).
    pub fn partition(&self, stream: &str, store: &str, partition: u32) -> Result<Arc<dyn StorePartition>> {
        self.find(stream, store)?
            .store
            .partition(partition)
            .ok_or_else(|| ManagerError::NotAssigned {
                stream: stream.to_owned(),
                partition,
            })
    }
}
