//! The workloads of docs/performance.md ("Workloads"). Progress goes to stderr; stdout gets
//! exactly one JSON line per (system, workload).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use state_cache::{WriteBehindConfig, WriteBehindPartition};
use state_changelog::{ApplierConfig, ChangelogApplier, IncomingRecord};
use state_core::{cf, keys, Codec, Direction, MemoryPartition, StorePartition};
use state_fjall::{FjallOptions, FjallPartition};
use state_rocksdb::{RocksDbOptions, RocksDbPartition};
use state_txn::{ExpireOptions, ExpiredWindow, PartitionTransaction, WindowIndex, WindowedTransaction};

use crate::params::{env_u64, Params};
use crate::rng::Rng;

mod budget;
mod e2e;
mod restore_big;
mod w4;
mod windows;

/// w6: the number of keys the Zipf(1.0) draws range over (fixed by
/// docs/performance.md, whatever K is).
pub(crate) const W6_KEYS: u64 = 1_000_000;
/// w6: the seed of the key sequence, the same for every system.
pub(crate) const W6_SEED: u64 = 0x5EED_2006;

pub(crate) struct Outcome {
    seconds: f64,
    check: u64,
    /// Peak resident set of the process during the run (MiB), if the
    /// kernel let us reset and read it.
    peak_rss_mb: Option<f64>,
    /// More figures of the workload for its JSON line (the window
    /// workloads' `count_total`, `sum_total`).
    pub(crate) extra: Vec<(&'static str, i64)>,
}

impl Outcome {
    pub(crate) fn new(seconds: f64, check: u64) -> Self {
        Outcome {
            seconds,
            check,
            peak_rss_mb: None,
            extra: Vec::new(),
        }
    }
}

/// Resets the process's peak resident set to its current size (Linux
/// `clear_refs` 5); false if the kernel does not allow it.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak resident set (VmHWM) in MiB.
pub(crate) fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

pub(crate) fn report(system: &str, workload: &str, p: Params, o: &Outcome) {
    if o.seconds.is_nan() {
        return; // not run (BENCH_SYSTEMS)
    }
    let rate = p.n as f64 / o.seconds;
    let mut line = serde_json::json!({
        "system": system, "workload": workload, "N": p.n, "K": if workload == "w6" { W6_KEYS } else { p.k }, "C": p.c,
        "seconds": (o.seconds * 1000.0).round() / 1000.0,
        "records_per_s": rate.round() as u64,
        "check": o.check,
    });
    if let Some(rss) = o.peak_rss_mb {
        line["peak_rss_mb"] = serde_json::json!(rss);
    }
    for (name, value) in &o.extra {
        line[*name] = serde_json::json!(value);
    }
    println!("{line}");
    eprintln!(
        "  {system:>16} {workload}: {:>10.0} records/s  ({:.3} s, check {}, peak rss {} MiB)",
        rate,
        o.seconds,
        o.check,
        o.peak_rss_mb.map_or("?".to_owned(), |r| format!("{r:.0}"))
    );
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut only: Option<String> = None;
    let mut brokers: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--workload" => {
                only = Some(
                    it.next()
                        .ok_or("--workload needs a value (w1..w6, win-tumbling, ...)")?
                        .clone(),
                )
            }
            "--brokers" => brokers = Some(it.next().ok_or("--brokers needs HOST:PORT")?.clone()),
            // One run of the budget workload in this process (its parent
            // measures each run in a process of its own).
            "--budget-child" => return budget::child(it.next().ok_or("--budget-child needs a system")?),
            other => return Err(format!("unknown bench argument {other:?}")),
        }
    }
    let p = Params::from_env()?;
    if cfg!(debug_assertions) {
        eprintln!("warning: devtools was built without optimisations; use `cargo xtask bench` (release)");
    }
    eprintln!("bench: N={} K={} C={}", p.n, p.k, p.c);
    let wanted = |w: &str| only.as_deref().is_none_or(|o| o == w);
    let known = ["w1", "w2", "w3", "w4", "w5", "w6", "takeover", "budget", "restore-big"];
    if let Some(o) = &only {
        if !known.contains(&o.as_str())
            && !windows::WORKLOADS.contains(&o.as_str())
            && !e2e::WORKLOADS.contains(&o.as_str())
        {
            return Err(format!(
                "unknown workload {o:?}; known: {known:?}, {:?}, {:?}",
                windows::WORKLOADS,
                e2e::WORKLOADS
            ));
        }
    }
    let rounds = env_u64("ROUNDS", 3)?.max(1);
    if only.as_deref() == Some("restore-big") {
        // Only when asked: minutes and several GiB on a real broker.
        return restore_big::run(brokers.as_deref());
    }
    if only.as_deref() == Some("budget") {
        // Only when asked: 192 databases per run, in processes of their own.
        return budget::run(rounds);
    }
    if wanted("takeover") {
        // Two members process N records before the kill: at most 200,000,
        // so the mock cluster's 5 MB per partition holds them.
        crate::takeover::run(Params {
            n: p.n.min(200_000),
            ..p
        })?;
    }
    if wanted("w1") {
        let mut systems: Systems = vec![
            ("state-rocksdb", Box::new(|dir: &Path, p| w1_state(rocks(dir)?, p))),
            ("state-rocksdb-wb", Box::new(|dir: &Path, p| w1_write_behind(dir, p))),
            ("state-fjall", Box::new(|dir: &Path, p| w1_state(fjall(dir)?, p))),
            (
                "state-memory",
                Box::new(|_: &Path, p| w1_state(Arc::new(MemoryPartition::new()), p)),
            ),
            ("raw-rocksdb", Box::new(w1_raw)),
        ];
        measure("w1", p, rounds, &mut systems)?;
    }
    if wanted("w2") {
        let mut systems: Systems = vec![
            (
                "state-rocksdb",
                Box::new(|dir: &Path, p| w2_state(rocks(dir)?, p, None)),
            ),
            (
                "state-rocksdb-wb",
                Box::new(|dir: &Path, p| {
                    let wb = write_behind(rocks(dir)?)?;
                    w2_state(wb.clone(), p, Some(&wb))
                }),
            ),
            ("state-fjall", Box::new(|dir: &Path, p| w2_state(fjall(dir)?, p, None))),
            (
                "state-memory",
                Box::new(|_: &Path, p| w2_state(Arc::new(MemoryPartition::new()), p, None)),
            ),
        ];
        measure("w2", p, rounds, &mut systems)?;
    }
    if wanted("w6") {
        let draws = zipf_keys(p.n, W6_KEYS, W6_SEED);
        let draws = &draws;
        let mut systems: Systems = vec![
            (
                "state-rocksdb",
                Box::new(|dir: &Path, p| w6_state(rocks(dir)?, p, draws, None)),
            ),
            (
                "state-rocksdb-wb",
                Box::new(|dir: &Path, p| {
                    let wb = write_behind(rocks(dir)?)?;
                    w6_state(wb.clone(), p, draws, Some(&wb))
                }),
            ),
            (
                "state-memory",
                Box::new(|_: &Path, p| w6_state(Arc::new(MemoryPartition::new()), p, draws, None)),
            ),
            ("raw-rocksdb", Box::new(|dir: &Path, p| w6_raw(dir, p, draws))),
        ];
        measure("w6", p, rounds, &mut systems)?;
    }
    if wanted("w3") {
        let mut systems: Systems = vec![
            ("state-rocksdb", Box::new(|dir: &Path, p| w3_state(rocks(dir)?, p))),
            ("state-fjall", Box::new(|dir: &Path, p| w3_state(fjall(dir)?, p))),
            (
                "state-memory",
                Box::new(|_: &Path, p| w3_state(Arc::new(MemoryPartition::new()), p)),
            ),
            ("raw-rocksdb", Box::new(w3_raw)),
        ];
        measure("w3", p, rounds, &mut systems)?;
    }
    if wanted("w4") || wanted("w5") {
        // The in-process mock cluster unless a broker was given; it lives
        // for the rest of the run.
        let cluster = match &brokers {
            Some(_) => None,
            None => Some(rdkafka::mocking::MockCluster::new(1).map_err(err)?),
        };
        let bootstrap = match (&brokers, &cluster) {
            (Some(b), _) => b.clone(),
            (None, Some(c)) => c.bootstrap_servers(),
            (None, None) => unreachable!("a cluster exists when no brokers are given"),
        };
        let create = |topic: &str| -> Result<(), String> {
            match &cluster {
                Some(c) => c.create_topic(topic, 1, 1).map_err(err),
                None => Ok(()), // a real broker: auto-created or pre-created by the operator
            }
        };
        if wanted("w4") {
            // Every system reads the same records, produced once: the
            // changelog of the store the loaded system's manager restores.
            let topic = w4::changelog_topic();
            create(&topic)?;
            for t in w4::setup_topics() {
                create(t)?;
            }
            produce_w3_records(&bootstrap, &topic, p)?;
            let topics = match &cluster {
                Some(c) => w4::Topics::Mock(c),
                None => w4::Topics::Broker,
            };
            let round = std::cell::Cell::new(0u32);
            let mut systems: Systems = vec![
                (
                    "state-rocksdb",
                    Box::new(|dir: &Path, _| w4::restorer(&bootstrap, dir, p)),
                ),
                (
                    "state-rocksdb-loaded",
                    Box::new(|dir: &Path, _| {
                        round.set(round.get() + 1);
                        w4::loaded(&bootstrap, &topics, round.get(), dir, p)
                    }),
                ),
                (
                    "state-rocksdb-blocking",
                    Box::new(|dir: &Path, _| w4::blocking(&bootstrap, dir, p)),
                ),
                ("raw-consumer", Box::new(|_: &Path, _| w4::raw_consumer(&bootstrap))),
            ];
            let medians = measure_rounds("w4", p, rounds, &mut systems)?;
            for ((name, _), median) in systems.iter().zip(&medians) {
                report(name, "w4", p, median);
            }
            let raw = medians[3].seconds;
            for (name, i) in [("restorer", 0), ("restorer under load", 1), ("blocking recovery", 2)] {
                eprintln!(
                    "  w4 {name} / raw consumer in the same rounds: {:.2}",
                    raw / medians[i].seconds
                );
            }
        }
        if wanted("w5") {
            // w1 (changelog off) runs in the same interleaved rounds, so the
            // w5/w1 ratio is not at the mercy of the machine's drift between
            // the w1 and w5 sections; it goes to stderr only (stdout has
            // w1's own line).
            let run = std::cell::Cell::new(0);
            let topic = |run: &std::cell::Cell<u32>| -> Result<String, String> {
                run.set(run.get() + 1);
                let topic = format!("bench-w5-changelog-{}", run.get());
                create(&topic)?;
                Ok(topic)
            };
            let mut systems: Systems = vec![
                (
                    "state-rocksdb",
                    Box::new(|dir: &Path, p| w5_state(rocks(dir)?, &bootstrap, &topic(&run)?, p, None)),
                ),
                (
                    "state-rocksdb-wb",
                    Box::new(|dir: &Path, p| {
                        let wb = write_behind(rocks(dir)?)?;
                        w5_state(wb.clone(), &bootstrap, &topic(&run)?, p, Some(&wb))
                    }),
                ),
                ("w1 reference", Box::new(|dir: &Path, p| w1_state(rocks(dir)?, p))),
                ("w1-wb reference", Box::new(|dir: &Path, p| w1_write_behind(dir, p))),
            ];
            let medians = measure_rounds("w5", p, rounds, &mut systems)?;
            report("state-rocksdb", "w5", p, &medians[0]);
            report("state-rocksdb-wb", "w5", p, &medians[1]);
            for (name, w5, w1) in [("state-rocksdb", 0, 2), ("state-rocksdb-wb", 1, 3)] {
                eprintln!(
                    "  {name} w5/w1 in the same rounds: {:.2} (w1 {:.0} records/s)",
                    medians[w1].seconds / medians[w5].seconds,
                    p.n as f64 / medians[w1].seconds
                );
            }
        }
    }
    windows::run_all(p, rounds, &wanted)?;
    e2e::run_all(p, rounds, brokers.as_deref(), &wanted)?;
    Ok(())
}

