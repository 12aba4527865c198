//! Bad input on disk: undecodable values, truncated window and timestamped
//! keys, a corrupt database directory, a full disk. Each is a typed error,
//! never a panic, and what was committed before is intact.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use state_core::testkit::FailingWrites;
use state_core::{cf, keys, Codec, Direction, Error, StorePartition};
use state_rocksdb::{RocksDbOptions, RocksDbPartition};
use state_txn::{
    ExpireOptions, PartitionTransaction, TimestampedConfig, TimestampedTransaction, TxnError, WindowedTransaction,
};

fn open(dir: &Path) -> Arc<RocksDbPartition> {
    Arc::new(RocksDbPartition::open(dir, &RocksDbOptions::default()).unwrap())
}

fn malformed(err: &TxnError) -> bool {
    matches!(err, TxnError::Core(Error::MalformedKey { .. }))
}

#[test]
fn an_undecodable_value_is_a_decode_error_and_other_keys_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    let mut t = PartitionTransaction::new(p.clone(), Codec::MsgPack, None);
    t.set("good", &5u64, b"k").unwrap();
    t.commit().unwrap();
    // Something else wrote this key: not MessagePack for a u64.
    let key = PartitionTransaction::new(p.clone(), Codec::MsgPack, None)
        .encode_key("bad", b"k")
        .unwrap();
    p.put(cf::DEFAULT, &key, b"\xc1\xff").unwrap();

    let t = PartitionTransaction::new(p, Codec::MsgPack, None);
    let err = t.get::<_, u64>("bad", b"k").unwrap_err();
    assert!(
        matches!(err, TxnError::Core(Error::Decode { codec: "msgpack", .. })),
        "{err}"
    );
    assert!(err.to_string().contains("msgpack"), "{err}");
    assert_eq!(t.get::<_, u64>("good", b"k").unwrap(), Some(5));
}

#[test]
fn a_truncated_window_key_is_a_malformed_key_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    let mut w = WindowedTransaction::new(p.clone(), Codec::MsgPack, None);
    w.update_window(0, 10, &1u64, 5, b"page").unwrap();
    w.update_window(10, 20, &2u64, 15, b"page").unwrap();
    w.prepare(None).unwrap();
    w.flush(Some(3)).unwrap();
    // A window key cut after its start timestamp.
    let mut truncated = keys::window_key(b"page", 5, 0);
    truncated.truncate(truncated.len() - 8);
    p.put(cf::DEFAULT, &truncated, &Codec::MsgPack.encode(&9u64).unwrap())
        .unwrap();

    let mut w = WindowedTransaction::new(p.clone(), Codec::MsgPack, None);
    let err = w.get_windows::<u64>(-1, 100, b"page", Direction::Forward).unwrap_err();
    assert!(malformed(&err), "{err}");
    let err = w
        .expire_windows::<u64, u64>(25, b"page", ExpireOptions::keep())
        .map(|_| ())
        .unwrap_err();
    assert!(malformed(&err), "{err}");
    // Committed windows are intact.
    let w = WindowedTransaction::new(p.clone(), Codec::MsgPack, None);
    assert_eq!(w.get_window::<u64>(10, 20, b"page").unwrap(), Some(2));
    assert_eq!(p.changelog_offset().unwrap(), Some(3));
}

#[test]
fn a_truncated_timestamped_key_is_a_malformed_key_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    let config = TimestampedConfig {
        grace_ms: 1_000,
        keep_duplicates: true,
    };
    let mut t = TimestampedTransaction::new(p.clone(), Codec::MsgPack, None, config);
    t.set_for_timestamp(10, &"ten", b"k").unwrap();
    t.prepare(None).unwrap();
    t.flush(Some(1)).unwrap();
    // prefix | ts, without the counter.
    let mut truncated = keys::timestamped_key(b"k", 50, 0);
    truncated.truncate(truncated.len() - 8);
    p.put(cf::DEFAULT, &truncated, &Codec::MsgPack.encode("bad").unwrap())
        .unwrap();

    let t = TimestampedTransaction::new(p.clone(), Codec::MsgPack, None, config);
    let err = t.get_latest::<String>(100, b"k").unwrap_err();
    assert!(malformed(&err), "{err}");
    let t = TimestampedTransaction::new(p, Codec::MsgPack, None, config);
    assert_eq!(t.get_latest::<String>(20, b"k").unwrap().as_deref(), Some("ten"));
}

