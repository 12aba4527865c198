//! [`OutputTopic`]: an application's output topic on the changelog
//! producer, sent to through a topic handle it keeps.
//!
//! rust-rdkafka's `BaseProducer::send` copies the topic name into a new
//! `CString` for every record and librdkafka looks the topic up under its
//! client-wide write lock (see `sink`). A processor that sends one output
//! record per input pays that per record; an [`OutputTopic`] pays it once.

use std::sync::Arc;

use parking_lot::Mutex;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;

use crate::error::Result;
use crate::kafka::delivered::DeliveredCell;
use crate::producer::{produce_failed, ChangelogProducer};
use crate::topic_handle::{Fields, TopicHandle};

/// librdkafka's "unassigned partition": its partitioner chooses
/// (`RD_KAFKA_PARTITION_UA`, a macro the bindings do not carry).
const PARTITION_UA: i32 = -1;

/// One output record: key, value, and where and when it goes. Built like
/// rust-rdkafka's `BaseRecord`:
/// `OutputRecord::new().key(b"k").value(b"v").partition(2)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputRecord<'a> {
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    partition: Option<i32>,
    timestamp: Option<i64>,
}

impl<'a> OutputRecord<'a> {
    /// A record with no key, a null value, the partition the producer's
    /// partitioner chooses and the time it is sent as its timestamp.
    pub fn new() -> Self {
        OutputRecord::default()
    }

    /// Its key.
    pub fn key(mut self, key: &'a [u8]) -> Self {
        self.key = Some(key);
        self
    }

    /// Its value (without one, the value is null: a tombstone).
    pub fn value(mut self, value: &'a [u8]) -> Self {
        self.value = Some(value);
        self
    }

    /// Its partition (without one, the producer's partitioner places it by
    /// its key).
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Its timestamp, milliseconds since the epoch (without one, the time
    /// it is sent).
    pub fn timestamp(mut self, millis: i64) -> Self {
        self.timestamp = Some(millis);
        self
    }
}

/// See the [module docs](self). Made by
/// [`ChangelogProducer::output_topic`]; `Send + Sync`.
///
/// Records sent through it are the producer's like any other: under
/// exactly-once they belong to the transaction open when they are sent,
/// [`ChangelogProducer::flush`] waits for them and fails if one failed, and
/// [`ChangelogProducer::last_offset`] names the last one delivered to each
/// partition.
pub struct OutputTopic {
    /// Declared first, so it is destroyed before `producer` can go.
    handle: TopicHandle,
    producer: Arc<ChangelogProducer>,
    topic: String,
    /// Where delivery reports note the last offset of each partition a
    /// record named, by partition (records left to the partitioner are
    /// noted by topic name instead).
    delivered: Mutex<Vec<Option<Arc<DeliveredCell>>>>,
}

impl std::fmt::Debug for OutputTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputTopic")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl ChangelogProducer {
    /// A handle for sending to `topic`. Fails with
    /// [`crate::ChangelogError::Produce`] if librdkafka refuses the name
    /// (an invalid topic name).
    pub fn output_topic(self: &Arc<Self>, topic: &str) -> Result<OutputTopic> {
        let handle = TopicHandle::new(self, topic).ok_or_else(|| {
            produce_failed(
                topic,
                PARTITION_UA,
                KafkaError::MessageProduction(RDKafkaErrorCode::InvalidTopic),
            )
        })?;
        Ok(OutputTopic {
            handle,
            producer: self.clone(),
            topic: topic.to_owned(),
            delivered: Mutex::new(Vec::new()),
        })
    }
}

impl OutputTopic {
    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The producer it sends with.
    pub fn producer(&self) -> &Arc<ChangelogProducer> {
        &self.producer
    }

    /// Hands `record` to the producer (key and value copied), waiting while
    /// its queue is full. Fails with [`crate::ChangelogError::Produce`] if
    /// librdkafka refuses it (an unknown partition, a record too large).
    pub fn send(&self, record: OutputRecord<'_>) -> Result<()> {
        let partition = record.partition.unwrap_or(PARTITION_UA);
        let opaque = match record.partition {
            Some(p) => self.cell(p).map_or(std::ptr::null_mut(), |c| c.as_opaque()),
            None => std::ptr::null_mut(),
        };
        self.handle.produce_waiting(&self.producer, &self.topic, || Fields {
            partition,
            opaque,
            key: record.key,
            value: record.value,
            timestamp: record.timestamp,
            headers: std::iter::empty(),
        })
    }

    /// The delivered-offset cell of `partition` (`None` for a negative
    /// one, which librdkafka refuses anyway).
    fn cell(&self, partition: i32) -> Option<Arc<DeliveredCell>> {
        let i = usize::try_from(partition).ok()?;
        let mut cells = self.delivered.lock();
        if cells.len() <= i {
            cells.resize(i + 1, None);
        }
        Some(
            cells[i]
                .get_or_insert_with(|| self.producer.kafka().context().delivered_cell(&self.topic, partition))
                .clone(),
        )
    }
}
