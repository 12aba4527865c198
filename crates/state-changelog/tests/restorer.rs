//! The restorer on librdkafka's in-process mock cluster: regression tests
//! for last round's standby and promotion fixes (found by the crash
//! harness), a late offset commit by a partition's previous owner, a
//! revocation in the middle of a restore, and a restore that cannot start
//! beside running ones.
//!
//! Every wait polls for a condition until a deadline; nothing sleeps for a
//! fixed time to let something happen.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_changelog::rdkafka::config::ClientConfig;
use state_changelog::rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use state_changelog::rdkafka::message::{Header, OwnedHeaders};
use state_changelog::rdkafka::mocking::MockCluster;
use state_changelog::rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use state_changelog::rdkafka::{Offset, TopicPartitionList};
use state_changelog::{ConsumerSettings, RecoveryConfig, RestoreEvent, RestoreRequest, Restorer, StandbyRequest};
use state_core::{
    Direction, KvIter, MemoryPartition, ProcessedOffsets, ReadView, StorePartition, TopicPartition, WriteBatch,
    CF_HEADER, PROCESSED_OFFSETS_HEADER,
};

const CHANGELOG: &str = "changelog__g--input--counts";
const INPUT: &str = "input";
const GROUP: &str = "g";
/// How long any wait below may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

type Cluster = MockCluster<'static, DefaultProducerContext>;

fn cluster() -> Cluster {
    let c = MockCluster::new(1).expect("mock cluster");
    c.create_topic(CHANGELOG, 1, 1).expect("changelog topic");
    c.create_topic(INPUT, 1, 1).expect("source topic");
    c
}

fn client(c: &Cluster) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", c.bootstrap_servers());
    config
}

fn changelog() -> TopicPartition {
    TopicPartition::new(CHANGELOG, 0)
}

/// The source partition whose commits decide which records are committed.
fn source() -> TopicPartition {
    TopicPartition::new(INPUT, 0)
}

/// A restorer that looks at its standbys' committed offsets and writes
/// their batches often, so the tests wait milliseconds, not seconds.
fn restorer(c: &Cluster, progress_interval: Duration) -> Restorer {
    let config = RecoveryConfig {
        poll_timeout: Duration::from_millis(10),
        standby_refresh_interval: Duration::from_millis(20),
        standby_flush_interval: Duration::from_millis(20),
        progress_interval,
        stall_timeout: PATIENCE,
        ..RecoveryConfig::default()
    };
    Restorer::start(&client(c), GROUP, config).expect("restorer")
}

