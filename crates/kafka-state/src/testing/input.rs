//! [`TestInputTopic`]: pipes records into an input topic, stamped by the
//! topic's event-time clock.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use state_changelog::rdkafka::error::{KafkaError, RDKafkaErrorCode};
use state_changelog::rdkafka::producer::{BaseProducer, BaseRecord};
use state_manager::Partitioner;

use super::error::TestError;

/// A record to pipe, with what [`TestInputTopic::pipe`] chooses for you
/// made explicit: `TestRecord::new(key, value).at(ts).partition(p)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestRecord {
    /// The key (`None`: a record without a key, placed at random).
    pub key: Option<Vec<u8>>,
    /// The value (`None`: a tombstone).
    pub value: Option<Vec<u8>>,
    /// The timestamp, ms since the epoch (`None`: the topic's clock).
    pub timestamp: Option<i64>,
    /// The partition (`None`: where the partitioner puts the key).
    pub partition: Option<u32>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl TestRecord {
    /// A record with `key` and `value`.
    pub fn new(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        TestRecord {
            key: Some(key.as_ref().to_vec()),
            value: Some(value.as_ref().to_vec()),
            ..Default::default()
        }
    }

    /// A record with `value` and no key.
    pub fn without_key(value: impl AsRef<[u8]>) -> Self {
        TestRecord {
            value: Some(value.as_ref().to_vec()),
            ..Default::default()
        }
    }

    /// A tombstone (no value) for `key`.
    pub fn tombstone(key: impl AsRef<[u8]>) -> Self {
        TestRecord {
            key: Some(key.as_ref().to_vec()),
            ..Default::default()
        }
    }

    /// With timestamp `timestamp` (ms since the epoch) instead of the
    /// topic's clock (which does not move).
    pub fn at(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// In partition `partition` instead of the key's.
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// With header `name` = `value`.
    pub fn header(mut self, name: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name.into(), value.as_ref().to_vec()));
        self
    }
}

/// A topic's event-time clock: the timestamp of the next record piped
/// without one, and how far each such record moves it.
#[derive(Debug)]
pub(crate) struct InputClock {
    now: i64,
    auto_advance: i64,
}

impl InputClock {
    pub(crate) fn new(start: i64) -> Self {
        InputClock {
            now: start,
            auto_advance: 0,
        }
    }
}

/// Pipes records into one input topic of the application under test, as
/// Kafka Streams' `TestInputTopic`. Cheap to clone; clones share the
/// topic's clock, and so do all handles of one topic from one driver.
///
/// Event time: each record without its own timestamp gets the topic's
/// clock, which starts at the driver's start time and moves only when
/// told to — [`advance_time`](Self::advance_time), or by the step set
/// with [`set_auto_advance`](Self::set_auto_advance) after each record —
/// so windows close and TTLs expire exactly when a test says, without
/// waiting. Records are routed as the application's producers route them
/// ([`state_manager::ManagerConfig::partitioner`]).
///
/// Records are handed to the producer at once and delivered when the
/// driver next runs the application (or [`flush`](Self::flush)).
#[derive(Clone)]
pub struct TestInputTopic {
    topic: String,
    partitions: u32,
    partitioner: Partitioner,
    producer: Arc<BaseProducer>,
    clock: Arc<Mutex<InputClock>>,
}

impl std::fmt::Debug for TestInputTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestInputTopic")
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl TestInputTopic {
    pub(crate) fn new(
        topic: String,
        partitions: u32,
        partitioner: Partitioner,
        producer: Arc<BaseProducer>,
        clock: Arc<Mutex<InputClock>>,
    ) -> Self {
        TestInputTopic {
            topic,
            partitions,
            partitioner,
            producer,
            clock,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Its partitions.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The partition records with key `key` go to.
    pub fn partition_of(&self, key: impl AsRef<[u8]>) -> Option<u32> {
        self.partitioner.partition(key.as_ref(), self.partitions)
    }

    /// The clock: the timestamp the next record piped without one gets.
    pub fn now(&self) -> i64 {
        self.lock_clock().now
    }

    /// Moves the clock forward by `by`.
    pub fn advance_time(&self, by: Duration) {
        let mut clock = self.lock_clock();
        clock.now = clock.now.saturating_add(by.as_millis() as i64);
    }

    /// Moves the clock by `step` after every record piped without a
    /// timestamp of its own (0 by default: time moves only when told).
    pub fn set_auto_advance(&self, step: Duration) {
        self.lock_clock().auto_advance = step.as_millis() as i64;
    }

    /// Pipes `value` under `key`, at the clock's time.
    pub fn pipe(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), TestError> {
        self.pipe_record(TestRecord::new(key, value))
    }

    /// Pipes `value` under `key` with timestamp `timestamp` (the clock
    /// does not move).
    pub fn pipe_at(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>, timestamp: i64) -> Result<(), TestError> {
        self.pipe_record(TestRecord::new(key, value).at(timestamp))
    }

    /// Pipes every `(key, value)` of `records`, at the clock's time.
    pub fn pipe_all<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        records: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), TestError> {
        for (key, value) in records {
            self.pipe(key, value)?;
        }
        Ok(())
    }

    /// Pipes `record`. Its timestamp must be positive (librdkafka stamps a
    /// record sent with 0 with the current time).
    pub fn pipe_record(&self, record: TestRecord) -> Result<(), TestError> {
        let timestamp = match record.timestamp {
            Some(ts) if ts <= 0 => return Err(TestError::InvalidTimestamp { timestamp: ts }),
            Some(ts) => ts,
            None => {
                let mut clock = self.lock_clock();
                let now = clock.now;
                clock.now = clock.now.saturating_add(clock.auto_advance);
                now
            }
        };
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => Some(p),
            (None, Some(key)) => self.partitioner.partition(key, self.partitions),
            (None, None) => None,
        };
        let mut headers = state_changelog::rdkafka::message::OwnedHeaders::new();
        for (name, value) in &record.headers {
            headers = headers.insert(state_changelog::rdkafka::message::Header {
                key: name,
                value: Some(value),
            });
        }
        let mut out = BaseRecord::<[u8], [u8]>::to(&self.topic)
            .timestamp(timestamp)
            .headers(headers);
        if let Some(key) = &record.key {
            out = out.key(key);
        }
        if let Some(value) = &record.value {
            out = out.payload(value);
        }
        if let Some(p) = partition {
            out = out.partition(p as i32);
        }
        loop {
            match self.producer.send(out) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    out = back;
                    self.producer.poll(Duration::from_millis(5));
                }
                Err((source, _)) => {
                    return Err(TestError::Kafka {
                        operation: "piping an input record",
                        source,
                    })
                }
            }
        }
    }

    /// Waits until every record piped so far is delivered.
    pub fn flush(&self) -> Result<(), TestError> {
        flush_producer(&self.producer)
    }

    fn lock_clock(&self) -> std::sync::MutexGuard<'_, InputClock> {
        self.clock.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Waits until every record handed to `producer` is delivered.
pub(crate) fn flush_producer(producer: &BaseProducer) -> Result<(), TestError> {
    state_changelog::rdkafka::producer::Producer::flush(producer, Duration::from_secs(30)).map_err(|source| {
        TestError::Kafka {
            operation: "delivering the piped input",
            source,
        }
    })
}
