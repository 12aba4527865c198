//! Changelog production and recovery on librdkafka's in-process mock cluster.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use state_changelog::rdkafka::message::{Header, OwnedHeaders};
use state_changelog::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use state_changelog::ChangelogError;
use state_core::{Codec, StorePartition};
use state_txn::PartitionTransaction;
use test_support::kafka::{mock_cluster, Cluster};

fn cluster(topic: &str, partitions: i32) -> Cluster {
    mock_cluster(&[(topic, partitions)]).expect("mock cluster")
}

#[test]
fn round_trip_on_three_partitions() {
    let c = cluster("changelog__g--input--store", 3);
    round_trip(&c.bootstrap_servers(), "changelog__g--input--store");
}

#[test]
fn uncommitted_checkpoints_are_skipped() {
    let c = cluster("cl-skip", 1);
    uncommitted_are_skipped(&c.bootstrap_servers(), "cl-skip");
}

#[test]
fn a_stored_offset_beyond_the_high_watermark_is_refused() {
    let c = cluster("cl-invalid", 1);
    invalid_stored_offset(&c.bootstrap_servers(), "cl-invalid");
}

#[test]
fn an_empty_changelog_finishes_at_once() {
    let c = cluster("cl-empty", 2);
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    let (res, progress) = recover(
        &c.bootstrap_servers(),
        vec![(p.clone(), "cl-empty", 1, committed_all())],
    );
    assert_eq!(res.unwrap()[0].stats.applied, 0);
    assert!(progress.iter().all(|p| p.finished && p.total == 0));
    assert_eq!(p.changelog_offset().unwrap(), None);
}

fn produce_raw(bootstrap: &str, topic: &str, records: &[(Option<&[u8]>, Option<&str>)]) {
    let producer: BaseProducer = client(bootstrap).create().unwrap();
    for (key, cf) in records {
        let mut rec = BaseRecord::<[u8], [u8]>::to(topic).partition(0).payload(b"v");
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(cf) = cf {
            rec = rec.headers(OwnedHeaders::new().insert(Header {
                key: "__column_family__",
                value: Some(cf.as_bytes()),
            }));
        }
        producer.send(rec).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

#[test]
fn a_record_without_column_family_header_is_a_typed_error() {
    let c = cluster("cl-noheader", 1);
    produce_raw(
        &c.bootstrap_servers(),
        "cl-noheader",
        &[(Some(&b"good"[..]), Some("default")), (Some(&b"bad"[..]), None)],
    );
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    let (res, _) = recover(
        &c.bootstrap_servers(),
        vec![(p.clone(), "cl-noheader", 0, committed_all())],
    );
    let err = res.unwrap_err();
    assert!(
        matches!(err, ChangelogError::MissingColumnFamilyHeader { offset: 1, .. }),
        "{err}"
    );
    assert_eq!(
        p.changelog_offset().unwrap(),
        None,
        "nothing of the failed batch is applied"
    );
    assert_eq!(p.get("default", b"good").unwrap(), None);
}

#[test]
fn a_record_with_a_null_key_is_a_typed_error() {
    let c = cluster("cl-nullkey", 1);
    produce_raw(&c.bootstrap_servers(), "cl-nullkey", &[(None, Some("default"))]);
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    let (res, _) = recover(&c.bootstrap_servers(), vec![(p, "cl-nullkey", 0, committed_all())]);
    assert!(matches!(res.unwrap_err(), ChangelogError::NullKey { offset: 0, .. }));
}

/// Recovery of a changelog written in transactions terminates with exactly
/// the committed records. (On a real broker commit markers take offsets, so
/// the last record is at `high - 2` and recovery finishes on the consumer
/// position; the mock broker assigns markers no offsets.)
///
/// The aborted-transaction half of this scenario cannot run here: the mock
/// broker never reports aborted transactions in its fetch responses
/// (librdkafka's `rdkafka_mock_handlers.c` writes `#Aborted = 0`), so a
/// read-committed consumer cannot filter them on it, and tansu 0.6 has no
/// EndTxn. Against a real Kafka broker the consumer's
/// `isolation.level=read_committed` drops aborted records.
#[test]
fn a_transactional_changelog_recovers_committed_records_only_and_terminates() {
    let topic = "cl-txn";
    let c = cluster(topic, 1);
    let mut cfg = client(&c.bootstrap_servers());
    cfg.set("transactional.id", "state-test-txn");
    let producer = Arc::new(state_changelog::ChangelogProducer::new(&cfg).unwrap());
    let kafka = producer.kafka();
    kafka.init_transactions(Duration::from_secs(10)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = open(&dir.path().join("src"));
    let sink = producer.sink(topic, 0);
    for (round, commit) in [(1u64, true), (2, true), (3, true)] {
        kafka.begin_transaction().unwrap();
        let mut t = PartitionTransaction::new(src.clone(), Codec::MsgPack, Some(sink.clone()));
        for k in 0..3 {
            t.set("v", &round, format!("k{k}-{round}").as_bytes()).unwrap();
        }
        t.prepare(None).unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
        if commit {
            kafka.commit_transaction(Duration::from_secs(10)).unwrap();
        } else {
            kafka.abort_transaction(Duration::from_secs(10)).unwrap();
        }
    }
    let dst = open(&dir.path().join("dst"));
    let (res, _) = recover(&c.bootstrap_servers(), vec![(dst.clone(), topic, 0, committed_all())]);
    let res = res.expect("recovery terminates");
    assert_eq!(res[0].stats.applied, 9, "every committed record");
    assert_eq!(
        res[0].offset,
        src_last_offset(&c, topic),
        "stored offset = last record's offset"
    );
    let t = PartitionTransaction::new(dst.clone(), Codec::MsgPack, None);
    assert_eq!(t.get::<_, u64>("v", b"k0-1").unwrap(), Some(1));
    assert_eq!(t.get::<_, u64>("v", b"k2-3").unwrap(), Some(3));
}

#[test]
fn the_stop_signal_ends_recovery() {
    let topic = "cl-stop";
    let c = cluster(topic, 1);
    produce_raw(&c.bootstrap_servers(), topic, &[(Some(&b"k"[..]), Some("default")); 10]);
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mgr = state_changelog::RecoveryManager::new(&client(&c.bootstrap_servers()), Default::default(), stop).unwrap();
    let err = mgr
        .recover(
            vec![state_changelog::RecoveryPartition {
                partition: p,
                changelog: state_core::TopicPartition::new(topic, 0),
                committed_offsets: committed_all(),
                location: "test".into(),
                until: None,
                replay_check: None,
            }],
            &mut |_| {},
        )
        .unwrap_err();
    assert!(matches!(err, ChangelogError::Stopped));
}

#[test]
fn a_failed_delivery_fails_the_flush() {
    use state_changelog::rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let topic = "cl-fail";
    let c = cluster(topic, 1);
    let mut cfg = client(&c.bootstrap_servers());
    cfg.set("message.timeout.ms", "2000")
        .set("retries", "0")
        .set("enable.idempotence", "false");
    let producer = Arc::new(state_changelog::ChangelogProducer::new(&cfg).unwrap());
    c.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE; 4],
    );
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    let mut t = PartitionTransaction::new(p.clone(), Codec::MsgPack, Some(producer.sink(topic, 0)));
    t.set("k", &1, b"x").unwrap();
    t.prepare(None).unwrap();
    let err = producer.flush(Duration::from_secs(10)).unwrap_err();
    assert!(matches!(err, ChangelogError::Delivery { failed: 1, .. }), "{err}");
    assert_eq!(
        p.get("default", b"x|\xa1k").unwrap(),
        None,
        "the checkpoint must not flush locally"
    );
}

fn src_last_offset(c: &Cluster, topic: &str) -> Option<u64> {
    use state_changelog::rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = client(&c.bootstrap_servers()).create().unwrap();
    let (_, high) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(10)).unwrap();
    Some(high as u64 - 1)
}

