//! Kafka fixtures: client settings, librdkafka's in-process mock cluster,
//! keyed input, and topics on real brokers.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};

/// The in-process mock cluster, as the fixtures here make it.
pub type Cluster = MockCluster<'static, DefaultProducerContext>;

/// Client settings with `bootstrap.servers` only.
pub fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// A one-broker mock cluster with `topics` as (name, partitions), each
/// with replication factor 1.
pub fn mock_cluster(topics: &[(&str, i32)]) -> KafkaResult<Cluster> {
    let cluster = MockCluster::new(1)?;
    for (topic, partitions) in topics {
        cluster.create_topic(topic, *partitions, 1)?;
    }
    Ok(cluster)
}

/// The key of record `i` of input over `keys` keys: `k<i % keys>`.
pub fn key_of(i: u64, keys: u64) -> String {
    format!("k{}", i % keys)
}

/// The partition of key `k<n>` over `partitions` partitions: `n % partitions`
/// (keys spread evenly, so every partition of the input gets records).
pub fn partition_of_key(n: u64, partitions: i32) -> i32 {
    (n % partitions.max(1) as u64) as i32
}

/// Produces records `records` (numbered) to `topic`: record `i` has key
/// [`key_of`]`(i, keys)`, goes to partition [`partition_of_key`] and holds
/// `x`. Returns how many records each key got. Waits while the producer's
/// queue is full; flushes before returning.
pub fn produce_keyed(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    records: Range<u64>,
    keys: u64,
) -> KafkaResult<BTreeMap<String, u64>> {
    let producer: BaseProducer = client(bootstrap).set("linger.ms", "5").create()?;
    let mut truth = BTreeMap::new();
    for i in records {
        let key = key_of(i, keys);
        let mut record = BaseRecord::<str, str>::to(topic)
            .key(&key)
            .payload("x")
            .partition(partition_of_key(i % keys, partitions));
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e),
            }
        }
        *truth.entry(key).or_insert(0) += 1;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(truth)
}

/// `prefix` made unique to this process and moment, for topics on a real
/// broker that outlives test runs.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// One record as a test reads it back: key, value, timestamp (ms).
pub type ReadRecord = (Vec<u8>, Vec<u8>, Option<i64>);

/// Every committed record of `topic[partition]`, read from the beginning
/// to the end of the partition (a missing key or value reads as empty).
/// Panics if the end is not reached within 20 s.
pub fn read_to_end(bootstrap: &str, topic: &str, partition: i32) -> Vec<ReadRecord> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "test-support-reader")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("a consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .expect("an assignment");
    consumer.assign(&tpl).expect("assigned");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("reading {topic}[{partition}]: {e}"),
            Some(Ok(m)) => out.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
                m.timestamp().to_millis(),
            )),
        }
    }
    panic!("{topic}[{partition}]: no end after 20 s ({} records read)", out.len());
}

/// Creates the new topic `topic` through the admin API (replication 1) and
/// waits until its metadata shows `partitions` partitions. Panics if the
/// topic exists already or does not appear within about 10 s.
pub fn create_topic(client: &ClientConfig, topic: &str, partitions: usize) {
    let created = state_changelog::create_topic(client, topic, partitions, 1, &[], Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("creating topic {topic}: {e}"));
    assert!(created, "{topic} is new");
    wait_for_topic(client, topic, partitions);
}

/// Waits until the metadata of `topic` shows `partitions` partitions;
/// panics after about 10 s.
pub fn wait_for_topic(client: &ClientConfig, topic: &str, partitions: usize) {
    for _ in 0..100 {
        if state_changelog::topic_partitions(client, topic, Duration::from_secs(5))
            .ok()
            .flatten()
            == Some(partitions)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("topic {topic} did not appear with {partitions} partitions");
}
