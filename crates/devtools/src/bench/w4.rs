//! w4, restore from a broker (docs/performance.md, "Workloads" and "Restore
//! path"): the same N changelog records restored by
//!
//! * `state-rocksdb` — the restorer thread the manager uses
//!   ([`Restorer`]), driven as the manager drives it (a [`RestoreRequest`],
//!   then its events until [`RestoreEvent::Restored`]), one partition,
//!   nothing else running;
//! * `state-rocksdb-loaded` — the same restore started by a
//!   [`StateStoreManager`] on assignment, while the same manager and
//!   consumer process another partition (see [`loaded`]);
//! * `state-rocksdb-blocking` — [`RecoveryManager`], the engine on the
//!   caller's thread (tools);
//! * `raw-consumer` — a plain consumer reading the same records: the limit.
//!
//! Every system's consumer client is created outside the timing; reading
//! the watermarks, assigning and reading up to the high watermark are
//! inside, for all of them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use state_changelog::{
    changelog_topic_name, ConsumerSettings, RecoveryConfig, RecoveryManager, RecoveryPartition, RestoreEvent,
    RestoreRequest, Restorer,
};
use state_core::{check_store_format, Codec, StoreFormat, StorePartition, TopicPartition};
use state_manager::{ManagerConfig, ProcessingGuarantee, StateStoreManager, StoreSpec};

use super::{err, kafka_client, rocks, Outcome};
use crate::params::Params;

/// The group, stream and store whose changelog w4 restores: the loaded
/// system restores it through a manager, so its records are in the topic
/// that manager's store reads.
const GROUP: &str = "bench-w4";
const STREAM: &str = "bench-w4-input";
const STORE: &str = "restored";
/// The load's store (a keyed counter, MessagePack).
const LOAD_STORE: &str = "counts";

/// The changelog topic every w4 system reads (partition 0).
pub(super) fn changelog_topic() -> String {
    changelog_topic_name(GROUP, STREAM, STORE)
}

/// Topics the loaded system needs besides the changelog: the (empty)
/// source topic of the restored store.
pub(super) fn setup_topics() -> [&'static str; 1] {
    [STREAM]
}

/// CPU seconds this process used so far (user + system, all threads),
/// from /proc/self/stat; `None` where that is not available.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // Clock ticks; 100 per second on Linux.
    Some((utime + stime) / 100.0)
}

/// Prints the CPU time a timed section took (all threads of the process:
/// the consumer's, the writer's, RocksDB's), which machine load does not
/// stretch as it stretches wall time.
fn report_cpu(what: &str, before: Option<f64>, records: u64) {
    if let (Some(b), Some(a)) = (before, cpu_seconds()) {
        let cpu = a - b;
        eprintln!(
            "      {what}: {cpu:.2} CPU s ({:.2} us per record)",
            cpu * 1e6 / records.max(1) as f64
        );
    }
}

/// How long a w4 run may make no progress before it fails.
fn patience() -> Duration {
    RecoveryConfig::default().stall_timeout
}

/// The restore settings of every system: batches of C records, as the
/// other workloads.
fn recovery_config(p: Params) -> RecoveryConfig {
    RecoveryConfig {
        batch_records: p.c as usize,
        ..RecoveryConfig::default()
    }
}

/// The format check the manager runs before it restores a store
/// partition (the w4 records carry no codec header: JSON).
fn format_check(partition: &dyn StorePartition, dir: &Path) -> Result<state_core::ReplayCheck, String> {
    Ok(check_store_format(partition, &StoreFormat::key_value(Codec::Json), dir)
        .map_err(err)?
        .replay_check())
}