/// Produces one changelog record per key, each of the checkpoint that
/// processed `INPUT` up to `processed` (`None`: no processed offsets, so
/// always applied). Returns their changelog offsets.
fn produce(c: &Cluster, processed: Option<i64>, keys: &[&str]) -> Vec<i64> {
    let producer: BaseProducer = client(c).create().expect("producer");
    let header = processed.map(|o| ProcessedOffsets::new().with(INPUT, o).to_header());
    for key in keys {
        let mut headers = OwnedHeaders::new().insert(Header {
            key: CF_HEADER,
            value: Some("default"),
        });
        if let Some(h) = &header {
            headers = headers.insert(Header {
                key: PROCESSED_OFFSETS_HEADER,
                value: Some(h.as_slice()),
            });
        }
        let record = BaseRecord::<str, str>::to(CHANGELOG)
            .partition(0)
            .key(key)
            .payload("1")
            .headers(headers);
        producer.send(record).map_err(|(e, _)| e).expect("send");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
    let consumer: BaseConsumer = client(c).create().expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(CHANGELOG, 0, Duration::from_secs(10))
        .expect("watermarks");
    (high - keys.len() as i64..high).collect()
}

/// The application's group commits `offset` (the next offset to consume)
/// for the source partition, as the partition's owner does.
fn commit(c: &Cluster, offset: i64) {
    let consumer: BaseConsumer = ConsumerSettings::new(GROUP)
        .client_config(&client(c))
        .create()
        .expect("committer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(INPUT, 0, Offset::Offset(offset))
        .expect("offset");
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
}

fn committed(offset: i64) -> BTreeMap<String, i64> {
    BTreeMap::from([(INPUT.to_owned(), offset)])
}

fn has(p: &dyn StorePartition, key: &str) -> bool {
    p.get("default", key.as_bytes()).expect("get").is_some()
}

fn keys(p: &dyn StorePartition) -> usize {
    p.iter_range("default", b"", None, Direction::Forward)
        .expect("iterate")
        .count()
}

/// Polls `done` until it holds; fails the test with `what` after
/// [`PATIENCE`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Collects the restorer's events until one matches `end`, which is
/// returned with every event before it.
fn events_until(r: &Restorer, what: &str, end: impl Fn(&RestoreEvent) -> bool) -> (RestoreEvent, Vec<RestoreEvent>) {
    let mut seen = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        for e in r.events() {
            if end(&e) {
                return (e, seen);
            }
            seen.push(e);
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; saw {seen:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn restored(r: &Restorer) -> (RestoreEvent, Vec<RestoreEvent>) {
    events_until(r, "the restore to finish", |e| {
        if let RestoreEvent::Failed { error, .. } = e {
            panic!("the restore failed: {error}");
        }
        matches!(e, RestoreEvent::Restored { .. })
    })
}

fn standby_request(p: &Arc<MemoryPartition>) -> StandbyRequest {
    StandbyRequest {
        partition: p.clone(),
        changelog: changelog(),
        source: source(),
        location: "standby".into(),
        replay_check: None,
    }
}

fn restore_request(p: Arc<dyn StorePartition>, committed_offsets: BTreeMap<String, i64>) -> RestoreRequest {
    RestoreRequest {
        partition: p,
        changelog: changelog(),
        committed_offsets,
        location: "active".into(),
        replay_check: None,
    }
}

/// A standby stops before a record of a checkpoint its owner has not
/// committed yet. The consumer already delivered that record, so its
/// position is past it; the standby must resume at the record it holds,
/// not at the position, or the record is skipped for good (and so is its
/// change after a promotion).
#[test]
fn a_held_standby_keeps_the_record_it_holds() {
    let c = cluster();
    let a = produce(&c, Some(0), &["a"])[0];
    let b = produce(&c, Some(1), &["b"])[0];
    commit(&c, 1); // a's checkpoint committed, b's not yet
    let r = restorer(&c, Duration::from_millis(500));
    let p = Arc::new(MemoryPartition::new());
    r.standby(standby_request(&p)).unwrap();
    wait_for("the standby to hold b", || {
        r.standby_status()
            .first()
            .is_some_and(|s| s.waiting_for_commit && s.applied_offset == Some(a as u64))
    });
    // Several fetches and refreshes go by while it holds b: a refresh has
    // seen the next record's offset.
    let c_at = produce(&c, Some(2), &["c"])[0];
    wait_for("a refresh after the hold", || {
        r.standby_status()
            .first()
            .is_some_and(|s| s.high_watermark > c_at && s.waiting_for_commit)
    });
    assert!(!has(&*p, "b"), "b's checkpoint is not committed");
    commit(&c, 2); // b's checkpoint commits, c's not yet
    wait_for("the standby to apply b once its checkpoint committed", || {
        p.changelog_offset().unwrap() == Some(b as u64)
    });
    assert!(has(&*p, "b"));
    r.promote(changelog(), committed(2)).unwrap();
    let (done, _) = restored(&r);
    let RestoreEvent::Restored { stats, .. } = done else {
        unreachable!()
    };
    assert_eq!(
        (stats.applied, stats.skipped),
        (2, 1),
        "a and b applied (by the standby), c replayed and skipped"
    );
    assert!(has(&*p, "a") && has(&*p, "b") && !has(&*p, "c"));
    assert_eq!(p.changelog_offset().unwrap(), Some(c_at as u64));
}

/// The engine takes queued records many at a time: the records after a
/// held one were taken with it (and the consumer's position is past all of
/// them). Once the hold lifts, every one of them is applied, in order, and
/// the stored offset is the last one's.
#[test]
fn records_taken_together_with_a_held_one_are_all_applied_after_it() {
    let c = cluster();
    let a = produce(&c, Some(0), &["a"])[0];
    produce(&c, Some(1), &["b"]);
    produce(&c, Some(2), &["c"]);
    let d = produce(&c, Some(3), &["d"])[0];
    commit(&c, 1); // a's checkpoint committed; b's, c's and d's not yet
    let r = restorer(&c, Duration::from_millis(500));
    let p = Arc::new(MemoryPartition::new());
    r.standby(standby_request(&p)).unwrap();
    wait_for("the standby to hold b", || {
        r.standby_status()
            .first()
            .is_some_and(|s| s.waiting_for_commit && s.applied_offset == Some(a as u64))
    });
    assert!(!has(&*p, "b") && !has(&*p, "c") && !has(&*p, "d"));
    commit(&c, 4);
    wait_for("the standby to apply b, c and d", || {
        p.changelog_offset().unwrap() == Some(d as u64)
    });
    assert!(has(&*p, "a") && has(&*p, "b") && has(&*p, "c") && has(&*p, "d"));
}

/// A standby applies what its owner committed when it last looked; the
/// offsets the new owner read on assignment can be older (the previous
/// owner's commit landed in between). A promotion judges by the newer of
/// the two, and reports what it judged by, so the partition resumes after
/// every checkpoint its state holds.
#[test]
fn a_promotion_judges_records_by_the_newer_committed_offsets() {
    let c = cluster();
    produce(&c, Some(0), &["a"]);
    let b = produce(&c, Some(1), &["b"])[0];
    commit(&c, 2); // both checkpoints committed
    let r = restorer(&c, Duration::from_millis(500));
    let p = Arc::new(MemoryPartition::new());
    r.standby(standby_request(&p)).unwrap();
    wait_for("the standby to apply b", || {
        p.changelog_offset().unwrap() == Some(b as u64)
    });
    // The assignment read its offsets before the commit of b's checkpoint.
    r.promote(changelog(), committed(1)).unwrap();
    let (done, _) = restored(&r);
    let RestoreEvent::Restored { committed_offsets, .. } = done else {
        unreachable!()
    };
    assert_eq!(
        committed_offsets,
        committed(2),
        "the state holds b's checkpoint: its source resumes after it"
    );
    assert!(has(&*p, "a") && has(&*p, "b"));
}

/// The previous owner commits after the new owner read the committed
/// offsets on assignment but before the restore fetched the changelog: the
/// restore judges records by the offsets it was given, not the group's
/// newer ones, and reports them, so the source partition resumes where
/// the state was restored to.
#[test]
fn a_late_commit_by_the_previous_owner_does_not_change_what_a_restore_judges_by() {
    let c = cluster();
    produce(&c, Some(0), &["a"]);
    let b = produce(&c, Some(1), &["b"])[0];
    commit(&c, 1);
    let read_on_assignment = committed(1);
    commit(&c, 2); // the late commit
    let r = restorer(&c, Duration::from_millis(500));
    let p = Arc::new(MemoryPartition::new());
    r.restore(restore_request(p.clone(), read_on_assignment.clone()))
        .unwrap();
    let (done, _) = restored(&r);
    let RestoreEvent::Restored {
        committed_offsets,
        stats,
        ..
    } = done
    else {
        unreachable!()
    };
    assert_eq!(committed_offsets, read_on_assignment, "reports what it judged by");
    assert_eq!((stats.applied, stats.skipped), (1, 1));
    assert!(has(&*p, "a"));
    assert!(
        !has(&*p, "b"),
        "b's checkpoint was not committed as far as the restore knows"
    );
    assert_eq!(
        p.changelog_offset().unwrap(),
        Some(b as u64),
        "the offset passes b anyway"
    );
}

/// The first progress report of a restore comes with its first record (a
/// listener that acts on restore progress, such as the crash harness's
/// kill-in-restore, sees every restore however short).
#[test]
fn the_first_progress_report_comes_with_the_first_record() {
    let c = cluster();
    produce(&c, None, &["a", "b", "c"]);
    let r = restorer(&c, Duration::from_secs(60));
    let p = Arc::new(MemoryPartition::new());
    r.restore(restore_request(p, committed(0))).unwrap();
    let (_, before) = restored(&r);
    assert!(
        before
            .iter()
            .any(|e| matches!(e, RestoreEvent::Progress(p) if !p.finished && p.done >= 1)),
        "a progress report before the end: {before:?}"
    );
}

/// A partition whose bulk writes take a while, so a restore can be caught
/// in the middle.
struct SlowPartition {
    inner: MemoryPartition,
    delay: Duration,
}

impl StorePartition for SlowPartition {
    fn get(&self, cf: &str, key: &[u8]) -> state_core::Result<Option<Vec<u8>>> {
        self.inner.get(cf, key)
    }

    fn iter_range<'a>(
        &'a self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        d: Direction,
    ) -> state_core::Result<KvIter<'a>> {
        self.inner.iter_range(cf, lower, upper, d)
    }

    fn write(&self, batch: &WriteBatch) -> state_core::Result<()> {
        self.inner.write(batch)
    }

    fn write_bulk(&self, batch: &WriteBatch) -> state_core::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.write_bulk(batch)
    }

    fn persist(&self) -> state_core::Result<()> {
        self.inner.persist()
    }

    fn column_families(&self) -> state_core::Result<Vec<String>> {
        self.inner.column_families()
    }

    fn read_view(&self) -> state_core::Result<Box<dyn ReadView + '_>> {
        self.inner.read_view()
    }
}

/// Releasing a partition in the middle of its restore (its source
/// partition was revoked) writes the batch being filled whole and nothing
/// after it: the data and the stored offset agree. Restored again, it
/// continues from the stored offset and ends exact.
#[test]
fn a_revoke_in_the_middle_of_a_restore_keeps_data_and_offset_in_step() {
    const RECORDS: usize = 2_000;
    let c = cluster();
    let names: Vec<String> = (0..RECORDS).map(|i| format!("k{i:04}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let offsets = produce(&c, None, &names);
    let last = *offsets.last().unwrap() as u64;
    let p = Arc::new(SlowPartition {
        inner: MemoryPartition::new(),
        delay: Duration::from_millis(5),
    });
    let config = RecoveryConfig {
        batch_records: 10,
        poll_timeout: Duration::from_millis(10),
        ..RecoveryConfig::default()
    };
    let r = Restorer::start(&client(&c), GROUP, config).expect("restorer");
    r.restore(restore_request(p.clone(), committed(0))).unwrap();
    wait_for("the restore to be part-way", || {
        p.changelog_offset().unwrap().is_some_and(|o| o > 200)
    });
    let released = r.release(vec![changelog()]).unwrap();
    assert_eq!(released.len(), 1);
    assert!(released[0].1.is_ok(), "{:?}", released[0].1);
    let stored = p.changelog_offset().unwrap().expect("an offset was stored");
    assert!(stored < last, "released before the end of the restore");
    assert_eq!(keys(&*p) as u64, stored + 1, "data and offset agree");
    assert!(
        !r.events().iter().any(|e| matches!(e, RestoreEvent::Restored { .. })),
        "a released restore does not finish"
    );

    r.restore(restore_request(p.clone(), committed(0))).unwrap();
    let (done, _) = restored(&r);
    let RestoreEvent::Restored { stats, offset, .. } = done else {
        unreachable!()
    };
    assert_eq!(offset, Some(last));
    assert_eq!(
        stats.applied,
        last - stored,
        "continued from the offset stored on release: nothing was written after it"
    );
    assert_eq!(keys(&*p), RECORDS);
}

/// A restore that cannot start (its changelog's watermarks cannot be read)
/// fails on its own, and the restores already running lose nothing.
/// (Reporting such a failure used to serve the consumer's events, which
/// polled and dropped records of the running restores; their positions
/// then moved past them.)
#[test]
fn a_restore_that_cannot_start_costs_the_running_ones_nothing() {
    use state_changelog::rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    const RECORDS: usize = 2_000;
    const OTHER: &str = "changelog__g--input--other";
    let c = cluster();
    c.create_topic(OTHER, 1, 1).expect("second changelog topic");
    let names: Vec<String> = (0..RECORDS).map(|i| format!("k{i:04}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    produce(&c, None, &names);
    let p = Arc::new(SlowPartition {
        inner: MemoryPartition::new(),
        delay: Duration::from_millis(5),
    });
    let config = RecoveryConfig {
        batch_records: 10,
        poll_timeout: Duration::from_millis(10),
        metadata_timeout: Duration::from_secs(2),
        ..RecoveryConfig::default()
    };
    let r = Restorer::start(&client(&c), GROUP, config).expect("restorer");
    r.restore(restore_request(p.clone(), committed(0))).unwrap();
    wait_for("the restore to be part-way", || {
        p.changelog_offset().unwrap().is_some_and(|o| o > 200)
    });
    c.request_errors(
        RDKafkaApiKey::ListOffsets,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 2],
    );
    r.restore(RestoreRequest {
        changelog: TopicPartition::new(OTHER, 0),
        ..restore_request(Arc::new(MemoryPartition::new()), committed(0))
    })
    .unwrap();
    let is_ours = |e: &RestoreEvent| match e {
        RestoreEvent::Restored { changelog: cl, .. } | RestoreEvent::Failed { changelog: cl, .. } => *cl == changelog(),
        RestoreEvent::Progress(_) => false,
    };
    let (failed, _) = events_until(&r, "the second restore to fail", |e| {
        !is_ours(e) && matches!(e, RestoreEvent::Failed { .. })
    });
    assert!(
        matches!(&failed, RestoreEvent::Failed { changelog: cl, standby: false, .. } if cl.topic() == OTHER),
        "{failed:?}"
    );
    let (done, _) = events_until(&r, "the running restore to finish", is_ours);
    let RestoreEvent::Restored { stats, .. } = done else {
        panic!("the running restore failed: {done:?}")
    };
    assert_eq!(stats.applied, RECORDS as u64);
    assert_eq!(keys(&*p), RECORDS, "every record of the running restore applied");
}
