//! [`RocksDbStore`]: the partitions of one store, one directory each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use state_core::{Error, Result, Store};

use crate::options::RocksDbOptions;
use crate::partition::RocksDbPartition;

/// A store whose partitions live in `<base_dir>/<partition>`.
///
/// The manager passes `<state_dir>/<group_id>/<store>/<stream_id>` as
/// `base_dir`. Partitions of one store share one block cache.
pub struct RocksDbStore {
    name: String,
    base_dir: PathBuf,
    options: RocksDbOptions,
    cache: Option<rocksdb::Cache>,
    stop: Arc<AtomicBool>,
    partitions: BTreeMap<u32, Arc<RocksDbPartition>>,
}

impl std::fmt::Debug for RocksDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbStore")
            .field("name", &self.name)
            .field("base_dir", &self.base_dir)
            .field("partitions", &self.partitions.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RocksDbStore {
    /// A store named `name` keeping partitions under `base_dir`.
    pub fn new(name: impl Into<String>, base_dir: impl Into<PathBuf>, options: RocksDbOptions) -> Self {
        let cache = (options.block_cache_size > 0).then(|| rocksdb::Cache::new_lru_cache(options.block_cache_size));
        RocksDbStore {
            name: name.into(),
            base_dir: base_dir.into(),
            options,
            cache,
            stop: Arc::new(AtomicBool::new(false)),
            partitions: BTreeMap::new(),
        }
    }

    /// The flag that cancels a pending open (set it to stop waiting for a
    /// locked partition, e.g. on shutdown).
    pub fn stop_signal(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Directory of partition `partition`.
    pub fn partition_path(&self, partition: u32) -> PathBuf {
        self.base_dir.join(partition.to_string())
    }

    /// The store's base directory.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }
}

impl Store for RocksDbStore {
    type Partition = RocksDbPartition;

    fn name(&self) -> &str {
        &self.name
    }

    fn assign_partition(&mut self, partition: u32) -> Result<Arc<RocksDbPartition>> {
        if let Some(p) = self.partitions.get(&partition) {
            return Ok(p.clone());
        }
        let path = self.partition_path(partition);
        let p = Arc::new(RocksDbPartition::open_with(
            &path,
            &self.options,
            self.cache.as_ref(),
            &self.stop,
        )?);
        self.partitions.insert(partition, p.clone());
        Ok(p)
    }

    fn revoke_partition(&mut self, partition: u32) -> Result<()> {
        match self.partitions.remove(&partition) {
            // The database closes when the last transaction holding it drops.
            Some(_) => Ok(()),
            None => Err(Error::PartitionNotAssigned {
                store: self.name.clone(),
                partition,
            }),
        }
    }

    fn partition(&self, partition: u32) -> Option<Arc<RocksDbPartition>> {
        self.partitions.get(&partition).cloned()
    }

    fn assigned_partitions(&self) -> Vec<u32> {
        self.partitions.keys().copied().collect()
    }

    fn destroy(&mut self) -> Result<()> {
        if !self.partitions.is_empty() {
            return Err(Error::PartitionsStillAssigned {
                store: self.name.clone(),
                operation: "destroying the store",
                partitions: self.assigned_partitions(),
            });
        }
        match std::fs::remove_dir_all(&self.base_dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Io {
                path: self.base_dir.clone(),
                source,
            }),
        }
    }
}