/// `state-rocksdb`: the restorer thread restores partition 0 of the
/// changelog into an empty RocksDB partition; timed from the request to
/// the `Restored` event.
pub(super) fn restorer(bootstrap: &str, dir: &Path, p: Params) -> Result<Outcome, String> {
    let partition = rocks(dir)?;
    let check = format_check(&*partition, dir)?;
    let restorer = Restorer::start(&kafka_client(bootstrap), GROUP, recovery_config(p)).map_err(err)?;
    let cpu = cpu_seconds();
    let started = Instant::now();
    restorer
        .restore(RestoreRequest {
            partition: partition.clone(),
            changelog: TopicPartition::new(changelog_topic(), 0),
            committed_offsets: BTreeMap::new(),
            location: dir.display().to_string(),
            replay_check: Some(check),
        })
        .map_err(err)?;
    loop {
        match restorer.next_event(patience()) {
            Some(RestoreEvent::Restored { .. }) => break,
            Some(RestoreEvent::Failed { error, .. }) => return Err(error.to_string()),
            Some(RestoreEvent::Progress(_)) => {}
            None => return Err("the restorer reported nothing for too long".into()),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let check = partition.changelog_offset().map_err(err)?.unwrap_or(0);
    report_cpu("restorer", cpu, check + 1);
    drop(restorer);
    Ok(Outcome::new(seconds, check))
}

/// `state-rocksdb-blocking`: [`RecoveryManager`] recovers the same
/// partition on this thread.
pub(super) fn blocking(bootstrap: &str, dir: &Path, p: Params) -> Result<Outcome, String> {
    let partition = rocks(dir)?;
    let check = format_check(&*partition, dir)?;
    let mgr = RecoveryManager::new(
        &kafka_client(bootstrap),
        recovery_config(p),
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )
    .map_err(err)?;
    let cpu = cpu_seconds();
    let started = Instant::now();
    mgr.recover(
        vec![RecoveryPartition {
            partition: partition.clone(),
            changelog: TopicPartition::new(changelog_topic(), 0),
            committed_offsets: BTreeMap::new(),
            location: dir.display().to_string(),
            until: None,
            replay_check: Some(check),
        }],
        &mut |_| {},
    )
    .map_err(err)?;
    let seconds = started.elapsed().as_secs_f64();
    let check = partition.changelog_offset().map_err(err)?.unwrap_or(0);
    report_cpu("blocking", cpu, check + 1);
    Ok(Outcome::new(seconds, check))
}

/// `raw-consumer`: a plain consumer reading the same records, the limit.
/// It is configured as the restore consumer is
/// ([`ConsumerSettings::restore`]: every fetch setting the same; the same
/// poll timeout) and timed as a restore is: creating the client is outside
/// the timing, reading the watermarks, assigning and reading up to the
/// high watermark inside. It touches key and value and nothing else.
pub(super) fn raw_consumer(bootstrap: &str) -> Result<Outcome, String> {
    let topic = changelog_topic();
    let defaults = RecoveryConfig::default();
    let consumer: BaseConsumer = ConsumerSettings::restore("bench-raw")
        .client_config(&kafka_client(bootstrap))
        .create()
        .map_err(err)?;
    let cpu = cpu_seconds();
    let started = Instant::now();
    let (low, high) = consumer
        .fetch_watermarks(&topic, 0, defaults.metadata_timeout)
        .map_err(err)?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Offset(low))
        .map_err(err)?;
    consumer.assign(&tpl).map_err(err)?;
    let mut last = -1i64;
    let mut bytes = 0usize;
    while last + 1 < high {
        match consumer.poll(defaults.poll_timeout) {
            Some(Ok(m)) => {
                bytes += m.payload().map_or(0, <[u8]>::len) + m.key().map_or(0, <[u8]>::len);
                last = m.offset();
            }
            Some(Err(e)) => return Err(e.to_string()),
            None if started.elapsed() > defaults.stall_timeout => return Err("raw consumer stalled".into()),
            None => {}
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    report_cpu("raw", cpu, (last + 1) as u64);
    let _ = consumer.unassign();
    std::hint::black_box(bytes);
    Ok(Outcome::new(seconds, last as u64))
}

/// Produces `n` input records (keys `k{i % k}`, not timed) to `topic[0]`,
/// gzip-compressed so the mock cluster's 5 MB per partition holds them.
fn produce_load(bootstrap: &str, topic: &str, n: u64, k: u64) -> Result<(), String> {
    let mut config = kafka_client(bootstrap);
    config.set("compression.type", "gzip").set("linger.ms", "20");
    let producer: BaseProducer = config.create().map_err(err)?;
    let mut key = String::new();
    for i in 0..n {
        key.clear();
        use std::fmt::Write;
        let _ = write!(key, "k{}", i % k);
        let mut record = BaseRecord::<str, str>::to(topic).key(&key).payload("x").partition(0);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e.to_string()),
            }
        }
    }
    producer.flush(Duration::from_secs(120)).map_err(err)?;
    // A truncated log would end the load early.
    let consumer: BaseConsumer = kafka_client(bootstrap).create().map_err(err)?;
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(30))
        .map_err(err)?;
    if low != 0 || high != n as i64 {
        return Err(format!(
            "{topic} holds offsets {low}..{high}, not 0..{n}: the broker dropped records; use a smaller N or --brokers"
        ));
    }
    Ok(())
}

