//! The crash harness's child (`cargo xtask crash`): counts input records per
//! key in a store with a changelog and emits `key -> count` for every record
//! to an output topic. Not a user tool.
//!
//! `crash-counter BOOTSTRAP STATE_DIR eos|alos PARTITIONS`
//!
//! `STATE_BACKEND=rocksdb|fjall|memory` picks the store's backend.
//! `STANDBYS=1` keeps standby replicas of every partition not owned.
//! `PEER=1` runs a second member (instance `peer`) that never finishes: the
//! harness keeps it running beside the child it kills.
//! `FINISH_ALL=1`: finish only when owning every partition (the last run).
//! Prints `restoring` / `ready` when its partitions start and finish
//! restoring, so the harness knows where each kill landed.
//! `STATE_WRITE_BEHIND=1` puts it behind write-behind caches
//! (time bound 200 ms, flushed when due from the poll loop); the child then
//! prints `lag N` whenever the number of partitions whose committed
//! changelog offset is not yet on disk changes.
//!
//! `PIPELINED=1` turns on pipelined checkpoints
//! (`ManagerConfig::pipelined_checkpoints`): under exactly-once the local
//! write runs behind the poll loop.
//!
//! `CRASH_LOG_FILE=PATH` appends its tracing log to PATH, filtered by
//! `CRASH_LOG` (tracing's filter syntax; default `info`), each line written
//! at once so a kill loses none (`cargo xtask crash --log-dir DIR`).
//!
//! A read that finds its partition damaged (`cargo xtask crash --corrupt`)
//! prints `damage found` and skips the record: the manager rebuilds the
//! partition and moves the consumer back to it.
//!
//! `SNAPSHOT_DIR=DIR` keeps partition snapshots in a local-filesystem
//! snapshot store at DIR (shared by every member), taken every
//! `SNAPSHOT_EVERY` changelog records (default 6) and used to restore
//! partitions without local state. It then prints `snapshot taken`,
//! `snapshot restore restored|none` (a partition bootstrapped from a
//! snapshot, or with no usable one: full replay), `snapshot skipped REASON`
//! (a snapshot a restore could not use and fell back from) and
//! `snapshot tail N` (the changelog records replayed after a snapshot).
//! `KAFKA_STATE_CRASH_POINT=NAME:N` arms one of state-snapshot's crash
//! points (`state_snapshot::crash_point`).
//!
//! `CRASH_AT=STAGE:N` makes it abort (no cleanup, like a kill) the N-th
//! time it reaches STAGE: `process` (a record processed, not committed),
//! `produced` / `committed` / `flushed` (checkpoint stages), or `recovery`
//! (a recovery progress report). Prints `processed N` per record and, once
//! it has committed everything up to the input's high watermarks,
//! `counts <json>`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset};
use state_core::{Codec, Direction};
use state_manager::{CheckpointStage, ManagerConfig, ProcessingGuarantee, StateContext, StateStoreManager, StoreSpec};

const INPUT: &str = "crash-input";
const OUTPUT: &str = "crash-output";
const GROUP: &str = "crash-group";

/// Aborts the process the N-th time `stage` is reached, if CRASH_AT says so.
struct CrashPoint {
    stage: String,
    remaining: AtomicU64,
}

impl CrashPoint {
    fn from_env() -> Option<Arc<CrashPoint>> {
        let spec = std::env::var("CRASH_AT").ok()?;
        let (stage, n) = spec.split_once(':')?;
        Some(Arc::new(CrashPoint {
            stage: stage.to_owned(),
            remaining: AtomicU64::new(n.parse().ok()?),
        }))
    }

    fn reached(&self, stage: &str) {
        if self.stage == stage && self.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            eprintln!("crash point {stage} reached: aborting");
            std::process::abort();
        }
    }
}

/// Prints the snapshot counters the manager records, as they move, for
/// the harness's report (a global `metrics` recorder; everything else is
/// dropped).
struct SnapshotCounters;

