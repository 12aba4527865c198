//! [`RestoreConsumer`]: the restore engine's Kafka consumer — what it is
//! assigned and where, pausing, positions, watermarks and committed
//! offsets, and errors that name the broker's last failure.
//!
//! Watermarks and committed offsets are asked through a second client that
//! never fetches (as Kafka Streams asks its admin client). A broker answers
//! the requests of one connection in order, and a fetch finds nothing new
//! once a partition's records are all prefetched: it waits up to
//! `fetch.wait.max.ms` for more, and a watermark request behind it waits as
//! long. Restores started one after another (a rebalance hands over its
//! partitions store by store) then each waited a whole fetch wait before
//! reading a record (the demo: eight restores 500 ms apart). The first
//! watermark request of each topic still goes through the fetching
//! client: it learns the topic's partition leaders that way (a topic it
//! was only assigned waited for librdkafka's once-a-second scan of
//! unknown topics before its first fetch).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::{Offset, TopicPartitionList};
use state_core::TopicPartition;

use crate::error::BrokerFailure;
use crate::error::{ChangelogError, Result};
use crate::kafka::client::KafkaClientContext;
use crate::kafka::consumer::serve_events;
use crate::restore::fetched::{FetchBuffer, Fetched};
use crate::restore::retry::with_retries;

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
    /// Records taken from `consumer`'s queue in batches. Declared first:
    /// it is dropped (its records destroyed) before the client.
    buffer: FetchBuffer,
    consumer: BaseConsumer<KafkaClientContext>,
    /// Asks watermarks and committed offsets; never assigned anything.
    metadata: BaseConsumer<KafkaClientContext>,
    metadata_timeout: Duration,
    /// How long transient failures of watermark requests are retried.
    retry_timeout: Duration,
    /// Topics whose watermarks `consumer` asked once, so it knows their
    /// partition leaders.
    leaders_known: BTreeSet<String>,
}

impl RestoreConsumer {
    /// `consumer` fetches; `metadata` (a client of the same settings that
    /// is never assigned anything) asks watermarks and committed offsets.
    /// Metadata calls (and seeks) wait at most `metadata_timeout` each;
    /// watermark requests that fail transiently are retried for up to
    /// `retry_timeout`.
    pub(crate) fn new(
        consumer: BaseConsumer<KafkaClientContext>,
        metadata: BaseConsumer<KafkaClientContext>,
        metadata_timeout: Duration,
        retry_timeout: Duration,
    ) -> Self {
        // SAFETY: the buffer is dropped before `consumer` (field order).
        let buffer = unsafe { FetchBuffer::new(consumer.client().native_ptr()) };
        RestoreConsumer {
            buffer,
            consumer,
            metadata,
            metadata_timeout,
            retry_timeout,
            leaders_known: BTreeSet::new(),
        }
    }

