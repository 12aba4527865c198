//! Self-healing on both persistent backends, on the mock cluster: a
//! partition whose files are damaged (a corrupt or missing table or journal
//! file, a truncated manifest) or whose stored changelog offset is past the
//! changelog's end is moved to `<group>/.quarantine` and rebuilt from its
//! changelog under exactly-once, with exact counts afterwards, while the
//! other partitions keep processing. Also: the `Fail` policy touches
//! nothing, and the state-dir cleaner removes what is no longer assigned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_core::{
    Backend, BackendInfo, Direction, KvIter, ReadView, Result, StoreLocation, StorePartition, WriteBatch,
};
use state_fjall::{FjallBackend, FjallOptions};
use state_manager::{
    CorruptionPolicy, ManagerError, ProcessingGuarantee, RocksDbBackend, RocksDbOptions, StateStoreManager,
};
use test_support::counting::*;
use test_support::metrics::Counters;

// ---------------------------------------------------------------- fixture

/// Records per restore batch of the slow members.
const BATCH_RECORDS: usize = 5;

/// A backend whose restores are slow (every bulk batch sleeps), so a
/// rebuild lasts long enough to watch the other partitions go on.
#[derive(Debug)]
struct SlowRestores {
    inner: Arc<dyn Backend>,
    delay: Duration,
    /// When set, the next bulk write (a restore's) fails as a corrupt
    /// partition would, and the flag clears.
    fail_next_bulk: Arc<AtomicBool>,
}

impl Backend for SlowRestores {
    fn info(&self) -> BackendInfo {
        self.inner.info()
    }

    fn open_partition(&self, store: &StoreLocation, partition: u32) -> Result<Arc<dyn StorePartition>> {
        Ok(Arc::new(SlowPartition {
            inner: self.inner.open_partition(store, partition)?,
            delay: self.delay,
            fail_next_bulk: self.fail_next_bulk.clone(),
            dir: store.partition_dir(partition),
        }))
    }

    fn destroy_store(&self, store: &StoreLocation) -> Result<()> {
        self.inner.destroy_store(store)
    }
}

