//! Snapshots with the manager, on the mock cluster under exactly-once (and
//! the main case under at-least-once):
//! member A counts the first input and takes snapshots in the background
//! after its checkpoints; member B, on A's state, counts a second input
//! (the changelog's tail after the snapshots); member C starts on an empty
//! directory and must restore from the newest usable snapshot plus that
//! tail only, with exact counts. Damaged snapshots (a corrupt file, an
//! unreadable manifest, an offset past the changelog's end) are skipped
//! for older ones, and with none usable the whole changelog is replayed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use state_fjall::{FjallBackend, FjallOptions};
use state_manager::state_snapshot::{Manifest, Retention, SnapshotScope, SnapshotStore, StoreOptions};
use state_manager::{
    Backend, ManagerConfig, ManagerEvent, ProcessingGuarantee, RocksDbBackend, RocksDbOptions, SnapshotSettings,
    StandbyPolicy, StateStoreManager, WriteBehindConfig,
};
use test_support::counting::*;
use test_support::metrics::Counters;

const EOS: ProcessingGuarantee = ProcessingGuarantee::ExactlyOnce;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    RocksDb,
    Fjall,
    /// RocksDB behind the store's write-behind cache.
    RocksDbWriteBehind,
}

impl Engine {
    fn backend(self) -> Arc<dyn Backend> {
        match self {
            Engine::RocksDb | Engine::RocksDbWriteBehind => RocksDbBackend::shared(RocksDbOptions::default()),
            Engine::Fjall => FjallBackend::shared(FjallOptions::default()),
        }
    }
}

/// Member `name` on `engine` with its state in `state` and `snapshots`.
fn join(
    bootstrap: &str,
    guarantee: ProcessingGuarantee,
    name: &str,
    state: tempfile::TempDir,
    engine: Engine,
    snapshots: SnapshotSettings,
) -> Member {
    member_with_spec(
        bootstrap,
        guarantee,
        name,
        "cooperative-sticky",
        Fate::Survives,
        state,
        |c| {
            c.backend = engine.backend();
            c.snapshots = Some(snapshots);
        },
        |spec| match engine {
            Engine::RocksDbWriteBehind => spec.write_behind(WriteBehindConfig::default()),
            _ => spec,
        },
    )
}

fn store(dir: &Path) -> SnapshotStore {
    SnapshotStore::open(&format!("file://{}", dir.display()), &StoreOptions::new())
        .unwrap()
        .with_retention(Retention {
            keep_newest: 10,
            ..Retention::default()
        })
}

/// Snapshots in `dir`, taken after every checkpoint that moved a partition.
fn taking(dir: &Path) -> SnapshotSettings {
    SnapshotSettings::new(store(dir)).every_records(Some(1)).every(None)
}

/// Snapshots in `dir`, used for restores only.
fn restoring(dir: &Path) -> SnapshotSettings {
    SnapshotSettings::new(store(dir)).restore_only()
}

fn scope(p: u32) -> SnapshotScope {
    SnapshotScope::new(CHANGELOG, p).unwrap()
}

/// Partition `p`'s readable manifests, oldest first.
fn manifests(snapshots: &Path, p: u32) -> Vec<Manifest> {
    store(snapshots)
        .list(&scope(p))
        .unwrap()
        .into_iter()
        .filter_map(|l| l.manifest.ok())
        .collect()
}

/// The object of manifest `id` of partition `p`.
fn manifest_file(snapshots: &Path, p: u32, id: &str) -> PathBuf {
    snapshots
        .join(CHANGELOG)
        .join(p.to_string())
        .join("manifests")
        .join(format!("{id}.json"))
}

/// The object of a snapshot file with checksum `sum` (hex) and `size`.
fn object_file(snapshots: &Path, p: u32, sum: &str, size: u64) -> PathBuf {
    snapshots
        .join(CHANGELOG)
        .join(p.to_string())
        .join("files")
        .join(format!("{sum}-{size}"))
}

/// The changelog's (low, high) watermarks of partition `p`.
fn watermarks(bootstrap: &str, p: u32) -> (i64, i64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    c.fetch_watermarks(CHANGELOG, p as i32, Duration::from_secs(10))
        .unwrap()
}

/// Runs a member to the end of the input, commits, closes it cleanly
/// (waiting for its snapshots) and returns its state directory.
fn run_and_close(mut m: Member) -> tempfile::TempDir {
    finish(&mut m);
    let dir = std::mem::replace(&mut m.dir, tempfile::tempdir().unwrap());
    let Member { consumer, manager, .. } = m;
    StateStoreManager::close(&manager, consumer).expect("a clean close");
    drop(manager);
    dir
}

