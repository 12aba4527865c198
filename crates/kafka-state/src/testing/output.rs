//! [`TestOutputTopic`]: reads what the application under test wrote to an
//! output topic, as a read-committed consumer on Kafka would see it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use state_changelog::rdkafka::consumer::{BaseConsumer, Consumer};
use state_changelog::rdkafka::error::KafkaError;
use state_changelog::rdkafka::message::Message;
use state_changelog::rdkafka::{Offset, TopicPartitionList};
use state_core::TopicPartition;

use super::error::TestError;

/// How long a read waits for records the cluster reports to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One record an application wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Option<Vec<u8>>,
    /// Its timestamp, ms since the epoch.
    pub timestamp: Option<i64>,
}

impl OutputRecord {
    /// The key as UTF-8 (lossy; empty if none), for assertions.
    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or_default()).into_owned()
    }

    /// The value as UTF-8 (lossy; empty if none), for assertions.
    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(self.value.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Which output records a read-committed consumer would see. The mock
/// cluster keeps records of aborted transactions visible and has no
/// last-stable offset, so under exactly-once the driver tracks both:
/// records up to the end each output partition had at the last commit,
/// minus those of checkpoints aborted by a crash.
#[derive(Debug, Default)]
pub(crate) struct OutputVisibility {
    /// Exactly-once: reads stop at the committed ends.
    pub(crate) transactional: bool,
    /// Per output partition: the end offset at the last commit.
    pub(crate) committed_end: BTreeMap<TopicPartition, i64>,
    /// Per output partition: offsets of aborted checkpoints' records.
    pub(crate) aborted: BTreeMap<TopicPartition, Vec<Range<i64>>>,
}

impl OutputVisibility {
    fn visible(&self, tp: &TopicPartition, offset: i64) -> bool {
        !self
            .aborted
            .get(tp)
            .is_some_and(|ranges| ranges.iter().any(|r| r.contains(&offset)))
    }
}

/// Shared between the driver, which records commits and crashes, and the
/// output topics, which read by it.
pub(crate) type SharedVisibility = Arc<Mutex<OutputVisibility>>;

/// Reads an output topic of the application under test, as Kafka Streams'
/// `TestOutputTopic`: each read returns the records written since the
/// previous read, as a read-committed consumer sees them — under
/// exactly-once only what committed checkpoints wrote, never what an
/// aborted one (a crash) did.
pub struct TestOutputTopic {
    topic: String,
    partitions: u32,
    consumer: BaseConsumer,
    visibility: SharedVisibility,
    /// Records fetched but beyond what a read may return yet.
    fetched: BTreeMap<(u32, i64), OutputRecord>,
    /// Per partition: where the next read starts.
    read_from: BTreeMap<u32, i64>,
}

impl std::fmt::Debug for TestOutputTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestOutputTopic")
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .field("read_from", &self.read_from)
            .finish_non_exhaustive()
    }
}

fn kafka(operation: &'static str) -> impl FnOnce(KafkaError) -> TestError {
    move |source| TestError::Kafka { operation, source }
}

