//! The restorer against a broker that is slow for a while (librdkafka's
//! in-process mock cluster with a long round-trip time): a watermark
//! request that times out (`OperationTimedOut`) is retried, not the end of
//! the restore.

use std::sync::Arc;
use std::time::{Duration, Instant};

use state_changelog::rdkafka::config::ClientConfig;
use state_changelog::rdkafka::message::{Header, OwnedHeaders};
use state_changelog::rdkafka::mocking::MockCluster;
use state_changelog::rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use state_changelog::{RecoveryConfig, RestoreEvent, RestoreRequest, Restorer};
use state_core::{MemoryPartition, StorePartition, TopicPartition, CF_HEADER};

const CHANGELOG: &str = "changelog__g--input--counts";
const RECORDS: i64 = 100;
/// How long any wait below may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

fn client(c: &MockCluster<'static, DefaultProducerContext>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", c.bootstrap_servers());
    config
}

#[test]
fn a_restore_rides_out_a_broker_too_slow_for_its_watermark_requests() {
    let c = MockCluster::new(1).expect("mock cluster");
    c.create_topic(CHANGELOG, 1, 1).expect("changelog topic");
    let producer: BaseProducer = client(&c).create().expect("producer");
    for i in 0..RECORDS {
        let key = format!("k{i}");
        let headers = OwnedHeaders::new().insert(Header {
            key: CF_HEADER,
            value: Some("default"),
        });
        let record = BaseRecord::<str, str>::to(CHANGELOG)
            .partition(0)
            .key(&key)
            .payload("1")
            .headers(headers);
        producer.send(record).map_err(|(e, _)| e).expect("send");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");

    let config = RecoveryConfig {
        poll_timeout: Duration::from_millis(10),
        // Far shorter than the broker's answers below: the first watermark
        // requests time out.
        metadata_timeout: Duration::from_millis(200),
        retry_timeout: PATIENCE,
        stall_timeout: PATIENCE,
        ..RecoveryConfig::default()
    };
    let r = Restorer::start(&client(&c), "g", config).expect("restorer");
    let request = |p: &Arc<MemoryPartition>| RestoreRequest {
        partition: p.clone(),
        changelog: TopicPartition::new(CHANGELOG, 0),
        committed_offsets: Default::default(),
        location: "slow".into(),
        replay_check: None,
    };
    // Two restores while the broker is quick (the first asks watermarks
    // through the fetching client, the second through the metadata
    // client): both clients are connected and know the topic's leader when
    // it slows down, so what times out is the watermark request itself
    // (`OperationTimedOut`, not a connection failure).
    for _ in 0..2 {
        let earlier = Arc::new(MemoryPartition::new());
        r.restore(request(&earlier)).expect("restore request");
        assert_eq!(restored(&r).applied, RECORDS as u64);
    }

    c.broker_round_trip_time(1, Duration::from_millis(1_000))
        .expect("slow broker");
    let p = Arc::new(MemoryPartition::new());
    r.restore(request(&p)).expect("restore request");
    // The broker stays slow for several watermark timeouts (this is the
    // scenario, not a wait for something to happen), then recovers.
    std::thread::sleep(Duration::from_millis(900));
    c.broker_round_trip_time(1, Duration::ZERO).expect("broker back");
    let stats = restored(&r);
    assert_eq!(stats.applied, RECORDS as u64);
    assert_eq!(p.changelog_offset().expect("offset"), Some(RECORDS as u64 - 1));
}

/// The stats of the next restore to end; fails the test if it failed.
fn restored(r: &Restorer) -> state_changelog::ApplyStats {
    let deadline = Instant::now() + PATIENCE;
    loop {
        for e in r.events() {
            match e {
                RestoreEvent::Restored { stats, .. } => return stats,
                RestoreEvent::Failed { error, .. } => panic!("the restore failed: {error}"),
                RestoreEvent::Progress(_) => {}
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for the restore");
        std::thread::sleep(Duration::from_millis(5));
    }
}