    /// The next record, or `None` after `timeout` (the end of a fetch).
    /// Records already queued are taken many at a time (see
    /// [`FetchBuffer`]); only when none is queued does it wait.
    #[inline]
    pub(crate) fn poll(&mut self, timeout: Duration) -> Option<KafkaResult<Fetched<'_>>> {
        if let Some(taken) = self.buffer.next() {
            return Some(taken);
        }
        self.consumer.poll(timeout).map(|r| r.map(Fetched::Polled))
    }

    /// True if records were taken from librdkafka that the engine has not
    /// seen yet: their partitions' positions are already past them, so
    /// positions must not be followed now.
    pub(crate) fn holds_records(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// The last broker connection failure either client reported.
    pub(crate) fn last_broker_failure(&self) -> Option<BrokerFailure> {
        self.consumer
            .context()
            .last_failure()
            .or_else(|| self.metadata.context().last_failure())
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

    /// Serves what the metadata client reported (errors, which its
    /// context remembers as broker failures), so nothing piles up in a
    /// client that is never polled for records. Returns at once.
    pub(crate) fn serve_metadata(&self) {
        for _ in 0..64 {
            match self.metadata.poll(Duration::ZERO) {
                None => return,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "the restore consumer's metadata client reported an error");
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// A failed metadata call as an error naming the broker's last failure.
    fn metadata_error(&self, operation: &'static str, source: KafkaError) -> ChangelogError {
        // Nothing is assigned to it: serving its events loses nothing.
        serve_events(&self.metadata);
        ChangelogError::from_kafka(operation, source, None, Some(self.metadata.context()))
    }

    /// The low and high watermarks of `changelog`: asked by the metadata
    /// client, except the first time for a topic (see the module docs).
    /// Transient failures (a slow broker's timeout, a leader moving) are
    /// retried with backoff for up to `retry_timeout` (see
    /// [`with_retries`]); the error is the last attempt's.
    pub(crate) fn watermarks(&mut self, changelog: &TopicPartition) -> Result<(i64, i64)> {
        let (topic, partition) = (changelog.topic(), changelog.partition());
        if self.leaders_known.contains(topic) {
            let metadata = &self.metadata;
            return with_retries(
                "fetching changelog watermarks",
                self.retry_timeout,
                std::thread::sleep,
                || metadata.fetch_watermarks(topic, partition, self.metadata_timeout),
            )
            .map_err(|source| self.metadata_error("fetching changelog watermarks", source));
        }
        let consumer = &self.consumer;
        let watermarks = with_retries(
            "fetching changelog watermarks",
            self.retry_timeout,
            std::thread::sleep,
            || consumer.fetch_watermarks(topic, partition, self.metadata_timeout),
        )
        .map_err(|source| self.error("fetching changelog watermarks", source))?;
        self.leaders_known.insert(topic.to_owned());
        Ok(watermarks)
    }

    /// The committed offsets of `source` in the consumer's group (`None`,
    /// logged, if they cannot be read now).
    pub(crate) fn committed_of(&self, source: &TopicPartition) -> Option<BTreeMap<String, i64>> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(source.topic(), source.partition());
        match self.metadata.committed_offsets(tpl, self.metadata_timeout) {
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
    /// ones paused and the others fetching. Every partition assigned before
    /// starts over (librdkafka drops what it prefetched for it): for
    /// recovering from a failed [`add`](Self::add) or
    /// [`remove`](Self::remove), not for every change. An error means
    /// nothing changed or the pause state is not as asked; either way,
    /// assign again.
    pub(crate) fn assign<'a>(&mut self, placements: impl IntoIterator<Item = Placement<'a>>) -> Result<()> {
        let (all, fetching, paused) = lists(placements)?;
        // Every partition starts over at its placement.
        self.buffer.clear();
        self.consumer
            .assign(&all)
            .map_err(|source| self.error("assigning changelog partitions to the restore consumer", source))?;
        self.set_paused(&fetching, &paused)
    }

    /// Adds `placements` (none of them assigned now) to the assignment,
    /// each at its `next` offset, the paused ones paused. The partitions
    /// assigned already keep fetching undisturbed, with what they
    /// prefetched. An error leaves the assignment unknown: assign all
    /// again.
    pub(crate) fn add<'a>(&self, placements: impl IntoIterator<Item = Placement<'a>>) -> Result<()> {
        let (all, fetching, paused) = lists(placements)?;
        if all.count() == 0 {
            return Ok(());
        }
        self.consumer
            .incremental_assign(&all)
            .map_err(|source| self.error("adding changelog partitions to the restore consumer", source))?;
        self.set_paused(&fetching, &paused)
    }

    /// Removes `changelogs` (all of them assigned now) from the
    /// assignment; the others keep fetching undisturbed. An error leaves
    /// the assignment unknown: assign all again.
    pub(crate) fn remove<'a>(&mut self, changelogs: impl IntoIterator<Item = &'a TopicPartition>) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for c in changelogs {
            // Taken before it left: a task of the partition added again
            // reads from its own offset.
            self.buffer.drop_partition(c.topic(), c.partition());
            tpl.add_partition(c.topic(), c.partition());
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        self.consumer
            .incremental_unassign(&tpl)
            .map_err(|source| self.error("removing changelog partitions from the restore consumer", source))
    }

    /// The application's pause flag of a partition survives a new
    /// assignment: resume the ones that may fetch, pause the others.
    /// (Resuming a partition that is not paused does nothing.)
    fn set_paused(&self, fetching: &TopicPartitionList, paused: &TopicPartitionList) -> Result<()> {
        if fetching.count() > 0 {
            self.consumer
                .resume(fetching)
                .map_err(|source| self.error("resuming changelog partitions", source))?;
        }
        if paused.count() > 0 {
            self.consumer
                .pause(paused)
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
    pub(crate) fn resume_at(&mut self, changelog: &TopicPartition, offset: i64) -> KafkaResult<()> {
        // Taken before the seek: stale (librdkafka purges only those it
        // still queues).
        self.buffer.drop_partition(changelog.topic(), changelog.partition());
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
    /// it. Records still buffered count as delivered: ask only when
    /// [`holds_records`](Self::holds_records) is false.
    pub(crate) fn positions(&self) -> Result<TopicPartitionList> {
        debug_assert!(self.buffer.is_empty(), "positions read with records buffered");
        self.consumer
            .position()
            .map_err(|source| self.error("reading consumer positions", source))
    }

    /// Leaves nothing assigned.
    pub(crate) fn unassign(&mut self) {
        self.buffer.clear();
        if let Err(e) = self.consumer.unassign() {
            tracing::debug!(error = %e, "unassigning the restore consumer failed");
        }
    }
}

/// `placements` as lists: all of them at their offsets, those to fetch,
/// those to hold paused.
fn lists<'a>(
    placements: impl IntoIterator<Item = Placement<'a>>,
) -> Result<(TopicPartitionList, TopicPartitionList, TopicPartitionList)> {
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
    Ok((all, fetching, paused))
}

fn one(changelog: &TopicPartition) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(changelog.topic(), changelog.partition());
    tpl
}