/// `df`'s line for the file system holding `path`: what a failed
/// assertion about missing snapshots reports, as a full disk is the usual
/// cause and the snapshot taker only logs it.
fn disk_of(path: &Path) -> String {
    match std::process::Command::new("df").arg("-h").arg(path).output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("no output from df")
            .to_owned(),
        Err(e) => format!("df did not run: {e}"),
    }
}

/// The state after phases A and B: the cluster, both inputs' counts, the
/// snapshot store.
struct Prepared {
    guarantee: ProcessingGuarantee,
    cluster: test_support::kafka::Cluster,
    want: BTreeMap<String, u64>,
    snapshots: tempfile::TempDir,
    /// B's state directory (up to date).
    state: tempfile::TempDir,
}

/// A counts the input taking snapshots (again on its own state, with more
/// input, until every partition has at least `min_snapshots`); B, on A's
/// state, counts one more input without taking any (the changelog's tail).
fn prepare(engine: Engine, min_snapshots: usize) -> Prepared {
    prepare_with(engine, EOS, min_snapshots)
}

/// [`prepare`] under `guarantee`.
fn prepare_with(engine: Engine, guarantee: ProcessingGuarantee, min_snapshots: usize) -> Prepared {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let snapshots = tempfile::tempdir().unwrap();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    let mut add = |input: BTreeMap<String, u64>| {
        for (k, n) in input {
            *want.entry(k).or_default() += n;
        }
    };
    let mut state = tempfile::tempdir().unwrap();
    for round in 0.. {
        add(produce_input(&cluster));
        let a = join(&bootstrap, guarantee, "a", state, engine, taking(snapshots.path()));
        state = run_and_close(a);
        let fewest = (0..PARTITIONS as u32)
            .map(|p| manifests(snapshots.path(), p).len())
            .min()
            .unwrap_or(0);
        if fewest >= min_snapshots {
            break;
        }
        assert!(
            round < 5,
            "partitions with fewer than {min_snapshots} snapshots after {round} rounds (the snapshot store's \
             file system: {}; every snapshot fails on a full disk, and the taker logs why at warn)",
            disk_of(snapshots.path())
        );
    }
    add(produce_input(&cluster));
    let b = join(&bootstrap, guarantee, "b", state, engine, restoring(snapshots.path()));
    let state = run_and_close(b);
    Prepared {
        guarantee,
        cluster,
        want,
        snapshots,
        state,
    }
}

/// C starts on an empty directory with snapshots from `snapshots`; returns
/// how many changelog offsets each partition's restore replayed, the
/// counters of its metrics, and asserts exact counts.
fn restore_fresh(engine: Engine, prepared: &Prepared) -> (BTreeMap<i32, u64>, Counters) {
    restore_into(engine, prepared, tempfile::tempdir().unwrap())
}

/// [`restore_fresh`] with C's state in `state`.
fn restore_into(engine: Engine, prepared: &Prepared, state: tempfile::TempDir) -> (BTreeMap<i32, u64>, Counters) {
    let bootstrap = prepared.cluster.bootstrap_servers();
    let counters = Counters::default();
    let mut c = join(
        &bootstrap,
        prepared.guarantee,
        "c",
        state,
        engine,
        restoring(prepared.snapshots.path()),
    );
    let replayed = record_replays(&c);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    c.manager.lock().set_event_listener(move |e| {
        if let ManagerEvent::RestoredFromSnapshot {
            partition,
            changelog_offset,
            ..
        } = e
        {
            sink.lock().push((*partition, *changelog_offset));
        }
    });
    metrics::with_local_recorder(&counters, || finish(&mut c));
    assert_eq!(counts(&c), prepared.want, "exact counts after the restore");
    assert_eq!(c.processed, 0, "nothing left to process");
    let events = events.lock().clone();
    assert_eq!(
        events.len() as u64,
        counters.get(&format!(
            "kafka_state_snapshot_restores_total,store=counts,stream={INPUT},result=restored"
        )),
        "one event per snapshot restore: {events:?}"
    );
    let replayed = replayed.lock().clone();
    (replayed, counters)
}

/// How many changelog offsets each finished restore of `m` replayed, by
/// partition, filled in as its restores finish.
fn record_replays(m: &Member) -> Arc<Mutex<BTreeMap<i32, u64>>> {
    let replayed = Arc::new(Mutex::new(BTreeMap::new()));
    let seen = replayed.clone();
    m.manager.lock().set_progress_listener(move |p| {
        if p.finished {
            seen.lock().insert(p.changelog.partition(), p.total);
        }
    });
    replayed
}