/// One printing counter: the line it prints per increment.
struct Printed(String);

impl metrics::CounterFn for Printed {
    fn increment(&self, value: u64) {
        for _ in 0..value {
            println!("{}", self.0);
        }
    }
    fn absolute(&self, _: u64) {}
}

impl metrics::Recorder for SnapshotCounters {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let label = |name: &str| {
            key.labels()
                .find(|l| l.key() == name)
                .map(|l| l.value().to_owned())
                .unwrap_or_default()
        };
        let line = match key.name() {
            state_manager::metrics::SNAPSHOTS_TAKEN if label("result") == "ok" => "snapshot taken".to_owned(),
            state_manager::metrics::SNAPSHOT_RESTORES => format!("snapshot restore {}", label("result")),
            state_manager::metrics::SNAPSHOTS_SKIPPED => format!("snapshot skipped {}", label("reason")),
            _ => return metrics::Counter::noop(),
        };
        metrics::Counter::from_arc(Arc::new(Printed(line)))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// The snapshot settings `SNAPSHOT_DIR` / `SNAPSHOT_EVERY` ask for.
fn snapshot_settings() -> Result<Option<state_manager::SnapshotSettings>, Box<dyn std::error::Error>> {
    let Ok(dir) = std::env::var("SNAPSHOT_DIR") else {
        return Ok(None);
    };
    let every: u64 = match std::env::var("SNAPSHOT_EVERY") {
        Ok(n) => n.parse()?,
        Err(_) => 6,
    };
    let dir = std::path::absolute(dir)?;
    let store = state_snapshot::SnapshotStore::open(
        &format!("file://{}", dir.display()),
        &state_snapshot::StoreOptions::new(),
    )?;
    Ok(Some(
        state_manager::SnapshotSettings::new(store)
            .every_records(Some(every))
            .every(None),
    ))
}

fn stage_name(s: CheckpointStage) -> &'static str {
    match s {
        CheckpointStage::Produced => "produced",
        CheckpointStage::Committed => "committed",
        CheckpointStage::Flushed => "flushed",
    }
}