struct SlowPartition {
    inner: Arc<dyn StorePartition>,
    delay: Duration,
    fail_next_bulk: Arc<AtomicBool>,
    dir: PathBuf,
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
        if self.fail_next_bulk.swap(false, Ordering::SeqCst) {
            return Err(state_core::Error::PartitionCorrupt {
                backend: "test",
                path: self.dir.clone(),
                reason: "Corruption: block checksum mismatch (injected)".into(),
            });
        }
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

#[derive(Clone, Copy, Debug)]
enum Engine {
    RocksDb,
    Fjall,
}

impl Engine {
    fn backend(self) -> Arc<dyn Backend> {
        match self {
            Engine::RocksDb => RocksDbBackend::shared(RocksDbOptions::default()),
            Engine::Fjall => FjallBackend::shared(FjallOptions::default()),
        }
    }
}

const EOS: ProcessingGuarantee = ProcessingGuarantee::ExactlyOnce;
/// The damaged partition.
const DAMAGED: u32 = 1;

/// `<state>/g/counts/input/<p>`.
fn partition_dir(state: &Path, p: u32) -> PathBuf {
    state.join(GROUP).join("counts").join(INPUT).join(p.to_string())
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Member A (exactly-once, on `engine`) counts the first input on its own,
/// commits and closes; returns its state directory, kept.
fn first_run(cluster_bootstrap: &str, engine: Engine) -> tempfile::TempDir {
    let mut a = member_with(
        cluster_bootstrap,
        EOS,
        "a",
        "cooperative-sticky",
        Fate::Survives,
        tempfile::tempdir().unwrap(),
        |c| c.backend = engine.backend(),
    );
    finish(&mut a);
    let dir = std::mem::replace(&mut a.dir, tempfile::tempdir().unwrap());
    let Member { consumer, manager, .. } = a;
    StateStoreManager::close(&manager, consumer).expect("a clean close");
    drop(manager);
    dir
}

/// The whole scenario: a first run counts the input; `damage` is done to
/// partition 1's directory; more input arrives; member B, on the same
/// state directory with slow restores, must rebuild partition 1 (reason
/// `reason` in the metric), process the other partitions meanwhile, and
/// end with exact counts, A's directory in quarantine.
fn rebuilt_after(engine: Engine, reason: &str, damage: impl FnOnce(&Path)) {
    healed_after(engine, Some(reason), false, damage);
}

/// Member "b" on `state` (which holds a damaged partition) with slow
/// restores: 60 records of partition 1 in batches of 5, 0.5 s each, so a
/// rebuild lasts about 6 s, long enough on a loaded machine to see the
/// others process. `fail_a_restore_write`: its next restore write fails
/// as a corrupt partition would.
fn slow_rebuilder(bootstrap: &str, engine: Engine, state: tempfile::TempDir, fail_a_restore_write: bool) -> Member {
    member_with(bootstrap, EOS, "b", "cooperative-sticky", Fate::Survives, state, |c| {
        c.backend = Arc::new(SlowRestores {
            inner: engine.backend(),
            delay: Duration::from_millis(500),
            fail_next_bulk: Arc::new(AtomicBool::new(fail_a_restore_write)),
        });
        c.recovery.batch_records = BATCH_RECORDS;
    })
}

/// [`rebuilt_after`], or with `reason` `None`: the engine repairs the
/// damage itself when it opens the partition (fjall replays what its
/// journal still holds and drops a damaged journal), the stored offset
/// falls back with the data, and the restore replays the rest; nothing is
/// quarantined, and the counts are just as exact.
///
/// With `fail_a_restore_write`, the first write of a restore fails as a
/// corrupt partition would (the damage found by the restore, not the open).
fn healed_after(engine: Engine, reason: Option<&str>, fail_a_restore_write: bool, damage: impl FnOnce(&Path)) {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let first = produce_input(&cluster);
    let state = first_run(&bootstrap, engine);
    let damaged = partition_dir(state.path(), DAMAGED);
    eprintln!("{engine:?} partition files: {:?}", files(&damaged));
    damage(&damaged);
    let second = produce_input(&cluster);
    let state_path = state.path().to_owned();

    let counters = Counters::default();
    let mut b = slow_rebuilder(&bootstrap, engine, state, fail_a_restore_write);
    let mut during_rebuild = 0usize;
    metrics::with_local_recorder(&counters, || {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let seen = b.step(1).unwrap_or_else(|e| panic!("member error: {e} ({e:?})"));
            let mgr = b.manager.lock();
            let rebuilding = mgr.is_assigned(INPUT, DAMAGED) && !mgr.is_ready(INPUT, DAMAGED);
            drop(mgr);
            if rebuilding {
                assert!(
                    !seen.contains(&(DAMAGED as i32)),
                    "no record of the rebuilding partition is processed"
                );
                during_rebuild += seen.len();
            }
            if assigned(&b) == PARTITIONS as usize {
                break;
            }
            assert!(Instant::now() < deadline, "partition {DAMAGED} was not rebuilt in time");
        }
        finish(&mut b);
    });
    eprintln!("{engine:?} {reason:?}: {during_rebuild} records of the other partitions processed during the rebuild");
    assert!(
        during_rebuild > 0,
        "the other partitions were processed during the rebuild"
    );

    let want: BTreeMap<String, u64> = first.iter().map(|(k, n)| (k.clone(), n + second[k])).collect();
    assert_eq!(counts(&b), want, "exact counts after the rebuild");
    assert_eq!(b.processed, RECORDS, "the second input only, each record once");
    let metric =
        |reason: &str| format!("kafka_state_partitions_rebuilt_total,store=counts,stream={INPUT},reason={reason}");
    let quarantine = state_path.join(GROUP).join(".quarantine");
    let Some(reason) = reason else {
        for r in ["corrupt", "offset_past_end"] {
            assert_eq!(counters.get(&metric(r)), 0, "no rebuild: the engine repaired it");
        }
        assert!(!quarantine.exists(), "nothing quarantined");
        return;
    };
    assert_eq!(counters.get(&metric(reason)), 1, "one rebuild counted");

    let quarantined: Vec<PathBuf> = std::fs::read_dir(&quarantine)
        .expect("a quarantine folder")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    let name = quarantined[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with(&format!("--counts--{INPUT}--{DAMAGED}")), "{name}");
    assert!(
        !files(&quarantined[0]).is_empty(),
        "the original files are kept in quarantine"
    );
}

/// A partition whose damage opens fine and is found by a read while
/// processing (a data block whose checksum fails): the checkpoint in
/// progress is dropped, the partition moved to quarantine and rebuilt from
/// its changelog while the others go on, and the counts are exact.
fn rebuilt_after_a_read(engine: Engine, damage: impl FnOnce(&Path)) {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let first = produce_input(&cluster);
    let state = first_run(&bootstrap, engine);
    let damaged = partition_dir(state.path(), DAMAGED);
    damage(&damaged);
    let second = produce_input(&cluster);
    let state_path = state.path().to_owned();

    let counters = Counters::default();
    let mut b = slow_rebuilder(&bootstrap, engine, state, false);
    let mut during_rebuild = 0usize;
    let mut rebuilt = false;
    let mut ready_before_rebuild = false;
    let mut third = BTreeMap::new();
    metrics::with_local_recorder(&counters, || {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let seen = b.step(1).unwrap_or_else(|e| panic!("member error: {e} ({e:?})"));
            let mgr = b.manager.lock();
            let rebuilding = mgr.is_assigned(INPUT, DAMAGED) && !mgr.is_ready(INPUT, DAMAGED);
            if mgr.is_ready(INPUT, DAMAGED) && counters.get(&rebuilt_metric("corrupt")) == 0 {
                ready_before_rebuild = true;
            }
            drop(mgr);
            if rebuilding && counters.get(&rebuilt_metric("corrupt")) == 1 {
                if !rebuilt {
                    // Input for the other partitions to process while this
                    // one is rebuilt (the second may be done by now).
                    third = produce_input(&cluster);
                }
                rebuilt = true;
                assert!(
                    !seen.contains(&(DAMAGED as i32)),
                    "no record of the rebuilding partition is processed"
                );
                during_rebuild += seen.len();
            }
            if rebuilt && assigned(&b) == PARTITIONS as usize {
                break;
            }
            assert!(Instant::now() < deadline, "partition {DAMAGED} was not rebuilt in time");
        }
        finish(&mut b);
    });
    eprintln!("{engine:?}: {during_rebuild} records of the other partitions processed during the rebuild");
    assert!(
        ready_before_rebuild,
        "the partition opened and restored: the damage was found by a read while processing"
    );
    assert!(
        during_rebuild > 0,
        "the other partitions were processed during the rebuild"
    );
    let want: BTreeMap<String, u64> = first
        .iter()
        .map(|(k, n)| (k.clone(), n + second[k] + third.get(k).copied().unwrap_or(0)))
        .collect();
    assert_eq!(counts(&b), want, "exact counts after the rebuild");
    assert_eq!(counters.get(&rebuilt_metric("corrupt")), 1, "one rebuild counted");
    let quarantined: Vec<PathBuf> = std::fs::read_dir(state_path.join(GROUP).join(".quarantine"))
        .expect("a quarantine folder")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert!(
        !files(&quarantined[0]).is_empty(),
        "the original files are kept in quarantine"
    );
}