fn kafka_client(bootstrap: &str) -> rdkafka::ClientConfig {
    let mut c = rdkafka::ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// Produces the w3 records (not timed) to `topic[0]`.
fn produce_w3_records(bootstrap: &str, topic: &str, p: Params) -> Result<(), String> {
    let fx = w3_fixture(p)?;
    // Compressed, so a million records stay within the mock cluster's 5 MB
    // per partition (it drops the oldest records beyond that; lz4 is not
    // enough, gzip is).
    let mut config = kafka_client(bootstrap);
    config.set("compression.type", "gzip");
    let producer = state_changelog::ChangelogProducer::new(&config).map_err(err)?;
    eprintln!("  producing {} changelog records to {topic}", p.n);
    for i in 0..p.n {
        producer
            .produce(
                topic,
                0,
                state_core::ChangelogRecord {
                    cf: cf::DEFAULT,
                    key: &fx.keys[(i % p.k) as usize],
                    value: Some(&fx.value),
                    processed_offsets: None,
                    ttl_stamped: false,
                    value_codec: None,
                },
            )
            .map_err(err)?;
    }
    producer.flush(std::time::Duration::from_secs(300)).map_err(err)?;
    // A run over a truncated log would time less work than it reports.
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = kafka_client(bootstrap).create().map_err(err)?;
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, std::time::Duration::from_secs(30))
        .map_err(err)?;
    if low != 0 || high != p.n as i64 {
        return Err(format!(
            "{topic} holds offsets {low}..{high}, not 0..{}: the broker dropped records \
             (librdkafka's mock cluster keeps 5 MB per partition); use a smaller N or --brokers",
            p.n
        ));
    }
    Ok(())
}

