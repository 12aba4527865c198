//! The state-core conformance kit on the RocksDB backend.

use state_core::testkit::Harness;
use state_rocksdb::{RocksDbOptions, RocksDbStore};

struct RocksHarness {
    dir: tempfile::TempDir,
}

impl RocksHarness {
    fn new() -> Self {
        RocksHarness {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
}

impl Harness for RocksHarness {
    type Store = RocksDbStore;

    fn open(&mut self) -> RocksDbStore {
        let options = RocksDbOptions {
            block_cache_size: 8 << 20,
            write_buffer_size: 4 << 20,
            ..RocksDbOptions::default()
        };
        RocksDbStore::new("conformance", self.dir.path().join("store"), options)
    }

    fn durable(&self) -> bool {
        true
    }
}

state_core::conformance_tests!(RocksHarness::new());

state_txn::txn_conformance_tests!(RocksHarness::new());
