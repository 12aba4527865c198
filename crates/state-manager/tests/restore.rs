//! Restores run on the restorer thread beside the poll loop: a member keeps
//! processing its ready partitions (and stays in the group, with short
//! callbacks) while another partition restores for more than 20 s; a
//! revocation in the middle of a restore leaves data and stored offset in
//! step; a standby replica makes a takeover replay only the delta.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::Message;
use state_changelog::ChangelogProducer;
use state_core::{
    Backend, BackendInfo, Direction, KvIter, MemoryPartition, ProcessedOffsets, ReadView, Result, StoreLocation,
    StorePartition, WriteBatch,
};
use state_manager::{
    Codec, KeyValueStore, PartitionTransaction, ProcessingGuarantee, RocksDbBackend, RocksDbOptions, StandbyPolicy,
    StateStoreManager, StoreHandle, TopicPartition,
};
use test_support::counting::*;
use test_support::kafka::{client, mock_cluster, produce_keyed, Cluster};

/// Changelog records of partition 1 before the test starts.
const SEEDED: usize = 2_000;

/// Records per restore batch of the slow members.
const BATCH_RECORDS: usize = 10;

/// A backend whose recovery writes are slow: every bulk batch sleeps.
#[derive(Debug)]
struct SlowRestores {
    inner: Arc<dyn Backend>,
    delay: Duration,
    bulk_batches: Arc<AtomicU64>,
}

impl Backend for SlowRestores {
    fn info(&self) -> BackendInfo {
        self.inner.info()
    }

    fn open_partition(&self, store: &StoreLocation, partition: u32) -> Result<Arc<dyn StorePartition>> {
        Ok(Arc::new(SlowPartition {
            inner: self.inner.open_partition(store, partition)?,
            delay: self.delay,
            bulk_batches: self.bulk_batches.clone(),
        }))
    }

    fn destroy_store(&self, store: &StoreLocation) -> Result<()> {
        self.inner.destroy_store(store)
    }
}

struct SlowPartition {
    inner: Arc<dyn StorePartition>,
    delay: Duration,
    bulk_batches: Arc<AtomicU64>,
}

impl StorePartition for SlowPartition {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(cf, key)
    }

    fn iter_range<'a>(&'a self, cf: &str, lower: &[u8], upper: Option<&[u8]>, d: Direction) -> Result<KvIter<'a>> {
        self.inner.iter_range(cf, lower, upper, d)
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.inner.write(batch)
    }

    fn write_bulk(&self, batch: &WriteBatch) -> Result<()> {
        std::thread::sleep(self.delay);
        self.bulk_batches.fetch_add(1, Ordering::Relaxed);
        self.inner.write_bulk(batch)
    }

    /// A restore into an empty partition hands over ten batches at once
    /// (`ChangelogApplier::loading_into_empty`): as slow as the batches of
    /// [`BATCH_RECORDS`] it stands for.
    fn load_bulk(&self, batch: &WriteBatch) -> Result<()> {
        let batches = batch.len().div_ceil(BATCH_RECORDS).max(1) as u32;
        std::thread::sleep(self.delay * (batches - 1));
        self.write_bulk(batch)
    }

    fn persist(&self) -> Result<()> {
        self.inner.persist()
    }

    fn column_families(&self) -> Result<Vec<String>> {
        self.inner.column_families()
    }

    fn read_view(&self) -> Result<Box<dyn ReadView + '_>> {
        self.inner.read_view()
    }
}

