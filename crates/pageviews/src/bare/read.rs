//! [`bare_read`]: how long a bare consumer takes to read what recovery
//! restored, on the same cluster in the same run — the limit the demo's
//! recovery rate is printed next to (as w4's `raw-consumer` is for the
//! restorer, docs/performance.md).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use state_changelog::{ConsumerSettings, RecoveryConfig};

use crate::{kafka, DemoError, Result};

/// The group the bare consumer is configured with (it never commits).
const GROUP: &str = "pageviews-bare-read";

/// Reads the first `records` offsets of every changelog partition in
/// `ranges` ((topic, partition) -> records, from the partition's start, as
/// a restore into an empty directory reads them) with a plain consumer
/// configured as the restore consumer is (`ConsumerSettings::restore`),
/// timed as a restore is: the client is created outside the timing;
/// watermarks, assignment and reading inside. It touches key and value
/// and nothing else. Returns the time taken.
pub(crate) fn bare_read(client: &ClientConfig, ranges: &BTreeMap<(String, i32), u64>) -> Result<Duration> {
    let config = RecoveryConfig::default();
    let consumer: BaseConsumer = kafka(
        "creating the bare reference consumer",
        ConsumerSettings::restore(GROUP).client_config(client).create(),
    )?;
    let started = Instant::now();
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), records) in ranges.iter().filter(|(_, n)| **n > 0) {
        let (low, _) = kafka(
            "reading changelog watermarks",
            consumer.fetch_watermarks(topic, *partition, config.metadata_timeout),
        )?;
        kafka(
            "assigning changelog partitions",
            tpl.add_partition_offset(topic, *partition, Offset::Offset(low)),
        )?;
        ends.insert((topic.clone(), *partition), low + *records as i64);
    }
    kafka("assigning changelog partitions", consumer.assign(&tpl))?;
    let mut bytes = 0usize;
    let mut last_record = Instant::now();
    while !ends.is_empty() {
        // As the restorer: a short poll, then positions, which move past
        // the transaction markers that end exactly-once changelogs.
        match consumer.poll(Duration::from_millis(10)) {
            Some(Ok(m)) => {
                bytes += m.payload().map_or(0, <[u8]>::len) + m.key().map_or(0, <[u8]>::len);
                let key = (m.topic().to_owned(), m.partition());
                if ends.get(&key).is_some_and(|end| m.offset() + 1 >= *end) {
                    ends.remove(&key);
                }
                last_record = Instant::now();
            }
            Some(Err(e)) => {
                return Err(DemoError::Kafka {
                    operation: "reading changelogs with the bare consumer",
                    source: e,
                })
            }
            None => {
                let positions = kafka("reading positions", consumer.position())?;
                for e in positions.elements() {
                    let key = (e.topic().to_owned(), e.partition());
                    if let (Offset::Offset(at), Some(end)) = (e.offset(), ends.get(&key)) {
                        if at >= *end {
                            ends.remove(&key);
                        }
                    }
                }
                if last_record.elapsed() > config.stall_timeout {
                    return Err(DemoError::Stuck(
                        config.stall_timeout,
                        "the bare consumer read no changelog record".into(),
                    ));
                }
            }
        }
    }
    let took = started.elapsed();
    std::hint::black_box(bytes);
    let _ = consumer.unassign();
    Ok(took)
}
