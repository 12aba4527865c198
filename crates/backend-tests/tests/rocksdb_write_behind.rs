//! RocksDB behind `state_cache::WriteBehindPartition`: what is on disk after
//! a crash (the cache dropped unflushed, RocksDB closed and opened again),
//! and both conformance kits on RocksDB behind write-behind caches with
//! small bounds.

use std::sync::Arc;
use std::time::Duration;

use state_cache::testkit::WriteBehindHarness;
use state_cache::{WriteBehindConfig, WriteBehindPartition};
use state_core::{cf, Direction, StorePartition, WriteBatch};
use state_rocksdb::{RocksDbOptions, RocksDbPartition};

use test_support::rocksdb::RocksHarness;

fn open(dir: &std::path::Path) -> Arc<RocksDbPartition> {
    Arc::new(RocksDbPartition::open(dir, &RocksDbOptions::default()).expect("open"))
}

fn checkpoint(wb: &WriteBehindPartition, n: u64) {
    let mut b = WriteBatch::new();
    b.put(cf::DEFAULT, format!("k{}", n % 3).as_bytes(), &n.to_be_bytes());
    b.put_new(cf::DEFAULT, format!("new{n}").as_bytes(), b"x");
    if n > 1 {
        b.delete(cf::DEFAULT, format!("new{}", n - 1).as_bytes());
    }
    b.set_changelog_offset(n);
    wb.write(&b).expect("write");
}

fn all(p: &dyn StorePartition) -> Vec<(Vec<u8>, Vec<u8>)> {
    p.iter_range(cf::DEFAULT, b"", None, Direction::Forward)
        .expect("iterate")
        .collect::<Result<_, _>>()
        .expect("items")
}

#[test]
fn a_crash_leaves_the_last_flush_on_disk_with_its_offset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = WriteBehindConfig {
        max_dirty_age: Duration::from_secs(3600),
        ..WriteBehindConfig::default()
    };
    let seen_at_3;
    {
        let rocks = open(dir.path());
        let wb = WriteBehindPartition::new(rocks.clone(), config).expect("wrap");
        for n in 1..=3 {
            checkpoint(&wb, n);
        }
        wb.flush().expect("flush");
        seen_at_3 = all(&wb);
        for n in 4..=6 {
            checkpoint(&wb, n);
        }
        assert_eq!(wb.changelog_offset().expect("offset"), Some(6));
        // The crash: the cache goes, RocksDB keeps what it was given.
    }
    let rocks = open(dir.path());
    assert_eq!(
        rocks.changelog_offset().expect("offset"),
        Some(3),
        "the last flush's offset"
    );
    assert_eq!(all(&*rocks), seen_at_3, "and exactly its data");
    assert!(
        rocks.get(cf::DEFAULT, b"new1").expect("get").is_none()
            && rocks.get(cf::DEFAULT, b"new2").expect("get").is_none(),
        "keys created and deleted between flushes never reached RocksDB"
    );
    let wb = WriteBehindPartition::new(rocks.clone(), config).expect("wrap");
    for n in 4..=6 {
        checkpoint(&wb, n);
    }
    wb.persist().expect("persist");
    let after = all(&wb);
    drop(wb);
    drop(rocks);
    let rocks = open(dir.path());
    assert_eq!(rocks.changelog_offset().expect("offset"), Some(6));
    assert_eq!(all(&*rocks), after);
}

/// The shared RocksDB harness behind write-behind caches (not durable:
/// see `WriteBehindHarness`).
fn rocks_behind_caches(age: Duration) -> WriteBehindHarness<RocksHarness> {
    WriteBehindHarness::new(
        RocksHarness::new(0),
        WriteBehindConfig {
            max_bytes: 32 << 10,
            max_dirty_bytes: 8 << 10,
            max_dirty_age: age,
            ..WriteBehindConfig::default()
        },
    )
}

mod lazy {
    use super::*;
    state_core::conformance_tests!(rocks_behind_caches(Duration::from_secs(3600)));
    state_txn::txn_conformance_tests!(rocks_behind_caches(Duration::from_secs(3600)));
}

mod eager {
    use super::*;
    state_txn::txn_conformance_tests!(rocks_behind_caches(Duration::ZERO));
}