fn restores(counters: &Counters, result: &str) -> u64 {
    counters.get(&format!(
        "kafka_state_snapshot_restores_total,store=counts,stream={INPUT},result={result}"
    ))
}

fn skipped(counters: &Counters, reason: &str) -> u64 {
    counters.get(&format!(
        "kafka_state_snapshots_skipped_total,store=counts,stream={INPUT},reason={reason}"
    ))
}

/// Which snapshot each partition should restore from: the changelog
/// offsets its restore must replay, `high - (offset + 1)`, or the whole
/// changelog without one.
fn expect_tail(prepared: &Prepared, pick: impl Fn(&[Manifest]) -> Option<u64>) -> BTreeMap<i32, u64> {
    let bootstrap = prepared.cluster.bootstrap_servers();
    (0..PARTITIONS as u32)
        .map(|p| {
            let (low, high) = watermarks(&bootstrap, p);
            let from = pick(&manifests(prepared.snapshots.path(), p)).map_or(low, |o| o as i64 + 1);
            (p as i32, (high - from) as u64)
        })
        .collect()
}

fn newest_offset(m: &[Manifest]) -> Option<u64> {
    m.last()?.changelog_offset
}

fn restores_from_the_newest_snapshot_and_replays_only_the_tail(engine: Engine, guarantee: ProcessingGuarantee) {
    let prepared = prepare_with(engine, guarantee, 1);
    let want = expect_tail(&prepared, newest_offset);
    let full = expect_tail(&prepared, |_| None);
    let (replayed, counters) = restore_fresh(engine, &prepared);
    eprintln!("{engine:?}: replayed {replayed:?} of {full:?}");
    assert_eq!(
        replayed, want,
        "each partition replays the changelog after its newest snapshot"
    );
    for p in 0..PARTITIONS {
        assert!(replayed[&p] < full[&p], "partition {p}: less than a full replay");
    }
    assert_eq!(restores(&counters, "restored"), PARTITIONS as u64);
    assert_eq!(restores(&counters, "none"), 0);
}

#[test]
fn rocksdb_restores_from_the_newest_snapshot_and_replays_only_the_tail() {
    restores_from_the_newest_snapshot_and_replays_only_the_tail(Engine::RocksDb, EOS);
}

/// The same under at-least-once (members that close cleanly: exact too).
#[test]
fn rocksdb_at_least_once_restores_from_the_newest_snapshot_and_replays_only_the_tail() {
    restores_from_the_newest_snapshot_and_replays_only_the_tail(Engine::RocksDb, ProcessingGuarantee::AtLeastOnce);
}

/// The same with the store behind a write-behind cache (its snapshot
/// flushes the cache first).
#[test]
fn write_behind_restores_from_the_newest_snapshot_and_replays_only_the_tail() {
    restores_from_the_newest_snapshot_and_replays_only_the_tail(Engine::RocksDbWriteBehind, EOS);
}

#[test]
fn fjall_restores_from_the_newest_snapshot_and_replays_only_the_tail() {
    restores_from_the_newest_snapshot_and_replays_only_the_tail(Engine::Fjall, EOS);
}

#[test]
fn a_corrupt_newest_snapshot_falls_back_to_an_older_one() {
    let prepared = prepare(Engine::RocksDb, 2);
    let dir = prepared.snapshots.path();
    for p in 0..PARTITIONS as u32 {
        let m = manifests(dir, p);
        let (newest, older) = (&m[m.len() - 1], &m[m.len() - 2]);
        // A file only the newest holds (files are shared between snapshots
        // by content): damaging it leaves the older snapshot whole.
        let only_newest = newest
            .files
            .iter()
            .find(|f| f.size > 0 && !older.files.iter().any(|o| o.xxh3_128 == f.xxh3_128))
            .expect("the newest snapshot has a file of its own");
        let object = object_file(dir, p, &only_newest.xxh3_128, only_newest.size);
        let mut bytes = std::fs::read(&object).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&object, &bytes).unwrap();
    }
    let want = expect_tail(&prepared, |m| m[m.len() - 2].changelog_offset);
    let (replayed, counters) = restore_fresh(Engine::RocksDb, &prepared);
    assert_eq!(
        replayed, want,
        "each partition replays after its second newest snapshot"
    );
    assert_eq!(skipped(&counters, "corrupt"), PARTITIONS as u64);
    assert_eq!(restores(&counters, "restored"), PARTITIONS as u64);
}

