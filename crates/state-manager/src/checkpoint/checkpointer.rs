//! [`Checkpointer`]: the checkpoint protocol — the order in which the open
//! transactions, the producer, the source offsets and local state commit
//! under each guarantee.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use state_changelog::ChangelogProducer;
use state_core::{ProcessedOffsets, StorePartition, TopicPartition};

use super::group_commit::{commit_offsets, Waited};
use super::in_flight::{InFlight, StagedWrite};
use super::offsets::SourceOffsets;
use super::parallel;
use super::producer::ProducerLifecycle;
use super::rewinds::Rewinds;
use super::staged::{PendingWrite, StagedPartition};
use super::unflushed::Unflushed;
use super::writer::{BackgroundWrite, WriteJob};
use crate::config::{ManagerConfig, ProcessingGuarantee};
use crate::error::{CheckpointError, ManagerError, Result};
use crate::events::{Events, ManagerEvent, RewoundPartition};
use crate::healing::DamageWatch;
use crate::registry::Registry;
use crate::stage::CheckpointStage;
use crate::txns::OpenTxns;

/// Receives checkpoint stages.
type CheckpointObserver = Box<dyn FnMut(CheckpointStage) + Send>;

/// A checkpoint that did not reach `stage` because of `cause`.
fn failed(stage: CheckpointStage, cause: CheckpointError) -> ManagerError {
    ManagerError::CheckpointFailed {
        stage,
        cause: Box::new(cause),
    }
}

/// A store partition's transaction failed on the way to `stage`.
fn txn_failed(
    stage: CheckpointStage,
    store: String,
    partition: u32,
) -> impl FnOnce(state_txn::TxnError) -> ManagerError {
    move |source| {
        failed(
            stage,
            CheckpointError::Transaction {
                store,
                partition,
                source,
            },
        )
    }
}

/// Produces every open transaction's changelog records, each tagged with
/// the last source offset processed in its partition (the checkpoint's
/// first stage, pipelined or not).
fn prepare_all(txns: &mut OpenTxns, offsets: &SourceOffsets, registry: &Registry) -> Result<()> {
    for ((id, partition), txn) in txns.all_mut() {
        let store = registry.get(id);
        let processed = offsets
            .last_of(&TopicPartition::of_store(store.stream(), partition))
            .map(|o| ProcessedOffsets::new().with(store.stream().to_owned(), o));
        txn.prepare(processed.as_ref())
            .map_err(txn_failed(CheckpointStage::Produced, store.describe(), partition))?;
    }
    Ok(())
}

/// The local writes the transactions flushed into their `staged`
/// partitions set aside, one per store partition that wrote something.
fn captured_writes(staged: &BTreeMap<(usize, u32), Arc<StagedPartition>>, registry: &Registry) -> Vec<StagedWrite> {
    let mut writes = Vec::new();
    for (&(id, partition), s) in staged {
        if let Some(batch) = s.take_captured() {
            writes.push(StagedWrite {
                key: (id, partition),
                source: TopicPartition::of_store(registry.get(id).stream(), partition),
                target: s.inner().clone(),
                pending: Arc::new(PendingWrite::new(batch)),
                landed: None,
            });
        }
    }
    writes
}

/// The `outcome` label of a checkpoint's metric.
fn outcome_label(res: &Result<Kept>) -> &'static str {
    match res {
        Ok(Kept::Flushed | Kept::Committed) => "ok",
        Ok(Kept::Rewound) => "rewound",
        Err(_) => "failed",
    }
}

/// The error of a local write left out because an earlier one of its
/// checkpoint failed (reported when that one is not, being revoked).
fn not_attempted() -> state_core::Error {
    state_core::Error::Backend {
        backend: "state-manager",
        operation: "writing a checkpoint's local state behind the poll loop",
        subject: None,
        source: "not written: an earlier write of the checkpoint failed; the partition reloads from its changelog"
            .into(),
    }
}

/// A Kafka call failed on the way to `stage`.
fn kafka_failed(
    stage: CheckpointStage,
    operation: &'static str,
) -> impl FnOnce(rdkafka::error::KafkaError) -> ManagerError {
    move |source| failed(stage, CheckpointError::Kafka { operation, source })
}

/// Where a commit runs, which decides whether it may wait for a rebalance
/// to let its offsets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CommitCaller {
    /// The application's thread (the poll loop): it may wait up to
    /// `kafka_timeout`.
    PollLoop,
    /// A rebalance callback: the rebalance waits for it, so it never waits.
    RebalanceCallback,
}

/// What became of a checkpoint that did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kept {
    /// Committed and flushed locally (or there was nothing to commit).
    Flushed,
    /// Committed and taken by the group; the local write is still to
    /// come.
    Committed,
    /// Committed in Kafka but not taken by the group: not kept locally,
    /// its records are processed again.
    Rewound,
}

/// Commits checkpoints: owns the producer (and its Kafka transaction), the
/// source offsets processed since the last checkpoint, and the time of the
/// last commit.
pub(crate) struct Checkpointer {
    producer: ProducerLifecycle,
    guarantee: ProcessingGuarantee,
    mirror_transactional_offsets: bool,
    kafka_timeout: Duration,
    commit_interval: Duration,
    offsets: SourceOffsets,
    rewinds: Rewinds,
    last_commit: Instant,
    observer: Option<CheckpointObserver>,
    events: Events,
    /// Source partitions of the last checkpoint that was committed but not
    /// written locally.
    unflushed: Unflushed,
    /// The store partitions this checkpoint's transactions found damaged.
    damaged: DamageWatch,
    /// [`ManagerConfig::pipelined_checkpoints`].
    pipelined: bool,
    /// Pipelined: the partitions the current checkpoint's transactions
    /// write to, their writes set aside.
    staged: BTreeMap<(usize, u32), Arc<StagedPartition>>,
    /// Pipelined: the checkpoint whose delivery, offset commit and local
    /// write are still to come (at most one).
    in_flight: Option<InFlight>,
    /// Source partitions of a failed pipelined checkpoint whose local view
    /// (the writes set aside) is dropped: they reload from their
    /// changelogs and resume at the offset given.
    reloads: Vec<(TopicPartition, Option<i64>)>,
}