#[test]
fn creating_a_changelog_on_the_mock_cluster_fails_at_once_with_what_to_do() {
    let c = cluster("input", 3);
    let client = test_support::kafka::client(&c.bootstrap_servers());
    let started = std::time::Instant::now();
    let err =
        state_changelog::ensure_changelog_topic(&client, "input", "changelog__g--input--counts", &Default::default())
            .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(&err, ChangelogError::MockClusterTopic { topic, partitions: 3 } if topic == "changelog__g--input--counts"),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("MockCluster::create_topic") && message.contains("kafka_state::testing::TestCluster"),
        "{message}"
    );
}

#[test]
fn a_registered_mock_cluster_gets_its_changelog_topics_created() {
    // A client that owns its mock cluster is Send + Sync (a MockCluster is not).
    let owner: Arc<BaseProducer> = Arc::new(
        state_changelog::rdkafka::ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .create()
            .unwrap(),
    );
    let mock = owner.client().mock_cluster().unwrap();
    mock.create_topic("input", 2, 1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    let creator = owner.clone();
    let registration = state_changelog::register_mock_cluster(
        bootstrap.clone(),
        Arc::new(
            move |topic: &str, partitions: usize| match creator.client().mock_cluster() {
                Some(mock) => mock.create_topic(topic, partitions as i32, 1),
                None => Err(state_changelog::rdkafka::error::KafkaError::MockCluster(
                    state_changelog::rdkafka::types::RDKafkaErrorCode::Fail,
                )),
            },
        ),
    );
    let client = test_support::kafka::client(&bootstrap);
    let changelog = "changelog__g--input--counts";
    let n = state_changelog::ensure_changelog_topic(&client, "input", changelog, &Default::default()).unwrap();
    assert_eq!(n, 2);
    test_support::kafka::wait_for_topic(&client, changelog, 2);
    // Existing now: validated, not created again.
    assert_eq!(
        state_changelog::ensure_changelog_topic(&client, "input", changelog, &Default::default()).unwrap(),
        2
    );
    drop(registration);
    let err =
        state_changelog::ensure_changelog_topic(&client, "input", "changelog__g--input--other", &Default::default())
            .unwrap_err();
    assert!(matches!(err, ChangelogError::MockClusterTopic { .. }), "{err}");
}

/// What a consumer reads from `topic[partition]`: key, value and headers
/// of every record, in order.
type ReadRecord = (Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Vec<u8>)>);

