//! Scenarios shared by the mock-cluster suite, the real-broker suite and
//! the TLS suite; the generic fixtures come from `test-support`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use state_changelog::rdkafka::config::ClientConfig;
use state_changelog::{ChangelogProducer, RecoveryConfig, RecoveryManager, RecoveryPartition, RecoveryProgress};
use state_core::{cf, ChangelogSink, Codec, ProcessedOffsets, StorePartition, TopicPartition};
use state_rocksdb::{RocksDbOptions, RocksDbPartition};
use state_txn::{
    ExpireOptions, ExpiredWindow, PartitionTransaction, TimestampedConfig, TimestampedTransaction, WindowedTransaction,
};
pub use test_support::kafka::client;
pub use test_support::store::snapshot;

pub fn open(dir: &std::path::Path) -> Arc<RocksDbPartition> {
    Arc::new(RocksDbPartition::open(dir, &RocksDbOptions::default()).expect("open partition"))
}

/// Three checkpoints of key-value, windowed and timestamped changes on one
/// partition, produced to `topic[partition]`. Returns the last offset.
pub fn write_session(producer: &Arc<ChangelogProducer>, topic: &str, partition: i32, p: &Arc<RocksDbPartition>) -> u64 {
    let sink: Arc<dyn ChangelogSink> = producer.sink(topic, partition);
    let mut last = 0;
    for round in 0..3i64 {
        let offsets = ProcessedOffsets::new().with("input", round * 10 + 9);
        let mut kv = PartitionTransaction::new(p.clone(), Codec::MsgPack, Some(sink.clone()));
        for k in 0..5 {
            kv.set("count", &(round * 100 + k), format!("user-{k}").as_bytes())
                .unwrap();
        }
        kv.delete("count", b"user-4").unwrap();
        kv.prepare(Some(&offsets)).unwrap();
        let mut w = WindowedTransaction::new(p.clone(), Codec::MsgPack, Some(sink.clone()));
        w.update_window(round * 1000, round * 1000 + 1000, &round, round * 1000 + 5, b"page")
            .unwrap();
        w.add_to_collection(Some(round * 1000), &format!("click-{round}"), b"page")
            .unwrap();
        let _: Vec<ExpiredWindow<i64, String>> = w
            .expire_windows(round * 1000 - 1000, b"page", ExpireOptions::delete().collecting())
            .unwrap();
        w.prepare(Some(&offsets)).unwrap();
        let mut t = TimestampedTransaction::new(
            p.clone(),
            Codec::MsgPack,
            Some(sink.clone()),
            TimestampedConfig {
                grace_ms: 1500,
                keep_duplicates: true,
            },
        );
        t.set_for_timestamp(round * 1000, &round, b"sensor").unwrap();
        t.prepare(Some(&offsets)).unwrap();
        producer.flush(Duration::from_secs(30)).expect("changelog flush");
        let offset = producer.last_offset(topic, partition).expect("delivered") as u64;
        kv.flush(Some(offset)).unwrap();
        w.flush(Some(offset)).unwrap();
        t.flush(Some(offset)).unwrap();
        last = offset;
    }
    last
}

pub fn committed_all() -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    m.insert("input".to_string(), i64::MAX);
    m
}

/// A partition to recover: (partition, changelog topic, changelog partition, committed offsets).
pub type ToRecover<'a> = (Arc<RocksDbPartition>, &'a str, i32, BTreeMap<String, i64>);

pub fn recover(
    bootstrap: &str,
    parts: Vec<ToRecover<'_>>,
) -> (
    Result<Vec<state_changelog::RecoveredPartition>, state_changelog::ChangelogError>,
    Vec<RecoveryProgress>,
) {
    recover_with(&client(bootstrap), parts)
}

/// [`recover`] with a client configuration of its own (TLS, say).
pub fn recover_with(
    kafka: &ClientConfig,
    parts: Vec<ToRecover<'_>>,
) -> (
    Result<Vec<state_changelog::RecoveredPartition>, state_changelog::ChangelogError>,
    Vec<RecoveryProgress>,
) {
    let mgr = RecoveryManager::new(
        kafka,
        RecoveryConfig {
            stall_timeout: Duration::from_secs(30),
            ..RecoveryConfig::default()
        },
        Arc::new(AtomicBool::new(false)),
    )
    .expect("recovery manager");
    let mut progress = Vec::new();
    let rps = parts
        .into_iter()
        .map(|(p, topic, n, committed)| RecoveryPartition {
            partition: p,
            changelog: TopicPartition::new(topic, n),
            committed_offsets: committed,
            location: format!("partition {n}"),
            until: None,
            replay_check: None,
        })
        .collect();
    let res = mgr.recover(rps, &mut |p| progress.push(p.clone()));
    (res, progress)
}

/// Round trip over three partitions: produce, delete the local state,
/// recover, compare every column family (metadata included).
pub fn round_trip(bootstrap: &str, topic: &str) {
    round_trip_with(&client(bootstrap), topic)
}

