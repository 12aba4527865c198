//! [`Store`]: the open partitions of one store, on any [`Backend`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::backend::{Backend, StoreLocation};
use crate::error::{Error, Result};
use crate::partition::StorePartition;

/// One named store of an application, split into partitions that follow the
/// source topic's partitions, on any [`Backend`].
///
/// This is the bookkeeping every backend shares: which partitions are open,
/// opening each once, closing on revoke. Partitions are shared (`Arc`)
/// between the store, transactions, recovery and readers; a revoked
/// partition closes when its last user drops it.
pub struct Store {
    location: StoreLocation,
    backend: Arc<dyn Backend>,
    partitions: BTreeMap<u32, Arc<dyn StorePartition>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.location.name())
            .field("dir", &self.location.dir())
            .field("backend", &self.backend.info().name)
            .field("partitions", &self.partitions.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Store {
    /// A store at `location` whose partitions `backend` opens.
    pub fn new(backend: Arc<dyn Backend>, location: StoreLocation) -> Self {
        Store {
            location,
            backend,
            partitions: BTreeMap::new(),
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        self.location.name()
    }

    /// Where the store lives.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// The backend that opens its partitions.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Where partition `partition` lives (for messages).
    pub fn partition_location(&self, partition: u32) -> String {
        self.backend.partition_location(&self.location, partition)
    }

    /// Opens partition `partition` (creating it if new). Assigning an
    /// already assigned partition returns the open one.
    pub fn assign_partition(&mut self, partition: u32) -> Result<Arc<dyn StorePartition>> {
        if let Some(p) = self.partitions.get(&partition) {
            return Ok(p.clone());
        }
        let p = self.backend.open_partition(&self.location, partition)?;
        self.partitions.insert(partition, p.clone());
        Ok(p)
    }

    /// Adds partition `partition`, already opened by the caller — restored
    /// from a snapshot with [`Backend::restore_snapshot`] — to the assigned
    /// partitions. Refused while the partition is assigned (its open
    /// handle would be lost).
    pub fn assign_restored(&mut self, partition: u32, opened: Arc<dyn StorePartition>) -> Result<()> {
        if self.partitions.contains_key(&partition) {
            return Err(Error::PartitionsStillAssigned {
                store: self.name().to_owned(),
                operation: "adding a partition restored from a snapshot",
                partitions: vec![partition],
            });
        }
        self.partitions.insert(partition, opened);
        Ok(())
    }

    /// Closes partition `partition` (it closes for real when its last user
    /// drops it). Its data stays for the next assignment on durable
    /// backends and is dropped on the others.
    pub fn revoke_partition(&mut self, partition: u32) -> Result<Arc<dyn StorePartition>> {
        self.partitions
            .remove(&partition)
            .ok_or_else(|| Error::PartitionNotAssigned {
                store: self.name().to_owned(),
                partition,
            })
    }

    /// The open partition `partition`, if assigned.
    pub fn partition(&self, partition: u32) -> Option<Arc<dyn StorePartition>> {
        self.partitions.get(&partition).cloned()
    }

    /// Numbers of the assigned partitions, ascending.
    pub fn assigned_partitions(&self) -> Vec<u32> {
        self.partitions.keys().copied().collect()
    }

    /// Deletes the data of every partition. Refused while partitions are
    /// assigned.
    pub fn destroy(&mut self) -> Result<()> {
        if !self.partitions.is_empty() {
            return Err(Error::PartitionsStillAssigned {
                store: self.name().to_owned(),
                operation: "destroying the store",
                partitions: self.assigned_partitions(),
            });
        }
        self.backend.destroy_store(&self.location)
    }
}