/// w1 with the changelog producer on: checkpoint every C records
/// (prepare, producer flush, state flush with the changelog offset).
fn w5_state<P: StorePartition + 'static>(
    partition: Arc<P>,
    bootstrap: &str,
    topic: &str,
    p: Params,
    write_behind: Option<&WriteBehindPartition>,
) -> Result<Outcome, String> {
    let producer = Arc::new(state_changelog::ChangelogProducer::new(&kafka_client(bootstrap)).map_err(err)?);
    let sink = producer.sink(topic, 0);
    let timeout = std::time::Duration::from_secs(120);
    let started = Instant::now();
    let mut prefix = Vec::new();
    let mut txn = PartitionTransaction::new(partition.clone(), Codec::MsgPack, Some(sink.clone()));
    let checkpoint = |txn: &mut PartitionTransaction<P>, i: u64| -> Result<(), String> {
        let offsets = state_core::ProcessedOffsets::new().with("input", i as i64);
        txn.prepare(Some(&offsets)).map_err(err)?;
        producer.flush(timeout).map_err(err)?;
        let offset = producer.last_offset(topic, 0).map(|o| o as u64);
        txn.flush(offset).map_err(err)
    };
    for i in 0..p.n {
        prefix_of(i, p.k, &mut prefix);
        let mut key = txn.key(&prefix);
        let count: u64 = key.get("count").map_err(err)?.unwrap_or(0);
        key.set("count", &(count + 1)).map_err(err)?;
        if (i + 1) % p.c == 0 {
            checkpoint(&mut txn, i)?;
            txn = PartitionTransaction::new(partition.clone(), Codec::MsgPack, Some(sink.clone()));
        }
    }
    checkpoint(&mut txn, p.n)?;
    if let Some(wb) = write_behind {
        wb.flush().map_err(err)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Outcome::new(seconds, counter_check(partition, p)?))
}