fn rebuilt_metric(reason: &str) -> String {
    format!("kafka_state_partitions_rebuilt_total,store=counts,stream={INPUT},reason={reason}")
}

/// Inverts bytes 8..24 of `file`: inside its first data block (tables
/// start with their data blocks), not in the index or footer an open reads.
fn clobber_first_block(file: &Path) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(file).unwrap();
    let mut b = [0u8; 16];
    f.seek(SeekFrom::Start(8)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(8)).unwrap();
    f.write_all(&b.map(|x| !x)).unwrap();
}

// ------------------------------------------------------------ the damages

/// Files under `dir` whose name ends with `suffix`, largest first.
fn named(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = files(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)));
    v
}

/// Overwrites the last `n` bytes of `file` (a table's footer and index).
fn clobber_tail(file: &Path, n: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let len = std::fs::metadata(file).unwrap().len();
    let n = n.min(len);
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.seek(SeekFrom::Start(len - n)).unwrap();
    f.write_all(&vec![0xA5; n as usize]).unwrap();
}

fn truncate_half(file: &Path) {
    let len = std::fs::metadata(file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
}

/// Makes RocksDB write partition 1's memtables to table files (a bulk
/// write, then persist, flushes them), so that there are tables to damage.
fn flush_to_tables(dir: &Path) {
    let store = StoreLocation::new("counts", dir.parent().unwrap());
    let p = Engine::RocksDb.backend().open_partition(&store, DAMAGED).unwrap();
    let mut batch = WriteBatch::new();
    batch.set_changelog_offset(p.changelog_offset().unwrap().expect("a stored offset"));
    p.write_bulk(&batch).unwrap();
    p.persist().unwrap();
}

/// Overwrites the first `n` bytes of `file` (a journal's header).
fn clobber_head(file: &Path, n: usize) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.write_all(&vec![0xA5; n]).unwrap();
}