#[test]
fn unreadable_manifests_everywhere_fall_back_to_a_full_replay() {
    let prepared = prepare(Engine::RocksDb, 2);
    let dir = prepared.snapshots.path();
    let mut damaged = 0;
    for p in 0..PARTITIONS as u32 {
        for m in manifests(dir, p) {
            let file = manifest_file(dir, p, &m.id);
            let text = std::fs::read(&file).unwrap();
            std::fs::write(&file, &text[..text.len() / 2]).unwrap();
            damaged += 1;
        }
    }
    let want = expect_tail(&prepared, |_| None);
    let (replayed, counters) = restore_fresh(Engine::RocksDb, &prepared);
    assert_eq!(replayed, want, "the whole changelog replayed");
    assert_eq!(skipped(&counters, "bad_manifest"), damaged);
    assert_eq!(restores(&counters, "none"), PARTITIONS as u64);
    assert_eq!(restores(&counters, "restored"), 0);
}

#[test]
fn a_snapshot_past_the_changelog_end_is_skipped() {
    let prepared = prepare(Engine::RocksDb, 2);
    let dir = prepared.snapshots.path();
    for p in 0..PARTITIONS as u32 {
        let m = manifests(dir, p);
        let mut newest = m[m.len() - 1].clone();
        newest.changelog_offset = Some(1_000_000_000);
        std::fs::write(manifest_file(dir, p, &newest.id), newest.to_json()).unwrap();
    }
    let want = expect_tail(&prepared, |m| m[m.len() - 2].changelog_offset);
    let (replayed, counters) = restore_fresh(Engine::RocksDb, &prepared);
    assert_eq!(
        replayed, want,
        "each partition replays after its second newest snapshot"
    );
    assert_eq!(skipped(&counters, "past_end"), PARTITIONS as u64);
    assert_eq!(restores(&counters, "restored"), PARTITIONS as u64);
}

/// A partition whose files are damaged is moved to quarantine by
/// self-healing and, empty, restored from the newest snapshot plus the
/// tail; the others keep their local state and replay nothing.
#[test]
fn a_partition_moved_to_quarantine_restores_from_a_snapshot() {
    const DAMAGED: u32 = 1;
    let mut prepared = prepare(Engine::RocksDb, 1);
    let state = std::mem::replace(&mut prepared.state, tempfile::tempdir().unwrap());
    let dir = state
        .path()
        .join(GROUP)
        .join("counts")
        .join(INPUT)
        .join(DAMAGED.to_string());
    let mut truncated = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("MANIFEST-") {
            let len = std::fs::metadata(&path).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
            truncated += 1;
        }
    }
    assert!(truncated > 0, "a RocksDB manifest to damage");
    let tail = expect_tail(&prepared, newest_offset)[&(DAMAGED as i32)];
    let (replayed, counters) = restore_into(Engine::RocksDb, &prepared, state);
    for p in 0..PARTITIONS {
        let want = if p == DAMAGED as i32 { tail } else { 0 };
        assert_eq!(
            replayed.get(&p).copied().unwrap_or(0),
            want,
            "partition {p}: {replayed:?}"
        );
    }
    assert_eq!(
        counters.get(&format!(
            "kafka_state_partitions_rebuilt_total,store=counts,stream={INPUT},reason=corrupt"
        )),
        1
    );
    assert_eq!(restores(&counters, "restored"), 1);
}

/// Without a snapshot store configured nothing changes: a fresh member
/// replays the whole changelog (and [`ManagerConfig`] has no snapshots by
/// default).
#[test]
fn snapshots_are_off_by_default() {
    let config = ManagerConfig::new("g", "/tmp/unused");
    assert!(config.snapshots.is_none());
}

/// Snapshots are taken in the background after checkpoints, counted in
/// the metrics, and retention keeps the newest two of each partition
/// (files no manifest references are kept for the grace period: an upload
/// may be using them; state-snapshot's own tests delete them after it).
#[test]
fn background_snapshots_are_taken_counted_and_pruned() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let snapshots = tempfile::tempdir().unwrap();
    produce_input(&cluster);
    let counters = Counters::default();
    let keep_two = || {
        let store = SnapshotStore::open(&format!("file://{}", snapshots.path().display()), &StoreOptions::new())
            .unwrap()
            .with_retention(Retention {
                keep_newest: 2,
                ..Retention::default()
            });
        SnapshotSettings::new(store).every_records(Some(1)).every(None)
    };
    let a = member_with(
        &bootstrap,
        EOS,
        "a",
        "cooperative-sticky",
        Fate::Survives,
        tempfile::tempdir().unwrap(),
        |c| {
            c.snapshots = Some(keep_two());
        },
    );
    let state = metrics::with_local_recorder(&counters, || run_and_close(a));
    let taken = counters.get(&format!(
        "kafka_state_snapshots_taken_total,store=counts,stream={INPUT},result=ok"
    ));
    assert!(
        taken >= PARTITIONS as u64,
        "at least one snapshot per partition: {taken}"
    );
    assert_eq!(
        counters.get(&format!(
            "kafka_state_snapshots_taken_total,store=counts,stream={INPUT},result=failed"
        )),
        0
    );
    assert!(
        counters.get(&format!(
            "kafka_state_snapshot_uploaded_bytes_total,store=counts,stream={INPUT}"
        )) > 0
    );
    let local = RocksDbBackend::shared(RocksDbOptions::default());
    for p in 0..PARTITIONS as u32 {
        let kept = manifests(snapshots.path(), p);
        assert!(
            (1..=2).contains(&kept.len()),
            "partition {p}: {} snapshots kept",
            kept.len()
        );
        // The newest snapshot is not past what the partition holds.
        let location = state_core::StoreLocation::new("counts", state.path().join(GROUP).join("counts").join(INPUT));
        let partition = local.open_partition(&location, p).unwrap();
        let stored = partition.changelog_offset().unwrap();
        assert!(kept.last().unwrap().changelog_offset <= stored, "partition {p}");
    }
}