/// The systems compared in one workload: a name and a run in a directory.
pub(crate) type Systems<'a> = Vec<(
    &'static str,
    Box<dyn FnMut(&Path, Params) -> Result<Outcome, String> + 'a>,
)>;

/// Warms every system up (10% of N, its own directory), then runs `rounds`
/// rounds in which each system runs once in a fresh directory, interleaved
/// so that drift of the machine (other tenants, page cache, allocator
/// growth) hits every system alike; reports each system's median round.
/// Every round of a workload must produce the same check.
pub(crate) fn measure(workload: &str, p: Params, rounds: u64, systems: &mut Systems<'_>) -> Result<(), String> {
    let medians = measure_rounds(workload, p, rounds, systems)?;
    for ((name, _), median) in systems.iter().zip(medians) {
        report(name, workload, p, &median);
    }
    Ok(())
}

/// Runs every system (after a warm-up at a tenth of N) `rounds` times,
/// interleaved, and returns each one's median round.
pub(crate) fn measure_rounds(
    workload: &str,
    p: Params,
    rounds: u64,
    systems: &mut Systems<'_>,
) -> Result<Vec<Outcome>, String> {
    let warm = Params {
        n: (p.n / 10).max(1),
        ..p
    };
    // `BENCH_SYSTEMS=a,b` runs only those systems (to profile one); the
    // others are not run and not reported.
    if let Ok(only) = std::env::var("BENCH_SYSTEMS") {
        let keep: Vec<String> = only.split(',').map(|s| s.trim().to_owned()).collect();
        for (name, run) in systems.iter_mut() {
            if !keep.iter().any(|k| k == name) {
                *run = Box::new(|_: &Path, _| Ok(Outcome::new(f64::NAN, 0)));
            }
        }
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    for (name, run) in systems.iter_mut() {
        run(&dir.path().join(format!("warmup-{name}")), warm)?;
    }
    let mut outcomes: Vec<Vec<Outcome>> = systems.iter().map(|_| Vec::new()).collect();
    let mut peaks: Vec<Option<f64>> = systems.iter().map(|_| None).collect();
    for round in 0..rounds {
        for (i, (name, run)) in systems.iter_mut().enumerate() {
            let rss = reset_peak_rss();
            let o = run(&dir.path().join(format!("{name}-{round}")), p)?;
            if rss {
                peaks[i] = match (peaks[i], peak_rss_mb()) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
            eprintln!("    round {} {name} {workload}: {:.3} s", round + 1, o.seconds);
            outcomes[i].push(o);
        }
    }
    let mut medians = Vec::new();
    for ((name, _), mut runs) in systems.iter().zip(outcomes) {
        if let Some(bad) = runs.iter().find(|o| o.check != runs[0].check) {
            return Err(format!(
                "{name} {workload}: check differs between rounds ({} vs {})",
                runs[0].check, bad.check
            ));
        }
        runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        medians.push(runs.swap_remove(runs.len() / 2));
    }
    // The highest peak over the system's rounds (each reset before the
    // run): its memory, plus whatever the process held when it started.
    for (m, peak) in medians.iter_mut().zip(peaks) {
        m.peak_rss_mb = peak;
    }
    Ok(medians)
}

pub(crate) fn rocks(dir: &Path) -> Result<Arc<RocksDbPartition>, String> {
    RocksDbPartition::open(dir, &RocksDbOptions::default())
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

fn fjall(dir: &Path) -> Result<Arc<FjallPartition>, String> {
    FjallPartition::open(dir, &FjallOptions::default())
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

pub(crate) fn prefix_of(i: u64, k: u64, buf: &mut Vec<u8>) {
    use std::io::Write;
    buf.clear();
    let _ = write!(buf, "k{}", i % k);
}

pub(crate) fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

// ---- w1: keyed counter -------------------------------------------------------

/// The w1/w5 check: the sum of the counters of keys k0..k999.
fn counter_check<P: StorePartition + 'static>(partition: Arc<P>, p: Params) -> Result<u64, String> {
    let reader = PartitionTransaction::new(partition, Codec::MsgPack, None);
    let mut prefix = Vec::new();
    let mut check = 0;
    for j in 0..p.k.min(1000) {
        prefix_of(j, p.k, &mut prefix);
        check += reader.get::<_, u64>("count", &prefix).map_err(err)?.unwrap_or(0);
    }
    Ok(check)
}

fn w1_state<P: StorePartition + 'static>(partition: Arc<P>, p: Params) -> Result<Outcome, String> {
    w1_with(partition, p, None)
}

/// w1; with write-behind, the final flush is timed.
fn w1_with<P: StorePartition + 'static>(
    partition: Arc<P>,
    p: Params,
    write_behind: Option<&WriteBehindPartition>,
) -> Result<Outcome, String> {
    let seconds = count_keys(&partition, p, 0..p.n, p.k, write_behind)?;
    Ok(Outcome::new(seconds, counter_check(partition, p)?))
}

/// The keyed-counter loop of w1 and w6: per record `k{x % modulus}` for
/// each `x` of `keys`, a checkpoint every C records; with write-behind the
/// final flush is timed. Returns the seconds taken.
fn count_keys<P: StorePartition + 'static>(
    partition: &Arc<P>,
    p: Params,
    keys: impl Iterator<Item = u64>,
    modulus: u64,
    write_behind: Option<&WriteBehindPartition>,
) -> Result<f64, String> {
    let started = Instant::now();
    let mut prefix = Vec::new();
    let mut txn = PartitionTransaction::new(partition.clone(), Codec::MsgPack, None);
    for (i, x) in keys.enumerate() {
        prefix_of(x, modulus, &mut prefix);
        let mut key = txn.key(&prefix);
        let count: u64 = key.get("count").map_err(err)?.unwrap_or(0);
        key.set("count", &(count + 1)).map_err(err)?;
        if (i as u64 + 1).is_multiple_of(p.c) {
            txn.prepare(None).map_err(err)?;
            txn.flush(None).map_err(err)?;
            txn = PartitionTransaction::new(partition.clone(), Codec::MsgPack, None);
        }
    }
    txn.prepare(None).map_err(err)?;
    txn.flush(None).map_err(err)?;
    if let Some(wb) = write_behind {
        wb.flush().map_err(err)?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The bounds the `state-rocksdb-wb` systems use: the defaults.
pub(crate) fn write_behind<P: StorePartition + 'static>(
    partition: Arc<P>,
) -> Result<Arc<WriteBehindPartition>, String> {
    write_behind_with(partition, WriteBehindConfig::default())
}

/// A write-behind cache with bounds `config` in front of `partition`;
/// `BENCH_WB_MB=M` makes them M MiB resident, M/2 MiB dirty instead.
pub(crate) fn write_behind_with<P: StorePartition + 'static>(
    partition: Arc<P>,
    mut config: WriteBehindConfig,
) -> Result<Arc<WriteBehindPartition>, String> {
    if let Ok(mb) = std::env::var("BENCH_WB_MB") {
        let mb: usize = mb.parse().map_err(err)?;
        config.max_bytes = mb << 20;
        config.max_dirty_bytes = (mb / 2) << 20;
    }
    WriteBehindPartition::new(partition, config).map(Arc::new).map_err(err)
}