impl Checkpointer {
    /// A checkpointer for `config`, producing with `kafka`'s settings as
    /// instance `instance_id`.
    pub(crate) fn new(config: &ManagerConfig, kafka: &ClientConfig, instance_id: &str) -> Self {
        Checkpointer {
            producer: ProducerLifecycle::new(config, kafka, instance_id),
            guarantee: config.guarantee,
            mirror_transactional_offsets: config.mirror_transactional_offsets,
            kafka_timeout: config.kafka_timeout,
            commit_interval: config.commit_interval,
            offsets: SourceOffsets::default(),
            rewinds: Rewinds::default(),
            last_commit: Instant::now(),
            observer: None,
            events: Events::default(),
            unflushed: Unflushed::default(),
            damaged: DamageWatch::default(),
            pipelined: config.pipelined_checkpoints,
            staged: BTreeMap::new(),
            in_flight: None,
            reloads: Vec::new(),
        }
    }

    /// The partition the current checkpoint's transaction on (store `id`,
    /// `partition`) works on: `partition` itself, or, with pipelined
    /// checkpoints, a view that sets its local write aside and reads
    /// through the write of the checkpoint in flight (see `staged`).
    pub(crate) fn stage(
        &mut self,
        id: usize,
        partition: u32,
        target: Arc<dyn StorePartition>,
    ) -> Arc<dyn StorePartition> {
        if !self.pipelined {
            return target;
        }
        let below = self.in_flight.as_ref().and_then(|f| f.pending_for((id, partition)));
        let staged = Arc::new(StagedPartition::new(target, below));
        self.staged.insert((id, partition), staged.clone());
        staged
    }

    /// Where its events go (shared with whoever else reports them).
    pub(crate) fn events(&self) -> Events {
        self.events.clone()
    }

    /// Receives every stage a checkpoint passes.
    pub(crate) fn set_observer(&mut self, f: impl FnMut(CheckpointStage) + Send + 'static) {
        self.observer = Some(Box::new(f));
    }

    /// Receives every [`ManagerEvent`].
    pub(crate) fn set_event_listener(&mut self, f: impl FnMut(&ManagerEvent) + Send + 'static) {
        self.events.set_listener(f);
    }

    /// True if the store partition (`id`, `partition`) whose local write
    /// failed with `e` was found damaged: it is rebuilt from its changelog,
    /// which holds the checkpoint, instead of reported unflushed (the
    /// manager takes it from `damaged`).
    fn rebuilt_instead(&self, id: usize, partition: u32, store: &str, e: &dyn std::fmt::Display) -> bool {
        let damaged = self.damaged.holds(id, partition);
        if damaged {
            tracing::warn!(store, partition, error = %e, "flushing a damaged partition failed; it is rebuilt from its changelog");
        }
        damaged
    }

    /// The offset of the last record of store `id`'s changelog partition
    /// `partition` known delivered: what a local write of it includes.
    fn delivered_offset(&self, registry: &Registry, id: usize, partition: u32) -> Option<u64> {
        registry
            .get(id)
            .changelog_topic()
            .and_then(|topic| self.producer.last_offset(topic, partition))
    }

    fn observe(&mut self, stage: CheckpointStage) {
        if let Some(f) = &mut self.observer {
            f(stage);
        }
    }

    /// Exactly-once: begins the checkpoint's Kafka transaction unless one is
    /// open. At-least-once: nothing.
    pub(crate) fn begin(&mut self) -> Result<()> {
        self.producer.begin()
    }

    /// Where the checkpoint's transactions note the store partitions they
    /// find damaged (they read and write through
    /// [`DamageWatch::watch`]); a commit does not fail on the flush of one
    /// (see [`crate::StateStoreManager::commit`]).
    pub(crate) fn damage_watch(&self) -> &DamageWatch {
        &self.damaged
    }

    /// The producer, created on first use.
    pub(crate) fn producer(&mut self) -> Result<Arc<ChangelogProducer>> {
        self.producer.producer()
    }

    /// Records that the record at `offset` of `topic[partition]` (the
    /// topic name and store partition as the poll loop has them) was
    /// processed in the current checkpoint. Called once per record, so the
    /// [`TopicPartition`] is only built for a partition's first record of
    /// the checkpoint.
    pub(crate) fn processed_at(&mut self, topic: &str, partition: u32, offset: i64) -> Result<()> {
        self.producer.begin()?;
        let source = || TopicPartition::of_store(topic, partition);
        let kafka_partition = TopicPartition::kafka_partition(partition);
        self.offsets.record_at(topic, kafka_partition, offset, source);
        Ok(())
    }

    /// Forgets what was processed of revoked source partition `source`
    /// (and a rewind still pending for it).
    pub(crate) fn forget(&mut self, source: &TopicPartition) {
        self.offsets.forget(source);
        self.rewinds.forget(source);
        if let Some(f) = &mut self.in_flight {
            f.forget(source);
        }
    }

