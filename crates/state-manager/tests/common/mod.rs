//! Shared by the manager's mock-cluster suites: a keyed-count processor as
//! consumer-group members, input, and reading the counts back.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::Message;
use state_manager::{
    Codec, KeyValueStore, ManagerConfig, PartitionTransaction, ProcessingGuarantee, StateContext, StateStoreManager,
    StoreHandle, StoreSpec,
};

pub const INPUT: &str = "input";
pub const PARTITIONS: i32 = 4;
pub const KEYS: usize = 12;
pub const RECORDS: usize = 240;

pub struct Member {
    pub consumer: BaseConsumer<StateContext>,
    pub manager: Arc<Mutex<StateStoreManager>>,
    pub counts: StoreHandle<KeyValueStore>,
    pub dir: tempfile::TempDir,
    pub processed: usize,
    pub since_commit: usize,
}

pub fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

pub fn cluster() -> MockCluster<'static, DefaultProducerContext> {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(INPUT, PARTITIONS, 1).unwrap();
    cluster
        .create_topic("changelog__g--input--counts", PARTITIONS, 1)
        .unwrap();
    cluster
}

pub fn produce_input(cluster: &MockCluster<'static, DefaultProducerContext>) -> BTreeMap<String, u64> {
    let producer: BaseProducer = client(&cluster.bootstrap_servers()).create().unwrap();
    let mut truth = BTreeMap::new();
    for i in 0..RECORDS {
        let k = i % KEYS;
        let key = format!("k{k}");
        producer
            .send(
                BaseRecord::<str, str>::to(INPUT)
                    .key(&key)
                    .payload("x")
                    .partition((k % PARTITIONS as usize) as i32),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        *truth.entry(key).or_insert(0) += 1;
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    truth
}

/// What a test does with a member, which sets its `max.poll.interval.ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// It is "crashed" (forgotten: no commit, no close, its background
    /// threads live on), so the group only notices when it has not polled
    /// for a short while: 3 s.
    Dies,
    /// It lives to the end of the test. Recovery runs in the rebalance
    /// handler, which rust-rdkafka calls after librdkafka's poll has
    /// returned, so recovery time counts against the interval; on a loaded
    /// 2-core CI machine a survivor's takeover took more than 3 s. 60 s.
    Survives,
    /// It lives to the end and must keep its place in the group on a
    /// 6 s poll interval however long its restores take (restores run
    /// beside the poll loop).
    PollsOften,
}

pub fn member(bootstrap: &str, guarantee: ProcessingGuarantee, name: &str, strategy: &str, fate: Fate) -> Member {
    member_with(
        bootstrap,
        guarantee,
        name,
        strategy,
        fate,
        tempfile::tempdir().unwrap(),
        |_| {},
    )
}

/// [`member`] with its state in `dir` and a chance to adjust the configuration.
pub fn member_with(
    bootstrap: &str,
    guarantee: ProcessingGuarantee,
    name: &str,
    strategy: &str,
    fate: Fate,
    dir: tempfile::TempDir,
    adjust: impl FnOnce(&mut ManagerConfig),
) -> Member {
    member_with_spec(bootstrap, guarantee, name, strategy, fate, dir, adjust, |s| s)
}

/// [`member_with`] with a chance to adjust the counts store's spec too.
#[allow(clippy::too_many_arguments)]
pub fn member_with_spec(
    bootstrap: &str,
    guarantee: ProcessingGuarantee,
    name: &str,
    strategy: &str,
    fate: Fate,
    dir: tempfile::TempDir,
    adjust: impl FnOnce(&mut ManagerConfig),
    spec: impl FnOnce(StoreSpec<KeyValueStore>) -> StoreSpec<KeyValueStore>,
) -> Member {
    let mut cfg = ManagerConfig::new("g", dir.path());
    cfg.guarantee = guarantee;
    cfg.instance_id = name.to_owned();
    cfg.kafka_timeout = Duration::from_secs(10);
    // The mock broker does not store offsets sent in a transaction.
    cfg.mirror_transactional_offsets = true;
    // Tests commit when they mean to; maintain() never commits on its own.
    cfg.commit_interval = Duration::from_secs(3600);
    adjust(&mut cfg);
    let mut m = StateStoreManager::new(cfg, client(bootstrap)).unwrap();
    let counts = m
        .register_store(spec(StoreSpec::key_value(INPUT, "counts").codec(Codec::MsgPack)))
        .unwrap();
    let manager = Arc::new(Mutex::new(m));
    let mut c = client(bootstrap);
    c.set("group.id", "g")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "3000")
        .set("heartbeat.interval.ms", "300")
        .set(
            "max.poll.interval.ms",
            match fate {
                Fate::Dies => "3000",
                Fate::Survives => "60000",
                Fate::PollsOften => "6000",
            },
        )
        .set("partition.assignment.strategy", strategy)
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer<StateContext> = c.create_with_context(StateContext::new(manager.clone())).unwrap();
    consumer.subscribe(&[INPUT]).unwrap();
    Member {
        consumer,
        manager,
        counts,
        dir,
        processed: 0,
        since_commit: 0,
    }
}