fn read_partition(bootstrap: &str, topic: &str, partition: i32, count: usize) -> Vec<ReadRecord> {
    use state_changelog::rdkafka::consumer::{BaseConsumer, Consumer};
    use state_changelog::rdkafka::message::{Headers, Message};
    use state_changelog::rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = client(bootstrap).set("group.id", "sink-reader").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while out.len() < count && std::time::Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.unwrap();
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        out.push((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec), headers));
    }
    out
}

#[test]
fn a_sink_produces_the_records_producing_by_name_does() {
    use state_core::ChangelogRecord;
    let topic = "cl-sink-vs-name";
    let c = cluster(topic, 2);
    let producer = Arc::new(state_changelog::ChangelogProducer::new(&client(&c.bootstrap_servers())).unwrap());
    let records = [
        ChangelogRecord::new("default", b"k1", Some(b"v1"), Some(br#"{"input":7}"#)),
        // A tombstone without processed offsets.
        ChangelogRecord::new("default", b"k2", None, None),
        // Every header, and an empty key and value.
        ChangelogRecord {
            ttl_stamped: true,
            value_codec: Some(Codec::MsgPack),
            ..ChangelogRecord::new("__ttl_system__", b"", Some(b""), Some(b"null"))
        },
    ];
    let sink = producer.sink(topic, 0);
    for r in records {
        sink.send(r).unwrap();
        producer.produce(topic, 1, r).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let through_sink = read_partition(&c.bootstrap_servers(), topic, 0, records.len());
    let by_name = read_partition(&c.bootstrap_servers(), topic, 1, records.len());
    assert_eq!(through_sink.len(), records.len());
    assert_eq!(through_sink, by_name);
    let (key, value, headers) = &through_sink[0];
    assert_eq!((key.as_deref(), value.as_deref()), (Some(&b"k1"[..]), Some(&b"v1"[..])));
    let expected: Vec<_> = records[0].headers().map(|(n, v)| (n.to_owned(), v.to_vec())).collect();
    assert_eq!(headers, &expected);
    assert_eq!(through_sink[1].1, None, "a tombstone has no value");
    assert_eq!(through_sink[2].2.len(), 4, "every header: {:?}", through_sink[2].2);
    assert_eq!(
        producer.last_offset(topic, 0),
        Some(2),
        "deliveries through a sink are tracked"
    );
    assert_eq!(
        producer.last_offset(topic, 1),
        Some(2),
        "deliveries of records produced by name are tracked"
    );
}

#[test]
fn an_output_topic_sends_what_sending_by_name_does() {
    use state_changelog::OutputRecord;
    let topic = "out-handle-vs-name";
    let c = cluster(topic, 3);
    let producer = Arc::new(state_changelog::ChangelogProducer::new(&client(&c.bootstrap_servers())).unwrap());
    let out = producer.output_topic(topic).unwrap();
    assert_eq!(out.topic(), topic);
    // A partition and a timestamp given: through the handle to 0, by name to 1.
    out.send(OutputRecord::new().key(b"k").value(b"v").partition(0).timestamp(1_234))
        .unwrap();
    producer
        .kafka()
        .send(
            BaseRecord::to(topic)
                .key(&b"k"[..])
                .payload(&b"v"[..])
                .partition(1)
                .timestamp(1_234),
        )
        .unwrap();
    // Left to the partitioner: each key lands where it does by name.
    let keys: Vec<String> = (0..30).map(|i| format!("key-{i}")).collect();
    for key in &keys {
        out.send(OutputRecord::new().key(key.as_bytes()).value(b"handle"))
            .unwrap();
        producer
            .kafka()
            .send(BaseRecord::to(topic).key(key.as_bytes()).payload(&b"name"[..]))
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let parts: Vec<_> = (0..3)
        .map(|p| test_support::kafka::read_to_end(&c.bootstrap_servers(), topic, p))
        .collect();
    assert_eq!(parts[0][0], (b"k".to_vec(), b"v".to_vec(), Some(1_234)));
    assert_eq!(parts[1][0], (b"k".to_vec(), b"v".to_vec(), Some(1_234)));
    for (p, records) in parts.iter().enumerate() {
        let keyed =
            |value: &[u8]| -> Vec<Vec<u8>> { records.iter().filter(|r| r.1 == value).map(|r| r.0.clone()).collect() };
        assert_eq!(
            keyed(b"handle"),
            keyed(b"name"),
            "partition {p}: the partitioner's choice"
        );
    }
    assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 2 + 2 * keys.len());
    let end_of_0 = parts[0].len() as i64 - 1;
    assert_eq!(
        producer.last_offset(topic, 0),
        Some(end_of_0),
        "tracked through the handle"
    );
    // librdkafka takes any name a broker might (it checks the length only).
    assert!(
        producer.output_topic(&"t".repeat(600)).is_err(),
        "librdkafka refuses the name"
    );
}
