//! The window workloads of docs/performance.md ("Window workloads"):
//! tumbling, hopping, sliding and session windows with count and sum,
//! emitted on close, through `state-windows`' operators, on the records
//! `fixtures/quixstreams/bench_windows.py` feeds quixstreams 3.28.1's own
//! window classes (the same `check`, `count_total` and `sum_total`).
//!
//! With `QUIX_PYTHON` set (a Python with quixstreams 3.28.1), each workload
//! also runs that script in the same run and prints its line, and stderr
//! gets each system's ratio to it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_cache::{WriteBehindConfig, WriteBehindPartition};
use state_core::{Codec, MemoryPartition, StorePartition};
use state_txn::{WindowIndex, WindowedTransaction};
use state_windows::kinds::Kind;
use state_windows::{Aggregation, Count, Hopping, Session, Sliding, Sum, Tumbling, WindowOperator};

use super::{err, measure, rocks, write_behind_with, Outcome, Systems};
use crate::params::Params;
use crate::rng::Rng;

/// Event time of record 0: 2026-01-01T00:00:00Z, a multiple of every size
/// and step here.
const T0: i64 = 1_767_225_600_000;
/// The seed of the late-record draws (pageviews' generator seed).
const SEED: u64 = 42;
const GRACE_MS: i64 = 1_000;
/// win-session: key groups taking turns, each active this many records.
const SESSION_GROUPS: u64 = 4;
const SESSION_PHASE: u64 = 25_000;

/// The window workloads, by name.
pub(crate) const WORKLOADS: [&str; 4] = ["win-tumbling", "win-hopping", "win-sliding", "win-session"];

/// One record: key index, event time, value.
#[derive(Clone, Copy)]
struct Event {
    key: u32,
    ts: i64,
    value: i64,
}

/// The records of a workload, generated before the clock starts, with the
/// key bytes (`k{n}`) each refers to.
struct Records {
    keys: Vec<Vec<u8>>,
    events: Vec<Event>,
}

/// w2's keys: `i % K`.
fn w2_key(i: u64, k: u64) -> u64 {
    i % k
}

/// win-session's keys: four groups of K / 4 keys, each active for 25,000
/// records in turn.
fn session_key(i: u64, k: u64) -> u64 {
    let per_group = k / SESSION_GROUPS;
    let group = (i / SESSION_PHASE) % SESSION_GROUPS;
    group * per_group + i % per_group.max(1)
}

/// Records 0..N: key `key_of(i)`, base time `T0 + i`, value `i % 10`; a
/// record whose draw is divisible by 100 moves back to its key's previous
/// base time minus `horizon` minus `1 + next % 2000` (if the key had a
/// record before).
fn records(p: Params, key_of: fn(u64, u64) -> u64, horizon: i64) -> Records {
    let mut rng = Rng(SEED);
    let mut last_base: Vec<Option<i64>> = vec![None; p.k as usize];
    let mut events = Vec::with_capacity(p.n as usize);
    for i in 0..p.n {
        let k = key_of(i, p.k);
        let base = T0 + i as i64;
        let mut ts = base;
        if rng.next().is_multiple_of(100) {
            let d = 1 + (rng.next() % (2 * GRACE_MS as u64)) as i64;
            if let Some(prev) = last_base[k as usize] {
                ts = prev - horizon - d;
            }
        }
        last_base[k as usize] = Some(base);
        events.push(Event {
            key: k as u32,
            ts,
            value: (i % 10) as i64,
        });
    }
    Records {
        keys: (0..p.k).map(|k| format!("k{k}").into_bytes()).collect(),
        events,
    }
}

/// Runs `op` over `records` on `partition` (with its window index), a
/// checkpoint every C records; with write-behind the final flush is timed.
fn run<P, K, G>(
    partition: Arc<P>,
    p: Params,
    op: &WindowOperator<i64, K, G>,
    records: &Records,
    write_behind: Option<&WriteBehindPartition>,
) -> Result<Outcome, String>
where
    P: StorePartition + 'static,
    K: Kind<i64, G>,
    G: Aggregation<i64, Output = (u64, i64)>,
{
    let index = Arc::new(WindowIndex::default());
    let begin = || WindowedTransaction::with_index(partition.clone(), Codec::MsgPack, None, index.clone());
    let started = Instant::now();
    let (mut emitted, mut count_total, mut sum_total) = (0u64, 0u64, 0i64);
    let mut txn = begin();
    for (i, e) in records.events.iter().take(p.n as usize).enumerate() {
        for w in op
            .process(&mut txn, &records.keys[e.key as usize], e.ts, &e.value)
            .map_err(err)?
        {
            emitted += 1;
            count_total += w.value.0;
            sum_total += w.value.1;
        }
        if (i as u64 + 1).is_multiple_of(p.c) {
            txn.prepare(None).map_err(err)?;
            txn.flush(None).map_err(err)?;
            // Dropped first, so the next one takes over its buffers (as
            // the manager's transactions do).
            drop(txn);
            txn = begin();
        }
    }
    txn.prepare(None).map_err(err)?;
    txn.flush(None).map_err(err)?;
    if let Some(wb) = write_behind {
        wb.flush().map_err(err)?;
    }
    let mut o = Outcome::new(started.elapsed().as_secs_f64(), emitted);
    o.extra.push(("count_total", count_total as i64));
    o.extra.push(("sum_total", sum_total));
    Ok(o)
}