/// Writes `SEEDED` changelog records (keys `seed-<i>` = 1, no processed
/// offsets, so recovery applies them all) to changelog partition 1.
fn seed_changelog(cluster: &Cluster) {
    let producer = Arc::new(ChangelogProducer::new(&client(&cluster.bootstrap_servers())).unwrap());
    let scratch = Arc::new(MemoryPartition::new());
    let mut t = PartitionTransaction::new(scratch, Codec::MsgPack, Some(producer.sink(CHANGELOG, 1)));
    for i in 0..SEEDED {
        t.set("count", &1u64, format!("seed-{i}").as_bytes()).unwrap();
    }
    t.prepare(None::<&ProcessedOffsets>).unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// A member whose restores write one batch of 10 records every `delay`.
fn slow_member(
    bootstrap: &str,
    dir: tempfile::TempDir,
    inner: Arc<dyn Backend>,
    delay: Duration,
    fate: Fate,
) -> Member {
    let backend: Arc<dyn Backend> = Arc::new(SlowRestores {
        inner,
        delay,
        bulk_batches: Arc::new(AtomicU64::new(0)),
    });
    member_with(
        bootstrap,
        ProcessingGuarantee::AtLeastOnce,
        "slow",
        "cooperative-sticky",
        fate,
        dir,
        move |c| {
            c.backend = backend;
            c.recovery.batch_records = BATCH_RECORDS;
        },
    )
}

fn read_count(m: &StateStoreManager, counts: &StoreHandle<KeyValueStore>, p: u32, key: &str) -> u64 {
    let t = PartitionTransaction::new(m.partition(counts, p).unwrap(), Codec::MsgPack, None);
    t.get::<_, u64>("count", key.as_bytes()).unwrap().unwrap_or(0)
}

fn two_partition_cluster() -> Cluster {
    mock_cluster(&[(INPUT, 2), (CHANGELOG, 2)]).unwrap()
}

/// Input to both partitions: key `k<i>` goes to partition `i % 2`.
fn produce_two_partitions(cluster: &Cluster, n: usize) -> BTreeMap<String, u64> {
    produce_keyed(&cluster.bootstrap_servers(), INPUT, 2, 0..n as u64, KEYS as u64).unwrap()
}

#[test]
fn a_long_restore_runs_beside_the_poll_loop() {
    let cluster = two_partition_cluster();
    let bootstrap = cluster.bootstrap_servers();
    seed_changelog(&cluster);
    let truth = produce_two_partitions(&cluster, 600);
    // 2,000 records in batches of 10, 110 ms per batch: 22 s of restore.
    let m = slow_member(
        &bootstrap,
        tempfile::tempdir().unwrap(),
        Arc::new(state_core::MemoryBackend),
        Duration::from_millis(110),
        Fate::PollsOften,
    );
    let started = Instant::now();
    let mut during_restore = 0u64;
    let mut restored_at = None;
    // What a poll loop that caches readiness would hold: the answers and
    // the assignment version they were read at.
    let mut cached_readiness: Option<(u64, [bool; 2])> = None;
    let mut versions_seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let polled = m.consumer.poll(Duration::from_millis(50));
        let mut mgr = m.manager.lock();
        mgr.maintain(&m.consumer)
            .unwrap_or_else(|e| panic!("manager error: {e}"));
        let ready_now = [mgr.is_ready(INPUT, 0), mgr.is_ready(INPUT, 1)];
        let version = mgr.assignment_version();
        if let Some((v, was)) = cached_readiness {
            if v == version {
                assert_eq!(
                    was, ready_now,
                    "readiness changed while the assignment version stayed {v}"
                );
            }
        }
        cached_readiness = Some((version, ready_now));
        versions_seen.insert(version);
        match polled {
            Some(Ok(msg)) => {
                let p = msg.partition() as u32;
                let key = msg.key().unwrap().to_vec();
                let t = mgr.txn(&m.counts, p).unwrap();
                let n: u64 = t.get("count", &key).unwrap().unwrap_or(0);
                t.set("count", &(n + 1), &key).unwrap();
                mgr.processed(INPUT, p, msg.offset()).unwrap();
                if restored_at.is_none() {
                    assert_eq!(
                        p, 0,
                        "no record of the restoring partition is processed before it is restored"
                    );
                    during_restore += 1;
                }
            }
            Some(Err(e)) => panic!("consumer error (the member must stay in the group): {e}"),
            None => {}
        }
        if restored_at.is_none() && mgr.is_ready(INPUT, 1) {
            restored_at = Some(started.elapsed());
        }
        let owns_both = m.consumer.assignment().map(|a| a.count()).unwrap_or(0) == 2;
        if owns_both && mgr.is_ready(INPUT, 1) && mgr.is_ready(INPUT, 0) {
            mgr.commit(&m.consumer).unwrap();
            let done = truth.iter().all(|(key, want)| {
                let p: u32 = key[1..].parse::<u32>().unwrap_or(0) % 2;
                read_count(&mgr, &m.counts, p, key) >= *want
            });
            if done {
                break;
            }
        }
        assert!(Instant::now() < deadline, "did not finish in time");
    }
    let restore = restored_at.expect("partition 1 was restored");
    let longest = m.consumer.context().longest_rebalance_callback();
    let rebalances = m.consumer.context().rebalances();
    eprintln!(
        "restore of partition 1 took {restore:?}; {during_restore} records of partition 0 processed during it; \
         longest rebalance callback {longest:?}; {rebalances} rebalance callbacks"
    );
    assert!(
        restore > Duration::from_secs(20),
        "the restore was meant to take over 20 s: {restore:?}"
    );
    assert!(
        during_restore > 0,
        "partition 0 was processed while partition 1 restored"
    );
    assert!(
        longest < Duration::from_secs(1),
        "a rebalance callback took {longest:?}"
    );
    assert_eq!(rebalances, 1, "one assignment, no rebalance since (no PollExceeded)");
    assert!(
        versions_seen.len() >= 2,
        "the assignment version moved when partition 1 was restored: {versions_seen:?}"
    );
    let mgr = m.manager.lock();
    for (key, want) in &truth {
        let p: u32 = key[1..].parse::<u32>().unwrap() % 2;
        assert_eq!(read_count(&mgr, &m.counts, p, key), *want, "{key}");
    }
    for i in (0..SEEDED).step_by(97) {
        assert_eq!(
            read_count(&mgr, &m.counts, 1, &format!("seed-{i}")),
            1,
            "seed-{i} restored"
        );
    }
}