/// w1 on RocksDB behind a write-behind cache; the final flush is timed.
fn w1_write_behind(dir: &Path, p: Params) -> Result<Outcome, String> {
    let wb = write_behind(rocks(dir)?)?;
    w1_with(wb.clone(), p, Some(&wb))
}

/// The same loop written directly against the `rocksdb` crate: same key and
/// value bytes, same options, one write batch per C records. The only
/// addition is a map of values written in the current batch, without which
/// a key seen twice in one batch would read a stale value.
fn w1_raw(dir: &Path, p: Params) -> Result<Outcome, String> {
    let (db, seconds) = raw_count_keys(dir, p, 0..p.n, p.k)?;
    let count_key = rmp_serde::to_vec("count").map_err(err)?;
    let mut prefix = Vec::new();
    let mut check = 0u64;
    for j in 0..p.k.min(1000) {
        prefix_of(j, p.k, &mut prefix);
        if let Some(v) = db.get(keys::prefixed_key(&prefix, &count_key)).map_err(err)? {
            check += rmp_serde::from_slice::<u64>(&v).map_err(err)?;
        }
    }
    Ok(Outcome::new(seconds, check))
}

/// The keyed-counter loop of w1 and w6 written directly against the
/// `rocksdb` crate: per record `k{x % modulus}`, reads through the batch
/// being built, one batch every C records. Returns the database and the
/// seconds taken.
fn raw_count_keys(
    dir: &Path,
    p: Params,
    keys: impl Iterator<Item = u64>,
    modulus: u64,
) -> Result<(rocksdb::DB, f64), String> {
    let opts = raw_options();
    let db = rocksdb::DB::open(&opts, dir).map_err(err)?;
    let count_key = rmp_serde::to_vec("count").map_err(err)?;
    let started = Instant::now();
    let mut prefix = Vec::new();
    let mut batch = rocksdb::WriteBatch::default();
    let mut pending: HashMap<Vec<u8>, u64> = HashMap::new();
    for (i, x) in keys.enumerate() {
        prefix_of(x, modulus, &mut prefix);
        let key = keys::prefixed_key(&prefix, &count_key);
        let count = match pending.get(&key) {
            Some(v) => *v,
            None => match db.get(&key).map_err(err)? {
                Some(v) => rmp_serde::from_slice(&v).map_err(err)?,
                None => 0u64,
            },
        };
        let value = rmp_serde::to_vec(&(count + 1)).map_err(err)?;
        batch.put(&key, &value);
        pending.insert(key, count + 1);
        if (i as u64 + 1).is_multiple_of(p.c) {
            db.write(std::mem::take(&mut batch)).map_err(err)?;
            pending.clear();
        }
    }
    db.write(batch).map_err(err)?;
    Ok((db, started.elapsed().as_secs_f64()))
}

