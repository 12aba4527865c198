//! [`Record`]: one input record as a processor sees it.

use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Message};
use state_core::TopicPartition;

/// One input record: where it is (topic, partition, offset) and what it
/// holds (key, value, timestamp, headers), borrowed from the consumer.
pub struct Record<'a> {
    topic: &'a str,
    partition: u32,
    offset: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    timestamp: Option<i64>,
    /// Kept for [`Record::headers`]: librdkafka parses a record's headers
    /// into a list it allocates on first access, so only a processor that
    /// asks pays for it.
    msg: &'a BorrowedMessage<'a>,
}

impl std::fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("key", &self.key)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

impl<'a> Record<'a> {
    /// The record `msg` holds.
    pub(crate) fn of(msg: &'a BorrowedMessage<'a>) -> Self {
        Record {
            topic: msg.topic(),
            partition: msg.partition() as u32,
            offset: msg.offset(),
            key: msg.key(),
            value: msg.payload(),
            timestamp: msg.timestamp().to_millis(),
            msg,
        }
    }

    /// The topic it was read from.
    pub fn topic(&self) -> &'a str {
        self.topic
    }

    /// Its partition: also the partition of the store partitions
    /// [`crate::Context::store`] gives.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Its offset in the partition.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Its topic and partition.
    pub fn source(&self) -> TopicPartition {
        TopicPartition::of_store(self.topic, self.partition)
    }

    /// Its key, if it has one (state of the key is in this record's
    /// partition when the producers route by key).
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// Its value (`None` for a tombstone).
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// Its timestamp in milliseconds since the Unix epoch (the producer's
    /// create time, or the broker's log-append time), if it has one: the
    /// event time windows and TTL go by.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// Its headers, if any (parsed on the first call).
    pub fn headers(&self) -> Option<&'a BorrowedHeaders> {
        self.msg.headers()
    }
}