/// A standby replica whose store partition has no local state starts from
/// a snapshot too, then tails the changelog: D joins C's group on an empty
/// directory keeping standbys of every partition; those of C's partitions
/// come from snapshots (events on D for partitions D does not own) and
/// catch up with the changelog.
#[test]
fn standbys_without_local_state_start_from_a_snapshot() {
    let prepared = prepare(Engine::RocksDb, 1);
    let bootstrap = prepared.cluster.bootstrap_servers();
    let dir = prepared.snapshots.path();
    let mut c = join(
        &bootstrap,
        EOS,
        "c",
        tempfile::tempdir().unwrap(),
        Engine::RocksDb,
        restoring(dir),
    );
    own_all(&mut c);
    let restored_on_d = Arc::new(Mutex::new(BTreeSet::new()));
    let sink = restored_on_d.clone();
    let mut d = member_with(
        &bootstrap,
        EOS,
        "d",
        "cooperative-sticky",
        Fate::Survives,
        tempfile::tempdir().unwrap(),
        |c| {
            c.snapshots = Some(restoring(dir));
            c.standby = StandbyPolicy::AllPartitions;
        },
    );
    d.manager.lock().set_event_listener(move |e| {
        if let ManagerEvent::RestoredFromSnapshot { partition, .. } = e {
            sink.lock().insert(*partition);
        }
    });
    settle(&mut c, &mut d);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        step(&mut c, 1);
        step(&mut d, 1);
        let owned: BTreeSet<u32> = d.ready_partitions().into_iter().map(|p| p as u32).collect();
        let report = d.manager.lock().standby_report();
        let standbys: BTreeSet<u32> = report
            .iter()
            .filter(|r| r.lag == 0 && r.applied_offset.is_some())
            .map(|r| r.partition)
            .collect();
        let others: BTreeSet<u32> = (0..PARTITIONS as u32).filter(|p| !owned.contains(p)).collect();
        let from_snapshots = restored_on_d.lock().clone();
        if !others.is_empty() && others.is_subset(&standbys) && others.is_subset(&from_snapshots) {
            // Each caught-up standby holds at least its snapshot's offset.
            for r in report.iter().filter(|r| others.contains(&r.partition)) {
                let newest = newest_offset(&manifests(dir, r.partition));
                assert!(r.applied_offset >= newest, "{r:?}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "D's standbys of {others:?} did not start from snapshots and catch up: {report:?}, from snapshots {from_snapshots:?}"
        );
    }
}

/// A bytes threshold alone takes snapshots: with neither a record count
/// nor an interval, a member whose threshold is a few changelog records'
/// bytes snapshots every partition, and one whose threshold is far above
/// what the same input sends takes none (its changelog moved all the
/// same).
#[test]
fn a_bytes_threshold_alone_decides_when_snapshots_are_taken() {
    let by_bytes = |dir: &Path, bytes: u64| {
        SnapshotSettings::new(store(dir))
            .every_records(None)
            .every(None)
            .every_bytes(Some(bytes))
    };
    for (threshold, snapshots_expected) in [(64, true), (1 << 40, false)] {
        let cluster = cluster();
        let bootstrap = cluster.bootstrap_servers();
        let snapshots = tempfile::tempdir().unwrap();
        produce_input(&cluster);
        let a = join(
            &bootstrap,
            EOS,
            "a",
            tempfile::tempdir().unwrap(),
            Engine::RocksDb,
            by_bytes(snapshots.path(), threshold),
        );
        drop(run_and_close(a));
        for p in 0..PARTITIONS as u32 {
            let (_, high) = watermarks(&bootstrap, p);
            assert!(high > 0, "partition {p}: the changelog moved");
            let taken = manifests(snapshots.path(), p).len();
            if snapshots_expected {
                assert!(taken >= 1, "threshold {threshold}: partition {p} has no snapshot");
            } else {
                assert_eq!(taken, 0, "threshold {threshold}: partition {p}");
            }
        }
    }
}

/// A snapshot object that holds a download still: a named pipe in place of
/// the object, which hands its reader the object's bytes one at a time,
/// every [`Self::TRICKLE`], but never the last one until the test lets it
/// go (then the rest: the download completes, its checksum right). The
/// reader thus sees a download that moves, but slowly, as a big one over a
/// slow link would: it gets a chunk now and then (so it can notice a
/// cancellation between chunks) and cannot finish while the gate holds.
/// The object is put back in place of the pipe once the gate lets go or
/// its reader went away, for later readers. Unix only (`mkfifo`).
#[cfg(unix)]
struct DownloadGate {
    /// Set once a download opened the pipe (and waits for its bytes).
    reader_waiting: Arc<std::sync::atomic::AtomicBool>,
    /// Set once the reader closed the pipe before the gate let go (a write
    /// to it failed): the download stopped without the object's bytes.
    reader_gone: Arc<std::sync::atomic::AtomicBool>,
    /// Set if the gate let the download go by itself after [`Self::HOLD`]
    /// because the test never did (the test then failed to get that far).
    timed_out: Arc<std::sync::atomic::AtomicBool>,
    release: Option<std::sync::mpsc::Sender<()>>,
    feeder: Option<std::thread::JoinHandle<()>>,
}

#[cfg(unix)]
impl DownloadGate {
    /// The longest the gate holds a download.
    const HOLD: Duration = Duration::from_secs(45);
    /// How often the gate hands its reader one more byte.
    const TRICKLE: Duration = Duration::from_millis(50);

    /// Replaces `object` by a pipe that holds its first reader.
    fn install(object: &Path) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let aside = object.with_extension("held");
        std::fs::rename(object, &aside).unwrap();
        let made = std::process::Command::new("mkfifo").arg(object).status().unwrap();
        assert!(made.success(), "mkfifo {}", object.display());
        let reader_waiting = Arc::new(AtomicBool::new(false));
        let reader_gone = Arc::new(AtomicBool::new(false));
        let timed_out = Arc::new(AtomicBool::new(false));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (waiting, gone, timeout, object) = (
            reader_waiting.clone(),
            reader_gone.clone(),
            timed_out.clone(),
            object.to_owned(),
        );
        let feeder = std::thread::spawn(move || {
            use std::io::Write;
            use std::sync::mpsc::RecvTimeoutError;
            // Opening the pipe's write end waits for its reader.
            let mut pipe = std::fs::OpenOptions::new().write(true).open(&object).unwrap();
            waiting.store(true, Ordering::SeqCst);
            let bytes = std::fs::read(&aside).unwrap();
            let deadline = Instant::now() + Self::HOLD;
            let mut sent = 0;
            let let_go = loop {
                match released.recv_timeout(Self::TRICKLE) {
                    Ok(()) => break true,
                    Err(RecvTimeoutError::Disconnected) => break false,
                    Err(RecvTimeoutError::Timeout) => {}
                }
                if Instant::now() >= deadline {
                    timeout.store(true, Ordering::SeqCst);
                    break true;
                }
                // Never the last byte: the download cannot end while held.
                if sent + 1 < bytes.len() {
                    if pipe.write_all(&bytes[sent..=sent]).is_err() {
                        gone.store(true, Ordering::SeqCst);
                        break false;
                    }
                    sent += 1;
                }
            };
            // The object back in place of the pipe first: whoever opens it
            // next reads the file.
            std::fs::rename(&aside, &object).unwrap();
            if let_go {
                // The reader may have given up (a test failing): ignore a
                // broken pipe.
                let _ = pipe.write_all(&bytes[sent..]);
            }
        });
        DownloadGate {
            reader_waiting,
            reader_gone,
            timed_out,
            release: Some(release),
            feeder: Some(feeder),
        }
    }

    fn reader_waiting(&self) -> bool {
        self.reader_waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn reader_gone(&self) -> bool {
        self.reader_gone.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets the held download go on (it reads the rest of the object's
    /// bytes), or, if its reader went away, just puts the object back.
    fn release(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
        if let Some(feeder) = self.feeder.take() {
            feeder.join().unwrap();
        }
        assert!(
            !self.timed_out.load(std::sync::atomic::Ordering::SeqCst),
            "the gate let the download go by itself: the test was stuck while it held it"
        );
    }
}

/// The snapshot downloads in `state`'s scratch directory (`restore-*`).
fn downloads_in(state: &Path) -> Vec<String> {
    let scratch = state.join(GROUP).join(".snapshots");
    std::fs::read_dir(scratch)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("restore-"))
                .collect()
        })
        .unwrap_or_default()
}