    /// Does the rewinds a refused mirrored offset commit asked for and the
    /// consumer refused then (their partitions are paused until done); see
    /// `rewinds`. `ready` and `restoring` tell where a source partition
    /// stands here. Call from the poll loop, before records are processed.
    pub(crate) fn settle_rewinds<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        ready: impl Fn(&TopicPartition) -> bool,
        restoring: impl Fn(&TopicPartition) -> bool,
    ) {
        self.rewinds.settle(consumer, self.kafka_timeout, ready, restoring);
    }

    /// True once `commit_interval` has passed since the last commit.
    pub(crate) fn commit_due(&self) -> bool {
        self.commit_due_at(Instant::now())
    }

    /// [`commit_due`](Self::commit_due) as of `now`.
    pub(crate) fn commit_due_at(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_commit) >= self.commit_interval
    }

    /// Commits `txns` and the source offsets processed since the last
    /// checkpoint with `consumer`'s group (see
    /// [`crate::StateStoreManager::commit`]). On failure the Kafka
    /// transaction is aborted and nothing is flushed locally.
    pub(crate) fn commit<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        mut txns: OpenTxns,
        registry: &Registry,
        consumer: &K,
        caller: CommitCaller,
    ) -> Result<()> {
        if self.pipelined {
            return match self.guarantee {
                ProcessingGuarantee::AtLeastOnce => self.commit_pipelined(txns, registry, consumer, caller),
                ProcessingGuarantee::ExactlyOnce => self.commit_overlapped(txns, registry, consumer, caller),
            };
        }
        let offsets = std::mem::take(&mut self.offsets);
        self.last_commit = Instant::now();
        self.unflushed = Unflushed::default();
        if txns.is_empty() && offsets.is_empty() && !self.producer.transaction_open() {
            return Ok(());
        }
        let started = Instant::now();
        let res = self.commit_checkpoint(&mut txns, &offsets, registry, consumer, caller);
        crate::metrics::checkpoint(outcome_label(&res));
        match res {
            Ok(kept) => {
                if kept == Kept::Flushed {
                    crate::metrics::stage("total", started.elapsed());
                }
                Ok(())
            }
            Err(e) => {
                self.producer.abort_after_failure();
                Err(e)
            }
        }
    }

    /// Pipelined: takes the current checkpoint's source offsets and staged
    /// partitions, and forgets what the last commit left to report.
    fn take_pipelined(&mut self) -> (SourceOffsets, BTreeMap<(usize, u32), Arc<StagedPartition>>) {
        self.last_commit = Instant::now();
        self.unflushed = Unflushed::default();
        self.reloads.clear();
        (std::mem::take(&mut self.offsets), std::mem::take(&mut self.staged))
    }

    /// Pipelined at-least-once: finishes the checkpoint in flight (see
    /// [`finish_in_flight`](Self::finish_in_flight)), then prepares this
    /// one's changelog records and sets its local writes aside, and returns
    /// with it in flight; from a rebalance callback it finishes it too.
    /// The local write of the one in flight runs on a helper thread while
    /// this one prepares (which reads through it and writes nothing
    /// locally), and lands before this returns. If the one in flight
    /// fails, this one (which read through it) is dropped and its
    /// partitions move back to their first records of it (those that wrote
    /// state, or whose local write failed, reload).
    fn commit_pipelined<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        mut txns: OpenTxns,
        registry: &Registry,
        consumer: &K,
        caller: CommitCaller,
    ) -> Result<()> {
        let (offsets, staged) = self.take_pipelined();
        let started = Instant::now();
        let landing = match self.in_flight.take() {
            None => None,
            Some(flight) => match self.finish(flight, registry, consumer, caller) {
                Ok(landing) => Some(landing),
                Err(e) => {
                    crate::metrics::checkpoint("failed");
                    self.rewind_current(consumer, &offsets);
                    return Err(e);
                }
            },
        };
        let prepared =
            (!txns.is_empty() || !offsets.is_empty()).then(|| self.set_aside(&mut txns, &offsets, &staged, registry));
        if let Some(landing) = landing {
            let landed = self.land(landing, registry);
            crate::metrics::checkpoint(if landed.is_ok() { "ok" } else { "failed" });
            if let Err(e) = landed {
                match prepared {
                    Some(Ok(writes)) => self.drop_in_flight(
                        consumer,
                        &InFlight {
                            offsets,
                            writes,
                            writer: None,
                        },
                    ),
                    Some(Err(_)) => {
                        // Its failure asked its partitions to reload; those
                        // whose write failed reload as unflushed instead.
                        let unflushed = &self.unflushed;
                        self.reloads.retain(|(tp, _)| !unflushed.contains(tp));
                        self.rewind_current(consumer, &offsets);
                    }
                    None => self.rewind_current(consumer, &offsets),
                }
                return Err(e);
            }
            crate::metrics::stage("total", started.elapsed());
        }
        match prepared {
            None => return Ok(()),
            Some(Ok(writes)) => {
                self.in_flight = Some(InFlight {
                    offsets,
                    writes,
                    writer: None,
                })
            }
            Some(Err(e)) => {
                crate::metrics::checkpoint("failed");
                return Err(e);
            }
        }
        if caller == CommitCaller::RebalanceCallback {
            // The partitions are about to move: nothing stays in flight.
            self.finish_in_flight(registry, consumer, caller)?;
        }
        Ok(())
    }

    /// Exactly-once with pipelined checkpoints: waits for the local write
    /// of the checkpoint before (its partitions' next write goes on top of
    /// it), commits this one's Kafka transaction as
    /// [`commit_checkpoint`](Self::commit_checkpoint) does, then sets its
    /// local writes aside, where the next checkpoint's transactions read
    /// them, and starts them behind the poll loop (see `writer`); from a
    /// rebalance callback it waits for them too. If the write before
    /// failed, this checkpoint, which read through it, is aborted and its
    /// partitions move back to their first records of it.
    fn commit_overlapped<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        mut txns: OpenTxns,
        registry: &Registry,
        consumer: &K,
        caller: CommitCaller,
    ) -> Result<()> {
        let (offsets, staged) = self.take_pipelined();
        self.finish_before(&offsets, registry, consumer, caller)?;
        if txns.is_empty() && offsets.is_empty() && !self.producer.transaction_open() {
            return Ok(());
        }
        let started = Instant::now();
        let committed = self.commit_to_kafka(&mut txns, &offsets, registry, consumer, caller);
        crate::metrics::checkpoint(outcome_label(&committed));
        match committed {
            Ok(Kept::Rewound) => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                self.producer.abort_after_failure();
                return Err(e);
            }
        }
        let failure = self.start_writes(&mut txns, offsets, &staged, registry);
        crate::metrics::stage("total", started.elapsed());
        if failure.is_some() || caller == CommitCaller::RebalanceCallback {
            // After a failure the manager may reload partitions these
            // writes go to; in a rebalance the partitions are about to
            // move. Either way nothing stays behind the poll loop.
            let landed = self.finish_in_flight(registry, consumer, caller);
            if let Some(e) = failure {
                return Err(e);
            }
            landed?;
        }
        Ok(())
    }

    /// Exactly-once, once the transaction of `txns` committed: flushes
    /// them into their `staged` partitions (which set the writes aside and
    /// whose windowed stores update their indexes here, on the poll loop's
    /// thread), then starts the writes behind the poll loop as the
    /// checkpoint in flight. A transaction that fails to flush leaves its
    /// partition unflushed; the first such failure is returned.
    fn start_writes(
        &mut self,
        txns: &mut OpenTxns,
        offsets: SourceOffsets,
        staged: &BTreeMap<(usize, u32), Arc<StagedPartition>>,
        registry: &Registry,
    ) -> Option<ManagerError> {
        let timer = Instant::now();
        let mut failure = None;
        for ((id, partition), txn) in txns.all_mut() {
            let Err(e) = txn.flush(self.delivered_offset(registry, id, partition)) else {
                continue;
            };
            let store = registry.get(id);
            if self.rebuilt_instead(id, partition, &store.describe(), &e) {
                continue;
            }
            self.unflushed
                .add(TopicPartition::of_store(store.stream(), partition), &offsets);
            failure.get_or_insert(txn_failed(CheckpointStage::Flushed, store.describe(), partition)(e));
        }
        let writes = captured_writes(staged, registry);
        let jobs = writes
            .iter()
            .map(|w| WriteJob::new(w.target.clone(), w.pending.clone()))
            .collect();
        self.in_flight = Some(InFlight {
            offsets,
            writes,
            writer: Some(BackgroundWrite::start(jobs)),
        });
        crate::metrics::stage("set_aside", timer.elapsed());
        failure
    }

    /// Waits for a committed checkpoint's writes behind the poll loop
    /// (exactly-once: its transaction committed; at-least-once: its
    /// offsets, see [`finish`](Self::finish)). A write that failed leaves
    /// its partition unflushed (committed in Kafka, behind its changelog
    /// locally), as a failed local write of a checkpoint always does; a
    /// damaged partition's is skipped (its rebuild restores it from the
    /// changelog).
    fn land(&mut self, mut flight: InFlight, registry: &Registry) -> Result<()> {
        let timer = Instant::now();
        flight.wait();
        let mut failure = None;
        for w in &mut flight.writes {
            let (id, partition) = w.key;
            let store = registry.get(id);
            let e = match w.landed.take() {
                Some(Ok(())) => continue,
                Some(Err(e)) if self.rebuilt_instead(id, partition, &store.describe(), &e) => continue,
                Some(Err(e)) => e,
                None => not_attempted(),
            };
            self.unflushed.add(w.source.clone(), &flight.offsets);
            failure.get_or_insert(txn_failed(CheckpointStage::Flushed, store.describe(), partition)(
                state_txn::TxnError::Core(e),
            ));
        }
        if let Some(e) = failure {
            return Err(e);
        }
        crate::metrics::stage("flush", timer.elapsed());
        self.observe(CheckpointStage::Flushed);
        Ok(())
    }

    /// Prepares the changelog records of `txns` (tagged with `offsets`)
    /// and flushes them into their `staged` partitions, which set the
    /// writes aside; returns the writes.
    fn set_aside(
        &mut self,
        txns: &mut OpenTxns,
        offsets: &SourceOffsets,
        staged: &BTreeMap<(usize, u32), Arc<StagedPartition>>,
        registry: &Registry,
    ) -> Result<Vec<StagedWrite>> {
        let timer = Instant::now();
        prepare_all(txns, offsets, registry)?;
        // Only once every transaction prepared: a windowed transaction's
        // flush updates its store's in-memory index, which must not get
        // ahead of a checkpoint that fails.
        for ((id, partition), txn) in txns.all_mut() {
            // Into the staged partition: set aside, not written.
            if let Err(e) = txn.flush(None) {
                // Some flushes updated their indexes already: the
                // checkpoint's partitions reload.
                for &(id, partition) in staged.keys() {
                    let source = TopicPartition::of_store(registry.get(id).stream(), partition);
                    self.reloads.push((source.clone(), offsets.first_of(&source)));
                }
                let store = registry.get(id);
                return Err(txn_failed(CheckpointStage::Flushed, store.describe(), partition)(e));
            }
        }
        let writes = captured_writes(staged, registry);
        crate::metrics::stage("prepare", timer.elapsed());
        Ok(writes)
    }

    /// Pipelined at-least-once: waits until every record produced so far
    /// (the checkpoint in flight's changelog and output records among them)
    /// is delivered, then commits its source offsets, then writes its
    /// local writes set aside, each with the offset of the last record of
    /// its changelog partition known delivered (what the write includes).
    /// Nothing to do without a checkpoint in flight.
    ///
    /// If the delivery or the offset commit fails, its offsets stay
    /// uncommitted and its writes are dropped: its partitions reload their
    /// state from their changelogs and resume at their first records of it
    /// (see [`take_reloads`](Self::take_reloads)); partitions it processed
    /// without writing state move back to their first records. If a local
    /// write fails, the checkpoint is committed but not written locally,
    /// as a failed local flush today (see
    /// [`take_unflushed`](Self::take_unflushed)).
    pub(crate) fn finish_in_flight<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        registry: &Registry,
        consumer: &K,
        caller: CommitCaller,
    ) -> Result<()> {
        let Some(flight) = self.in_flight.take() else {
            return Ok(());
        };
        if self.guarantee == ProcessingGuarantee::ExactlyOnce {
            // Committed already: only its local writes are left.
            return self.land(flight, registry);
        }
        let started = Instant::now();
        let res = self
            .finish(flight, registry, consumer, caller)
            .and_then(|landing| self.land(landing, registry));
        crate::metrics::checkpoint(if res.is_ok() { "ok" } else { "failed" });
        if res.is_ok() {
            crate::metrics::stage("total", started.elapsed());
        }
        res
    }

    /// Pipelined at-least-once: the checkpoint in flight delivered and its
    /// source offsets committed, then its local writes started behind the
    /// caller (see [`land`](Self::land)), each with the offset of the last
    /// record of its changelog partition known delivered. If the delivery
    /// or the commit fails, it is dropped (see
    /// [`drop_in_flight`](Self::drop_in_flight)).
    fn finish<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        mut flight: InFlight,
        registry: &Registry,
        consumer: &K,
        caller: CommitCaller,
    ) -> Result<InFlight> {
        let mut timer = Instant::now();
        let mut lap = |stage: &'static str| {
            crate::metrics::stage(stage, timer.elapsed());
            timer = Instant::now();
        };
        // 1. Every changelog (and output) record delivered.
        if let Err(source) = self.producer.flush() {
            self.drop_in_flight(consumer, &flight);
            return Err(failed(CheckpointStage::Produced, CheckpointError::Changelog { source }));
        }
        lap("produce");
        self.observe(CheckpointStage::Produced);
        // 2. Source offsets.
        let mut tpl = TopicPartitionList::new();
        let mut recorded = Ok(());
        for (source, offset) in flight.offsets.last() {
            recorded =
                recorded.and(tpl.add_partition_offset(source.topic(), source.partition(), Offset::Offset(offset + 1)));
        }
        let committed = recorded
            .map_err(|e| (e, "recording the offsets to commit"))
            .and_then(|()| match tpl.count() {
                0 => Ok(None),
                _ => commit_offsets(consumer, &tpl, self.rebalance_wait(caller))
                    .map_err(|e| (e, "committing the source offsets")),
            });
        match committed {
            Ok(waited) => self.report_wait(waited),
            Err((source, operation)) => {
                self.drop_in_flight(consumer, &flight);
                return Err(kafka_failed(CheckpointStage::Committed, operation)(source));
            }
        }
        lap("commit");
        self.observe(CheckpointStage::Committed);
        // 3. Local state, with the changelog offset it now includes.
        let jobs = flight
            .writes
            .iter()
            .map(|w| {
                let (id, partition) = w.key;
                let mut job = WriteJob::new(w.target.clone(), w.pending.clone());
                job.changelog_offset = self.delivered_offset(registry, id, partition);
                job
            })
            .collect();
        flight.writer = Some(BackgroundWrite::start(jobs));
        Ok(flight)
    }

    /// A checkpoint in flight failed before its offsets committed: its
    /// writes set aside are dropped, so the partitions it wrote reload
    /// from their changelogs (the transactions of the next checkpoint, and
    /// windowed stores' indexes, saw those writes) and resume at its first
    /// records; the others move back to their first records.
    fn drop_in_flight<C: ConsumerContext, K: Consumer<C>>(&mut self, consumer: &K, flight: &InFlight) {
        let mut records = 0;
        for (source, first) in flight.offsets.first() {
            records += flight.offsets.last_of(source).unwrap_or(first) - first + 1;
            if self.unflushed.contains(source) {
                // Its reload after the failed local write before resumes
                // it where this checkpoint started.
            } else if flight.writes_to(source) {
                self.reloads.push((source.clone(), Some(first)));
            } else {
                self.rewinds.rewind(consumer, source, first, self.kafka_timeout);
            }
        }
        for w in &flight.writes {
            if !self.reloads.iter().any(|(tp, _)| tp == &w.source) && !self.unflushed.contains(&w.source) {
                // State written without a processed record: ask the group.
                self.reloads.push((w.source.clone(), None));
            }
        }
        crate::metrics::rewound_records(records.max(0) as u64);
        tracing::warn!(
            partitions = self.reloads.len(),
            "the checkpoint in flight failed: its offsets are not committed and its records are processed again"
        );
    }

    /// The checkpoint in flight failed, so the current one, which read
    /// through it, is dropped: its partitions move back to their first
    /// records of it (those reloading resume where their reload says).
    fn rewind_current<C: ConsumerContext, K: Consumer<C>>(&mut self, consumer: &K, offsets: &SourceOffsets) {
        let unflushed = std::mem::take(&mut self.unflushed).into_vec();
        for (source, first) in offsets.first() {
            let reloading = self.reloads.iter().chain(&unflushed).any(|(tp, _)| tp == source);
            if !reloading {
                self.rewinds.rewind(consumer, source, first, self.kafka_timeout);
            }
        }
        for (tp, at) in unflushed {
            self.unflushed.add_at(tp, at);
        }
    }

    /// [`finish_in_flight`](Self::finish_in_flight) from the poll loop,
    /// outside a commit: if it fails, the current checkpoint, which read
    /// through it, is dropped and its partitions move back to their first
    /// records of it (the caller drops its transactions).
    pub(crate) fn finish_alone<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        registry: &Registry,
        consumer: &K,
    ) -> Result<()> {
        if self.in_flight.is_none() {
            return Ok(());
        }
        self.unflushed = Unflushed::default();
        self.reloads.clear();
        let offsets = std::mem::take(&mut self.offsets);
        let finished = self.finish_before(&offsets, registry, consumer, CommitCaller::PollLoop);
        if finished.is_err() {
            self.staged.clear();
        } else {
            self.offsets = offsets;
        }
        finished
    }

    /// Finishes the checkpoint in flight before the current one (processed
    /// as `offsets`) goes on. If that fails, the current checkpoint, which
    /// read through it, is dropped: its Kafka transaction aborted under
    /// exactly-once, its partitions moved back to their first records of
    /// it (those reloading resume where their reload says).
    fn finish_before<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        offsets: &SourceOffsets,
        registry: &Registry,
        consumer: &K,
        caller: CommitCaller,
    ) -> Result<()> {
        let finished = self.finish_in_flight(registry, consumer, caller);
        if finished.is_err() {
            // At-least-once has no transaction open: nothing to abort.
            self.producer.abort_after_failure();
            self.rewind_current(consumer, offsets);
        }
        finished
    }

    /// Source partitions a failed pipelined checkpoint left to reload, each
    /// with the offset to resume at (`None`: ask the group); cleared by the
    /// call.
    pub(crate) fn take_reloads(&mut self) -> Vec<(TopicPartition, Option<i64>)> {
        std::mem::take(&mut self.reloads)
    }

    /// How long a commit by `caller` may wait for a rebalance to take its
    /// offsets.
    fn rebalance_wait(&self, caller: CommitCaller) -> Option<Duration> {
        (caller == CommitCaller::PollLoop).then_some(self.kafka_timeout)
    }

    /// Reports a commit that had to wait for a rebalance.
    fn report_wait(&mut self, waited: Option<Waited>) {
        if let Some(Waited { waited, refused }) = waited {
            crate::metrics::commit_delayed_by_rebalance();
            tracing::info!(
                ?waited,
                refused,
                "offset commit waited for the group to finish rebalancing"
            );
            self.events
                .emit(ManagerEvent::CommitDelayedByRebalance { waited, refused });
        }
    }

    fn commit_checkpoint<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        txns: &mut OpenTxns,
        offsets: &SourceOffsets,
        registry: &Registry,
        consumer: &K,
        caller: CommitCaller,
    ) -> Result<Kept> {
        if self.commit_to_kafka(txns, offsets, registry, consumer, caller)? == Kept::Rewound {
            return Ok(Kept::Rewound);
        }
        let timer = Instant::now();
        // 4. Local state, with the changelog offset it now includes: every
        // store partition at once (see `parallel`).
        let mut jobs = Vec::new();
        for ((id, partition), txn) in txns.all_mut() {
            let offset = self.delivered_offset(registry, id, partition);
            jobs.push(((id, partition), txn, offset));
        }
        let flushed = parallel::run_all(jobs, parallel::threads(), |(key, txn, offset)| (key, txn.flush(offset)));
        let mut failure = None;
        for ((id, partition), outcome) in flushed {
            let Err(e) = outcome else { continue };
            let store = registry.get(id);
            if self.rebuilt_instead(id, partition, &store.describe(), &e) {
                continue;
            }
            // Committed but not written locally: reloaded from the
            // changelog (a full disk, say). The first failure is reported.
            self.unflushed
                .add(TopicPartition::of_store(store.stream(), partition), offsets);
            failure.get_or_insert(txn_failed(CheckpointStage::Flushed, store.describe(), partition)(e));
        }
        if let Some(e) = failure {
            return Err(e);
        }
        crate::metrics::stage("flush", timer.elapsed());
        self.observe(CheckpointStage::Flushed);
        Ok(Kept::Flushed)
    }

    /// The checkpoint's first three steps, in Kafka: its changelog records
    /// produced and delivered, then its source offsets committed (with
    /// the transaction under exactly-once).
    fn commit_to_kafka<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        txns: &mut OpenTxns,
        offsets: &SourceOffsets,
        registry: &Registry,
        consumer: &K,
        caller: CommitCaller,
    ) -> Result<Kept> {
        // 1. Changelog records, tagged with the processed source offsets.
        let mut timer = Instant::now();
        let mut lap = |stage: &'static str| {
            crate::metrics::stage(stage, timer.elapsed());
            timer = Instant::now();
        };
        prepare_all(txns, offsets, registry)?;
        lap("prepare");
        // 2. Every changelog (and output) record delivered.
        self.producer
            .flush()
            .map_err(|source| failed(CheckpointStage::Produced, CheckpointError::Changelog { source }))?;
        lap("produce");
        self.observe(CheckpointStage::Produced);
        // 3. Source offsets.
        let mut tpl = TopicPartitionList::new();
        for (source, offset) in offsets.last() {
            tpl.add_partition_offset(source.topic(), source.partition(), Offset::Offset(offset + 1))
                .map_err(kafka_failed(
                    CheckpointStage::Committed,
                    "recording the offsets to commit",
                ))?;
        }
        match self.guarantee {
            ProcessingGuarantee::AtLeastOnce => {
                if tpl.count() > 0 {
                    let waited = commit_offsets(consumer, &tpl, self.rebalance_wait(caller)).map_err(kafka_failed(
                        CheckpointStage::Committed,
                        "committing the source offsets",
                    ))?;
                    self.report_wait(waited);
                }
            }
            ProcessingGuarantee::ExactlyOnce => {
                self.producer.commit_transaction(&tpl, consumer)?;
                if self.mirror_transactional_offsets && tpl.count() > 0 {
                    // The transaction holds the offsets; this broker does not
                    // keep them, so the group's committed offsets come from
                    // this mirror. If the group refuses it past the wait (a
                    // long rebalance), it still points before this
                    // checkpoint: local state must not move past it, or
                    // whoever resumes from those offsets counts its records
                    // twice. So keep the checkpoint out of local state and
                    // rewind to its first records: they are processed again
                    // (their changelog records stay skipped on restores until
                    // later commits overwrite them).
                    match commit_offsets(consumer, &tpl, self.rebalance_wait(caller)) {
                        Ok(waited) => self.report_wait(waited),
                        Err(cause) => {
                            self.rewind(consumer, offsets, cause);
                            return Ok(Kept::Rewound);
                        }
                    }
                }
            }
        }
        lap("commit");
        self.observe(CheckpointStage::Committed);
        Ok(Kept::Committed)
    }

    /// Moves `consumer` back to the first record of each partition of a
    /// checkpoint the group did not take (refused with `cause`), and
    /// reports it.
    fn rewind<C: ConsumerContext, K: Consumer<C>>(&mut self, consumer: &K, offsets: &SourceOffsets, cause: KafkaError) {
        tracing::warn!(
            error = %cause,
            "mirrored offset commit failed: this checkpoint is not kept locally and its records are processed again"
        );
        let mut partitions = Vec::new();
        for (source, first) in offsets.first() {
            let last = offsets.last_of(source).unwrap_or(first);
            partitions.push(RewoundPartition {
                partition: source.clone(),
                first_offset: first,
                last_offset: last,
            });
            // A partition being revoked restores from the changelog
            // wherever it goes; one that stays must not fetch past the
            // checkpoint before it is moved back (see `rewinds`).
            self.rewinds.rewind(consumer, source, first, self.kafka_timeout);
        }
        crate::metrics::rewound_records(partitions.iter().map(RewoundPartition::records).sum());
        self.events.emit(ManagerEvent::CheckpointRewound { partitions, cause });
    }

    /// The source partitions of the last failed checkpoint whose offsets
    /// (and changelog records) were committed but whose state was not
    /// written locally, each with the offset it was committed at (`None`
    /// if the checkpoint processed none of its records); cleared by the
    /// call. Their local state is behind their changelogs.
    pub(crate) fn take_unflushed(&mut self) -> Vec<(TopicPartition, Option<i64>)> {
        std::mem::take(&mut self.unflushed).into_vec()
    }

    /// Drops the current checkpoint (aborting its Kafka transaction under
    /// exactly-once) and moves every source partition it processed, except
    /// `except`, back to its first record of it, so those records are
    /// processed again: a partition found damaged while processing took
    /// the checkpoint down with it. `except` are the damaged ones, which
    /// resume at their committed offsets after their rebuild.
    pub(crate) fn abort_and_rewind<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        except: &[TopicPartition],
    ) -> Result<()> {
        let offsets = std::mem::take(&mut self.offsets);
        self.staged.clear();
        self.producer.abort()?;
        let mut records = 0;
        for (source, first) in offsets.first() {
            if except.contains(source) {
                continue;
            }
            records += offsets.last_of(source).unwrap_or(first) - first + 1;
            self.rewinds.rewind(consumer, source, first, self.kafka_timeout);
        }
        crate::metrics::rewound_records(records.max(0) as u64);
        Ok(())
    }

    /// Drops what was processed since the last checkpoint and aborts the
    /// Kafka transaction under exactly-once.
    pub(crate) fn abort(&mut self) -> Result<()> {
        self.offsets = SourceOffsets::default();
        self.staged.clear();
        self.producer.abort()
    }
}

