//! Behaviour beyond the conformance kit: locking, snapshots read from other
//! threads while writes go on, and what survives a crash of the process
//! (a child process that aborts without closing) or a torn journal.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use state_core::{cf, Direction, Error, StorePartition, WriteBatch};
use state_fjall::{FjallOptions, FjallPartition, FjallSnapshot};

fn opts() -> FjallOptions {
    FjallOptions {
        open_max_retries: 2,
        open_retry_backoff: Duration::from_millis(10),
        ..FjallOptions::default()
    }
}

fn open(dir: &Path) -> state_core::Result<FjallPartition> {
    FjallPartition::open(dir, &opts())
}

/// Batch `i`: `a` in `default` and `b` in `other` both set to `i`, offset `i`.
fn batch(i: u64) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.put(cf::DEFAULT, b"a", &i.to_be_bytes());
    b.put("other", b"b", &i.to_be_bytes());
    b.put(cf::DEFAULT, format!("key{i:06}").as_bytes(), b"x");
    b.set_changelog_offset(i);
    b
}

fn as_u64(v: Option<Vec<u8>>) -> Option<u64> {
    v.map(|v| u64::from_be_bytes(v.try_into().expect("8 bytes")))
}

/// The partition's data agrees with its stored offset: batch `o` and every
/// earlier one are there, nothing later.
fn assert_consistent(p: &dyn StorePartition) -> Option<u64> {
    let offset = p.changelog_offset().unwrap();
    assert_eq!(
        as_u64(p.get(cf::DEFAULT, b"a").unwrap()),
        offset,
        "a agrees with the offset"
    );
    assert_eq!(
        as_u64(p.get("other", b"b").unwrap()),
        offset,
        "b agrees with the offset"
    );
    let n = p
        .iter_range(cf::DEFAULT, b"key", Some(b"kez"), Direction::Forward)
        .unwrap()
        .count() as u64;
    assert_eq!(
        n,
        offset.map_or(0, |o| o + 1),
        "every batch up to the offset, none after"
    );
    offset
}

#[test]
fn a_second_open_is_locked_until_the_first_handle_drops() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path()).unwrap();
    match open(dir.path()) {
        Err(Error::PartitionLocked { attempts, .. }) => assert_eq!(attempts, 2),
        Err(e) => panic!("expected PartitionLocked, got {e}"),
        Ok(_) => panic!("the same directory opened twice"),
    }
    drop(first);
    open(dir.path()).expect("reopen after drop");
}

/// A snapshot still alive keeps the database (and its lock) open after the
/// partition is dropped.
#[test]
fn an_open_snapshot_keeps_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path()).unwrap();
    p.write(&batch(0)).unwrap();
    let snap = p.snapshot();
    drop(p);
    assert!(
        matches!(open(dir.path()), Err(Error::PartitionLocked { .. })),
        "a live snapshot holds the database open"
    );
    assert_eq!(snap.get(cf::DEFAULT, b"a").unwrap(), Some(0u64.to_be_bytes().to_vec()));
    drop(snap);
    open(dir.path()).expect("reopen after the snapshot is dropped");
}

/// Readers on other threads see each batch entirely or not at all.
#[test]
fn snapshots_are_consistent_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(open(dir.path()).unwrap());
    p.write(&batch(0)).unwrap();
    let done = AtomicBool::new(false);
    let checked = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let view = p.snapshot();
                    let a = as_u64(view.get(cf::DEFAULT, b"a").unwrap());
                    std::thread::yield_now();
                    let b = as_u64(view.get("other", b"b").unwrap());
                    let o = as_u64(view.get(cf::METADATA, cf::CHANGELOG_OFFSET_KEY).unwrap());
                    assert_eq!(a, b, "a snapshot sees a batch entirely or not at all");
                    assert_eq!(a, o, "the offset travels with its batch");
                    checked.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Write until the readers have looked many times (however the
        // scheduler interleaves the threads), at least 2,000 batches.
        let mut i = 1;
        while i <= 2000 || (checked.load(Ordering::Relaxed) < 100 && i < 1_000_000) {
            p.write(&batch(i)).unwrap();
            i += 1;
        }
        done.store(true, Ordering::Relaxed);
    });
    assert!(checked.load(Ordering::Relaxed) >= 100, "readers ran");
    assert_consistent(&*p);
}

const CHILD_ENV: &str = "STATE_FJALL_CRASH_CHILD";

/// Run by the child: writes batches 0..100, persists after batch 49, then
/// aborts without closing.
#[test]
#[ignore = "run as a child process by the crash tests"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let p = open(Path::new(&dir)).unwrap();
    for i in 0..100 {
        p.write(&batch(i)).unwrap();
        if i == 49 {
            p.persist().unwrap();
        }
    }
    std::process::abort();
}

fn crash(dir: &Path) {
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--ignored", "--nocapture"])
        .env(CHILD_ENV, dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child aborted");
}

/// Each batch reaches the OS before `write` returns: after the process dies
/// every batch is there.
#[test]
fn a_process_crash_keeps_every_written_batch() {
    let dir = tempfile::tempdir().unwrap();
    crash(dir.path());
    let p = open(dir.path()).unwrap();
    assert_eq!(assert_consistent(&p), Some(99));
}

/// A journal cut short inside the last batch (a torn write at power loss)
/// loses that batch entirely and nothing else.
#[test]
fn a_torn_journal_drops_the_last_batch_whole() {
    let dir = tempfile::tempdir().unwrap();
    crash(dir.path());
    // The journal is preallocated (sparse): find where its data ends.
    let mut journals: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jnl"))
        .collect();
    journals.sort();
    let journal = journals.last().expect("a journal file");
    let bytes = std::fs::read(journal).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).expect("journal has data") + 1;
    // Cut 20 bytes off the end of the data: inside batch 99.
    let f = std::fs::OpenOptions::new().write(true).open(journal).unwrap();
    f.set_len((end - 20) as u64).unwrap();
    drop(f);
    let p = open(dir.path()).unwrap();
    assert_eq!(assert_consistent(&p), Some(98));
}

#[test]
fn snapshots_and_partitions_can_go_to_other_threads() {
    fn check<T: Send + Sync + 'static>() {}
    check::<FjallSnapshot>();
    check::<FjallPartition>();
}

/// State can hold personal data: a new partition directory and the parents
/// it creates are owner-only.
#[cfg(unix)]
#[test]
fn new_partition_directories_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store").join("stream").join("0");
    let _p = open(&path).unwrap();
    for d in [dir.path().join("store"), dir.path().join("store/stream"), path.clone()] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
}