/// Logs to `CRASH_LOG_FILE`, if set: unbuffered, so a SIGKILL loses no
/// line already logged.
fn init_log() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(path) = std::env::var("CRASH_LOG_FILE") else {
        return Ok(());
    };
    let filter = std::env::var("CRASH_LOG").unwrap_or_else(|_| "info".into());
    let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&filter)?)
        .with_ansi(false)
        .with_thread_names(true)
        .with_writer(std::sync::Mutex::new(file))
        .init();
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_log()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, state_dir, guarantee, partitions] = args.as_slice() else {
        return Err("usage: crash-counter BOOTSTRAP STATE_DIR eos|alos PARTITIONS".into());
    };
    let partitions: usize = partitions.parse()?;
    let guarantee = match guarantee.as_str() {
        "eos" => ProcessingGuarantee::ExactlyOnce,
        "alos" => ProcessingGuarantee::AtLeastOnce,
        other => return Err(format!("unknown guarantee {other}").into()),
    };
    let crash = CrashPoint::from_env();
    let mut kafka = ClientConfig::new();
    kafka.set("bootstrap.servers", bootstrap);
    if let Ok(debug) = std::env::var("KAFKA_DEBUG") {
        kafka.set("debug", debug);
    }
    let backend: Arc<dyn state_core::Backend> = match std::env::var("STATE_BACKEND").as_deref() {
        Ok("fjall") => state_fjall::FjallBackend::shared(Default::default()),
        Ok("memory") => state_core::MemoryBackend::shared(),
        _ => state_manager::RocksDbBackend::shared(Default::default()),
    };
    let write_behind = std::env::var("STATE_WRITE_BEHIND").is_ok().then(|| {
        Arc::new(state_cache::WriteBehindBackend::new(
            backend.clone(),
            state_cache::WriteBehindConfig {
                max_dirty_age: Duration::from_millis(200),
                ..Default::default()
            },
        ))
    });
    let backend: Arc<dyn state_core::Backend> = match &write_behind {
        Some(wb) => wb.clone(),
        None => backend,
    };
    let mut lag = 0usize;
    let mut report_lag = |wb: &state_cache::WriteBehindBackend| -> Result<(), Box<dyn std::error::Error>> {
        wb.flush_due()?;
        let now = wb.lagging_partitions();
        if now != lag {
            lag = now;
            println!("lag {lag}");
        }
        Ok(())
    };
    let mut config = ManagerConfig::with_backend(GROUP, state_dir, backend);
    config.guarantee = guarantee;
    let peer = std::env::var("PEER").is_ok();
    let finish_all = std::env::var("FINISH_ALL").is_ok() || std::env::var("STANDBYS").is_err();
    config.instance_id = Some(if peer { "peer" } else { "child" }.into());
    if std::env::var("STANDBYS").is_ok() {
        config.standby = state_manager::StandbyPolicy::AllPartitions;
    }
    config.kafka_timeout = Duration::from_secs(15);
    // A progress report per record applied, so the `recovery` crash point
    // lands inside the short restores of this small state (a standby's
    // promotion replays a few records).
    config.recovery.progress_interval = Duration::ZERO;
    config.mirror_transactional_offsets = std::env::var("MIRROR_OFFSETS").is_ok();
    config.pipelined_checkpoints = std::env::var("PIPELINED").is_ok();
    config.snapshots = snapshot_settings()?;
    if config.snapshots.is_some() {
        metrics::set_global_recorder(SnapshotCounters)?;
    }
    let mut manager = StateStoreManager::new(config, kafka.clone())?;
    let counts_store = manager.register_store(StoreSpec::key_value(INPUT, "counts"))?;
    if let Some(c) = crash.clone() {
        manager.set_checkpoint_observer(move |s| c.reached(stage_name(s)));
    }
    // Changelog partitions restored from a snapshot whose tail is replaying.
    let tails = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let restored = tails.clone();
    manager.set_event_listener(move |e| {
        if let state_manager::ManagerEvent::RestoredFromSnapshot { partition, .. } = e {
            restored.lock().insert(*partition as i32);
        }
    });
    let c = crash.clone();
    manager.set_progress_listener(move |p| {
        if p.finished {
            if tails.lock().remove(&p.changelog.partition()) {
                println!("snapshot tail {}", p.done);
            }
        } else if let Some(c) = &c {
            c.reached("recovery");
        }
    });
    let manager = Arc::new(Mutex::new(manager));
    let consumer: BaseConsumer<StateContext> = state_changelog::ConsumerSettings::new(GROUP)
        .from_earliest()
        .client_config(&kafka)
        // A killed predecessor holds up the next rebalance until its
        // session expires: keep that short.
        .set("session.timeout.ms", "3000")
        .set("heartbeat.interval.ms", "300")
        // With two members (--standbys), eager rebalances would revoke the
        // survivor's own partitions too; librdkafka's mock broker neither
        // stores offsets sent in a transaction nor accepts the mirrored
        // commit during a rebalance, so they would restart from stale
        // offsets. Cooperative rebalances move only what changes owner.
        .set("partition.assignment.strategy", "cooperative-sticky")
        .create_with_context(StateContext::new(manager.clone()))?;
    consumer.subscribe(&[INPUT])?;
    let mut processed = 0usize;
    let mut since_commit = 0usize;
    let mut restoring = false;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if Instant::now() > deadline && !peer {
            return Err("did not finish within 300 s".into());
        }
        {
            // Between records, never with one polled and not processed yet
            // (as the README's loop): a checkpoint `maintain` commits can
            // move the consumer back (a refused mirrored offset commit),
            // and a record polled before it would be processed on state
            // without that checkpoint, then delivered and processed again.
            let mut m = manager.lock();
            m.maintain(&consumer)?;
            let now_restoring = !m.restoring().is_empty();
            if restoring != now_restoring {
                restoring = now_restoring;
                println!("{}", if restoring { "restoring" } else { "ready" });
            }
            if let Some(wb) = &write_behind {
                report_lag(wb)?;
            }
        }
        let msg = consumer.poll(Duration::from_millis(50));
        let mut m = manager.lock();
        match msg {
            Some(Ok(msg)) => {
                let p = msg.partition() as u32;
                if !m.is_ready(INPUT, p) {
                    // Paused for a rebuild after it was fetched: delivered
                    // again once resumed.
                    continue;
                }
                let key = msg.key().unwrap_or_default().to_vec();
                let counted = (|| -> Result<u64, Box<dyn std::error::Error>> {
                    let t = m.txn(&counts_store, p)?;
                    let n: u64 = t.get("count", &key)?.unwrap_or(0);
                    t.set("count", &(n + 1), &key)?;
                    Ok(n)
                })();
                let n = match counted {
                    Ok(n) => n,
                    // A damaged block read (`cargo xtask crash --corrupt`):
                    // the next `maintain` rebuilds the partition and moves
                    // back to this record.
                    Err(e) if m.damage_found() => {
                        tracing::warn!(partition = p, offset = msg.offset(), error = %e, "damaged partition found while processing");
                        println!("damage found");
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let out = m.output_producer()?;
                let value = (n + 1).to_string();
                let rec = BaseRecord::<[u8], [u8], ()>::to(OUTPUT)
                    .partition(p as i32)
                    .key(&key)
                    .payload(value.as_bytes());
                out.kafka().send(rec).map_err(|(e, _)| e)?;
                m.processed(INPUT, p, msg.offset())?;
                tracing::debug!(partition = p, offset = msg.offset(), key = %String::from_utf8_lossy(&key), count = n + 1,
                    "processed");
                processed += 1;
                since_commit += 1;
                println!("processed {processed}");
                if let Some(c) = &crash {
                    c.reached("process");
                }
                if since_commit >= 7 {
                    m.commit(&consumer)?;
                    since_commit = 0;
                    if let Some(wb) = &write_behind {
                        report_lag(wb)?;
                    }
                }
            }
            Some(Err(e)) => eprintln!("consumer error: {e}"),
            None => {
                m.commit(&consumer)?;
                since_commit = 0;
                if let Some(wb) = &write_behind {
                    report_lag(wb)?;
                }
                let assignment = consumer.assignment()?;
                let owned = assignment.count();
                // Restoring as of this poll's rebalance callbacks, not as of the
                // `maintain` before it.
                let restoring = !m.restoring().is_empty();
                if peer || owned == 0 || (finish_all && owned != partitions) || restoring {
                    continue;
                }
                let committed = consumer.committed_offsets(assignment, Duration::from_secs(10))?;
                let mut done = true;
                for e in committed.elements() {
                    let (_, high) = consumer.fetch_watermarks(INPUT, e.partition(), Duration::from_secs(10))?;
                    done &= high == 0 || matches!(e.offset(), Offset::Offset(o) if o >= high);
                }
                if done {
                    let mut counts = BTreeMap::new();
                    for e in consumer.assignment()?.elements() {
                        let p = e.partition() as u32;
                        let part = m.partition(&counts_store, p)?;
                        for item in part.iter_range("default", b"", None, Direction::Forward)? {
                            let (k, v) = item?;
                            let prefix = k.split(|b| *b == b'|').next().unwrap_or_default();
                            let n: u64 = Codec::MsgPack.decode(&v)?;
                            counts.insert(String::from_utf8_lossy(prefix).into_owned(), n);
                        }
                    }
                    m.output_producer()?.kafka().flush(Duration::from_secs(10))?;
                    println!("counts {}", serde_json::to_string(&counts)?);
                    return Ok(());
                }
            }
        }
    }
}
