//! [`WriteBehindBackend`]: write-behind for every partition of a store,
//! without changing its owner.

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use state_core::{Backend, BackendInfo, MemoryBudget, Result, StoreLocation, StorePartition};

use super::partition::WriteBehindPartition;
use crate::config::{WriteBehindConfig, WriteBehindStats};

/// A [`Backend`] whose partitions are [`WriteBehindPartition`]s over the
/// partitions of another backend: write-behind for a whole store without
/// changing its owner. Use it only for stores with a changelog.
///
/// Partitions dropped without a flush lose their cache (recovery replays
/// it); an owner that can should call [`flush_all`](Self::flush_all) before
/// closing partitions and [`flush_due`](Self::flush_due) from its
/// maintenance loop.
pub struct WriteBehindBackend {
    inner: Arc<dyn Backend>,
    config: WriteBehindConfig,
    /// The budget every partition's cache draws from, if any.
    budget: Option<MemoryBudget>,
    /// Each open partition with its directory (`StoreLocation::partition_dir`).
    open: Mutex<Vec<(PathBuf, Weak<WriteBehindPartition>)>>,
}

impl std::fmt::Debug for WriteBehindBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBehindBackend")
            .field("inner", &self.inner.info().name)
            .field("config", &self.config)
            .field("budget", &self.budget)
            .finish()
    }
}

impl WriteBehindBackend {
    /// `inner`'s partitions behind write-behind caches with `config`.
    pub fn new(inner: Arc<dyn Backend>, config: WriteBehindConfig) -> Self {
        WriteBehindBackend {
            inner,
            config,
            budget: None,
            open: Mutex::new(Vec::new()),
        }
    }

    /// [`new`](Self::new), every partition's cache drawing from `budget`
    /// too ([`WriteBehindPartition::with_budget`]).
    pub fn with_budget(inner: Arc<dyn Backend>, config: WriteBehindConfig, budget: MemoryBudget) -> Self {
        WriteBehindBackend {
            budget: Some(budget),
            ..Self::new(inner, config)
        }
    }

    /// The same, shareable as `Arc<dyn Backend>`.
    pub fn shared(inner: Arc<dyn Backend>, config: WriteBehindConfig) -> Arc<dyn Backend> {
        Arc::new(WriteBehindBackend::new(inner, config))
    }

    /// The open partitions (forgetting those dropped).
    pub(super) fn partitions(&self) -> Vec<Arc<WriteBehindPartition>> {
        let mut open = self.open.lock();
        open.retain(|(_, w)| w.strong_count() > 0);
        open.iter().filter_map(|(_, w)| w.upgrade()).collect()
    }

    /// The open partition `partition` of `store`, if any.
    pub fn partition(&self, store: &StoreLocation, partition: u32) -> Option<Arc<WriteBehindPartition>> {
        let dir = store.partition_dir(partition);
        let mut open = self.open.lock();
        open.retain(|(_, w)| w.strong_count() > 0);
        open.iter().find(|(d, _)| *d == dir).and_then(|(_, w)| w.upgrade())
    }

    /// Flushes the open partition `partition` of `store` (nothing if it is
    /// not open): call it before closing the partition, so its cache is not
    /// lost and the next owner replays nothing of it.
    pub fn flush_partition(&self, store: &StoreLocation, partition: u32) -> Result<()> {
        match self.partition(store, partition) {
            Some(p) => p.flush(),
            None => Ok(()),
        }
    }

    /// The cache figures of every open partition, summed.
    pub fn stats(&self) -> WriteBehindStats {
        let mut total = WriteBehindStats::default();
        for p in self.partitions() {
            total.add(&p.cache_stats());
        }
        total
    }

    /// Flushes every open partition; the first error is returned after all
    /// were tried.
    pub fn flush_all(&self) -> Result<()> {
        let mut first = Ok(());
        for p in self.partitions() {
            if let Err(e) = p.flush() {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// [`WriteBehindPartition::flush_if_due`] on every open partition;
    /// returns how many flushed.
    pub fn flush_due(&self) -> Result<usize> {
        let mut flushed = 0;
        for p in self.partitions() {
            if p.flush_if_due()? {
                flushed += 1;
            }
        }
        Ok(flushed)
    }

    /// How many open partitions hold changes whose changelog offset the
    /// partition below does not have yet (what a crash now would make
    /// recovery replay).
    pub fn lagging_partitions(&self) -> usize {
        self.partitions()
            .iter()
            .filter(|p| {
                let s = p.cache_stats();
                s.changelog_offset != s.flushed_offset
            })
            .count()
    }
}

impl Backend for WriteBehindBackend {
    fn info(&self) -> BackendInfo {
        // Same files, same format: the cache is invisible on disk.
        self.inner.info()
    }

    fn open_partition(&self, store: &StoreLocation, partition: u32) -> Result<Arc<dyn StorePartition>> {
        let inner = self.inner.open_partition(store, partition)?;
        let wb = Arc::new(match &self.budget {
            Some(budget) => WriteBehindPartition::with_budget(inner, self.config, budget)?,
            None => WriteBehindPartition::new(inner, self.config)?,
        });
        self.open
            .lock()
            .push((store.partition_dir(partition), Arc::downgrade(&wb)));
        Ok(wb)
    }

    fn destroy_store(&self, store: &StoreLocation) -> Result<()> {
        self.inner.destroy_store(store)
    }

    fn restore_snapshot(
        &self,
        snapshot_dir: &std::path::Path,
        store: &StoreLocation,
        partition: u32,
    ) -> Result<Option<Arc<dyn StorePartition>>> {
        let Some(inner) = self.inner.restore_snapshot(snapshot_dir, store, partition)? else {
            return Ok(None);
        };
        let wb = Arc::new(WriteBehindPartition::new(inner, self.config)?);
        self.open
            .lock()
            .push((store.partition_dir(partition), Arc::downgrade(&wb)));
        Ok(Some(wb))
    }

    fn partition_location(&self, store: &StoreLocation, partition: u32) -> String {
        self.inner.partition_location(store, partition)
    }

    /// The engine's budget (the caches' own, if given, is the same one
    /// where the manager sets them up).
    fn memory_budget(&self) -> Option<&MemoryBudget> {
        self.inner.memory_budget()
    }
}
