//! RocksDB behind `state_cache::WriteBehindPartition`: what is on disk after
//! a crash (the cache dropped unflushed, RocksDB closed and opened again),
//! and both conformance kits on RocksDB behind write-behind caches with
//! small bounds.

use std::sync::Arc;
use std::time::Duration;

use state_cache::{WriteBehindBackend, WriteBehindConfig, WriteBehindPartition};
use state_core::testkit::Harness;
use state_core::{cf, Backend, BackendInfo, Direction, StoreLocation, StorePartition, WriteBatch};
use state_rocksdb::{RocksDbBackend, RocksDbOptions, RocksDbPartition};

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

/// RocksDB behind write-behind caches, reported as not durable: dropping a
/// partition drops its cache, so the kits' reopen cases (which expect a
/// dropped partition's writes back) do not apply.
struct WriteBehindRocks {
    dir: tempfile::TempDir,
    age: Duration,
}

#[derive(Debug)]
struct NotDurable(WriteBehindBackend);

impl Backend for NotDurable {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: "rocksdb+write-behind",
            durable: false,
        }
    }

    fn open_partition(&self, store: &StoreLocation, partition: u32) -> state_core::Result<Arc<dyn StorePartition>> {
        self.0.open_partition(store, partition)
    }

    fn destroy_store(&self, store: &StoreLocation) -> state_core::Result<()> {
        self.0.destroy_store(store)
    }

    fn partition_location(&self, store: &StoreLocation, partition: u32) -> String {
        self.0.partition_location(store, partition)
    }
}

impl WriteBehindRocks {
    fn new(age: Duration) -> Self {
        WriteBehindRocks {
            dir: tempfile::tempdir().expect("temp dir"),
            age,
        }
    }
}

impl Harness for WriteBehindRocks {
    fn backend(&self) -> Arc<dyn Backend> {
        let rocks = RocksDbBackend::shared(RocksDbOptions {
            block_cache_size: 8 << 20,
            write_buffer_size: 4 << 20,
            ..RocksDbOptions::default()
        });
        Arc::new(NotDurable(WriteBehindBackend::new(
            rocks,
            WriteBehindConfig {
                max_bytes: 32 << 10,
                max_dirty_bytes: 8 << 10,
                max_dirty_age: self.age,
            },
        )))
    }

    fn location(&self) -> StoreLocation {
        StoreLocation::new("conformance", self.dir.path().join("store"))
    }
}

mod lazy {
    use super::*;
    state_core::conformance_tests!(WriteBehindRocks::new(Duration::from_secs(3600)));
    state_txn::txn_conformance_tests!(WriteBehindRocks::new(Duration::from_secs(3600)));
}

mod eager {
    use super::*;
    state_txn::txn_conformance_tests!(WriteBehindRocks::new(Duration::ZERO));
}
