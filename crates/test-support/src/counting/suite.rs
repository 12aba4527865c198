//! The fixture of the manager's mock-cluster suites: group [`GROUP`]
//! counting [`INPUT`], and helpers that panic on any error.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use state_manager::{KeyValueStore, ManagerConfig, ProcessingGuarantee, StoreSpec};

use super::member::{count, Fate, Member, MemberConfig};
use crate::kafka::{mock_cluster, partition_of_key, produce_keyed, Cluster};

/// The consumer group (and the manager's group id).
pub const GROUP: &str = "g";
/// The input topic.
pub const INPUT: &str = "input";
/// The changelog topic of the `counts` store.
pub const CHANGELOG: &str = "changelog__g--input--counts";
/// Partitions of the input and of the changelog.
pub const PARTITIONS: i32 = 4;
/// Keys of the input.
pub const KEYS: usize = 12;
/// Records of the input.
pub const RECORDS: usize = 240;

/// A mock cluster with the input and the changelog topic.
pub fn cluster() -> Cluster {
    mock_cluster(&[(INPUT, PARTITIONS), (CHANGELOG, PARTITIONS)]).expect("a mock cluster with the suite's topics")
}

/// Produces the input: [`RECORDS`] records over [`KEYS`] keys (`k<n>`, on
/// partition `n % PARTITIONS`). Returns each key's count.
pub fn produce_input(cluster: &Cluster) -> BTreeMap<String, u64> {
    produce_keyed(
        &cluster.bootstrap_servers(),
        INPUT,
        PARTITIONS,
        0..RECORDS as u64,
        KEYS as u64,
    )
    .expect("produce the input")
}

/// A member with its state in a fresh temporary directory.
pub fn member(bootstrap: &str, guarantee: ProcessingGuarantee, name: &str, strategy: &str, fate: Fate) -> Member {
    member_with(
        bootstrap,
        guarantee,
        name,
        strategy,
        fate,
        tempfile::tempdir().expect("a temporary directory"),
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

/// [`member_with`] with a chance to adjust the counts store's spec too
/// (MessagePack values).
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
    let config = MemberConfig {
        guarantee,
        strategy: strategy.to_owned(),
        fate,
        ..MemberConfig::new(bootstrap, GROUP, INPUT, name)
    };
    let adjust = |c: &mut ManagerConfig| {
        c.kafka_timeout = Duration::from_secs(10);
        adjust(c);
    };
    Member::join(&config, dir, adjust, spec).unwrap_or_else(|e| panic!("member {name}: {e}"))
}

/// Polls up to `max` records, processing each; commits every 10 records.
pub fn step(m: &mut Member, max: usize) {
    if let Err(e) = m.step(max) {
        panic!("member error: {e}");
    }
    if let Err(e) = m.manager.lock().maintain(&m.consumer) {
        panic!("manager error: {e}");
    }
}

/// Partitions assigned to `m` whose state is restored (processing them is allowed).
pub fn assigned(m: &Member) -> usize {
    m.ready_partitions().len()
}

/// Steps `m` one record at a time until it owns every partition, restored;
/// panics after 30 s.
pub fn own_all(m: &mut Member) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while assigned(m) != PARTITIONS as usize {
        step(m, 1);
        assert!(Instant::now() < deadline, "no assignment");
    }
}

/// Steps `a` and `b` one record at a time until both own restored
/// partitions and together all of them; panics after 60 s.
pub fn settle(a: &mut Member, b: &mut Member) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while assigned(a) == 0 || assigned(b) == 0 || assigned(a) + assigned(b) != PARTITIONS as usize {
        step(a, 1);
        step(b, 1);
        assert!(Instant::now() < deadline, "the group did not stabilise in time");
    }
}

/// Runs `m` until it owns every partition and has read all of them, then
/// commits, and waits for a pipelined checkpoint to land (so that
/// [`counts`], which reads local state, sees all of it).
pub fn finish(m: &mut Member) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        step(m, 50);
        if assigned(m) == PARTITIONS as usize {
            m.commit().unwrap_or_else(|e| panic!("commit: {e}"));
            if m.caught_up().unwrap_or_else(|e| panic!("reading offsets: {e}")) {
                let mut mgr = m.manager.lock();
                mgr.finish_checkpoint(&m.consumer)
                    .unwrap_or_else(|e| panic!("finishing the checkpoint: {e}"));
                return;
            }
        }
        assert!(Instant::now() < deadline, "the surviving member did not finish in time");
    }
}

/// Every key's count in `m`'s state (which must own every partition).
pub fn counts(m: &Member) -> BTreeMap<String, u64> {
    (0..KEYS)
        .map(|k| {
            let key = format!("k{k}");
            let partition = partition_of_key(k as u64, PARTITIONS) as u32;
            let n = m
                .count_of(&key, partition)
                .unwrap_or_else(|e| panic!("reading the count of {key}: {e}"));
            (key, n)
        })
        .collect()
}

/// Processes records until `m` has processed `total`, without committing.
pub fn process_until(m: &mut Member, total: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while m.processed < total {
        let Some(Ok(msg)) = m.consumer.poll(Duration::from_millis(50)) else {
            m.manager.lock().maintain(&m.consumer).unwrap();
            assert!(Instant::now() < deadline, "input did not arrive in time");
            continue;
        };
        count(&mut m.manager.lock(), &m.counts, INPUT, &msg).unwrap_or_else(|e| panic!("processing: {e}"));
        m.processed += 1;
    }
}

/// A dies mid-interval (no commit, no leave-group), its state is deleted;
/// B takes over its partitions. Counts must equal the input under
/// exactly-once and never be lower under at-least-once.
pub fn failover(guarantee: ProcessingGuarantee, strategy: &str, adjust: &dyn Fn(&mut ManagerConfig)) {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let tempdir = || tempfile::tempdir().expect("a temporary directory");
    let mut a = member_with(&bootstrap, guarantee, "a", strategy, Fate::Dies, tempdir(), adjust);
    let mut b = member_with(&bootstrap, guarantee, "b", strategy, Fate::Survives, tempdir(), adjust);
    // Input arrives once the group is stable, so the only rebalance with
    // work in flight is the failover itself.
    settle(&mut a, &mut b);
    let truth = produce_input(&cluster);
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.processed < 45 || assigned(&b) == 0 {
        step(&mut a, 3);
        step(&mut b, 3);
        assert!(Instant::now() < deadline, "members did not share the work in time");
    }
    assert!(a.since_commit > 0, "A dies with processed but uncommitted records");
    // Crash: no commit, no close, local state gone.
    let a_dir = a.dir.path().to_owned();
    std::mem::forget(a);
    std::fs::remove_dir_all(&a_dir).expect("delete A's state");

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
