//! RocksDB-specific behaviour: locking, directory layout, persistence.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_core::{cf, Codec, Error, Store, StoreLocation, StorePartition, WriteBatch};
use state_rocksdb::{RocksDbBackend, RocksDbOptions, RocksDbPartition};
use state_txn::PartitionTransaction;

fn quick_retry() -> RocksDbOptions {
    RocksDbOptions {
        open_max_retries: 3,
        open_retry_backoff: Duration::from_millis(10),
        block_cache_size: 1 << 20,
        ..RocksDbOptions::default()
    }
}

#[test]
fn a_locked_partition_retries_then_fails_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0");
    let _held = RocksDbPartition::open(&path, &quick_retry()).unwrap();
    let err = RocksDbPartition::open(&path, &quick_retry()).unwrap_err();
    match &err {
        Error::PartitionLocked { path: p, attempts } => {
            assert_eq!(p, &path);
            assert_eq!(*attempts, 3);
        }
        other => panic!("expected PartitionLocked, got {other}"),
    }
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn a_locked_partition_opens_once_released() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0");
    let held = RocksDbPartition::open(&path, &quick_retry()).unwrap();
    held.put(cf::DEFAULT, b"k", b"v").unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        drop(held);
    });
    let opts = RocksDbOptions {
        open_max_retries: 20,
        open_retry_backoff: Duration::from_millis(20),
        ..quick_retry()
    };
    let p = RocksDbPartition::open(&path, &opts).unwrap();
    assert_eq!(p.get(cf::DEFAULT, b"k").unwrap().as_deref(), Some(&b"v"[..]));
    releaser.join().unwrap();
}

#[test]
fn the_stop_signal_cancels_waiting_for_a_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0");
    let _held = RocksDbPartition::open(&path, &quick_retry()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        s2.store(true, Ordering::Relaxed);
    });
    let opts = RocksDbOptions {
        open_max_retries: 1000,
        open_retry_backoff: Duration::from_secs(1),
        ..quick_retry()
    };
    let started = Instant::now();
    let err = RocksDbPartition::open_with(&path, &opts, None, &stop).unwrap_err();
    assert!(matches!(err, Error::OpenCancelled { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn partitions_live_in_numbered_directories() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("group").join("store").join("stream");
    let mut store = Store::new(
        RocksDbBackend::shared(quick_retry()),
        StoreLocation::new("store", &base),
    );
    store.assign_partition(0).unwrap();
    store.assign_partition(12).unwrap();
    assert!(base.join("0").join("CURRENT").exists());
    assert!(base.join("12").join("CURRENT").exists());
}

#[test]
fn a_transaction_survives_reopen_with_every_column_family() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0");
    {
        let p = Arc::new(RocksDbPartition::open(&path, &quick_retry()).unwrap());
        let mut t = PartitionTransaction::new(p.clone(), Codec::MsgPack, None);
        t.set("count", &41u64, b"user-1").unwrap();
        t.set_raw(cf::GLOBAL_COUNTER, b"__global_counter__".to_vec(), vec![1])
            .unwrap();
        t.prepare(None).unwrap();
        t.flush(Some(99)).unwrap();
    }
    let p = Arc::new(RocksDbPartition::open(&path, &quick_retry()).unwrap());
    let t = PartitionTransaction::new(p.clone(), Codec::MsgPack, None);
    assert_eq!(t.get::<_, u64>("count", b"user-1").unwrap(), Some(41));
    assert_eq!(p.changelog_offset().unwrap(), Some(99));
    assert_eq!(p.get(cf::GLOBAL_COUNTER, b"__global_counter__").unwrap(), Some(vec![1]));
    assert!(p.column_families().unwrap().contains(&cf::GLOBAL_COUNTER.to_string()));
}

#[test]
fn bulk_writes_are_durable_after_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0");
    {
        let p = RocksDbPartition::open(&path, &quick_retry()).unwrap();
        let mut b = WriteBatch::new();
        for i in 0..1000u32 {
            b.put(cf::DEFAULT, &i.to_be_bytes(), b"v");
        }
        b.set_changelog_offset(999);
        p.write_bulk(&b).unwrap();
        p.persist().unwrap();
    }
    let p = RocksDbPartition::open(&path, &quick_retry()).unwrap();
    assert_eq!(p.changelog_offset().unwrap(), Some(999));
    assert_eq!(
        p.get(cf::DEFAULT, &500u32.to_be_bytes()).unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn a_corrupt_offset_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = RocksDbPartition::open(dir.path().join("0"), &quick_retry()).unwrap();
    p.put(cf::METADATA, cf::CHANGELOG_OFFSET_KEY, b"bad").unwrap();
    let err = p.changelog_offset().unwrap_err();
    assert!(matches!(err, Error::CorruptChangelogOffset { len: 3 }), "{err}");
}

/// State can hold personal data: a new partition directory and the parents
/// it creates are owner-only.
#[cfg(unix)]
#[test]
fn new_partition_directories_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group").join("store").join("stream").join("0");
    let _p = RocksDbPartition::open(&path, &quick_retry()).unwrap();
    for d in [
        dir.path().join("group"),
        dir.path().join("group/store/stream"),
        path.clone(),
    ] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
}