/// fjall's files of partition `dir` whose path matches `pick`.
fn fjall_files(dir: &Path, pick: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let found: Vec<PathBuf> = files(dir)
        .into_iter()
        .filter(|p| pick(&p.strip_prefix(dir).unwrap().to_string_lossy()))
        .collect();
    assert!(!found.is_empty(), "no such fjall file in {:?}", files(dir));
    found
}

fn is_journal(p: &str) -> bool {
    p.ends_with(".jnl")
}

fn is_table(p: &str) -> bool {
    p.contains("/tables/")
}

/// The newest version file (fjall's manifest) of each keyspace.
fn is_version(p: &str) -> bool {
    p.rsplit('/')
        .next()
        .is_some_and(|f| f.starts_with('v') && f[1..].parse::<u32>().is_ok())
}

/// Stores changelog offset 1,000,000 in the partition (past the end).
fn offset_past_end(engine: Engine) -> impl FnOnce(&Path) {
    move |dir: &Path| {
        let store = StoreLocation::new("counts", dir.parent().unwrap());
        let p = engine.backend().open_partition(&store, DAMAGED).unwrap();
        let mut batch = WriteBatch::new();
        batch.set_changelog_offset(1_000_000);
        p.write(&batch).unwrap();
        p.persist().unwrap();
    }
}

// ---------------------------------------------------------------- RocksDB

#[test]
fn rocksdb_corrupt_table_file_is_rebuilt() {
    rebuilt_after(Engine::RocksDb, "corrupt", |dir| {
        flush_to_tables(dir);
        let sst = named(dir, ".sst");
        assert!(!sst.is_empty(), "a table file to corrupt");
        clobber_tail(&sst[0], 256);
    });
}

#[test]
fn rocksdb_missing_table_file_is_rebuilt() {
    rebuilt_after(Engine::RocksDb, "corrupt", |dir| {
        flush_to_tables(dir);
        let sst = named(dir, ".sst");
        assert!(!sst.is_empty(), "a table file to delete");
        std::fs::remove_file(&sst[0]).unwrap();
    });
}

#[test]
fn rocksdb_truncated_manifest_is_rebuilt() {
    rebuilt_after(Engine::RocksDb, "corrupt", |dir| {
        let manifest: Vec<PathBuf> = files(dir)
            .into_iter()
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("MANIFEST-"))
            .collect();
        assert!(!manifest.is_empty(), "a manifest to truncate");
        for m in manifest {
            truncate_half(&m);
        }
    });
}

