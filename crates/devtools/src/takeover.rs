//! The `takeover` workload: how long after a member dies does the survivor
//! process the dead member's partitions — with a standby replica of them,
//! and without. On the in-process mock cluster.
//!
//! Two exactly-once members share a 4-partition topic and count N records
//! over K keys (commit every C records). Once everything is committed (and,
//! with standbys, the survivor's replicas have caught up), M more records
//! arrive, spread over every partition, and member A is "killed": dropped
//! without a commit or a leave-group, its state directory deleted. The
//! clock runs from the kill until the survivor has processed a record of
//! every partition A owned; it includes the group noticing the death (3 s
//! after A's last poll, the same with and without standbys) and the
//! restore (which is what a standby shortens). `check` = the sum of all counters
//! after the survivor finished (= N + M, exactly once).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::ClientConfig;
use state_manager::{
    KeyValueStore, ManagerConfig, Mutex, ProcessingGuarantee, RocksDbBackend, StandbyPolicy, StateContext,
    StateStoreManager, StoreHandle, StoreSpec,
};

use crate::bench::Params;

const INPUT: &str = "takeover-input";
const GROUP: &str = "takeover";
const PARTITIONS: i32 = 4;
/// Records that arrive after the members are settled, before the kill.
const LATE: u64 = 2_000;

struct Member {
    consumer: BaseConsumer<StateContext>,
    manager: Arc<Mutex<StateStoreManager>>,
    counts: StoreHandle<KeyValueStore>,
    _dir: tempfile::TempDir,
    since_commit: u64,
}

/// A member; `dies` ones leave the group 3 s after they stop polling (a
/// "killed" member here is dropped without a close, so its client's
/// heartbeats go on; only the poll interval notices it is gone).
fn member(bootstrap: &str, name: &str, standby: bool, dies: bool, c: u64) -> Result<Member, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut cfg = ManagerConfig::with_backend(GROUP, dir.path(), RocksDbBackend::shared(Default::default()));
    cfg.guarantee = ProcessingGuarantee::ExactlyOnce;
    cfg.instance_id = name.to_owned();
    cfg.mirror_transactional_offsets = true;
    cfg.commit_interval = Duration::from_secs(3600);
    cfg.recovery.batch_records = c as usize;
    if standby {
        cfg.standby = StandbyPolicy::AllPartitions;
    }
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", bootstrap);
    let mut m = StateStoreManager::new(cfg, client.clone()).map_err(|e| e.to_string())?;
    let counts = m
        .register_store(StoreSpec::key_value(INPUT, "counts"))
        .map_err(|e| e.to_string())?;
    let manager = Arc::new(Mutex::new(m));
    let consumer: BaseConsumer<StateContext> = client
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "3000")
        .set("max.poll.interval.ms", if dies { "3000" } else { "60000" })
        .set("heartbeat.interval.ms", "300")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("fetch.queue.backoff.ms", "5")
        .create_with_context(StateContext::new(manager.clone()))
        .map_err(|e| e.to_string())?;
    consumer.subscribe(&[INPUT]).map_err(|e| e.to_string())?;
    Ok(Member {
        consumer,
        manager,
        counts,
        _dir: dir,
        since_commit: 0,
    })
}

/// Polls up to `max` records, counting each; commits every `c`. Returns
/// the partitions of the records processed.
fn step(m: &mut Member, max: usize, c: u64) -> Result<Vec<i32>, String> {
    let mut seen = Vec::new();
    for _ in 0..max {
        let polled = m.consumer.poll(Duration::from_millis(20));
        let mut mgr = m.manager.lock();
        mgr.maintain(&m.consumer).map_err(|e| e.to_string())?;
        match polled {
            Some(Ok(msg)) => {
                let p = msg.partition() as u32;
                let key = msg.key().unwrap_or_default().to_vec();
                let t = mgr.txn(&m.counts, p).map_err(|e| e.to_string())?;
                let n: u64 = t.get("count", &key).map_err(|e| e.to_string())?.unwrap_or(0);
                t.set("count", &(n + 1), &key).map_err(|e| e.to_string())?;
                mgr.processed(INPUT, p, msg.offset()).map_err(|e| e.to_string())?;
                seen.push(msg.partition());
                m.since_commit += 1;
                if m.since_commit >= c {
                    mgr.commit(&m.consumer).map_err(|e| e.to_string())?;
                    m.since_commit = 0;
                }
            }
            Some(Err(e)) => return Err(format!("consumer error: {e}")),
            None => break,
        }
    }
    Ok(seen)
}

fn ready(m: &Member) -> BTreeSet<i32> {
    let mgr = m.manager.lock();
    m.consumer
        .assignment()
        .map(|a| {
            a.elements()
                .iter()
                .filter(|e| mgr.is_ready(e.topic(), e.partition() as u32))
                .map(|e| e.partition())
                .collect()
        })
        .unwrap_or_default()
}

fn produce(bootstrap: &str, from: u64, n: u64, k: u64) -> Result<(), String> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .map_err(|e| e.to_string())?;
    for i in from..from + n {
        let key = format!("k{}", i % k);
        let mut record = BaseRecord::<str, str>::to(INPUT)
            .key(&key)
            .payload("x")
            .partition(((i % k) % PARTITIONS as u64) as i32);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).map_err(|e| e.to_string())
}