/// RocksDB options equal to what `RocksDbPartition` uses by default.
fn raw_options() -> rocksdb::Options {
    let o = RocksDbOptions::default();
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.set_write_buffer_size(o.write_buffer_size);
    opts.set_max_write_buffer_number(o.max_write_buffer_number);
    opts.set_target_file_size_base(o.target_file_size_base);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.set_use_fsync(o.use_fsync);
    opts.set_atomic_flush(true);
    let mut table = rocksdb::BlockBasedOptions::default();
    let cache = rocksdb::Cache::new_lru_cache(o.block_cache_size);
    table.set_block_cache(&cache);
    if let Some(bits) = o.bloom_filter_bits_per_key {
        table.set_bloom_filter(bits, false);
    }
    opts.set_block_based_table_factory(&table);
    opts
}

// ---- w2: tumbling window -----------------------------------------------------

/// w2. Every system keeps the partition's `WindowIndex` (the windowed
/// layer's metadata in memory), as the manager does; with write-behind the
/// final flush is timed.
fn w2_state<P: StorePartition + 'static>(
    partition: Arc<P>,
    p: Params,
    write_behind: Option<&WriteBehindPartition>,
) -> Result<Outcome, String> {
    let started = Instant::now();
    // `BENCH_NO_WINDOW_INDEX=1`: without the index, for A/B runs.
    let index = std::env::var_os("BENCH_NO_WINDOW_INDEX")
        .is_none()
        .then(|| Arc::new(WindowIndex::default()));
    let begin = || match &index {
        Some(index) => WindowedTransaction::with_index(partition.clone(), Codec::MsgPack, None, index.clone()),
        None => WindowedTransaction::new(partition.clone(), Codec::MsgPack, None),
    };
    let mut prefix = Vec::new();
    let mut emitted = 0u64;
    let mut txn = begin();
    for i in 0..p.n {
        prefix_of(i, p.k, &mut prefix);
        let t = i as i64;
        let start = t - t % 1000;
        let mut key = txn.key(&prefix);
        let count: u64 = key.get_window(start, start + 1000).map_err(err)?.unwrap_or(0);
        key.update_window(start, start + 1000, &(count + 1), t).map_err(err)?;
        let latest = key.get_latest_timestamp().map_err(err)?;
        let expired: Vec<ExpiredWindow<u64, ()>> = key
            .expire_windows(latest - 1000, ExpireOptions::delete())
            .map_err(err)?;
        emitted += expired.len() as u64;
        if (i + 1) % p.c == 0 {
            txn.prepare(None).map_err(err)?;
            txn.flush(None).map_err(err)?;
            txn = begin();
        }
    }
    txn.prepare(None).map_err(err)?;
    txn.flush(None).map_err(err)?;
    if let Some(wb) = write_behind {
        wb.flush().map_err(err)?;
    }
    Ok(Outcome::new(started.elapsed().as_secs_f64(), emitted))
}