impl TestOutputTopic {
    /// A reader of `topic` (`partitions` partitions) on the cluster at
    /// `bootstrap`, from its beginning.
    pub(crate) fn new(
        bootstrap: &str,
        topic: &str,
        partitions: u32,
        visibility: SharedVisibility,
    ) -> Result<Self, TestError> {
        let consumer: BaseConsumer = state_changelog::rdkafka::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            // Never joins or commits (it is assigned every partition), but
            // rdkafka wants a group to assign partitions.
            .set("group.id", format!("kafka-state-test-output-{topic}"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "10")
            .create()
            .map_err(kafka("creating an output reader"))?;
        let mut all = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            all.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(kafka("assigning the output partitions"))?;
        }
        consumer
            .assign(&all)
            .map_err(kafka("assigning the output partitions"))?;
        Ok(TestOutputTopic {
            topic: topic.to_owned(),
            partitions,
            consumer,
            visibility,
            fetched: BTreeMap::new(),
            read_from: BTreeMap::new(),
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The records written since the last read, partition by partition,
    /// in offset order within each.
    pub fn read_records(&mut self) -> Result<Vec<OutputRecord>, TestError> {
        let ends = self.readable_ends()?;
        let started = Instant::now();
        while !self.fetched_up_to(&ends)? {
            if started.elapsed() > READ_TIMEOUT {
                return Err(TestError::Timeout {
                    what: format!("the records of output topic {} up to {ends:?}", self.topic),
                    waited: started.elapsed(),
                });
            }
            let Some(msg) = self.consumer.poll(Duration::from_millis(10)) else {
                continue;
            };
            let msg = msg.map_err(kafka("reading an output topic"))?;
            let record = OutputRecord {
                partition: msg.partition() as u32,
                offset: msg.offset(),
                key: msg.key().map(<[u8]>::to_vec),
                value: msg.payload().map(<[u8]>::to_vec),
                timestamp: msg.timestamp().to_millis(),
            };
            self.fetched.insert((record.partition, record.offset), record);
        }
        let visibility = self.visibility.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for (&p, &end) in &ends {
            let from = self.read_from.get(&p).copied().unwrap_or(0);
            if end <= from {
                continue;
            }
            let tp = TopicPartition::new(self.topic.as_str(), p as i32);
            let due: Vec<(u32, i64)> = self.fetched.range((p, from)..(p, end)).map(|(k, _)| *k).collect();
            for key in due {
                if let Some(record) = self.fetched.remove(&key) {
                    if visibility.visible(&tp, key.1) {
                        out.push(record);
                    }
                }
            }
            self.read_from.insert(p, end);
        }
        Ok(out)
    }

    /// The `(key, value)` of each record written since the last read, as
    /// UTF-8 (lossy; empty if none), in [`read_records`](Self::read_records)' order.
    pub fn read_key_values(&mut self) -> Result<Vec<(String, String)>, TestError> {
        Ok(self
            .read_records()?
            .into_iter()
            .map(|r| (r.key_str(), r.value_str()))
            .collect())
    }

    /// The last value of each key written since the last read (Kafka
    /// Streams' `readKeyValuesToMap`), keys and values as UTF-8 (lossy).
    pub fn read_latest_by_key(&mut self) -> Result<BTreeMap<String, String>, TestError> {
        Ok(self
            .read_records()?
            .into_iter()
            .map(|r| (r.key_str(), r.value_str()))
            .collect())
    }

    /// Per partition, the offset a read may go up to: what committed
    /// checkpoints wrote under exactly-once, everything written otherwise.
    fn readable_ends(&self) -> Result<BTreeMap<u32, i64>, TestError> {
        let mut ends = BTreeMap::new();
        for p in 0..self.partitions {
            let (_, high) = self
                .consumer
                .fetch_watermarks(&self.topic, p as i32, READ_TIMEOUT)
                .map_err(kafka("reading an output topic's end"))?;
            let visibility = self.visibility.lock().unwrap_or_else(PoisonError::into_inner);
            let end = if visibility.transactional {
                let tp = TopicPartition::new(self.topic.as_str(), p as i32);
                visibility.committed_end.get(&tp).copied().unwrap_or(0).min(high)
            } else {
                high
            };
            ends.insert(p, end);
        }
        Ok(ends)
    }

    /// True once the consumer has fetched every partition up to `ends`.
    fn fetched_up_to(&self, ends: &BTreeMap<u32, i64>) -> Result<bool, TestError> {
        let positions = self
            .consumer
            .position()
            .map_err(kafka("reading an output reader's position"))?;
        for e in positions.elements() {
            let end = ends.get(&(e.partition() as u32)).copied().unwrap_or(0);
            let at = match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            };
            if at < end {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