/// The processor: one more for the record's key, in the current checkpoint.
pub fn count(
    mgr: &mut StateStoreManager,
    counts: &StoreHandle<KeyValueStore>,
    msg: &rdkafka::message::BorrowedMessage<'_>,
) {
    let p = msg.partition() as u32;
    let key = msg.key().unwrap().to_vec();
    let t = mgr.txn(counts, p).unwrap();
    let n: u64 = t.get("count", &key).unwrap().unwrap_or(0);
    t.set("count", &(n + 1), &key).unwrap();
    mgr.processed(INPUT, p, msg.offset()).unwrap();
}

/// Polls up to `max` records, processing each; commits every 10 records.
pub fn step(m: &mut Member, max: usize) {
    for _ in 0..max {
        let msg = match m.consumer.poll(Duration::from_millis(50)) {
            Some(Ok(msg)) => msg,
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => break,
        };
        let mut mgr = m.manager.lock();
        if let Err(e) = mgr.maintain(&m.consumer) {
            panic!("manager error: {e}");
        }
        count(&mut mgr, &m.counts, &msg);
        m.processed += 1;
        m.since_commit += 1;
        if m.since_commit >= 10 {
            mgr.commit(&m.consumer).unwrap();
            m.since_commit = 0;
        }
    }
    let mut mgr = m.manager.lock();
    if let Err(e) = mgr.maintain(&m.consumer) {
        panic!("manager error: {e}");
    }
}

/// Partitions assigned to `m` whose state is restored (processing them is allowed).
pub fn assigned(m: &Member) -> usize {
    let mgr = m.manager.lock();
    m.consumer
        .assignment()
        .map(|a| {
            a.elements()
                .iter()
                .filter(|e| mgr.is_ready(e.topic(), e.partition() as u32))
                .count()
        })
        .unwrap_or(0)
}

/// Runs `m` until it owns every partition and has read all of them, then commits.
pub fn finish(m: &mut Member) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        step(m, 50);
        if assigned(m) == PARTITIONS as usize {
            m.manager.lock().commit(&m.consumer).unwrap();
            let assignment = m.consumer.assignment().unwrap();
            let committed = m
                .consumer
                .committed_offsets(assignment, Duration::from_secs(5))
                .unwrap();
            let done = committed.elements().iter().all(|e| {
                let (_, high) = m
                    .consumer
                    .fetch_watermarks(INPUT, e.partition(), Duration::from_secs(5))
                    .unwrap();
                matches!(e.offset(), rdkafka::Offset::Offset(o) if o >= high)
            });
            if done {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the surviving member did not finish in time");
    }
}

pub fn counts(m: &Member) -> BTreeMap<String, u64> {
    let mgr = m.manager.lock();
    let mut out = BTreeMap::new();
    for k in 0..KEYS {
        let key = format!("k{k}");
        let p = (k % PARTITIONS as usize) as u32;
        let part = mgr.partition(&m.counts, p).unwrap();
        let t = PartitionTransaction::new(part, Codec::MsgPack, None);
        out.insert(
            key.clone(),
            t.get::<_, u64>("count", key.as_bytes()).unwrap().unwrap_or(0),
        );
    }
    out
}

pub fn process_until(m: &mut Member, total: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while m.processed < total {
        let Some(Ok(msg)) = m.consumer.poll(Duration::from_millis(50)) else {
            m.manager.lock().maintain(&m.consumer).unwrap();
            assert!(Instant::now() < deadline, "input did not arrive in time");
            continue;
        };
        count(&mut m.manager.lock(), &m.counts, &msg);
        m.processed += 1;
    }
}

/// A dies mid-interval (no commit, no leave-group), its state is deleted;
/// B takes over its partitions.
pub fn failover(guarantee: ProcessingGuarantee, strategy: &str, adjust: &dyn Fn(&mut ManagerConfig)) {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let mut a = member_with(
        &bootstrap,
        guarantee,
        "a",
        strategy,
        Fate::Dies,
        tempfile::tempdir().unwrap(),
        |c| adjust(c),
    );
    let mut b = member_with(
        &bootstrap,
        guarantee,
        "b",
        strategy,
        Fate::Survives,
        tempfile::tempdir().unwrap(),
        |c| adjust(c),
    );
    // Input arrives once the group is stable, so the only rebalance with
    // work in flight is the failover itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    while assigned(&a) == 0 || assigned(&b) == 0 || assigned(&a) + assigned(&b) != PARTITIONS as usize {
        step(&mut a, 1);
        step(&mut b, 1);
        assert!(Instant::now() < deadline, "the group did not stabilise in time");
    }
    let truth = produce_input(&cluster);
    while a.processed < 45 || assigned(&b) == 0 {
        step(&mut a, 3);
        step(&mut b, 3);
        assert!(Instant::now() < deadline, "members did not share the work in time");
    }
    assert!(a.since_commit > 0, "A dies with processed but uncommitted records");
    // Crash: no commit, no close, local state gone.
    let a_dir = a.dir.path().to_owned();
    std::mem::forget(a);
    std::fs::remove_dir_all(&a_dir).unwrap();

    finish(&mut b);
    let got = counts(&b);
    for (key, want) in &truth {
        let have = got[key];
        match guarantee {
            ProcessingGuarantee::ExactlyOnce => assert_eq!(have, *want, "{key}: exactly-once count"),
            ProcessingGuarantee::AtLeastOnce => assert!(have >= *want, "{key}: {have} < {want} under at-least-once"),
        }
    }
}
