//! [`FjallBackend`]: fjall as a [`state_core::Backend`].

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use state_core::{
    install_snapshot_dir, remove_store_dir, Backend, BackendInfo, MemoryBudget, Result, StoreLocation, StorePartition,
};

use crate::options::FjallOptions;
use crate::partition::{FjallPartition, BACKEND};

/// Fjall as a [`state_core::Backend`]: one fjall database per partition in
/// `<store dir>/<partition>`.
///
/// Opening a partition whose lock another handle holds retries with backoff
/// ([`FjallOptions::open_max_retries`]) and gives up early when the
/// [`stop signal`](Self::stop_signal) is set.
#[derive(Debug, Default)]
pub struct FjallBackend {
    options: FjallOptions,
    stop: Arc<AtomicBool>,
}

impl FjallBackend {
    /// A backend opening partitions with `options`.
    pub fn new(options: FjallOptions) -> Self {
        FjallBackend {
            options,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same, ready to share as `Arc<dyn Backend>`.
    pub fn shared(options: FjallOptions) -> Arc<dyn Backend> {
        Arc::new(Self::new(options))
    }

    /// The options partitions are opened with.
    pub fn options(&self) -> &FjallOptions {
        &self.options
    }

    /// Set this flag to stop waiting for a locked partition (e.g. on shutdown).
    pub fn stop_signal(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Opens partition `partition` of `store` as its concrete type.
    pub fn open(&self, store: &StoreLocation, partition: u32) -> Result<FjallPartition> {
        FjallPartition::open_with(&store.partition_dir(partition), &self.options, &self.stop)
    }
}

impl Backend for FjallBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: BACKEND,
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

    /// An export is a fjall database directory: it is moved in place of
    /// the partition's directory ([`state_core::install_snapshot_dir`]) and
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
