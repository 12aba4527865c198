//! The conformance kits again, with the opt-in value cache on and small
//! enough to evict during the cases: the cache must never change what a
//! reader sees.

use state_core::testkit::Harness;
use state_rocksdb::{RocksDbOptions, RocksDbStore};

struct CachedRocksHarness {
    dir: tempfile::TempDir,
}

impl CachedRocksHarness {
    fn new() -> Self {
        CachedRocksHarness {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
}

impl Harness for CachedRocksHarness {
    type Store = RocksDbStore;

    fn open(&mut self) -> RocksDbStore {
        let options = RocksDbOptions {
            block_cache_size: 8 << 20,
            write_buffer_size: 4 << 20,
            value_cache_bytes: 64 << 10,
            ..RocksDbOptions::default()
        };
        RocksDbStore::new("conformance", self.dir.path().join("store"), options)
    }

    fn durable(&self) -> bool {
        true
    }
}

state_core::conformance_tests!(CachedRocksHarness::new());

state_txn::txn_conformance_tests!(CachedRocksHarness::new());