// ---- w6: skewed keyed counter ------------------------------------------------

/// `n` key numbers drawn from Zipf(1.0) over `0..keys` (rank r + 1 has
/// weight 1 / (r + 1)) by inverting the cumulative distribution, seeded:
/// the same sequence for every system.
pub(crate) fn zipf_keys(n: u64, keys: u64, seed: u64) -> Vec<u32> {
    let mut cdf = Vec::with_capacity(keys as usize);
    let mut total = 0.0f64;
    for r in 1..=keys {
        total += 1.0 / r as f64;
        cdf.push(total);
    }
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            // 53 random bits: a uniform in [0, total).
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
            cdf.partition_point(|&c| c <= u).min(keys as usize - 1) as u32
        })
        .collect()
}

/// The w6 check: the sum of every counter in the partition (= N).
pub(crate) fn sum_of_counters<P: StorePartition + ?Sized>(partition: &P) -> Result<u64, String> {
    let mut sum = 0u64;
    for item in partition
        .iter_range(cf::DEFAULT, b"", None, Direction::Forward)
        .map_err(err)?
    {
        let (_, v) = item.map_err(err)?;
        sum += Codec::MsgPack.decode::<u64>(&v).map_err(err)?;
    }
    Ok(sum)
}

/// w6: w1's loop over the Zipf key sequence.
fn w6_state<P: StorePartition + 'static>(
    partition: Arc<P>,
    p: Params,
    draws: &[u32],
    write_behind: Option<&WriteBehindPartition>,
) -> Result<Outcome, String> {
    let keys = draws.iter().take(p.n as usize).map(|&k| u64::from(k));
    let seconds = count_keys(&partition, p, keys, W6_KEYS, write_behind)?;
    Ok(Outcome::new(seconds, sum_of_counters(&*partition)?))
}

/// w6 written directly against the `rocksdb` crate, as `w1_raw`.
fn w6_raw(dir: &Path, p: Params, draws: &[u32]) -> Result<Outcome, String> {
    let keys = draws.iter().take(p.n as usize).map(|&k| u64::from(k));
    let (db, seconds) = raw_count_keys(dir, p, keys, W6_KEYS)?;
    let mut check = 0u64;
    for item in db.iterator(rocksdb::IteratorMode::Start) {
        let (_, v) = item.map_err(err)?;
        check += rmp_serde::from_slice::<u64>(&v).map_err(err)?;
    }
    Ok(Outcome::new(seconds, check))
}

