//! [`RocksDbBackend`]: RocksDB as a [`state_core::Backend`].

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use state_core::{
    install_snapshot_dir, remove_store_dir, Backend, BackendInfo, MemoryBudget, Result, StoreLocation, StorePartition,
};

use crate::memory::EngineMemory;
use crate::options::RocksDbOptions;
use crate::partition::RocksDbPartition;

/// RocksDB, one database per partition in `<store dir>/<partition>`.
///
/// Every partition opened through one backend shares one LRU block cache of
/// [`RocksDbOptions::block_cache_size`] bytes, so the cache budget is per
/// backend, not per partition; with a [`RocksDbOptions::memory_budget`],
/// every partition of every backend on that budget shares the budget's
/// cache and write buffer manager instead. Opening a partition whose lock
/// another process holds retries with backoff
/// ([`RocksDbOptions::open_max_retries`]) and gives up early when the
/// [`stop signal`](Self::stop_signal) is set. The options hook
/// ([`RocksDbOptions::options_hook`]) is called with the store's name and
/// the partition number.
pub struct RocksDbBackend {
    options: RocksDbOptions,
    memory: EngineMemory,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for RocksDbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbBackend")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Default for RocksDbBackend {
    fn default() -> Self {
        Self::new(RocksDbOptions::default())
    }
}

impl RocksDbBackend {
    /// A backend opening partitions with `options`.
    pub fn new(options: RocksDbOptions) -> Self {
        RocksDbBackend {
            memory: options.engine_memory(),
            options,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same, ready to share as `Arc<dyn Backend>`.
    pub fn shared(options: RocksDbOptions) -> Arc<dyn Backend> {
        Arc::new(Self::new(options))
    }

    /// The options partitions are opened with.
    pub fn options(&self) -> &RocksDbOptions {
        &self.options
    }

    /// Set this flag to stop waiting for a locked partition (e.g. on shutdown).
    pub fn stop_signal(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Opens partition `partition` of `store` as its concrete type (for
    /// callers that want RocksDB-specific calls such as
    /// [`RocksDbPartition::approximate_keys`]).
    pub fn open(&self, store: &StoreLocation, partition: u32) -> Result<RocksDbPartition> {
        RocksDbPartition::open_in(
            &store.partition_dir(partition),
            &self.options,
            &self.memory,
            Some((store.name(), partition)),
            &self.stop,
        )
    }

    /// Bytes in the block cache this backend's partitions share (the
    /// memtables charged to it included, under a memory budget); `None`
    /// without a cache.
    pub fn block_cache_usage(&self) -> Option<usize> {
        self.memory.cache_usage()
    }

    /// Bytes of memtables the memory budget's write buffer manager counts
    /// (every partition on the budget); `None` without a budget.
    pub fn memtable_usage(&self) -> Option<usize> {
        self.memory.memtable_usage()
    }
}

impl Backend for RocksDbBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: "rocksdb",
            durable: true,
        }
    }

    fn open_partition(&self, store: &StoreLocation, partition: u32) -> Result<Arc<dyn StorePartition>> {
        Ok(Arc::new(self.open(store, partition)?))
    }

    fn destroy_store(&self, store: &StoreLocation) -> Result<()> {
        remove_store_dir(store.dir())
    }

    fn memory_budget(&self) -> Option<&MemoryBudget> {
        self.options.memory_budget.as_ref()
    }

    /// A checkpoint is a database directory: it is moved in place of the
    /// partition's directory ([`state_core::install_snapshot_dir`]) and
    /// opened as the partition.
    fn restore_snapshot(
        &self,
        snapshot_dir: &std::path::Path,
        store: &StoreLocation,
        partition: u32,
    ) -> Result<Option<Arc<dyn StorePartition>>> {
        let opened = install_snapshot_dir(snapshot_dir, &store.partition_dir(partition), |_| {
            self.open(store, partition)
        })?;
        Ok(Some(Arc::new(opened)))
    }
}