/// [`round_trip`] with a client configuration of its own (TLS, say).
pub fn round_trip_with(kafka: &ClientConfig, topic: &str) {
    let producer = Arc::new(ChangelogProducer::new(kafka).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for n in 0..3 {
        let p = open(&dir.path().join(format!("src-{n}")));
        let last = write_session(&producer, topic, n, &p);
        assert_eq!(p.changelog_offset().unwrap(), Some(last));
        expected.push(snapshot(&*p));
    }
    assert!(expected[0].contains_key(cf::VALUES) && expected[0].contains_key(cf::MIN_ELIGIBLE_TIMESTAMPS));
    // Delete the local state (every partition is closed by now) and rebuild
    // it in the same place from the changelog alone.
    for n in 0..3 {
        std::fs::remove_dir_all(dir.path().join(format!("src-{n}"))).expect("delete the local state");
    }
    let fresh: Vec<_> = (0..3).map(|n| open(&dir.path().join(format!("src-{n}")))).collect();
    assert!(
        fresh.iter().all(|p| p.changelog_offset().unwrap().is_none()),
        "state deleted"
    );
    let (res, progress) = recover_with(
        kafka,
        fresh
            .iter()
            .enumerate()
            .map(|(n, p)| (p.clone(), topic, n as i32, committed_all()))
            .collect(),
    );
    let res = res.expect("recovery");
    assert_eq!(res.len(), 3);
    for n in 0..3 {
        assert_eq!(snapshot(&*fresh[n]), expected[n], "partition {n} recovered exactly");
        assert!(progress
            .iter()
            .any(|p| p.changelog.partition() == n as i32 && p.finished && p.done == p.total));
    }
}

/// Records whose processed offsets were not committed are skipped; the
/// stored offset still advances.
pub fn uncommitted_are_skipped(bootstrap: &str, topic: &str) {
    let producer = Arc::new(ChangelogProducer::new(&client(bootstrap)).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let src = open(&dir.path().join("src"));
    let sink = producer.sink(topic, 0);
    for (round, processed) in [(1u64, 4i64), (2, 10)] {
        let mut t = PartitionTransaction::new(src.clone(), Codec::MsgPack, Some(sink.clone()));
        t.set("k", &round, format!("r{round}").as_bytes()).unwrap();
        t.prepare(Some(&ProcessedOffsets::new().with("input", processed)))
            .unwrap();
        producer.flush(Duration::from_secs(30)).unwrap();
        t.flush(producer.last_offset(topic, 0).map(|o| o as u64)).unwrap();
    }
    let dst = open(&dir.path().join("dst"));
    let mut committed = BTreeMap::new();
    committed.insert("input".to_string(), 10); // offset 10 was never committed
    let (res, _) = recover(bootstrap, vec![(dst.clone(), topic, 0, committed)]);
    let res = res.expect("recovery");
    assert_eq!((res[0].stats.applied, res[0].stats.skipped), (1, 1));
    let t = PartitionTransaction::new(dst.clone(), Codec::MsgPack, None);
    assert_eq!(t.get::<_, u64>("k", b"r1").unwrap(), Some(1));
    assert_eq!(
        t.get::<_, u64>("k", b"r2").unwrap(),
        None,
        "the uncommitted checkpoint is skipped"
    );
    assert_eq!(
        dst.changelog_offset().unwrap(),
        src.changelog_offset().unwrap(),
        "the offset advanced anyway"
    );
}

/// A stored offset at or beyond the high watermark is a typed error.
pub fn invalid_stored_offset(bootstrap: &str, topic: &str) {
    let producer = Arc::new(ChangelogProducer::new(&client(bootstrap)).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let src = open(&dir.path().join("src"));
    let mut t = PartitionTransaction::new(src.clone(), Codec::MsgPack, Some(producer.sink(topic, 0)));
    t.set("k", &1, b"p").unwrap();
    t.prepare(None).unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    let dst = open(&dir.path().join("dst"));
    dst.write_changelog_offset(1000).unwrap();
    let (res, _) = recover(bootstrap, vec![(dst.clone(), topic, 0, committed_all())]);
    let err = res.unwrap_err();
    assert!(
        matches!(
            err,
            state_changelog::ChangelogError::InvalidStoredOffset { stored: 1000, .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("recreated"), "{err}");
    assert_eq!(dst.changelog_offset().unwrap(), Some(1000), "nothing was applied");
    // Past `i64::MAX` (a corrupt offset): the same error, not a replay from
    // the start over the local data.
    dst.write_changelog_offset(1 << 63).unwrap();
    let (res, _) = recover(bootstrap, vec![(dst.clone(), topic, 0, committed_all())]);
    let err = res.unwrap_err();
    assert!(
        matches!(err, state_changelog::ChangelogError::InvalidStoredOffset { stored, .. } if stored == 1 << 63),
        "{err}"
    );
    assert_eq!(dst.changelog_offset().unwrap(), Some(1 << 63), "nothing was applied");
}
