//! [`StateStoreManager`]: a thin front over the parts it owns — the store
//! registry, the assignments (with the restorer and the standbys), the
//! checkpointer (with its producer), the open transactions and the readers.
//! Each part keeps its state private; the manager hands each call the
//! other parts it needs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerContext};
use state_changelog::{
    changelog_topic_name, ensure_changelog_topic, ChangelogProducer, ChangelogTopicConfig, OutputTopic,
    RecoveryProgress,
};
use state_core::{ChangelogSink, Store, StoreLocation, StorePartition, TopicPartition};

use crate::assignment::{store_key, Assignments, StandbyReport};
use crate::checkpoint::{Checkpointer, CommitCaller};
use crate::cleaner::StateDirCleaner;
use crate::config::{warn_if_outside, ManagerConfig};
use crate::error::{ManagerError, Result};
use crate::events::ManagerEvent;
use crate::layout::StateDir;
use crate::reader::Readers;
use crate::registry::{Registry, StoreSettings};
use crate::snapshots::SnapshotTaker;
use crate::spec::{StoreHandle, StoreSpec, StoreType};
use crate::stage::CheckpointStage;
use crate::txns::OpenTxns;

/// Tells managers apart, so a handle is only honoured by its own manager.
static NEXT_MANAGER: AtomicU64 = AtomicU64::new(1);

/// Manages the state of one application instance in a consumer group.
///
/// * **Stores** are registered per stream (source topic) with
///   [`register_store`](Self::register_store), which returns a typed
///   [`StoreHandle`]; each store has a changelog topic
///   `changelog__<group>--<stream>--<store>` unless registered without, and
///   runs on the manager's default backend or its own.
/// * **Assignment**: [`on_assign`](Self::on_assign) opens the store
///   partitions of the assigned source partitions, pauses them and hands
///   them to the restorer thread; [`maintain`](Self::maintain), called from
///   the poll loop, resumes each once its stores caught up with their
///   changelogs, so no record of a partition is processed on stale state
///   and restore time never counts against `max.poll.interval.ms`.
///   [`on_revoke`](Self::on_revoke) closes partitions (or keeps standby
///   replicas, see [`crate::StandbyPolicy`]). [`crate::StateContext`] calls
///   both from rdkafka's rebalance callbacks.
/// * **Checkpoints**: [`txn`](Self::txn) gives the current checkpoint's
///   transaction of a store partition; [`commit`](Self::commit) commits all
///   of them with the configured guarantee (see
///   [`crate::ProcessingGuarantee`]).
pub struct StateStoreManager {
    id: u64,
    instance_id: String,
    config: ManagerConfig,
    kafka_client: ClientConfig,
    layout: StateDir,
    registry: Registry,
    readers: Readers,
    assignments: Assignments,
    checkpointer: Checkpointer,
    /// Snapshots of active partitions, taken in the background after
    /// checkpoints ([`ManagerConfig::snapshots`]).
    snapshots: SnapshotTaker,
    txns: OpenTxns,
    last_export: Option<Instant>,
    cleaner: StateDirCleaner,
    pending_error: Option<ManagerError>,
    /// When `maintain` next looks for write-behind caches due for a flush
    /// (every [`CACHE_CHECK_INTERVAL`], or a second after a full disk
    /// refused them).
    next_cache_check: Option<Instant>,
    /// [`output_topic`](Self::output_topic)'s handles, by topic, each on
    /// the producer it was made on.
    outputs: std::collections::HashMap<String, Arc<OutputTopic>>,
}

/// How often [`StateStoreManager::maintain`] looks for write-behind caches
/// whose age bound passed. `maintain` runs once per poll, often once per
/// record; looking every time cost a clock read and a lock per cached
/// partition per record, for a bound measured in hundreds of milliseconds
/// or more.
const CACHE_CHECK_INTERVAL: Duration = Duration::from_millis(10);

impl std::fmt::Debug for StateStoreManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStoreManager")
            .field("group_id", &self.config.group_id)
            .field("assigned", &self.assignments.len())
            .finish_non_exhaustive()
    }
}