/// Committed offsets of `m` reached the high watermarks of its partitions.
fn caught_up(m: &Member) -> Result<bool, String> {
    let assignment = m.consumer.assignment().map_err(|e| e.to_string())?;
    let committed = m
        .consumer
        .committed_offsets(assignment, Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    for e in committed.elements() {
        let (_, high) = m
            .consumer
            .fetch_watermarks(INPUT, e.partition(), Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        if !matches!(e.offset(), rdkafka::Offset::Offset(o) if o >= high) && high > 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One takeover; returns (seconds from the kill to the survivor processing
/// every partition the dead member owned, records replayed, sum of counts).
fn takeover(p: Params, standby: bool) -> Result<(f64, u64, u64), String> {
    let cluster: MockCluster<'static, DefaultProducerContext> = MockCluster::new(1).map_err(|e| e.to_string())?;
    cluster.create_topic(INPUT, PARTITIONS, 1).map_err(|e| e.to_string())?;
    cluster
        .create_topic(&format!("changelog__{GROUP}--{INPUT}--counts"), PARTITIONS, 1)
        .map_err(|e| e.to_string())?;
    let bootstrap = cluster.bootstrap_servers();
    // A dies by silence: the group notices 3 s after its last poll.
    let mut a = member(&bootstrap, "a", standby, true, p.c)?;
    let mut b = member(&bootstrap, "b", standby, false, p.c)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready(&a).is_empty() || ready(&b).is_empty() || ready(&a).len() + ready(&b).len() != PARTITIONS as usize {
        step(&mut a, 5, p.c)?;
        step(&mut b, 5, p.c)?;
        if Instant::now() > deadline {
            return Err("the group did not settle".into());
        }
    }
    produce(&bootstrap, 0, p.n, p.k)?;
    loop {
        step(&mut a, 2_000, p.c)?;
        step(&mut b, 2_000, p.c)?;
        if a.since_commit == 0 && b.since_commit == 0 && caught_up(&a)? && caught_up(&b)? {
            break;
        }
        for m in [&mut a, &mut b] {
            m.manager.lock().commit(&m.consumer).map_err(|e| e.to_string())?;
            m.since_commit = 0;
        }
        if Instant::now() > deadline {
            return Err("the members did not process the input in time".into());
        }
    }
    if standby {
        // The survivor's replicas of A's partitions have applied everything.
        loop {
            step(&mut b, 10, p.c)?;
            let report = b.manager.lock().standby_report();
            if !report.is_empty() && report.iter().all(|r| r.lag == 0 && !r.waiting_for_commit) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("standbys did not catch up: {report:?}"));
            }
        }
    }
    let owned_by_a = ready(&a);
    produce(&bootstrap, p.n, LATE, p.k)?;
    let replayed = Arc::new(AtomicU64::new(0));
    let r = replayed.clone();
    b.manager.lock().set_progress_listener(move |p| {
        if p.finished {
            r.fetch_add(p.total, Ordering::Relaxed);
        }
    });
    // The kill: no commit, no leave-group, local state gone.
    std::mem::forget(a);
    let killed = Instant::now();
    let mut pending = owned_by_a.clone();
    while !pending.is_empty() {
        for partition in step(&mut b, 100, p.c)? {
            pending.remove(&partition);
        }
        if killed.elapsed() > Duration::from_secs(60) {
            let assigned: Vec<i32> = b
                .consumer
                .assignment()
                .map(|a| a.elements().iter().map(|e| e.partition()).collect())
                .unwrap_or_default();
            let m = b.manager.lock();
            return Err(format!(
                "the survivor did not take over partitions {pending:?} within 60 s: assigned {assigned:?}, \
                 restoring {:?}, standbys {:?}",
                m.restoring(),
                m.standby_report()
            ));
        }
    }
    let seconds = killed.elapsed().as_secs_f64();
    // Finish, then sum every counter.
    loop {
        step(&mut b, 2_000, p.c)?;
        b.manager.lock().commit(&b.consumer).map_err(|e| e.to_string())?;
        b.since_commit = 0;
        if ready(&b).len() == PARTITIONS as usize && caught_up(&b)? {
            break;
        }
        if Instant::now() > deadline + Duration::from_secs(120) {
            return Err("the survivor did not finish".into());
        }
    }
    let reader = b.manager.lock().reader();
    let mut sum = 0u64;
    for k in 0..p.k {
        let key = format!("k{k}");
        let partition = ((k % PARTITIONS as u64) as i32) as u32;
        let n: u64 = reader
            .get(&b.counts, partition, "count", key.as_bytes())
            .map_err(|e| e.to_string())?
            .unwrap_or(0);
        sum += n;
    }
    Ok((seconds, replayed.load(Ordering::Relaxed), sum))
}

/// Runs the takeover with and without a standby; one JSON line each.
pub fn run(p: Params) -> Result<(), String> {
    for (system, standby) in [("state-rocksdb-standby", true), ("state-rocksdb", false)] {
        eprintln!("  takeover: {system}");
        let (seconds, replayed, check) = takeover(p, standby)?;
        println!(
            "{}",
            serde_json::json!({
                "system": system, "workload": "takeover", "N": p.n, "K": p.k, "C": p.c,
                "seconds": (seconds * 1000.0).round() / 1000.0,
                "replayed": replayed,
                "check": check,
            })
        );
        eprintln!("  {system:>22} takeover: {seconds:.3} s from the kill to processing, {replayed} records replayed, check {check}");
    }
    Ok(())
}