/// The partition whose snapshot download the tests below hold.
const HELD: u32 = 0;

/// Holds the next download of partition [`HELD`]'s newest snapshot in
/// `snapshots` (RocksDB's) mid-way.
#[cfg(unix)]
fn hold_download(snapshots: &Path) -> DownloadGate {
    let newest = manifests(snapshots, HELD).pop().unwrap();
    // Not an SST or blob file: a local store hard-links those (it would
    // link the pipe). The largest other (RocksDB's OPTIONS file, several
    // KiB): the gate trickles it for longer than it holds.
    let held = newest
        .files
        .iter()
        .filter(|f| !f.path.ends_with(".sst") && !f.path.ends_with(".blob"))
        .max_by_key(|f| f.size)
        .expect("a file the download copies");
    let trickled = DownloadGate::HOLD.as_millis() / DownloadGate::TRICKLE.as_millis();
    assert!(
        u128::from(held.size) > trickled,
        "{} ({} bytes) is too small for the gate to hold for {:?}",
        held.path,
        held.size,
        DownloadGate::HOLD
    );
    DownloadGate::install(&object_file(snapshots, HELD, &held.xxh3_128, held.size))
}

/// A partition revoked while its snapshot is being downloaded: C starts on
/// an empty directory, and partition 0's download is held mid-way (one of
/// its files is a pipe nobody writes to yet). C's partitions are revoked
/// (it unsubscribes) while the download waits: the revocation must not
/// wait for it, and the partition must not count as restored. C subscribes
/// again and gets every partition back, before the download is let go
/// (`back_while_held`: the partition waits for the download, then replays
/// the tail) or after it finished (its data stayed as the partition's
/// local state). Either way the download's scratch directory is gone,
/// partition 0 replays only the changelog after the snapshot, and every
/// count is exact.
#[cfg(unix)]
fn revoked_during_its_snapshot_download(back_while_held: bool) {
    let prepared = prepare(Engine::RocksDb, 1);
    let bootstrap = prepared.cluster.bootstrap_servers();
    let dir = prepared.snapshots.path();
    let mut gate = hold_download(dir);
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_owned();
    let mut c = join(&bootstrap, EOS, "c", state, Engine::RocksDb, restoring(dir));
    let counters = Counters::default();
    metrics::with_local_recorder(&counters, || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !gate.reader_waiting() {
            step(&mut c, 1);
            assert!(Instant::now() < deadline, "partition {HELD}'s download never started");
        }
        assert!(!downloads_in(&state_dir).is_empty(), "a download in progress");
        assert!(c.manager.lock().is_assigned(INPUT, HELD));
        assert!(!c.manager.lock().is_ready(INPUT, HELD), "restoring while it downloads");

        // Revoked mid-download: the revocation does not wait for it.
        c.consumer.unsubscribe();
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.manager.lock().is_assigned(INPUT, HELD) {
            step(&mut c, 1);
            assert!(Instant::now() < deadline, "partition {HELD} was not revoked");
        }
        assert!(!downloads_in(&state_dir).is_empty(), "the download is still held");

        let tail = expect_tail(&prepared, newest_offset)[&(HELD as i32)];
        let replayed = record_replays(&c);
        if back_while_held {
            // Assigned again while the download is held: it waits for it.
            c.consumer.subscribe(&[INPUT]).unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !c.manager.lock().is_assigned(INPUT, HELD) {
                step(&mut c, 1);
                assert!(Instant::now() < deadline, "partition {HELD} was not assigned again");
            }
            for _ in 0..10 {
                step(&mut c, 1);
            }
            assert!(
                !c.manager.lock().is_ready(INPUT, HELD),
                "ready before its download ended"
            );
            gate.release();
        } else {
            // Let go, the download finishes in the background and its scratch
            // directory goes; its data stays as the partition's local state.
            gate.release();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !downloads_in(&state_dir).is_empty() {
                step(&mut c, 1);
                assert!(
                    Instant::now() < deadline,
                    "the download's scratch directory stayed: {:?}",
                    downloads_in(&state_dir)
                );
            }
            c.consumer.subscribe(&[INPUT]).unwrap();
        }
        finish(&mut c);
        assert_eq!(counts(&c), prepared.want, "exact counts after the revoked download");
        assert_eq!(c.processed, 0, "nothing left to process");
        assert_eq!(
            replayed.lock().get(&(HELD as i32)).copied(),
            Some(tail),
            "partition {HELD} replays only the changelog after its snapshot"
        );
        // Any further download would finish (and be counted) by now.
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            step(&mut c, 1);
        }
        assert!(downloads_in(&state_dir).is_empty());
    });
    // One download per partition: assigning it back while its download
    // runs starts no second one, and a revoked one's is not repeated.
    assert_eq!(restores(&counters, "restored"), PARTITIONS as u64);
    assert_eq!(restores(&counters, "none"), 0);
}