impl StateStoreManager {
    /// A manager for `config`, talking to Kafka with `kafka` (bootstrap
    /// servers and security settings; shared by the changelog producer and
    /// the recovery consumer).
    ///
    /// Fails with [`ManagerError::PartitionerMismatch`] if `kafka` or
    /// [`ManagerConfig::producer_properties`] set a `partitioner` other
    /// than [`ManagerConfig::partitioner`].
    pub fn new(config: ManagerConfig, kafka: ClientConfig) -> Result<Self> {
        config.validate()?;
        config.check_partitioners(&kafka)?;
        let layout = StateDir::new(&config.state_dir, &config.group_id)?;
        // Owner-only state and group directories, or a warning naming them.
        layout.create_dirs()?;
        let id = NEXT_MANAGER.fetch_add(1, Ordering::Relaxed);
        let instance_id = config
            .instance_id
            .clone()
            .unwrap_or_else(|| format!("{}-{id}", std::process::id()));
        let checkpointer = Checkpointer::new(&config, &kafka, &instance_id);
        let mut assignments = Assignments::new(&config, &kafka);
        assignments.set_events(checkpointer.events());
        Ok(StateStoreManager {
            id,
            registry: Registry::default(),
            readers: Readers::new(id, config.partitioner),
            assignments,
            cleaner: StateDirCleaner::new(config.state_cleanup_delay),
            checkpointer,
            snapshots: SnapshotTaker::new(config.snapshots.as_ref(), config.state_dir.join(&config.group_id)),
            instance_id,
            txns: OpenTxns::default(),
            config,
            kafka_client: kafka,
            layout,
            last_export: None,
            pending_error: None,
            next_cache_check: None,
            outputs: std::collections::HashMap::new(),
        })
    }

