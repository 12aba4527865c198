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

use rdkafka::consumer::Consumer;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_changelog::changelog_topic_name;
use state_manager::{ProcessingGuarantee, StandbyPolicy};
use test_support::counting::{Fate, Member, MemberConfig};
use test_support::kafka::{mock_cluster, partition_of_key, produce_keyed};

use crate::params::Params;

const INPUT: &str = "takeover-input";
const GROUP: &str = "takeover";
const PARTITIONS: i32 = 4;
/// Records that arrive after the members are settled, before the kill.
const LATE: u64 = 2_000;

/// An exactly-once member committing every `c` records; `dies` ones leave
/// the group 3 s after they stop polling (a "killed" member here is dropped
/// without a close, so its client's heartbeats go on; only the poll
/// interval notices it is gone).
fn member(bootstrap: &str, name: &str, standby: bool, dies: bool, c: u64) -> Result<Member, String> {
    let config = MemberConfig {
        guarantee: ProcessingGuarantee::ExactlyOnce,
        fate: if dies { Fate::Dies } else { Fate::Survives },
        poll_timeout: Duration::from_millis(20),
        commit_every: c as usize,
        consumer_properties: vec![("fetch.queue.backoff.ms".into(), "5".into())],
        ..MemberConfig::new(bootstrap, GROUP, INPUT, name)
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    Member::join(
        &config,
        dir,
        |cfg| {
            cfg.recovery.batch_records = c as usize;
            if standby {
                cfg.standby = StandbyPolicy::AllPartitions;
            }
        },
        |spec| spec,
    )
    .map_err(|e| e.to_string())
}

fn step(m: &mut Member, max: usize) -> Result<Vec<i32>, String> {
    m.step(max).map_err(|e| e.to_string())
}

fn caught_up(m: &Member) -> Result<bool, String> {
    m.caught_up().map_err(|e| e.to_string())
}

fn produce(bootstrap: &str, from: u64, n: u64, k: u64) -> Result<(), String> {
    produce_keyed(bootstrap, INPUT, PARTITIONS, from..from + n, k)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// One takeover; returns (seconds from the kill to the survivor processing
/// every partition the dead member owned, records replayed, sum of counts).
fn takeover(p: Params, standby: bool) -> Result<(f64, u64, u64), String> {
    let changelog = changelog_topic_name(GROUP, INPUT, "counts");
    let cluster = mock_cluster(&[(INPUT, PARTITIONS), (changelog.as_str(), PARTITIONS)]).map_err(|e| e.to_string())?;
    let bootstrap = cluster.bootstrap_servers();
    // A dies by silence: the group notices 3 s after its last poll.
    let mut a = member(&bootstrap, "a", standby, true, p.c)?;
    let mut b = member(&bootstrap, "b", standby, false, p.c)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let ready = |m: &Member| m.ready_partitions();
    while ready(&a).is_empty() || ready(&b).is_empty() || ready(&a).len() + ready(&b).len() != PARTITIONS as usize {
        step(&mut a, 5)?;
        step(&mut b, 5)?;
        if Instant::now() > deadline {
            return Err("the group did not settle".into());
        }
    }
    produce(&bootstrap, 0, p.n, p.k)?;
    loop {
        step(&mut a, 2_000)?;
        step(&mut b, 2_000)?;
        if a.since_commit == 0 && b.since_commit == 0 && caught_up(&a)? && caught_up(&b)? {
            break;
        }
        for m in [&mut a, &mut b] {
            m.commit().map_err(|e| e.to_string())?;
        }
        if Instant::now() > deadline {
            return Err("the members did not process the input in time".into());
        }
    }
    if standby {
        // The survivor's replicas of A's partitions have applied everything.
        loop {
            step(&mut b, 10)?;
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
        for partition in step(&mut b, 100)? {
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
        step(&mut b, 2_000)?;
        b.commit().map_err(|e| e.to_string())?;
        if ready(&b).len() == PARTITIONS as usize && caught_up(&b)? {
            break;
        }
        if Instant::now() > deadline + Duration::from_secs(120) {
            return Err("the survivor did not finish".into());
        }
    }
    let mut sum = 0u64;
    for k in 0..p.k {
        let partition = partition_of_key(k, PARTITIONS) as u32;
        sum += b.count_of(&format!("k{k}"), partition).map_err(|e| e.to_string())?;
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
