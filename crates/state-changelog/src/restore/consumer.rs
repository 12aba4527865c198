//! [`RestoreConsumer`]: the restore engine's Kafka consumer — what it is
//! assigned and where, pausing, positions, watermarks and committed
//! offsets, and errors that name the broker's last failure.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};
use state_core::TopicPartition;

use crate::error::BrokerFailure;
use crate::error::{ChangelogError, Result};
use crate::kafka::client::KafkaClientContext;
use crate::kafka::consumer::serve_events;

/// One changelog partition to assign: where to fetch from, and whether to
/// hold off fetching.
pub(crate) struct Placement<'a> {
    pub(crate) changelog: &'a TopicPartition,
    pub(crate) next: i64,
    pub(crate) paused: bool,
}

/// The engine's consumer (configured with
/// [`ConsumerSettings::restore`](crate::ConsumerSettings::restore)). It is
/// never subscribed: partitions are assigned explicitly, at explicit
/// offsets.
pub(crate) struct RestoreConsumer {
    consumer: BaseConsumer<KafkaClientContext>,
    metadata_timeout: Duration,
}

impl RestoreConsumer {
    /// `consumer`, whose metadata calls (watermarks, committed offsets,
    /// seeks) wait at most `metadata_timeout`.
    pub(crate) fn new(consumer: BaseConsumer<KafkaClientContext>, metadata_timeout: Duration) -> Self {
        RestoreConsumer {
            consumer,
            metadata_timeout,
        }
    }

    /// The next record, or `None` after `timeout` (the end of a fetch).
    #[inline]
    pub(crate) fn poll(&self, timeout: Duration) -> Option<KafkaResult<BorrowedMessage<'_>>> {
        self.consumer.poll(timeout)
    }

    /// The last broker connection failure the consumer reported.
    pub(crate) fn last_broker_failure(&self) -> Option<BrokerFailure> {
        self.consumer.context().last_failure()
    }

    /// A failed consumer call as an error naming the broker's last failure.
    pub(crate) fn error(&self, operation: &'static str, source: KafkaError) -> ChangelogError {
        // Serving events polls the consumer and drops what it delivers:
        // with partitions assigned, that would lose records of other tasks
        // (and their positions would move past them). A consumer that is
        // polled anyway has its broker failures already.
        let assigned = self.consumer.assignment().map_or(true, |a| a.count() > 0);
        if !assigned {
            serve_events(&self.consumer);
        }
        ChangelogError::from_kafka(operation, source, None, Some(self.consumer.context()))
    }

    /// The low and high watermarks of `changelog`.
    pub(crate) fn watermarks(&self, changelog: &TopicPartition) -> Result<(i64, i64)> {
        self.consumer
            .fetch_watermarks(changelog.topic(), changelog.partition(), self.metadata_timeout)
            .map_err(|source| self.error("fetching changelog watermarks", source))
    }

    /// The committed offsets of `source` in the consumer's group (`None`,
    /// logged, if they cannot be read now).
    pub(crate) fn committed_of(&self, source: &TopicPartition) -> Option<BTreeMap<String, i64>> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(source.topic(), source.partition());
        match self.consumer.committed_offsets(tpl, self.metadata_timeout) {
            Ok(c) => Some(
                c.elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some((e.topic().to_owned(), o)),
                        _ => None,
                    })
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(topic = source.topic(), partition = source.partition(), error = %e,
                    "reading committed offsets for a standby failed; retrying later");
                None
            }
        }
    }

    /// Assigns exactly `placements`, each at its `next` offset, the paused
    /// ones paused and the others fetching. An error means nothing changed
    /// or the pause state is not as asked; either way, assign again.
    pub(crate) fn assign<'a>(&self, placements: impl IntoIterator<Item = Placement<'a>>) -> Result<()> {
        let mut all = TopicPartitionList::new();
        let mut paused = TopicPartitionList::new();
        let mut fetching = TopicPartitionList::new();
        for p in placements {
            let (topic, partition) = (p.changelog.topic(), p.changelog.partition());
            all.add_partition_offset(topic, partition, Offset::Offset(p.next))
                .map_err(|source| ChangelogError::Kafka {
                    operation: "building the restore assignment",
                    source,
                })?;
            if p.paused {
                paused.add_partition(topic, partition);
            } else {
                fetching.add_partition(topic, partition);
            }
        }
        self.consumer
            .assign(&all)
            .map_err(|source| self.error("assigning changelog partitions to the restore consumer", source))?;
        // The application's pause flag of a partition survives a new
        // assignment: resume the ones that may fetch, pause the others.
        // (Resuming a partition that is not paused does nothing.)
        if fetching.count() > 0 {
            self.consumer
                .resume(&fetching)
                .map_err(|source| self.error("resuming changelog partitions", source))?;
        }
        if paused.count() > 0 {
            self.consumer
                .pause(&paused)
                .map_err(|source| self.error("pausing held changelog partitions", source))?;
        }
        Ok(())
    }

    /// Stops fetching `changelog` (it stays assigned: the other partitions'
    /// fetches go on undisturbed).
    pub(crate) fn pause(&self, changelog: &TopicPartition) -> KafkaResult<()> {
        self.consumer.pause(&one(changelog))
    }

    /// Fetches `changelog` from `offset` on. Seeking also resets the
    /// consumer's position, which may be past `offset` (a held record was
    /// delivered).
    pub(crate) fn resume_at(&self, changelog: &TopicPartition, offset: i64) -> KafkaResult<()> {
        self.consumer.seek(
            changelog.topic(),
            changelog.partition(),
            Offset::Offset(offset),
            self.metadata_timeout,
        )?;
        self.consumer.resume(&one(changelog))
    }

    /// The position of every assigned partition: one past the last record
    /// delivered, or past the transaction markers and compacted gaps after
    /// it.
    pub(crate) fn positions(&self) -> Result<TopicPartitionList> {
        self.consumer
            .position()
            .map_err(|source| self.error("reading consumer positions", source))
    }

    /// Leaves nothing assigned.
    pub(crate) fn unassign(&self) {
        if let Err(e) = self.consumer.unassign() {
            tracing::debug!(error = %e, "unassigning the restore consumer failed");
        }
    }
}

fn one(changelog: &TopicPartition) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(changelog.topic(), changelog.partition());
    tpl
}