#[test]
fn a_corrupt_directory_is_reported_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    {
        let p = open(dir.path());
        let mut t = PartitionTransaction::new(p, Codec::MsgPack, None);
        t.set("count", &3u64, b"k").unwrap();
        t.prepare(None).unwrap();
        t.flush(Some(7)).unwrap();
    }
    let current = dir.path().join("CURRENT");
    let good = std::fs::read(&current).unwrap();
    std::fs::write(&current, b"MANIFEST-999999\n").unwrap();
    let listing = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            // RocksDB rotates its info log on every open; data files must not change.
            .filter(|n| !n.starts_with("LOG"))
            .collect();
        v.sort();
        v
    };
    let before = listing(dir.path());
    let err = RocksDbPartition::open(dir.path(), &RocksDbOptions::default()).unwrap_err();
    assert!(matches!(err, Error::PartitionCorrupt { .. }), "{err}");
    assert!(err.to_string().contains("recover it from its changelog") || err.to_string().contains("changelog"));
    assert_eq!(listing(dir.path()), before, "nothing deleted or created");

    // Repaired by the operator: everything committed is still there.
    std::fs::write(&current, good).unwrap();
    let p = open(dir.path());
    assert_eq!(p.changelog_offset().unwrap(), Some(7));
    let t = PartitionTransaction::new(p, Codec::MsgPack, None);
    assert_eq!(t.get::<_, u64>("count", b"k").unwrap(), Some(3));
}

/// A RocksDB partition whose writes fail with ENOSPC while `full` is set.
fn full_disk(dir: &Path, full: Arc<AtomicBool>) -> Arc<FailingWrites<RocksDbPartition>> {
    let inner = RocksDbPartition::open(dir, &RocksDbOptions::default()).unwrap();
    let path = inner.path().to_owned();
    Arc::new(FailingWrites::new(inner, move |_| {
        full.load(Ordering::SeqCst).then(|| Error::Io {
            path: path.clone(),
            source: std::io::Error::from_raw_os_error(28), // ENOSPC
        })
    }))
}

#[test]
fn a_full_disk_fails_the_commit_and_keeps_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let full = Arc::new(AtomicBool::new(false));
    let disk = full_disk(dir.path(), full.clone());
    let mut t = PartitionTransaction::new(disk.clone(), Codec::MsgPack, None);
    t.set("count", &1u64, b"k").unwrap();
    t.prepare(None).unwrap();
    t.flush(Some(1)).unwrap();

    full.store(true, Ordering::SeqCst);
    let mut t = PartitionTransaction::new(disk.clone(), Codec::MsgPack, None);
    t.set("count", &2u64, b"k").unwrap();
    t.prepare(None).unwrap();
    let err = t.flush(Some(2)).unwrap_err();
    assert!(
        matches!(&err, TxnError::Core(Error::Io { source, .. }) if source.raw_os_error() == Some(28)),
        "{err}"
    );
    assert_eq!(disk.changelog_offset().unwrap(), Some(1));

    // Space freed: the data of the failed flush is not there, a new
    // checkpoint commits.
    full.store(false, Ordering::SeqCst);
    let mut t = PartitionTransaction::new(disk.clone(), Codec::MsgPack, None);
    assert_eq!(t.get::<_, u64>("count", b"k").unwrap(), Some(1));
    t.set("count", &2u64, b"k").unwrap();
    t.prepare(None).unwrap();
    t.flush(Some(2)).unwrap();
    assert_eq!(disk.changelog_offset().unwrap(), Some(2));
}
