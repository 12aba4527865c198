//! [`RocksHarness`]: the conformance kits on RocksDB.

use std::sync::Arc;

use state_core::testkit::Harness;
use state_core::{Backend, StoreLocation};
use state_rocksdb::{RocksDbBackend, RocksDbOptions};

/// Opens RocksDB stores in one temporary directory (removed on drop),
/// with small buffers and `value_cache_bytes` as given (0: the default, no
/// value cache).
pub struct RocksHarness {
    dir: tempfile::TempDir,
    value_cache_bytes: usize,
}

impl RocksHarness {
    /// A harness over a fresh temporary directory.
    pub fn new(value_cache_bytes: usize) -> Self {
        RocksHarness {
            dir: tempfile::tempdir().expect("a temporary directory"),
            value_cache_bytes,
        }
    }
}

impl Harness for RocksHarness {
    fn backend(&self) -> Arc<dyn Backend> {
        RocksDbBackend::shared(RocksDbOptions {
            block_cache_size: 8 << 20,
            write_buffer_size: 4 << 20,
            value_cache_bytes: self.value_cache_bytes,
            ..RocksDbOptions::default()
        })
    }

    fn location(&self) -> StoreLocation {
        StoreLocation::new("conformance", self.dir.path().join("store"))
    }
}
