//! The checkpoint protocol: the transactions of one processing interval and
//! the order in which they commit under each guarantee.

use std::collections::BTreeMap;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use state_core::ProcessedOffsets;
use state_txn::StateTransaction;

use crate::config::ProcessingGuarantee;
use crate::error::{ManagerError, Result};
use crate::manager::StateStoreManager;

/// Open transactions of one kind, by (store id, partition).
#[doc(hidden)]
pub type TxnMap<T> = BTreeMap<(usize, u32), T>;

/// The open transactions of the current checkpoint, one map per kind, so a
/// typed handle finds its transaction without a runtime kind check.
#[doc(hidden)]
#[derive(Default)]
pub struct OpenTxns {
    pub(crate) key_value: TxnMap<state_txn::PartitionTransaction>,
    pub(crate) windowed: TxnMap<state_txn::WindowedTransaction>,
    pub(crate) timestamped: TxnMap<state_txn::TimestampedTransaction>,
}

impl OpenTxns {
    fn is_empty(&self) -> bool {
        self.key_value.is_empty() && self.windowed.is_empty() && self.timestamped.is_empty()
    }

    /// Every open transaction with its (store id, partition), in that order.
    fn all_mut(&mut self) -> impl Iterator<Item = ((usize, u32), &mut dyn StateTransaction)> + '_ {
        fn erase<T: StateTransaction>(
            m: &mut TxnMap<T>,
        ) -> impl Iterator<Item = ((usize, u32), &mut dyn StateTransaction)> + '_ {
            m.iter_mut().map(|(k, t)| (*k, t as &mut dyn StateTransaction))
        }
        erase(&mut self.key_value)
            .chain(erase(&mut self.windowed))
            .chain(erase(&mut self.timestamped))
    }

    /// Drops the transactions of partition `partition` of the given stores.
    pub(crate) fn drop_partition(&mut self, stores: &[usize], partition: u32) {
        let keep = |(id, p): &(usize, u32)| !(*p == partition && stores.contains(id));
        self.key_value.retain(|k, _| keep(k));
        self.windowed.retain(|k, _| keep(k));
        self.timestamped.retain(|k, _| keep(k));
    }
}

/// The state of the current processing interval.
#[derive(Default)]
pub(crate) struct CheckpointState {
    pub(crate) txns: OpenTxns,
    /// (topic, partition) -> offset of the last processed record.
    pub(crate) processed: BTreeMap<(String, u32), i64>,
    /// (topic, partition) -> offset of the first record processed in this
    /// checkpoint (where to rewind if it cannot be kept locally).
    pub(crate) first_processed: BTreeMap<(String, u32), i64>,
}

impl CheckpointState {
    pub(crate) fn is_empty(&self) -> bool {
        self.txns.is_empty() && self.processed.is_empty()
    }
}

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

fn failed(stage: &'static str) -> impl Fn(String) -> ManagerError {
    move |reason| ManagerError::CheckpointFailed { stage, reason }
}

impl StateStoreManager {
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
        self.last_commit = std::time::Instant::now();
        if state.is_empty() && !self.kafka.transaction_open() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let res = self.commit_state(&mut state, consumer);
        crate::metrics::checkpoint(res.is_ok());
        if res.is_err() {
            self.kafka.abort_after_failure();
        } else {
            crate::metrics::stage("total", started.elapsed());
        }
        res
    }

    fn commit_state<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        state: &mut CheckpointState,
        consumer: &K,
    ) -> Result<()> {
        // 1. Changelog records, tagged with the processed source offsets.
        let mut timer = std::time::Instant::now();
        let mut lap = |stage: &'static str| {
            crate::metrics::stage(stage, timer.elapsed());
            timer = std::time::Instant::now();
        };
        for ((id, partition), txn) in state.txns.all_mut() {
            let store = self.registry.get(id);
            let offsets = state
                .processed
                .get(&(store.stream.clone(), partition))
                .map(|o| ProcessedOffsets::new().with(store.stream.clone(), *o));
            txn.prepare(offsets.as_ref())
                .map_err(|e| failed("prepare")(format!("{}[{partition}]: {e}", store.describe())))?;
        }
        lap("prepare");
        // 2. Every changelog (and output) record delivered.
        self.kafka
            .flush()
            .map_err(|e| failed("producer flush")(e.to_string()))?;
        lap("produce");
        self.observe(CheckpointStage::Produced);
        // 3. Source offsets.
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &state.processed {
            tpl.add_partition_offset(topic, *partition as i32, Offset::Offset(offset + 1))
                .map_err(|e| failed("offsets")(e.to_string()))?;
        }
        match self.config.guarantee {
            ProcessingGuarantee::AtLeastOnce => {
                if tpl.count() > 0 {
                    consumer
                        .commit(&tpl, CommitMode::Sync)
                        .map_err(|e| failed("offset commit")(e.to_string()))?;
                }
            }
            ProcessingGuarantee::ExactlyOnce => {
                self.kafka.commit_transaction(&tpl, consumer)?;
                if self.config.mirror_transactional_offsets && tpl.count() > 0 {
                    // The transaction holds the offsets; this broker does not
                    // keep them, so the group's committed offsets come from
                    // this mirror. If it fails (the broker refuses commits
                    // during a rebalance), the group still points before
                    // this checkpoint: local state must not move past it, or
                    // whoever resumes from those offsets counts its records
                    // twice. So keep the checkpoint out of local state and
                    // rewind to its first records: they are processed again
                    // (their changelog records stay skipped on restores until
                    // later commits overwrite them).
                    if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                        tracing::warn!(
                            error = %e,
                            "mirrored offset commit failed: this checkpoint is not kept locally and its records \
                             are processed again"
                        );
                        for ((topic, partition), first) in &state.first_processed {
                            // A partition being revoked cannot be sought; it
                            // restores from the changelog wherever it goes.
                            if let Err(e) = consumer.seek(
                                topic,
                                *partition as i32,
                                Offset::Offset(*first),
                                self.config.kafka_timeout,
                            ) {
                                tracing::warn!(
                                    topic,
                                    partition,
                                    offset = first,
                                    error = %e,
                                    "could not rewind to the uncommitted checkpoint's first record"
                                );
                            }
                        }
                        return Ok(());
                    }
                }
            }
        }
        lap("commit");
        self.observe(CheckpointStage::Committed);
        // 4. Local state, with the changelog offset it now includes.
        for ((id, partition), txn) in state.txns.all_mut() {
            let store = self.registry.get(id);
            let offset = store
                .changelog_topic
                .as_deref()
                .and_then(|topic| self.kafka.last_offset(topic, partition));
            txn.flush(offset)
                .map_err(|e| failed("local flush")(format!("{}[{partition}]: {e}", store.describe())))?;
        }
        lap("flush");
        self.observe(CheckpointStage::Flushed);
        Ok(())
    }

    /// Drops the current checkpoint without committing anything (aborting
    /// the Kafka transaction under exactly-once).
    pub fn abort(&mut self) -> Result<()> {
        self.current = CheckpointState::default();
        self.kafka.abort()
    }
}