#[test]
fn a_revocation_in_the_middle_of_a_restore_keeps_data_and_offset_in_step() {
    let cluster = two_partition_cluster();
    let bootstrap = cluster.bootstrap_servers();
    seed_changelog(&cluster);
    let rocks = RocksDbBackend::shared(RocksDbOptions::default());
    let m = slow_member(
        &bootstrap,
        tempfile::tempdir().unwrap(),
        rocks,
        Duration::from_millis(20),
        Fate::Survives,
    );
    let dir = m.dir.path().to_owned();
    // Wait until partition 1 is assigned and part-way through its restore.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let _ = m.consumer.poll(Duration::from_millis(50));
        let mut mgr = m.manager.lock();
        mgr.maintain(&m.consumer).unwrap();
        if mgr.restoring().contains(&TopicPartition::new(INPUT, 1)) {
            let p = mgr.partition(&m.counts, 1).unwrap();
            if p.changelog_offset().unwrap().is_some_and(|o| o > 200) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the restore did not start");
    }
    let store_dir = StoreLocation::new("counts", dir.join("g").join("counts").join(INPUT));
    {
        let mut mgr = m.manager.lock();
        mgr.on_revoke(&[TopicPartition::new(INPUT, 1)]).unwrap();
        assert!(!mgr.is_assigned(INPUT, 1));
    }
    // Closed: open it directly and check that every seed key up to the
    // stored offset is there and none after (one record per key, in order).
    let (stored, present) = {
        let p = RocksDbBackend::new(RocksDbOptions::default())
            .open(&store_dir, 1)
            .unwrap();
        let stored = p.changelog_offset().unwrap().expect("an offset was stored");
        let present = p.iter_range("default", b"", None, Direction::Forward).unwrap().count() as u64;
        (stored, present)
    };
    eprintln!("revoked mid-restore: stored offset {stored}, {present} keys");
    assert!(
        stored < SEEDED as u64 - 1,
        "the revocation landed before the end of the restore"
    );
    assert_eq!(
        present,
        stored + 1,
        "the data matches the stored offset: no half-applied batch"
    );
    // Reassigned: the restore continues from the stored offset and ends exact.
    let mut mgr = m.manager.lock();
    mgr.on_assign(&m.consumer, &[TopicPartition::new(INPUT, 1)]).unwrap();
    drop(mgr);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let _ = m.consumer.poll(Duration::from_millis(50));
        let mut mgr = m.manager.lock();
        mgr.maintain(&m.consumer).unwrap();
        if mgr.is_ready(INPUT, 1) {
            let p = mgr.partition(&m.counts, 1).unwrap();
            assert_eq!(p.changelog_offset().unwrap(), Some(SEEDED as u64 - 1));
            for i in 0..SEEDED {
                assert_eq!(read_count(&mgr, &m.counts, 1, &format!("seed-{i}")), 1, "seed-{i}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "the second restore did not finish");
    }
}

/// Exactly-once failover where the survivor kept standbys of the dead
/// member's partitions: it replays only what the owner produced after the
/// standbys' last applied offsets. Returns the records replayed.
fn takeover(standby: bool) -> u64 {
    let replayed = Arc::new(AtomicU64::new(0));
    let r = replayed.clone();
    let policy = if standby {
        StandbyPolicy::AllPartitions
    } else {
        StandbyPolicy::None
    };
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let guarantee = ProcessingGuarantee::ExactlyOnce;
    let strategy = "cooperative-sticky";
    let mut a = member_with(
        &bootstrap,
        guarantee,
        "a",
        strategy,
        Fate::Dies,
        tempfile::tempdir().unwrap(),
        |_| {},
    );
    let p2 = policy.clone();
    let mut b = member_with(
        &bootstrap,
        guarantee,
        "b",
        strategy,
        Fate::Survives,
        tempfile::tempdir().unwrap(),
        move |c| c.standby = p2,
    );
    settle(&mut a, &mut b);
    let truth = produce_input(&cluster);
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.processed < 120 {
        step(&mut a, 10);
        step(&mut b, 10);
        assert!(Instant::now() < deadline, "members did not share the work in time");
    }
    // A commits what it processed, then processes a little more and dies.
    a.manager.lock().commit(&a.consumer).unwrap();
    let a_parts: Vec<u32> = a
        .consumer
        .assignment()
        .unwrap()
        .elements()
        .iter()
        .map(|e| e.partition() as u32)
        .collect();
    // Let B's standbys catch up with A's committed checkpoint.
    let wait = Instant::now() + Duration::from_secs(20);
    let mut standby_applied: BTreeMap<u32, Option<u64>> = BTreeMap::new();
    if standby {
        loop {
            step(&mut b, 1);
            let report = b.manager.lock().standby_report();
            standby_applied = report
                .iter()
                .filter(|r| a_parts.contains(&r.partition))
                .map(|r| (r.partition, r.applied_offset))
                .collect();
            let caught_up = a_parts.iter().all(|p| {
                report
                    .iter()
                    .any(|r| r.partition == *p && r.lag == 0 && r.applied_offset.is_some())
            });
            if caught_up {
                break;
            }
            assert!(Instant::now() < wait, "standbys did not catch up: {report:?}");
        }
    }
    let a_dir = a.dir.path().to_owned();
    std::mem::forget(a);
    std::fs::remove_dir_all(&a_dir).unwrap();
    // B takes over; count what its restores replay.
    b.manager.lock().set_progress_listener(move |p| {
        if p.finished {
            r.fetch_add(p.total, Ordering::Relaxed);
        }
    });
    // The changelog ends where A left it: what A produced after the
    // standbys' offsets is the most B may replay.
    let mut bound = 0u64;
    for p in &a_parts {
        let (_, high) = b
            .consumer
            .fetch_watermarks(CHANGELOG, *p as i32, Duration::from_secs(5))
            .unwrap();
        let from = standby_applied.get(p).copied().flatten().map_or(0, |o| o + 1);
        bound += (high as u64).saturating_sub(from);
    }
    finish(&mut b);
    let got = counts(&b);
    for (key, want) in &truth {
        assert_eq!(got[key], *want, "{key}: exactly-once count after takeover");
    }
    let replayed = replayed.load(Ordering::Relaxed);
    if standby {
        eprintln!("takeover with standbys replayed {replayed} changelog records (bound {bound})");
        assert!(
            replayed <= bound,
            "replayed {replayed} > {bound} produced after the standbys' offsets"
        );
    }
    replayed
}

#[test]
fn a_standby_makes_a_takeover_replay_only_the_delta() {
    let with = takeover(true);
    let without = takeover(false);
    eprintln!("records replayed on takeover: {with} with standbys, {without} without");
    assert!(with < without, "a standby replays less: {with} vs {without}");
}