#[cfg(unix)]
#[test]
fn a_partition_revoked_during_its_snapshot_download_restores_right_when_assigned_after_it() {
    revoked_during_its_snapshot_download(false);
}

#[cfg(unix)]
#[test]
fn a_partition_revoked_during_its_snapshot_download_and_assigned_back_waits_for_it() {
    revoked_during_its_snapshot_download(true);
}

/// The manager closed while a snapshot download is held: the close cancels
/// the download and returns without waiting for it (the held file trickles
/// in a byte at a time: the download stops between two of its chunks), and
/// dropping the manager returns at once too, both while the gate still
/// holds the download (it cannot have finished). The download let go of
/// the object and left no scratch directory; a member started on the same
/// directory finds partition [`HELD`] without usable state, restores it from
/// the snapshot again, replays only the changelog after it and counts
/// exactly.
#[cfg(unix)]
#[test]
fn a_manager_closed_during_a_snapshot_download_cancels_it() {
    /// Far less than [`DownloadGate::HOLD`], far more than a cancellation
    /// takes (a chunk every [`DownloadGate::TRICKLE`]).
    const PROMPT: Duration = Duration::from_secs(10);
    let prepared = prepare(Engine::RocksDb, 1);
    let bootstrap = prepared.cluster.bootstrap_servers();
    let dir = prepared.snapshots.path();
    let mut gate = hold_download(dir);
    let mut c = join(
        &bootstrap,
        EOS,
        "c",
        tempfile::tempdir().unwrap(),
        Engine::RocksDb,
        restoring(dir),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !gate.reader_waiting() {
        step(&mut c, 1);
        assert!(Instant::now() < deadline, "partition {HELD}'s download never started");
    }
    let state = std::mem::replace(&mut c.dir, tempfile::tempdir().unwrap());
    assert!(!downloads_in(state.path()).is_empty(), "a download in progress");
    let Member { consumer, manager, .. } = c;
    let started = Instant::now();
    StateStoreManager::close(&manager, consumer).expect("a clean close");
    let closed_in = started.elapsed();
    let (dropped_tx, dropped_rx) = std::sync::mpsc::channel();
    let dropper = std::thread::spawn(move || {
        let started = Instant::now();
        drop(manager);
        let _ = dropped_tx.send(started.elapsed());
    });
    let dropped_in = match dropped_rx.recv_timeout(PROMPT) {
        Ok(took) => took,
        Err(_) => {
            // Let the download go so the thread ends, then fail.
            gate.release();
            let _ = dropper.join();
            panic!("dropping the manager waited for the held download (more than {PROMPT:?})");
        }
    };
    dropper.join().expect("dropping the manager");
    assert!(closed_in < PROMPT, "the close took {closed_in:?}");
    let deadline = Instant::now() + PROMPT;
    while !gate.reader_gone() {
        assert!(
            Instant::now() < deadline,
            "the download still reads the held object after the close and the drop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        downloads_in(state.path()).is_empty(),
        "the cancelled download left {:?}",
        downloads_in(state.path())
    );
    eprintln!("closed in {closed_in:?}, dropped in {dropped_in:?}, with the download held");
    gate.release();

    let tail = expect_tail(&prepared, newest_offset)[&(HELD as i32)];
    let counters = Counters::default();
    let replayed = metrics::with_local_recorder(&counters, || {
        let mut d = join(&bootstrap, EOS, "d", state, Engine::RocksDb, restoring(dir));
        let replayed = record_replays(&d);
        finish(&mut d);
        assert_eq!(counts(&d), prepared.want, "exact counts after the cancelled download");
        assert_eq!(d.processed, 0, "nothing left to process");
        replayed
    });
    assert_eq!(
        replayed.lock().get(&(HELD as i32)).copied(),
        Some(tail),
        "partition {HELD} replays only the changelog after its snapshot"
    );
    assert!(
        restores(&counters, "restored") >= 1,
        "partition {HELD} had no usable local state: it restored from its snapshot again"
    );
    assert_eq!(restores(&counters, "none"), 0);
}