/// The data column family's table has a damaged data block: the open and
/// the restore do not read it, the first read of a key in it does.
#[test]
fn rocksdb_damage_found_by_a_read_while_processing_is_rebuilt() {
    rebuilt_after_a_read(Engine::RocksDb, |dir| {
        flush_to_tables(dir);
        let metadata = state_core::cf::METADATA.as_bytes();
        let data: Vec<PathBuf> = named(dir, ".sst")
            .into_iter()
            .filter(|p| {
                let bytes = std::fs::read(p).unwrap();
                !bytes.windows(metadata.len()).any(|w| w == metadata)
            })
            .collect();
        assert!(
            !data.is_empty(),
            "a table of the data column family in {:?}",
            files(dir)
        );
        for f in data {
            clobber_first_block(&f);
        }
    });
}

#[test]
fn rocksdb_offset_past_the_changelog_end_is_rebuilt() {
    rebuilt_after(Engine::RocksDb, "offset_past_end", offset_past_end(Engine::RocksDb));
}

/// The partition is gone (a lost disk): its restore from the changelog's
/// start finds the new copy damaged on its first write; it is rebuilt once
/// more, and exact.
#[test]
fn rocksdb_damage_found_by_a_restore_is_rebuilt() {
    healed_after(Engine::RocksDb, Some("corrupt"), true, |dir| {
        std::fs::remove_dir_all(dir).unwrap();
    });
}

// ------------------------------------------------------------------ fjall

/// fjall's journal recovery tolerates a damaged journal (it keeps what it
/// can read), so the engine heals this one itself: the counts must still
/// be exact.
#[test]
fn fjall_corrupt_journal_is_repaired_by_the_engine() {
    healed_after(Engine::Fjall, None, false, |dir| {
        for j in fjall_files(dir, is_journal) {
            clobber_head(&j, 64);
        }
    });
}

/// A missing journal: fjall starts a new one over its flushed tables.
#[test]
fn fjall_missing_journal_is_repaired_by_the_engine() {
    healed_after(Engine::Fjall, None, false, |dir| {
        for j in fjall_files(dir, is_journal) {
            std::fs::remove_file(j).unwrap();
        }
    });
}

#[test]
fn fjall_corrupt_table_file_is_rebuilt() {
    rebuilt_after(Engine::Fjall, "corrupt", |dir| {
        let tables = fjall_files(dir, is_table);
        clobber_tail(&tables[0], 256);
    });
}

#[test]
fn fjall_missing_table_file_is_rebuilt() {
    rebuilt_after(Engine::Fjall, "corrupt", |dir| {
        let tables = fjall_files(dir, is_table);
        std::fs::remove_file(&tables[0]).unwrap();
    });
}

#[test]
fn fjall_truncated_manifest_is_rebuilt() {
    rebuilt_after(Engine::Fjall, "corrupt", |dir| {
        for v in fjall_files(dir, is_version) {
            truncate_half(&v);
        }
    });
}

#[test]
fn fjall_offset_past_the_changelog_end_is_rebuilt() {
    rebuilt_after(Engine::Fjall, "offset_past_end", offset_past_end(Engine::Fjall));
}

// --------------------------------------------------- policy and cleaner

