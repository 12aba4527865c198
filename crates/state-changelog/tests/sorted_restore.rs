//! A restore into an empty RocksDB or fjall partition loads its batches as
//! sorted table files (`StorePartition::load_bulk`); the same changelog restored
//! into a memory partition (the plain bulk-write path) is the reference.
//! Compared key by key over several column families, with overwrites and
//! deletes, whole and after an interrupted restore resumed from the offset
//! that reached disk. On librdkafka's in-process mock cluster.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_changelog::rdkafka::config::ClientConfig;
use state_changelog::rdkafka::consumer::{BaseConsumer, Consumer};
use state_changelog::rdkafka::message::{Header, OwnedHeaders};
use state_changelog::rdkafka::mocking::MockCluster;
use state_changelog::rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use state_changelog::{RecoveryConfig, RestoreEvent, RestoreRequest, Restorer};
use state_core::{cf, MemoryPartition, StorePartition, TopicPartition, WriteBatch, CF_HEADER};
use state_fjall::{FjallOptions, FjallPartition};
use state_rocksdb::{RocksDbOptions, RocksDbPartition};
use test_support::store::data;

const CHANGELOG: &str = "changelog__g--input--counts";
const GROUP: &str = "g";
const PATIENCE: Duration = Duration::from_secs(30);
const CFS: [&str; 3] = ["default", "counts", "windows"];
const RECORDS: usize = 12_000;

type Cluster = MockCluster<'static, DefaultProducerContext>;

fn client(c: &Cluster) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", c.bootstrap_servers());
    config
}

/// A changelog of [`RECORDS`] records over a few hundred keys per column
/// family, one in five a delete; returns its last offset.
fn produce(c: &Cluster) -> u64 {
    let producer: BaseProducer = client(c).create().expect("producer");
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..RECORDS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let cf = CFS[(state % 3) as usize];
        let key = format!("key-{:04}", (state >> 8) % 500);
        let value = format!("v{i}");
        let headers = OwnedHeaders::new().insert(Header {
            key: CF_HEADER,
            value: Some(cf),
        });
        let mut record = BaseRecord::<str, str>::to(CHANGELOG)
            .partition(0)
            .key(&key)
            .headers(headers);
        if !(state >> 40).is_multiple_of(5) {
            record = record.payload(&value);
        }
        producer.send(record).map_err(|(e, _)| e).expect("send");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
    let consumer: BaseConsumer = client(c).create().expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(CHANGELOG, 0, Duration::from_secs(10))
        .expect("watermarks");
    high as u64 - 1
}

fn restore(c: &Cluster, p: Arc<dyn StorePartition>) -> Option<u64> {
    let config = RecoveryConfig {
        // Load batches of 5,000 records: two full ones and a rest.
        batch_records: 500,
        poll_timeout: Duration::from_millis(10),
        stall_timeout: PATIENCE,
        ..RecoveryConfig::default()
    };
    let r = Restorer::start(&client(c), GROUP, config).expect("restorer");
    r.restore(RestoreRequest {
        partition: p,
        changelog: TopicPartition::new(CHANGELOG, 0),
        committed_offsets: BTreeMap::new(),
        location: "active".into(),
        replay_check: None,
    })
    .expect("restore");
    let deadline = Instant::now() + PATIENCE;
    loop {
        for e in r.events() {
            match e {
                RestoreEvent::Restored { offset, .. } => return offset,
                RestoreEvent::Failed { error, .. } => panic!("the restore failed: {error}"),
                _ => {}
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for the restore");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn table_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .expect("partition directory")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sst"))
        })
        .count()
}

/// The mock cluster with the changelog, its last offset, and what a
/// restore into a memory partition (the plain bulk-write path) leaves.
fn cluster_and_reference() -> (Cluster, u64, BTreeMap<String, Vec<state_core::KeyValue>>) {
    let c = MockCluster::new(1).expect("mock cluster");
    c.create_topic(CHANGELOG, 1, 1).expect("changelog topic");
    let last = produce(&c);
    let reference = Arc::new(MemoryPartition::new());
    assert_eq!(restore(&c, reference.clone()), Some(last));
    let expected = data(&*reference);
    assert!(
        expected.values().map(Vec::len).sum::<usize>() > 1_000,
        "keys in every column family"
    );
    (c, last, expected)
}

#[test]
fn a_restore_into_an_empty_partition_loads_sorted_files_and_ends_as_bulk_writes_do() {
    let (c, last, expected) = cluster_and_reference();
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(RocksDbPartition::open(dir.path(), &RocksDbOptions::default()).expect("open"));
    assert_eq!(restore(&c, p.clone()), Some(last));
    assert_eq!(data(&*p), expected);
    // Three load batches of three column families as table files, plus the
    // stored offset's flush.
    assert!(table_files(dir.path()) >= 3, "loaded as table files");
    drop(p);
    let p = RocksDbPartition::open(dir.path(), &RocksDbOptions::default()).expect("reopen");
    assert_eq!(data(&p), expected, "durable");
    assert_eq!(p.changelog_offset().unwrap(), Some(last));
}

#[test]
fn a_restore_into_an_empty_fjall_partition_ingests_its_batches_and_ends_as_bulk_writes_do() {
    let (c, last, expected) = cluster_and_reference();
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(FjallPartition::open(dir.path(), &FjallOptions::default()).expect("open"));
    assert_eq!(restore(&c, p.clone()), Some(last));
    assert_eq!(data(&*p), expected);
    // Ingested, not written through the memtables: they hold nothing but
    // the stored offset.
    assert!(
        p.write_buffer_bytes() < 4 << 10,
        "{} bytes in memtables after the load",
        p.write_buffer_bytes()
    );
    drop(p);
    let p = FjallPartition::open(dir.path(), &FjallOptions::default()).expect("reopen");
    assert_eq!(data(&p), expected, "durable");
    assert_eq!(p.changelog_offset().unwrap(), Some(last));
}

/// A crash after some load batches went in as files but before their
/// stored offsets reached disk leaves data ahead of the stored offset (or
/// no stored offset at all). Restoring again from there rewrites every key
/// those records touched: the same end state.
#[test]
fn an_interrupted_load_resumed_from_the_offset_that_reached_disk_ends_the_same() {
    let c = MockCluster::new(1).expect("mock cluster");
    c.create_topic(CHANGELOG, 1, 1).expect("changelog topic");
    let last = produce(&c);
    let reference = Arc::new(MemoryPartition::new());
    restore(&c, reference.clone());
    let expected = data(&*reference);

    for lost_offset in [Some(3_999u64), None] {
        let dir = tempfile::tempdir().unwrap();
        let p = Arc::new(RocksDbPartition::open(dir.path(), &RocksDbOptions::default()).expect("open"));
        assert_eq!(restore(&c, p.clone()), Some(last));
        // What the crash left: the data of every load, an older offset.
        let mut rewind = WriteBatch::new();
        match lost_offset {
            Some(o) => rewind.set_changelog_offset(o),
            None => rewind.delete(cf::METADATA, cf::CHANGELOG_OFFSET_KEY),
        }
        p.write(&rewind).unwrap();
        p.persist().unwrap();
        drop(p);

        let p = Arc::new(RocksDbPartition::open(dir.path(), &RocksDbOptions::default()).expect("reopen"));
        assert_eq!(p.changelog_offset().unwrap(), lost_offset);
        assert_eq!(restore(&c, p.clone()), Some(last));
        assert_eq!(data(&*p), expected, "resumed from {lost_offset:?}");
    }
}
