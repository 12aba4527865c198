//! [`Rewinds`]: moving source partitions back to the first record of a
//! checkpoint that was not kept locally (its mirrored offset commit was
//! refused), and holding them paused until that is done.
//!
//! The rewind is a seek, which librdkafka can refuse: a seek comes back
//! `Local: Outdated` when the pause of the assignment librdkafka makes for
//! a rebalance overtakes it (the mirrored commit is refused precisely
//! because a rebalance is under way; seen in the crash harness). The
//! partition then stays assigned here with its position past the
//! checkpoint, and the records after it would be processed on state that
//! lacks the checkpoint's changes: those changes would be lost for good.
//! So a partition whose rewind is refused is paused at once (a pause also
//! drops the records already fetched for it) and rewound from the poll
//! loop before it fetches again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};
use state_core::TopicPartition;

/// Source partitions still to be moved back, paused until they are.
#[derive(Default)]
pub(super) struct Rewinds {
    /// Assigned partitions, paused, and the offset to move each back to.
    pending: BTreeMap<TopicPartition, i64>,
    /// Partitions revoked while a rewind was pending: the next owner
    /// restores them from the changelog, but the pause is still ours to
    /// lift.
    revoked: BTreeSet<TopicPartition>,
}

impl Rewinds {
    /// Moves `source` back to `first`; if the consumer refuses now, pauses
    /// it until [`settle`](Self::settle) can.
    pub(super) fn rewind<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        source: &TopicPartition,
        first: i64,
        timeout: Duration,
    ) {
        let Err(e) = consumer.seek(source.topic(), source.partition(), Offset::Offset(first), timeout) else {
            tracing::debug!(
                topic = source.topic(),
                partition = source.partition(),
                offset = first,
                "rewound to the uncommitted checkpoint's first record"
            );
            return;
        };
        match consumer.pause(&one(source)) {
            Ok(()) => {
                tracing::warn!(
                    topic = source.topic(),
                    partition = source.partition(),
                    offset = first,
                    error = %e,
                    "could not rewind to the uncommitted checkpoint's first record now; the partition is paused \
                     until the poll loop rewinds it"
                );
                self.pending.insert(source.clone(), first);
                self.revoked.remove(source);
            }
            // Not assigned any more: it restores from the changelog
            // wherever it goes.
            Err(pause) => tracing::warn!(
                topic = source.topic(),
                partition = source.partition(),
                offset = first,
                error = %e,
                pause_error = %pause,
                "could not rewind to the uncommitted checkpoint's first record (the partition is no longer assigned)"
            ),
        }
    }

    /// `source` was revoked: its rewind is no longer needed.
    pub(super) fn forget(&mut self, source: &TopicPartition) {
        if self.pending.remove(source).is_some() {
            self.revoked.insert(source.clone());
        }
    }

    /// Rewinds and resumes the pending partitions that are still `ready`
    /// here (those the consumer still refuses stay paused for the next
    /// call), and lifts the pause of the others unless `restoring` says they
    /// are restoring here again (the manager resumes those once restored).
    pub(super) fn settle<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        timeout: Duration,
        ready: impl Fn(&TopicPartition) -> bool,
        restoring: impl Fn(&TopicPartition) -> bool,
    ) {
        // The common case, on every turn of the poll loop.
        if self.pending.is_empty() && self.revoked.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        for (source, first) in pending {
            if !ready(&source) {
                self.revoked.insert(source);
                continue;
            }
            match seek_and_resume(consumer, &source, first, timeout) {
                Ok(()) => tracing::info!(
                    topic = source.topic(),
                    partition = source.partition(),
                    offset = first,
                    "rewound to the uncommitted checkpoint's first record and resumed"
                ),
                Err(e) => {
                    tracing::debug!(topic = source.topic(), partition = source.partition(), offset = first,
                        error = %e, "rewinding a paused partition failed; retrying");
                    self.pending.insert(source, first);
                }
            }
        }
        for source in std::mem::take(&mut self.revoked) {
            if !restoring(&source) {
                // Not assigned, or assigned again and ready: no pause of
                // ours may stay on it. (Resuming a partition that is not
                // paused does nothing.)
                let _ = consumer.resume(&one(&source));
            }
        }
    }
}

fn seek_and_resume<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    source: &TopicPartition,
    first: i64,
    timeout: Duration,
) -> KafkaResult<()> {
    consumer.seek(source.topic(), source.partition(), Offset::Offset(first), timeout)?;
    consumer.resume(&one(source))?;
    crate::assignment::wake_fetchers(consumer, [source]);
    Ok(())
}

fn one(source: &TopicPartition) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(source.topic(), source.partition());
    tpl
}