/// Where the loaded system's topics come from: the mock cluster's own API,
/// or the admin API of a real broker.
pub(super) enum Topics<'a> {
    Mock(&'a rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>),
    Broker,
}

impl Topics<'_> {
    fn create(&self, bootstrap: &str, topic: &str) -> Result<(), String> {
        match self {
            Topics::Mock(c) => c.create_topic(topic, 1, 1).map_err(err),
            Topics::Broker => {
                state_changelog::create_topic(&kafka_client(bootstrap), topic, 1, 1, &[], Duration::from_secs(30))
                    .map(drop)
                    .map_err(err)
            }
        }
    }
}

/// `state-rocksdb-loaded`: restoring under load. One process runs an
/// at-least-once application on a [`StateStoreManager`] with two stores: a
/// keyed counter on a fresh stream of this round holding N input records
/// (the load), and `restored` on stream `bench-w4-input`, whose changelog
/// holds the w4 records (its source partition gets no records). Its
/// consumer (the demo's fetch settings) is assigned the load's partition
/// and processes it as an application does: poll, `maintain`, per record a
/// transaction get + set and `processed`, a checkpoint every C records
/// (changelog records produced, offsets committed). After the first
/// checkpoint, `bench-w4-input[0]` is added to the consumer's assignment
/// and to the manager (`on_assign`, as a rebalance callback does), whose
/// restorer thread restores `restored[0]` from an empty directory while
/// the poll loop keeps processing the load. Timed from the `on_assign`
/// call to the restore's end on the restorer's clock
/// (`RecoveryProgress::started` + `elapsed`, whenever the poll loop gets
/// to see the report); the round fails if the load ran out before the
/// restore ended. The application assigns partitions
/// itself so that the group's rebalance, which is not the restore's cost,
/// stays out of the round.
pub(super) fn loaded(
    bootstrap: &str,
    topics: &Topics<'_>,
    round: u32,
    dir: &Path,
    p: Params,
) -> Result<Outcome, String> {
    let load_stream = format!("bench-w4-load-{round}");
    topics.create(bootstrap, &load_stream)?;
    if let Topics::Mock(_) = topics {
        // The manager creates changelog topics with the admin API, which
        // the mock cluster does not answer.
        topics.create(bootstrap, &changelog_topic_name(GROUP, &load_stream, LOAD_STORE))?;
    }
    // At least 100,000: at small N (the bench's own test) a restore's
    // fixed start-up costs (assignment, watermarks) would outlast N records
    // of load. Only the restore is timed, so a longer load costs nothing.
    let load_records = p.n.max(100_000);
    produce_load(bootstrap, &load_stream, load_records, p.k)?;

    let mut cfg = ManagerConfig::new(GROUP, dir);
    cfg.guarantee = ProcessingGuarantee::AtLeastOnce;
    cfg.commit_interval = Duration::from_secs(3600);
    cfg.recovery = recovery_config(p);
    let mut manager = StateStoreManager::new(cfg, kafka_client(bootstrap)).map_err(err)?;
    let restored = manager
        .register_store(StoreSpec::key_value(STREAM, STORE).codec(Codec::Json))
        .map_err(err)?;
    let counts = manager
        .register_store(StoreSpec::key_value(load_stream.as_str(), LOAD_STORE))
        .map_err(err)?;
    if let Topics::Broker = topics {
        manager
            .ensure_changelog_topics(&state_changelog::ChangelogTopicConfig::default())
            .map_err(err)?;
    }
    // When the restore started and ended, on the restorer's clock.
    let restore: Arc<Mutex<(Option<Instant>, Option<Instant>)>> = Arc::default();
    let r = restore.clone();
    let w4_changelog = changelog_topic();
    manager.set_progress_listener(move |pr| {
        if pr.changelog.topic() == w4_changelog {
            let mut r = r.lock();
            r.0 = Some(pr.started);
            if pr.finished {
                r.1 = Some(pr.started + pr.elapsed);
            }
        }
    });
    let consumer: BaseConsumer = ConsumerSettings::new(GROUP)
        .from_earliest()
        .short_fetch_backoff()
        .client_config(&kafka_client(bootstrap))
        .create()
        .map_err(err)?;
    let assign = |m: &mut StateStoreManager, stream: &str| -> Result<(), String> {
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition(stream, 0);
        consumer.incremental_assign(&tpl).map_err(err)?;
        m.on_assign(&consumer, &[TopicPartition::new(stream, 0)]).map_err(err)
    };
    assign(&mut manager, &load_stream)?;

    let deadline = Instant::now() + patience();
    let mut processed = 0u64;
    let mut since_commit = 0u64;
    let mut restore_assigned: Option<Instant> = None;
    // Records processed while the restore ran, and when it was first seen.
    let mut beside = 0u64;
    let mut seen_restoring: Option<Instant> = None;
    let elapsed = loop {
        let polled = consumer.poll(Duration::from_millis(10));
        manager.maintain(&consumer).map_err(err)?;
        let (started, ended) = *restore.lock();
        if let (Some(ended), Some(assigned)) = (ended, restore_assigned) {
            break ended.saturating_duration_since(assigned);
        }
        if started.is_some() {
            seen_restoring.get_or_insert_with(Instant::now);
        }
        match polled {
            Some(Ok(msg)) => {
                let partition = msg.partition() as u32;
                let mut state = manager
                    .txn(&counts, partition)
                    .map_err(err)?
                    .key(msg.key().unwrap_or_default());
                let n: u64 = state.get("count").map_err(err)?.unwrap_or(0);
                state.set("count", &(n + 1)).map_err(err)?;
                manager.processed(msg.topic(), partition, msg.offset()).map_err(err)?;
                processed += 1;
                since_commit += 1;
                if seen_restoring.is_some() {
                    beside += 1;
                }
                if since_commit >= p.c {
                    manager.commit(&consumer).map_err(err)?;
                    since_commit = 0;
                }
                if processed == load_records {
                    return Err(format!(
                        "the load ({load_records} records) ran out before the restore ended; raise N"
                    ));
                }
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => {}
        }
        if restore_assigned.is_none() && processed >= p.c {
            // The load runs: now the partition to restore comes.
            restore_assigned = Some(Instant::now());
            assign(&mut manager, STREAM)?;
        }
        if Instant::now() > deadline {
            return Err("the loaded restore did not finish in time".into());
        }
    };
    let restored_offset = manager
        .partition(&restored, 0)
        .and_then(|part| Ok(part.changelog_offset()?))
        .map_err(err)?
        .unwrap_or(0);
    let seen = seen_restoring.map_or(0.0, |t| t.elapsed().as_secs_f64());
    eprintln!(
        "      load: {beside} records processed beside the restore ({:.0} records/s)",
        beside as f64 / seen.max(1e-9)
    );
    drop(consumer);
    Ok(Outcome::new(elapsed.as_secs_f64(), restored_offset))
}