    /// A reader of the committed state of the partitions this instance owns,
    /// for other threads (interactive queries); see [`crate::StateReader`].
    pub fn reader(&self) -> crate::StateReader {
        self.readers.reader()
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// This instance's id: [`ManagerConfig::instance_id`], or the one this
    /// manager picked (`<process id>-<n>`, unique among the managers of
    /// this process).
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The transactional id of the manager's producer under exactly-once:
    /// `<group_id>-<instance_id>`.
    pub fn transactional_id(&self) -> String {
        format!("{}-{}", self.config.group_id, self.instance_id)
    }

    /// Receives every [`ManagerEvent`]: work the manager handled on its own
    /// that cost time or is done again (a commit that waited for a
    /// rebalance, a checkpoint the group did not take). Each is also a
    /// metric and a log line.
    pub fn set_event_listener(&mut self, f: impl FnMut(&ManagerEvent) + Send + 'static) {
        self.checkpointer.set_event_listener(f);
    }

    /// Receives recovery progress (records done / total per partition).
    pub fn set_progress_listener(&mut self, f: impl FnMut(&RecoveryProgress) + Send + 'static) {
        self.assignments.set_progress_listener(f);
    }

    /// Receives every [`CheckpointStage`] a checkpoint passes (for metrics,
    /// tracing, and crash tests that stop a process between two stages).
    pub fn set_checkpoint_observer(&mut self, f: impl FnMut(CheckpointStage) + Send + 'static) {
        self.checkpointer.set_observer(f);
    }

    /// Registers a store and returns its handle. A second store of the same
    /// name on the same stream is [`ManagerError::DuplicateStore`].
    pub fn register_store<T: StoreType>(&mut self, spec: StoreSpec<T>) -> Result<StoreHandle<T>> {
        let dir = self.layout.store_dir(&spec.name, &spec.stream)?;
        let mut backend = spec.backend.unwrap_or_else(|| self.config.backend.clone());
        if let Some(budget) = &self.config.memory_budget {
            warn_if_outside(budget, &*backend, &spec.name, &spec.stream);
        }
        let changelog_topic = spec
            .changelog
            .then(|| changelog_topic_name(&self.config.group_id, &spec.stream, &spec.name));
        let write_behind = match (spec.write_behind, &changelog_topic) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(ManagerError::InvalidConfig {
                    field: "write_behind",
                    problem: format!(
                        "needs a changelog, but store {:?} of stream {:?} was registered without one: a crash \
                         would lose every write since the last local flush. Remove .without_changelog() or \
                         .write_behind(..) from its StoreSpec",
                        spec.name, spec.stream
                    ),
                })
            }
            (Some(config), Some(_)) => {
                let wb = Arc::new(match &self.config.memory_budget {
                    Some(budget) => state_cache::WriteBehindBackend::with_budget(backend, config, budget.clone()),
                    None => state_cache::WriteBehindBackend::new(backend, config),
                });
                backend = wb.clone();
                Some(wb)
            }
        };
        let id = self.registry.add(StoreSettings {
            stream: spec.stream.clone(),
            name: spec.name.clone(),
            kind: T::KIND,
            codec: spec.codec,
            changelog_topic,
            ttl: spec.ttl,
            store: Store::new(backend, StoreLocation::new(spec.name.clone(), dir)),
            write_behind,
            window_index: spec.window_index,
            memory_budget: self.config.memory_budget.clone(),
        })?;
        Ok(StoreHandle {
            manager: self.id,
            id,
            stream: spec.stream.into(),
            name: spec.name.into(),
            settings: spec.settings,
            kind: std::marker::PhantomData,
        })
    }

    /// Changelog topics of the registered stores: `(source topic, changelog topic)`.
    pub fn changelog_topics(&self) -> Vec<(String, String)> {
        self.registry
            .iter()
            .filter_map(|(_, s)| Some((s.stream().to_owned(), s.changelog_topic()?.to_owned())))
            .collect()
    }

    /// Creates missing changelog topics (compacted, with the source's
    /// partition count) and validates existing ones, through the admin API.
    pub fn ensure_changelog_topics(&self, config: &ChangelogTopicConfig) -> Result<()> {
        for (source, changelog) in self.changelog_topics() {
            ensure_changelog_topic(&self.kafka_client, &source, &changelog, config)?;
        }
        Ok(())
    }

    /// The producer for the application's own output records. Under
    /// exactly-once, records sent through it before [`commit`](Self::commit)
    /// belong to the checkpoint's Kafka transaction.
    pub fn output_producer(&mut self) -> Result<Arc<ChangelogProducer>> {
        self.checkpointer.begin()?;
        self.checkpointer.producer()
    }

    /// A handle for sending the application's output records to `topic`
    /// on the [`output_producer`](Self::output_producer), with its
    /// guarantees (under exactly-once, records sent before
    /// [`commit`](Self::commit) belong to the checkpoint's transaction). It
    /// looks the topic up once, where sending a `BaseRecord` by name looks
    /// it up for every record; the manager keeps one per topic. Fails if
    /// librdkafka refuses the topic's name.
    pub fn output_topic(&mut self, topic: &str) -> Result<Arc<OutputTopic>> {
        let producer = self.output_producer()?;
        if let Some(out) = self.outputs.get(topic) {
            // A handle of a producer that was replaced would send with it.
            if Arc::ptr_eq(out.producer(), &producer) {
                return Ok(out.clone());
            }
        }
        let out = Arc::new(producer.output_topic(topic)?);
        self.outputs.insert(topic.to_owned(), out.clone());
        Ok(out)
    }

    fn check_handle<T: StoreType>(&self, handle: &StoreHandle<T>) -> Result<()> {
        if handle.manager != self.id {
            return Err(ManagerError::ForeignHandle {
                stream: handle.stream.to_string(),
                store: handle.name.to_string(),
            });
        }
        Ok(())
    }

    /// The current checkpoint's transaction on partition `partition` of the
    /// store behind `handle`, started on first use. The handle names the
    /// stream; `partition` is the record's partition as the poll loop has
    /// it.
    ///
    /// Fails with [`ManagerError::NotAssigned`] if the partition is not
    /// assigned to this instance, and with [`ManagerError::Restoring`] while
    /// its stores are still restoring (its records are paused until then).
    pub fn txn<T: StoreType>(&mut self, handle: &StoreHandle<T>, partition: u32) -> Result<&mut T::Txn> {
        self.check_handle(handle)?;
        let key = (handle.id, partition);
        if !T::txns(&mut self.txns).contains_key(&key) {
            let txn = self.begin_txn(handle, partition)?;
            T::txns(&mut self.txns).insert(key, txn);
        }
        T::txns(&mut self.txns)
            .get_mut(&key)
            .ok_or_else(|| ManagerError::NotAssigned {
                stream: handle.stream.to_string(),
                partition,
            })
    }

    fn begin_txn<T: StoreType>(&mut self, handle: &StoreHandle<T>, partition: u32) -> Result<T::Txn> {
        let not_assigned = || ManagerError::NotAssigned {
            stream: handle.stream.to_string(),
            partition,
        };
        self.assignments
            .check_ready(&TopicPartition::of_store(handle.stream.clone(), partition))?;
        self.checkpointer.begin()?;
        let (format, topic, part, index, sent) = {
            let s = self.registry.get_mut(handle.id);
            let part = s.partition(partition).ok_or_else(not_assigned)?;
            // Damage a read or write of the transaction finds is noted, so
            // the partition is rebuilt (see `heal_damaged`).
            let part = self.checkpointer.damage_watch().watch(part, handle.id, partition);
            let part = self.checkpointer.stage(handle.id, partition, part);
            let format = s.format_of(partition).cloned().ok_or_else(not_assigned)?;
            (
                format,
                s.changelog_topic().map(str::to_owned),
                part,
                s.index_of(partition),
                s.sent_bytes(partition),
            )
        };
        let sink: Option<Arc<dyn ChangelogSink>> = match topic {
            Some(topic) => Some(
                self.checkpointer
                    .producer()?
                    .sink_counting(topic, partition as i32, sent),
            ),
            None => None,
        };
        Ok(T::begin(part, &format, sink, &handle.settings, index))
    }

    /// Records that the record at `offset` of `topic[partition]` was
    /// processed in the current checkpoint.
    ///
    /// Takes the topic and partition as the poll loop has them (a
    /// message's `topic()` and `partition()`): it is called once per
    /// record.
    pub fn processed(&mut self, topic: &str, partition: u32, offset: i64) -> Result<()> {
        self.checkpointer.processed_at(topic, partition, offset)
    }

    /// True if `stream[partition]` is assigned here (restoring or ready).
    /// Takes the stream and partition as the poll loop has them.
    pub fn is_assigned(&self, stream: &str, partition: u32) -> bool {
        self.assignments.is_assigned(&store_key(stream, partition))
    }

    /// True if `stream[partition]` is assigned here and its stores are
    /// restored: records of it may be processed. Takes the stream and
    /// partition as the poll loop has them.
    pub fn is_ready(&self, stream: &str, partition: u32) -> bool {
        self.assignments.is_ready(&store_key(stream, partition))
    }

    /// A number that changes whenever a source partition is assigned here,
    /// revoked, or becomes ready or stops being ready (restored, paused for
    /// a reload after a full disk, rebuilt). While it stays the same,
    /// [`is_ready`](Self::is_ready), [`is_assigned`](Self::is_assigned) and
    /// [`restoring`](Self::restoring) answer as before, so a poll loop that
    /// asks about every partition on every record (an event-time aligner)
    /// can keep its answers and ask again only when the number moves. It
    /// never repeats within the manager's life.
    pub fn assignment_version(&self) -> u64 {
        self.assignments.version()
    }

    /// Source partitions assigned here whose stores are still restoring.
    pub fn restoring(&self) -> Vec<TopicPartition> {
        self.assignments.restoring()
    }

    /// Takes over newly assigned source partitions: opens their store
    /// partitions (or takes over their standby replicas), pauses the
    /// partitions on `consumer` and hands their stores to the restorer
    /// thread. Returns at once; [`maintain`](Self::maintain) resumes each
    /// partition when its stores have caught up with their changelogs.
    /// [`crate::StateContext`] calls this from the rebalance callback, after
    /// applying the assignment at absolute offsets: a consumer context of
    /// your own must do the same with
    /// [`place_assignment`](Self::place_assignment) (an assignment without
    /// offsets makes librdkafka look them up, and pausing during that
    /// lookup can make it hand out records twice; see
    /// `docs/guarantees.md`).
    pub fn on_assign<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        self.assignments
            .assign(consumer, partitions, &mut self.registry, &self.readers)
    }

    /// Gives the partitions of `assignment` that have no offset an absolute
    /// start offset: the committed one, else the low or high watermark as
    /// the consumer's own `auto.offset.reset` says (`error`, or a failed
    /// call, leaves the partition to librdkafka; logged). Call it in the
    /// rebalance callback before applying the assignment, so that
    /// librdkafka has no offset lookup in flight when
    /// [`on_assign`](Self::on_assign) pauses restoring partitions;
    /// [`crate::StateContext`] does. The committed offsets it reads are
    /// the ones the next [`on_assign`](Self::on_assign) restores the new
    /// partitions against (the group is not asked twice), so call that in
    /// the same rebalance callback.
    pub fn place_assignment<C: ConsumerContext>(
        &mut self,
        consumer: &rdkafka::consumer::BaseConsumer<C>,
        assignment: &mut rdkafka::TopicPartitionList,
    ) {
        self.assignments.place(consumer, assignment);
    }

    /// Keeps the partitions a rebalance leaves assigned (all but `except`)
    /// at the application's position, so librdkafka does not deliver again
    /// a record handed out as the rebalance paused the assignment (see
    /// [`crate::StateContext`], which calls it).
    pub(crate) fn hold_positions<C: ConsumerContext, K: Consumer<C>>(&self, consumer: &K, except: &[TopicPartition]) {
        self.assignments.hold_positions(consumer, except);
    }

    /// Lets go of revoked source partitions. A restore in progress is
    /// cancelled (its batch in flight is written whole, so data and stored
    /// offset agree); changes of the current checkpoint for them are dropped
    /// (commit first to keep them; [`crate::StateContext`] does). Each store
    /// partition is closed, or kept as a standby replica if the
    /// [`crate::StandbyPolicy`] says so.
    pub fn on_revoke(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            if !self.assignments.is_assigned(tp) {
                continue;
            }
            self.txns
                .drop_partition(&self.registry.ids_of(tp.topic()), tp.store_partition());
            self.checkpointer.forget(tp);
            for id in self.registry.ids_of(tp.topic()) {
                self.snapshots.release((id, tp.store_partition()));
            }
            self.assignments.revoke(tp, &mut self.registry, &self.readers)?;
        }
        Ok(())
    }

    /// The manager's share of every turn of the poll loop; call it once
    /// per turn, after the record `poll` returned (if any) is processed,
    /// never between `poll` and its processing (it is cheap when there is
    /// nothing to do). A checkpoint it commits can move the consumer back
    /// (a refused mirrored offset commit, see
    /// [`ManagerConfig::mirror_transactional_offsets`](crate::ManagerConfig::mirror_transactional_offsets)):
    /// a record polled before it would then be processed on state without
    /// that checkpoint and delivered again, i.e. counted twice.
    ///
    /// * returns an error raised in a rebalance callback or by a restore;
    /// * reopens partitions paused by a full disk and reloads their state
    ///   from the changelog (at most once a second; while the disk stays
    ///   full it returns [`ManagerError::DiskFull`] after the rest of its
    ///   work, see there);
    /// * moves back (and resumes) partitions left paused by a refused
    ///   mirrored offset commit (see
    ///   [`ManagerConfig::mirror_transactional_offsets`](crate::ManagerConfig::mirror_transactional_offsets));
    /// * resumes partitions whose stores finished restoring;
    /// * rebuilds a partition whose restore found it damaged, under
    ///   [`crate::CorruptionPolicy::Rebuild`] (the others go on);
    /// * starts and stops standby replicas as the [`crate::StandbyPolicy`] says;
    /// * starts removing local partitions unassigned for longer than
    ///   [`ManagerConfig::state_cleanup_delay`], in the background;
    /// * exports metrics (partition sizes, standby lag) every few seconds;
    /// * commits the current checkpoint when `commit_interval` has passed.
    pub fn maintain<C: ConsumerContext, K: Consumer<C>>(&mut self, consumer: &K) -> Result<()> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        // One clock read for every timed duty below: `maintain` runs once
        // per poll, so once per record in a busy loop.
        let now = Instant::now();
        self.heal_damaged(consumer)?;
        // Partitions paused by a full disk: reopened and reloaded once
        // there is space. The error says they still wait; the rest of the
        // turn goes on (other partitions may have space to spare).
        let waiting = self
            .assignments
            .retry_reloads(consumer, &mut self.registry, &self.readers, false)
            .err();
        let assignments = &self.assignments;
        self.checkpointer.settle_rewinds(
            consumer,
            |tp| assignments.is_ready(tp),
            |tp| assignments.is_assigned(tp) && !assignments.is_ready(tp),
        );
        self.assignments
            .drain_restore_events(consumer, &mut self.registry, &self.readers)?;
        self.assignments.tend_standbys(consumer, &mut self.registry)?;
        self.cleaner.tick(&self.registry, now);
        self.snapshots.count_reports();
        // Between checkpoints, so a quiet partition's changes do not wait
        // for its next write. On a full disk they stay cached (nothing is
        // lost) and are tried again a second later; the checkpoint is still
        // due.
        let mut full = waiting;
        if self.registry.has_write_behind_caches() && self.next_cache_check.is_none_or(|at| now >= at) {
            self.next_cache_check = Some(now + CACHE_CHECK_INTERVAL);
            if let Err(e) = self.registry.flush_due_caches() {
                let e = crate::disk_full::raise(e, Vec::new());
                if !matches!(e, ManagerError::DiskFull { .. }) {
                    return Err(e);
                }
                self.next_cache_check = Some(Instant::now() + crate::disk_full::RETRY_INTERVAL);
                full.get_or_insert(e);
            }
        }
        self.export_metrics(now);
        if self.checkpointer.commit_due_at(now) {
            self.commit(consumer)?;
        }
        match full {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Exports partition counts, standby lag and every open partition's
    /// backend figures, every [`crate::metrics::EXPORT_INTERVAL`].
    fn export_metrics(&mut self, now: Instant) {
        if self
            .last_export
            .is_some_and(|t| now.saturating_duration_since(t) < crate::metrics::EXPORT_INTERVAL)
        {
            return;
        }
        self.last_export = Some(now);
        self.assignments.export_metrics(&self.registry);
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
    ///
    /// If the local write fails because the disk is full, the checkpoint is
    /// committed in Kafka (its changelog holds its state) but its
    /// partitions' local state is not: they are paused and reload from
    /// their changelogs once there is space, and the call returns
    /// [`ManagerError::DiskFull`]. Keep calling [`maintain`](Self::maintain):
    /// do not rewind.
    ///
    /// If the group refuses the offsets while it rebalances (cooperative
    /// assignment), the commit waits for the rebalance, up to
    /// [`ManagerConfig::kafka_timeout`], and reports the wait as a
    /// [`ManagerEvent::CommitDelayedByRebalance`].
    pub fn commit<C: ConsumerContext, K: Consumer<C>>(&mut self, consumer: &K) -> Result<()> {
        self.commit_as(consumer, CommitCaller::PollLoop)
    }

    /// [`commit`](Self::commit) from a rebalance callback, which the
    /// rebalance waits for: it never waits for the group.
    pub(crate) fn commit_in_rebalance<C: ConsumerContext, K: Consumer<C>>(&mut self, consumer: &K) -> Result<()> {
        self.commit_as(consumer, CommitCaller::RebalanceCallback)
    }

    fn commit_as<C: ConsumerContext, K: Consumer<C>>(&mut self, consumer: &K, caller: CommitCaller) -> Result<()> {
        self.heal_damaged(consumer)?;
        let txns = std::mem::take(&mut self.txns);
        let committed = self.checkpointer.commit(txns, &self.registry, consumer, caller);
        self.after_checkpoint(consumer, committed)
    }

    /// Waits for the pipelined checkpoint in flight, if any (see
    /// [`ManagerConfig::pipelined_checkpoints`](crate::ManagerConfig::pipelined_checkpoints)):
    /// its changelog and output records delivered, its source offsets
    /// committed, its local state written. After it returns `Ok`,
    /// everything up to the last [`commit`](Self::commit) is committed and
    /// in local state. Close, revocation and a damaged partition's rebuild
    /// do this by themselves. Fails as [`commit`](Self::commit) does; a
    /// checkpoint that fails before its offsets commit has its partitions
    /// reload their state from their changelogs and process its records
    /// again.
    pub fn finish_checkpoint<C: ConsumerContext, K: Consumer<C>>(&mut self, consumer: &K) -> Result<()> {
        let finished = self.checkpointer.finish_alone(&self.registry, consumer);
        if finished.is_err() {
            // The current checkpoint read through the failed one.
            self.txns = OpenTxns::default();
        }
        self.after_checkpoint(consumer, finished)
    }

    /// What follows a checkpoint's commit, `committed`: reloads after a
    /// failure that left partitions without their local state, snapshots
    /// and rebuilds after a success.
    fn after_checkpoint<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        committed: Result<()>,
    ) -> Result<()> {
        if let Err(e) = committed {
            let reloads = self.checkpointer.take_reloads();
            if !reloads.is_empty() {
                // A pipelined checkpoint failed before its offsets
                // committed: its partitions drop the writes set aside.
                if let Err(reload) = self
                    .assignments
                    .reload(consumer, reloads, &mut self.registry, &self.readers)
                {
                    tracing::error!(error = %reload, "pausing partitions to reload them after a failed checkpoint failed");
                }
            }
            let unflushed = self.checkpointer.take_unflushed();
            if unflushed.is_empty() || crate::error::disk_full_cause(&e).is_none() {
                return Err(e);
            }
            // Committed to Kafka, not written locally: those partitions reload
            // their state from the changelog before they process anything
            // more.
            let partitions = unflushed.iter().map(|(tp, _)| tp.clone()).collect();
            if let Err(reload) = self
                .assignments
                .reload(consumer, unflushed, &mut self.registry, &self.readers)
            {
                if crate::error::disk_full_cause(&reload).is_none() {
                    tracing::error!(error = %reload, "pausing partitions to reload them after a full disk failed");
                }
            }
            return Err(crate::disk_full::raise(e, partitions));
        }
        let assignments = &self.assignments;
        self.snapshots
            .after_flush(&self.registry, |tp| assignments.is_ready(tp));
        // Damage found by the local flush, after the checkpoint committed.
        self.heal_damaged(consumer)
    }

    /// Rebuilds the store partitions that processing found damaged (a read
    /// of a damaged block, a write refused because a background job found
    /// a damaged file), under [`crate::CorruptionPolicy::Rebuild`]: the
    /// checkpoint in progress is dropped (its records were processed beside
    /// damaged state; under exactly-once its Kafka transaction is aborted)
    /// and every other partition it processed is moved back to its first
    /// record of it; each damaged partition is paused, moved to quarantine,
    /// restored from its changelog and resumed at its committed offset,
    /// while the others go on. Under [`crate::CorruptionPolicy::Fail`] the
    /// damage is returned.
    fn heal_damaged<C: ConsumerContext, K: Consumer<C>>(&mut self, consumer: &K) -> Result<()> {
        if !self.checkpointer.damage_watch().any() {
            return Ok(());
        }
        let found = self.checkpointer.damage_watch().take();
        if !self.assignments.rebuilds() {
            let first = found.into_values().next().map(|f| f.error);
            return match first {
                Some(e) => Err(ManagerError::State(e)),
                None => Ok(()),
            };
        }
        let damaged: Vec<TopicPartition> = found
            .keys()
            .map(|(id, p)| TopicPartition::of_store(self.registry.get(*id).stream(), *p))
            .collect();
        // A pipelined checkpoint in flight first: the rebuild closes
        // partitions its writes go to (a damaged one's write is skipped:
        // the rebuild restores it from its changelog).
        let in_flight = self.checkpointer.finish_alone(&self.registry, consumer);
        if in_flight.is_err() {
            let reloads = self
                .checkpointer
                .take_reloads()
                .into_iter()
                .filter(|(tp, _)| !damaged.contains(tp))
                .collect();
            if let Err(e) = self
                .assignments
                .reload(consumer, reloads, &mut self.registry, &self.readers)
            {
                tracing::error!(error = %e, "pausing partitions to reload them after a failed checkpoint failed");
            }
        }
        self.txns = OpenTxns::default();
        self.checkpointer.abort_and_rewind(consumer, &damaged)?;
        for (((id, _), f), tp) in found.into_iter().zip(damaged) {
            self.checkpointer.forget(&tp);
            self.assignments
                .rebuild_active(consumer, &tp, id, f, &mut self.registry, &self.readers)?;
        }
        in_flight
    }

    /// Revokes every source partition assigned here (see
    /// [`on_revoke`](Self::on_revoke)).
    pub(crate) fn revoke_all(&mut self) -> Result<()> {
        let assigned = self.assignments.assigned();
        self.on_revoke(&assigned)
    }

    /// Stops every standby replica kept here.
    pub(crate) fn stop_standbys(&mut self) -> Result<()> {
        self.assignments.stop_standbys(&mut self.registry)
    }

    /// Stops the restorer thread (started again when next needed).
    pub(crate) fn stop_restorer(&mut self) {
        self.assignments.stop_restorer();
    }

    /// Cancels a running snapshot download (its partition keeps no half
    /// state) and stops the thread (started again when next needed).
    pub(crate) fn stop_bootstraps(&mut self) {
        self.assignments.stop_bootstraps();
    }

    /// Drops the current checkpoint without committing anything (aborting
    /// the Kafka transaction under exactly-once).
    pub fn abort(&mut self) -> Result<()> {
        self.txns = OpenTxns::default();
        self.checkpointer.abort()
    }

    /// Writes every write-behind cache to its backend now (a clean
    /// shutdown; revocations flush their partitions by themselves). After
    /// it, a restart replays nothing already committed.
    pub fn flush_caches(&mut self) -> Result<()> {
        self.registry.flush_caches()
    }

    /// The write-behind cache of each open partition of the store behind
    /// `handle` (empty if it was registered without
    /// [`StoreSpec::write_behind`](crate::StoreSpec::write_behind)):
    /// `changelog_offset` is what its committed checkpoints include,
    /// `flushed_offset` what the backend holds; a restart now would replay
    /// the changelog between them.
    pub fn write_behind_stats<T: StoreType>(
        &self,
        handle: &StoreHandle<T>,
    ) -> Result<BTreeMap<u32, state_cache::WriteBehindStats>> {
        self.check_handle(handle)?;
        let s = self.registry.get(handle.id);
        let Some(wb) = s.write_behind() else {
            return Ok(Default::default());
        };
        let store = s.store();
        Ok(store
            .assigned_partitions()
            .into_iter()
            .filter_map(|p| Some((p, wb.partition(store.location(), p)?.cache_stats())))
            .collect())
    }

    /// True once `commit_interval` has passed since the last commit.
    pub fn commit_due(&self) -> bool {
        self.checkpointer.commit_due()
    }

    /// True if processing found a store partition damaged (a read or write
    /// of a transaction failed with [`state_core::Error::PartitionCorrupt`])
    /// and the next [`maintain`](Self::maintain) or
    /// [`commit`](Self::commit) rebuilds it under
    /// [`crate::CorruptionPolicy::Rebuild`]. The record whose processing
    /// failed is then not lost: skip it (do not mark it
    /// [`processed`](Self::processed)) and go on; the rebuild drops the
    /// checkpoint in progress and moves the consumer back to it. Under
    /// [`crate::CorruptionPolicy::Fail`] that call returns the damage.
    pub fn damage_found(&self) -> bool {
        self.checkpointer.damage_watch().any()
    }

    /// Takes an error raised inside a rebalance callback, if any.
    pub fn take_error(&mut self) -> Option<ManagerError> {
        self.pending_error.take()
    }

    pub(crate) fn set_error(&mut self, e: ManagerError) {
        tracing::error!(error = %e, "state manager error in a rebalance callback");
        self.pending_error.get_or_insert(e);
    }

    /// The open partition `partition` of the store behind `handle`, for
    /// inspection (tests, tools). Reads through it see only what was
    /// flushed (and, for a store with write-behind, its cache).
    pub fn partition<T: StoreType>(&self, handle: &StoreHandle<T>, partition: u32) -> Result<Arc<dyn StorePartition>> {
        self.check_handle(handle)?;
        self.registry
            .get(handle.id)
            .partition(partition)
            .ok_or_else(|| ManagerError::NotAssigned {
                stream: handle.stream.to_string(),
                partition,
            })
    }

    /// The standby replicas kept here, per store partition.
    pub fn standby_report(&self) -> Vec<StandbyReport> {
        self.assignments.standby_report(&self.registry)
    }

    /// Deletes the group's whole state directory. Refused while partitions
    /// are assigned or kept as standbys.
    pub fn clear_state(&mut self) -> Result<()> {
        let open = self.registry.open_partitions();
        if open > 0 || self.assignments.len() > 0 {
            return Err(ManagerError::StillAssigned {
                assigned: open.max(self.assignments.len()),
            });
        }
        self.registry.destroy_all()?;
        state_core::remove_store_dir(&self.layout.group_dir())?;
        Ok(())
    }
}