/// The systems of one workload: RocksDB, RocksDB behind write-behind (with
/// the window-store bounds, [`WriteBehindConfig::windowed`]), and the
/// in-memory backend.
fn systems<'a, K, G>(op: &'a WindowOperator<i64, K, G>, records: &'a Records) -> Systems<'a>
where
    K: Kind<i64, G>,
    G: Aggregation<i64, Output = (u64, i64)>,
{
    vec![
        (
            "state-rocksdb",
            Box::new(move |dir: &Path, p| run(rocks(dir)?, p, op, records, None)),
        ),
        (
            "state-rocksdb-wb",
            Box::new(move |dir: &Path, p| {
                let wb = write_behind_with(rocks(dir)?, WriteBehindConfig::windowed())?;
                run(wb.clone(), p, op, records, Some(&wb))
            }),
        ),
        (
            "state-memory",
            Box::new(move |_: &Path, p| run(Arc::new(MemoryPartition::new()), p, op, records, None)),
        ),
    ]
}

fn invalid(e: state_windows::DefinitionError) -> String {
    e.to_string()
}

/// Measures `op` on `records` (made at N; the warm-up round runs a prefix
/// of them).
fn measure_window<K, G>(
    workload: &str,
    p: Params,
    rounds: u64,
    op: &WindowOperator<i64, K, G>,
    records: &Records,
) -> Result<(), String>
where
    K: Kind<i64, G>,
    G: Aggregation<i64, Output = (u64, i64)>,
{
    let mut systems = systems(op, records);
    measure(workload, p, rounds, &mut systems)
}

/// Runs the window workloads `wanted` says to run.
pub(crate) fn run_all(p: Params, rounds: u64, wanted: &dyn Fn(&str) -> bool) -> Result<(), String> {
    let ms = |v: i64| Duration::from_millis(v as u64);
    let grace = ms(GRACE_MS);
    let parts = || (("count", Count::new()), ("sum", Sum::new()));
    if wanted("win-tumbling") {
        let op = Tumbling::new(ms(1_000)).grace(grace).agg(parts()).map_err(invalid)?;
        let records = records(p, w2_key, 0);
        measure_window("win-tumbling", p, rounds, &op, &records)?;
        quixstreams("win-tumbling", p)?;
    }
    if wanted("win-hopping") {
        let op = Hopping::new(ms(10_000), ms(1_000))
            .grace(grace)
            .agg(parts())
            .map_err(invalid)?;
        let records = records(p, w2_key, 0);
        measure_window("win-hopping", p, rounds, &op, &records)?;
        quixstreams("win-hopping", p)?;
    }
    if wanted("win-sliding") {
        let op = Sliding::new(ms(10_000)).grace(grace).agg(parts()).map_err(invalid)?;
        let records = records(p, w2_key, 10_000);
        measure_window("win-sliding", p, rounds, &op, &records)?;
        quixstreams("win-sliding", p)?;
    }
    if wanted("win-session") {
        if p.k < SESSION_GROUPS {
            return Err(format!("win-session needs K >= {SESSION_GROUPS}, got K={}", p.k));
        }
        let op = Session::new(ms(30_000)).grace(grace).agg(parts()).map_err(invalid)?;
        let records = records(p, session_key, 30_000);
        measure_window("win-session", p, rounds, &op, &records)?;
        quixstreams("win-session", p)?;
    }
    Ok(())
}

/// With `QUIX_PYTHON` set, runs quixstreams' baseline of `workload` with
/// the same N, K and C, and prints its JSON line.
fn quixstreams(workload: &str, p: Params) -> Result<(), String> {
    let Some(python) = std::env::var_os("QUIX_PYTHON") else {
        return Ok(());
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/quixstreams/bench_windows.py"
    );
    eprintln!("  quixstreams-3.28.1 {workload}: running {script}");
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(workload)
        .env("N", p.n.to_string())
        .env("K", p.k.to_string())
        .env("C", p.c.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("running {} {script}: {e}", python.to_string_lossy()))?;
    if !out.status.success() {
        return Err(format!("{script} {workload} failed: {}", out.status));
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(n: u64, k: u64) -> Params {
        Params { n, k, c: 10_000 }
    }

    #[test]
    fn records_are_the_baselines() {
        // docs/performance.md's spot checks of the generator.
        let r = records(params(25_000, 20_000), w2_key, 0);
        let moved: Vec<(usize, u32, i64)> = r
            .events
            .iter()
            .enumerate()
            .filter(|(i, e)| e.ts != T0 + *i as i64)
            .map(|(i, e)| (i, e.key, e.ts - T0))
            .take(3)
            .collect();
        assert_eq!(moved, vec![(20010, 10, -1874), (20252, 252, -557), (20320, 320, -374)]);
        let s = records(params(6_000, 20_000), session_key, 30_000);
        let moved: Vec<(usize, u32, i64)> = s
            .events
            .iter()
            .enumerate()
            .filter(|(i, e)| e.ts != T0 + *i as i64)
            .map(|(i, e)| (i, e.key, e.ts - T0))
            .take(3)
            .collect();
        assert_eq!(
            moved,
            vec![(5032, 32, -31714), (5153, 153, -30497), (5220, 220, -30514)]
        );
        let keys: Vec<u64> = [0, 4999, 5000, 25000, 100_000]
            .iter()
            .map(|&i| session_key(i, 20_000))
            .collect();
        assert_eq!(keys, vec![0, 4999, 0, 5000, 0]);
    }
}