#[cfg(test)]
mod tests {

    use rdkafka::consumer::BaseConsumer;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext};
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    use super::*;

    /// An exactly-once checkpointer on `cluster` whose checkpoint holds one
    /// output record, the consumer it commits with, and the topic.
    fn checkpoint_with_output(
        cluster: &MockCluster<'static, DefaultProducerContext>,
        timeout: Duration,
    ) -> (Checkpointer, BaseConsumer) {
        let mut kafka = ClientConfig::new();
        kafka.set("bootstrap.servers", cluster.bootstrap_servers());
        let mut config = ManagerConfig::with_backend("g", "unused", state_core::MemoryBackend::shared());
        config.guarantee = ProcessingGuarantee::ExactlyOnce;
        config.kafka_timeout = timeout;
        let mut checkpointer = Checkpointer::new(&config, &kafka, "test");
        produce_output(&mut checkpointer);
        let consumer = kafka.set("group.id", "g").create().unwrap();
        (checkpointer, consumer)
    }

    fn produce_output(checkpointer: &mut Checkpointer) {
        checkpointer.begin().unwrap();
        let output = checkpointer.producer().unwrap();
        output
            .kafka()
            .send(BaseRecord::<str, str>::to("out").key("k").payload("v"))
            .map_err(|(e, _)| e)
            .unwrap();
    }

    fn commit(checkpointer: &mut Checkpointer, consumer: &BaseConsumer) -> Result<()> {
        checkpointer.commit(
            OpenTxns::default(),
            &Registry::default(),
            consumer,
            CommitCaller::PollLoop,
        )
    }

    #[test]
    fn the_checkpoint_of_a_fenced_producer_fails_as_fenced() {
        let cluster = MockCluster::<DefaultProducerContext>::new(1).unwrap();
        cluster.create_topic("out", 1, 1).unwrap();
        let (mut zombie, consumer) = checkpoint_with_output(&cluster, Duration::from_secs(10));
        // What the coordinator answers once a newer producer with the same
        // transactional id has started.
        cluster.request_errors(
            RDKafkaApiKey::EndTxn,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
        );
        let err = commit(&mut zombie, &consumer).unwrap_err();
        assert!(
            matches!(
                &err,
                ManagerError::CheckpointFailed {
                    stage: CheckpointStage::Committed,
                    cause,
                } if matches!(**cause, CheckpointError::Kafka { .. })
            ),
            "{err}"
        );
        assert!(err.is_fenced(), "{err}");
        assert!(!err.is_retriable(), "{err}");
        assert!(err.to_string().contains("stop this one"), "{err}");
    }

    #[test]
    fn a_commit_of_the_transaction_that_times_out_is_not_retried_in_process() {
        // librdkafka keeps the commit going after the timeout, so its
        // outcome is unknown until a restart's new producer settles it.
        let cluster = MockCluster::<DefaultProducerContext>::new(1).unwrap();
        cluster.create_topic("out", 1, 1).unwrap();
        let (mut checkpointer, consumer) = checkpoint_with_output(&cluster, Duration::from_secs(1));
        cluster.request_errors(
            RDKafkaApiKey::EndTxn,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS; 500],
        );
        let err = commit(&mut checkpointer, &consumer).unwrap_err();
        assert!(err.kafka_error().is_some(), "{err}");
        assert!(!err.is_retriable() && !err.is_fenced(), "{err}");
    }

    #[test]
    fn an_offset_commit_refused_during_a_rebalance_fails_retriably_and_the_next_checkpoint_commits() {
        let cluster = MockCluster::<DefaultProducerContext>::new(1).unwrap();
        cluster.create_topic("in", 1, 1).unwrap();
        let mut kafka = ClientConfig::new();
        kafka.set("bootstrap.servers", cluster.bootstrap_servers());
        let mut config = ManagerConfig::with_backend("g", "unused", state_core::MemoryBackend::shared());
        // The sequential checkpoint: its own commit reports the refusal.
        config.pipelined_checkpoints = false;
        let mut checkpointer = Checkpointer::new(&config, &kafka, "test");
        let consumer: BaseConsumer = kafka.set("group.id", "g").create().unwrap();
        cluster.request_errors(
            RDKafkaApiKey::OffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS],
        );
        checkpointer.processed_at("in", 0, 7).unwrap();
        let err = commit(&mut checkpointer, &consumer).unwrap_err();
        assert!(
            matches!(
                err,
                ManagerError::CheckpointFailed {
                    stage: CheckpointStage::Committed,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.is_retriable() && !err.is_fenced(), "{err}");

        checkpointer.processed_at("in", 0, 7).unwrap();
        commit(&mut checkpointer, &consumer).unwrap();
    }

    /// A pipelined at-least-once checkpointer on `cluster` with `props` on
    /// its producer, and a consumer of group `g` to commit with.
    fn pipelined(
        cluster: &MockCluster<'static, DefaultProducerContext>,
        props: &[(&str, &str)],
    ) -> (Checkpointer, BaseConsumer) {
        let mut kafka = ClientConfig::new();
        kafka.set("bootstrap.servers", cluster.bootstrap_servers());
        let mut config = ManagerConfig::with_backend("g", "unused", state_core::MemoryBackend::shared());
        config.pipelined_checkpoints = true;
        config.kafka_timeout = Duration::from_secs(10);
        config.producer_properties = props.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let checkpointer = Checkpointer::new(&config, &kafka, "test");
        let consumer = kafka.set("group.id", "g").create().unwrap();
        (checkpointer, consumer)
    }

    /// The offset committed for `in[0]`, if any.
    fn committed(consumer: &BaseConsumer) -> Option<i64> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("in", 0);
        let got = consumer.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        match got.find_partition("in", 0).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        }
    }

    fn commit_as(checkpointer: &mut Checkpointer, consumer: &BaseConsumer, caller: CommitCaller) -> Result<()> {
        checkpointer.commit(OpenTxns::default(), &Registry::default(), consumer, caller)
    }

    #[test]
    fn a_pipelined_checkpoint_commits_its_offsets_when_the_next_one_finishes_it_and_in_order() {
        let cluster = MockCluster::<DefaultProducerContext>::new(1).unwrap();
        cluster.create_topic("in", 1, 1).unwrap();
        cluster.create_topic("out", 1, 1).unwrap();
        let (mut checkpointer, consumer) = pipelined(&cluster, &[]);
        let mut stages = Vec::new();
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let sink = seen.clone();
        checkpointer.set_observer(move |stage| sink.lock().push(stage));

        checkpointer.processed_at("in", 0, 7).unwrap();
        produce_output(&mut checkpointer);
        commit(&mut checkpointer, &consumer).unwrap();
        assert_eq!(committed(&consumer), None, "in flight: not committed yet");
        assert!(seen.lock().is_empty(), "no stage reached while in flight");

        checkpointer.processed_at("in", 0, 8).unwrap();
        commit(&mut checkpointer, &consumer).unwrap();
        assert_eq!(
            committed(&consumer),
            Some(8),
            "the first finished, the second in flight"
        );
        stages.extend([
            CheckpointStage::Produced,
            CheckpointStage::Committed,
            CheckpointStage::Flushed,
        ]);
        assert_eq!(*seen.lock(), stages);

        checkpointer
            .finish_in_flight(&Registry::default(), &consumer, CommitCaller::PollLoop)
            .unwrap();
        assert_eq!(committed(&consumer), Some(9));
        // Nothing in flight: finishing again does nothing.
        checkpointer
            .finish_in_flight(&Registry::default(), &consumer, CommitCaller::PollLoop)
            .unwrap();
        stages.extend([
            CheckpointStage::Produced,
            CheckpointStage::Committed,
            CheckpointStage::Flushed,
        ]);
        assert_eq!(*seen.lock(), stages);
    }

    #[test]
    fn a_commit_from_a_revocation_finishes_the_checkpoint_in_flight_and_its_own() {
        let cluster = MockCluster::<DefaultProducerContext>::new(1).unwrap();
        cluster.create_topic("in", 1, 1).unwrap();
        let (mut checkpointer, consumer) = pipelined(&cluster, &[]);
        checkpointer.processed_at("in", 0, 7).unwrap();
        commit(&mut checkpointer, &consumer).unwrap();
        assert_eq!(committed(&consumer), None);
        checkpointer.processed_at("in", 0, 8).unwrap();
        commit_as(&mut checkpointer, &consumer, CommitCaller::RebalanceCallback).unwrap();
        assert_eq!(
            committed(&consumer),
            Some(9),
            "nothing stays in flight past a revocation"
        );
        assert!(checkpointer.in_flight.is_none());
    }

    #[test]
    fn a_failed_delivery_of_the_checkpoint_in_flight_commits_none_of_its_offsets() {
        let cluster = MockCluster::<DefaultProducerContext>::new(1).unwrap();
        cluster.create_topic("in", 1, 1).unwrap();
        cluster.create_topic("out", 1, 1).unwrap();
        let (mut checkpointer, consumer) = pipelined(
            &cluster,
            &[
                ("message.timeout.ms", "2000"),
                ("retries", "0"),
                ("enable.idempotence", "false"),
            ],
        );
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE; 4],
        );
        checkpointer.processed_at("in", 0, 7).unwrap();
        produce_output(&mut checkpointer);
        commit(&mut checkpointer, &consumer).unwrap();
        // The next checkpoint finds the first one's record undelivered.
        checkpointer.processed_at("in", 0, 8).unwrap();
        let err = commit(&mut checkpointer, &consumer).unwrap_err();
        assert!(
            matches!(
                err,
                ManagerError::CheckpointFailed {
                    stage: CheckpointStage::Produced,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(committed(&consumer), None, "neither checkpoint's offsets committed");
        assert!(checkpointer.in_flight.is_none());
        // Both are processed again (the consumer moves back); then they commit.
        cluster.clear_request_errors(RDKafkaApiKey::Produce);
        checkpointer.processed_at("in", 0, 7).unwrap();
        checkpointer.processed_at("in", 0, 8).unwrap();
        produce_output(&mut checkpointer);
        commit(&mut checkpointer, &consumer).unwrap();
        checkpointer
            .finish_in_flight(&Registry::default(), &consumer, CommitCaller::PollLoop)
            .unwrap();
        assert_eq!(committed(&consumer), Some(9));
    }
}