#[test]
fn the_fail_policy_reports_the_damage_and_touches_nothing() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    produce_input(&cluster);
    let state = first_run(&bootstrap, Engine::RocksDb);
    let damaged = partition_dir(state.path(), DAMAGED);
    for m in files(&damaged)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("MANIFEST-"))
    {
        truncate_half(&m);
    }
    // RocksDB rotates its info log on every open attempt: its own doing.
    let data_files = |d: &Path| -> Vec<PathBuf> {
        files(d)
            .into_iter()
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("LOG"))
            .collect()
    };
    let before = data_files(&damaged);
    let state_path = state.path().to_owned();
    let mut b = member_with(&bootstrap, EOS, "b", "cooperative-sticky", Fate::Survives, state, |c| {
        c.on_corrupt = CorruptionPolicy::Fail;
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let err = loop {
        if let Err(e) = b.step(1) {
            break e;
        }
        assert!(Instant::now() < deadline, "the damage was not reported");
    };
    let msg = err.to_string();
    assert!(msg.contains("corrupt"), "{msg}");
    assert_eq!(data_files(&damaged), before, "nothing moved or deleted");
    assert!(!state_path.join(GROUP).join(".quarantine").exists());
}

#[test]
fn a_damaged_store_without_a_changelog_cannot_be_rebuilt() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    produce_input(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().to_owned();
    let mut a = member_with_spec(
        &bootstrap,
        EOS,
        "a",
        "cooperative-sticky",
        Fate::Survives,
        dir,
        |_| {},
        |s| s.without_changelog(),
    );
    finish(&mut a);
    let kept = std::mem::replace(&mut a.dir, tempfile::tempdir().unwrap());
    let Member { consumer, manager, .. } = a;
    StateStoreManager::close(&manager, consumer).expect("a clean close");
    drop(manager);
    let damaged = partition_dir(&state_path, DAMAGED);
    for m in files(&damaged)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("MANIFEST-"))
    {
        truncate_half(&m);
    }
    let mut b = member_with_spec(
        &bootstrap,
        EOS,
        "b",
        "cooperative-sticky",
        Fate::Survives,
        kept,
        |_| {},
        |s| s.without_changelog(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let err = loop {
        if let Err(e) = b.step(1) {
            break e;
        }
        assert!(Instant::now() < deadline, "the damage was not reported");
    };
    match err {
        MemberError::Manager(ManagerError::CannotRebuild { partition, path, .. }) => {
            assert_eq!(partition, DAMAGED);
            assert_eq!(path, damaged);
        }
        other => panic!("expected CannotRebuild, got {other}"),
    }
    assert!(damaged.exists(), "nothing moved");
}

#[test]
fn the_cleaner_removes_partitions_no_longer_assigned_here() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    // Partitions 7 and 8 of the store were left here by an earlier
    // assignment; 8 is held by another process's lock (simulated by an
    // open handle).
    let store = StoreLocation::new("counts", dir.path().join(GROUP).join("counts").join(INPUT));
    let backend = RocksDbBackend::shared(RocksDbOptions::default());
    drop(backend.open_partition(&store, 7).unwrap());
    let held = backend.open_partition(&store, 8).unwrap();
    let mut m = member_with(
        &bootstrap,
        EOS,
        "solo",
        "cooperative-sticky",
        Fate::Survives,
        dir,
        |c| {
            c.state_cleanup_delay = Some(Duration::from_millis(400));
            c.backend = RocksDbBackend::shared(RocksDbOptions {
                open_max_retries: 2,
                open_retry_backoff: Duration::from_millis(10),
                ..RocksDbOptions::default()
            });
        },
    );
    let counters = Counters::default();
    metrics::with_local_recorder(&counters, || {
        own_all(&mut m);
        let deadline = Instant::now() + Duration::from_secs(30);
        while store.partition_dir(7).exists() {
            step(&mut m, 1);
            std::thread::sleep(Duration::from_millis(20));
            assert!(Instant::now() < deadline, "partition 7 was not removed");
        }
        // A few more sweeps: the held partition stays.
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            step(&mut m, 1);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    assert!(store.partition_dir(8).exists(), "a partition held elsewhere is kept");
    for p in 0..PARTITIONS as u32 {
        assert!(store.partition_dir(p).exists(), "assigned partition {p} is kept");
    }
    drop(held);
    // The cleaner's thread bumps the counter on its own thread: check the
    // directory, and that no leftover of the removal remains.
    let leftovers: Vec<_> = std::fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