// ---- w3: changelog apply -----------------------------------------------------

struct ChangelogFixture {
    keys: Vec<Vec<u8>>,
    value: Vec<u8>,
}

fn w3_fixture(p: Params) -> Result<ChangelogFixture, String> {
    let count_key = rmp_serde::to_vec("count").map_err(err)?;
    let mut prefix = Vec::new();
    let keys = (0..p.k.min(p.n))
        .map(|j| {
            prefix_of(j, p.k, &mut prefix);
            keys::prefixed_key(&prefix, &count_key)
        })
        .collect();
    Ok(ChangelogFixture {
        keys,
        value: rmp_serde::to_vec(&12345u64).map_err(err)?,
    })
}

fn w3_state<P: StorePartition + 'static>(partition: Arc<P>, p: Params) -> Result<Outcome, String> {
    let fx = w3_fixture(p)?;
    let started = Instant::now();
    let mut applier = ChangelogApplier::new(
        partition.clone(),
        "changelog",
        0,
        BTreeMap::new(),
        ApplierConfig {
            max_batch_records: p.c as usize,
        },
    );
    for i in 0..p.n {
        applier
            .apply(IncomingRecord {
                offset: i as i64,
                key: Some(&fx.keys[(i % p.k) as usize]),
                value: Some(&fx.value),
                column_family: Some(cf::DEFAULT.as_bytes()),
                processed_offsets: None,
                ttl_stamped: None,
                value_codec: None,
            })
            .map_err(err)?;
    }
    applier.finish().map_err(err)?;
    let seconds = started.elapsed().as_secs_f64();
    let check = partition.changelog_offset().map_err(err)?.unwrap_or(0);
    Ok(Outcome::new(seconds, check))
}

/// The same records in the same batches, straight into RocksDB with the
/// options the state path uses for recovery (no WAL, flush at the end).
fn w3_raw(dir: &Path, p: Params) -> Result<Outcome, String> {
    let fx = w3_fixture(p)?;
    let mut opts = raw_options();
    opts.create_missing_column_families(true);
    let db = rocksdb::DB::open_cf(&opts, dir, [cf::DEFAULT, cf::METADATA]).map_err(err)?;
    let meta = db.cf_handle(cf::METADATA).ok_or("no metadata cf")?;
    let mut wo = rocksdb::WriteOptions::default();
    wo.disable_wal(true);
    let started = Instant::now();
    let mut batch = rocksdb::WriteBatch::default();
    for i in 0..p.n {
        batch.put(&fx.keys[(i % p.k) as usize], &fx.value);
        if (i + 1) % p.c == 0 || i + 1 == p.n {
            batch.put_cf(&meta, cf::CHANGELOG_OFFSET_KEY, i.to_be_bytes());
            db.write_opt(std::mem::take(&mut batch), &wo).map_err(err)?;
        }
    }
    db.flush().map_err(err)?;
    db.flush_cf(&meta).map_err(err)?;
    let seconds = started.elapsed().as_secs_f64();
    let check = match db.get_cf(&meta, cf::CHANGELOG_OFFSET_KEY).map_err(err)? {
        Some(v) => keys::decode_u64(&v).map_err(err)?,
        None => 0,
    };
    Ok(Outcome::new(seconds, check))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_keys_are_seeded_in_range_and_skewed() {
        let a = zipf_keys(20_000, 1_000_000, 7);
        assert_eq!(a, zipf_keys(20_000, 1_000_000, 7), "the same sequence for every system");
        assert_ne!(a, zipf_keys(20_000, 1_000_000, 8));
        assert!(a.iter().all(|&k| k < 1_000_000));
        // P(rank 1) = 1 / H(10^6) ~ 0.0695; P(rank 2) half of that.
        let count = |k: u32| a.iter().filter(|&&x| x == k).count() as f64 / a.len() as f64;
        assert!((0.06..0.08).contains(&count(0)), "{}", count(0));
        assert!((0.025..0.045).contains(&count(1)), "{}", count(1));
        let distinct: std::collections::HashSet<u32> = a.iter().copied().collect();
        assert!(distinct.len() > 5_000, "a long tail: {}", distinct.len());
        assert_eq!(zipf_keys(10, 1, 1), vec![0; 10]);
    }

    #[test]
    fn peak_rss_is_read_in_mebibytes() {
        if let Some(mb) = peak_rss_mb() {
            assert!(mb > 0.0);
        }
    }
}
