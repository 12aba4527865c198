//! The in-memory backend: a real backend (not a test double) for state that
//! needs no local durability because the changelog is its only source of
//! truth, as quixstreams' `MemoryStore`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::backend::{Backend, BackendInfo, StoreLocation};
use crate::batch::WriteBatch;
use crate::cf;
use crate::error::Result;
use crate::keys::encode_u64;
use crate::partition::{Direction, KvIter, PartitionStats, StorePartition};
use crate::view::ReadView;

type ColumnFamily = BTreeMap<Vec<u8>, Vec<u8>>;

/// One partition held in memory. Batches are atomic (applied under one
/// lock); nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryPartition {
    cfs: RwLock<HashMap<String, ColumnFamily>>,
}

impl MemoryPartition {
    /// An empty partition with the `default` and `__metadata__` column families.
    pub fn new() -> Self {
        let mut cfs = HashMap::new();
        cfs.insert(cf::DEFAULT.to_owned(), ColumnFamily::new());
        cfs.insert(cf::METADATA.to_owned(), ColumnFamily::new());
        MemoryPartition { cfs: RwLock::new(cfs) }
    }

    /// Number of keys in `cf` (0 if it does not exist).
    pub fn len(&self, cf: &str) -> usize {
        self.cfs.read().get(cf).map_or(0, BTreeMap::len)
    }

    /// True if `cf` has no keys.
    pub fn is_empty(&self, cf: &str) -> bool {
        self.len(cf) == 0
    }
}

impl StorePartition for MemoryPartition {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.cfs.read().get(cf).and_then(|m| m.get(key).cloned()))
    }

    fn exists(&self, cf: &str, key: &[u8]) -> Result<bool> {
        Ok(self.cfs.read().get(cf).is_some_and(|m| m.contains_key(key)))
    }

    fn iter_range<'a>(
        &'a self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>> {
        let guard = self.cfs.read();
        let Some(map) = guard.get(cf) else {
            return Ok(Box::new(std::iter::empty()));
        };
        if upper.is_some_and(|u| u <= lower) {
            return Ok(Box::new(std::iter::empty()));
        }
        let upper_bound = match upper {
            Some(u) => Bound::Excluded(u),
            None => Bound::Unbounded,
        };
        // A snapshot copy: the iterator must not hold the lock while the
        // caller writes to the same partition.
        let range = map.range::<[u8], _>((Bound::Included(lower), upper_bound));
        let items: Vec<_> = match direction {
            Direction::Forward => range.map(|(k, v)| Ok((k.clone(), v.clone()))).collect(),
            Direction::Backward => range.rev().map(|(k, v)| Ok((k.clone(), v.clone()))).collect(),
        };
        Ok(Box::new(items.into_iter()))
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        let mut cfs = self.cfs.write();
        // Batches come grouped by column family: look each one up once.
        let mut current: Option<(&str, &mut ColumnFamily)> = None;
        for op in batch.iter() {
            let map = match current {
                Some((name, ref mut map)) if name == op.cf => map,
                _ => {
                    current = None;
                    let map = cfs.entry(op.cf.to_owned()).or_default();
                    &mut current.insert((op.cf, map)).1
                }
            };
            match op.value {
                Some(v) => {
                    map.insert(op.key.to_vec(), v.to_vec());
                }
                None => {
                    map.remove(op.key);
                }
            }
        }
        if let Some(offset) = batch.changelog_offset() {
            cfs.entry(cf::METADATA.to_owned())
                .or_default()
                .insert(cf::CHANGELOG_OFFSET_KEY.to_vec(), encode_u64(offset).to_vec());
        }
        Ok(())
    }

    fn column_families(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.cfs.read().keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    fn read_view(&self) -> Result<Box<dyn ReadView + '_>> {
        // Holding the read lock keeps writers out for the view's life: a
        // view is a few reads long.
        Ok(Box::new(MemoryView(self.cfs.read())))
    }

    fn snapshot(&self, dir: &std::path::Path) -> Result<Option<crate::LocalSnapshot>> {
        // The read lock for the whole dump: a consistent copy, while
        // writers wait (the price of a backend with no versions).
        let cfs = self.cfs.read();
        crate::create_private_dir(dir)?;
        crate::memory_dump::write(&cfs, dir)?;
        let offset = cfs
            .get(cf::METADATA)
            .and_then(|m| m.get(cf::CHANGELOG_OFFSET_KEY))
            .map(|bytes| {
                crate::keys::decode_u64(bytes).map_err(|_| crate::Error::CorruptChangelogOffset { len: bytes.len() })
            })
            .transpose()?;
        Ok(Some(crate::LocalSnapshot::new(
            dir,
            "memory",
            crate::memory_dump::LAYOUT,
            offset,
        )))
    }

    fn stats(&self) -> PartitionStats {
        let live: usize = self
            .cfs
            .read()
            .values()
            .flat_map(|m| m.iter().map(|(k, v)| k.len() + v.len()))
            .sum();
        PartitionStats {
            live_data_bytes: Some(live as u64),
            disk_bytes: Some(0),
            ..PartitionStats::default()
        }
    }
}

/// A [`MemoryPartition`] as of one moment: its read lock, held.
struct MemoryView<'a>(parking_lot::RwLockReadGuard<'a, HashMap<String, ColumnFamily>>);

fn range_of<'a>(map: Option<&'a ColumnFamily>, lower: &[u8], upper: Option<&[u8]>, direction: Direction) -> KvIter<'a> {
    let Some(map) = map else {
        return Box::new(std::iter::empty());
    };
    if upper.is_some_and(|u| u <= lower) {
        return Box::new(std::iter::empty());
    }
    let upper_bound = match upper {
        Some(u) => Bound::Excluded(u.to_vec()),
        None => Bound::Unbounded,
    };
    let range = map.range::<Vec<u8>, _>((Bound::Included(lower.to_vec()), upper_bound));
    match direction {
        Direction::Forward => Box::new(range.map(|(k, v)| Ok((k.clone(), v.clone())))),
        Direction::Backward => Box::new(range.rev().map(|(k, v)| Ok((k.clone(), v.clone())))),
    }
}

impl ReadView for MemoryView<'_> {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(cf).and_then(|m| m.get(key).cloned()))
    }

    fn iter_range<'a>(
        &'a self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>> {
        Ok(range_of(self.0.get(cf), lower, upper, direction))
    }
}

/// The in-memory backend. Every partition starts empty when opened; its
/// state is rebuilt from the changelog on every assignment, and revoking it
/// (dropping the last handle) frees it.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryBackend;

impl MemoryBackend {
    /// The backend, shareable as `Arc<dyn Backend>`.
    pub fn shared() -> Arc<dyn Backend> {
        Arc::new(MemoryBackend)
    }
}

impl Backend for MemoryBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: "memory",
            durable: false,
        }
    }

    fn open_partition(&self, _store: &StoreLocation, _partition: u32) -> Result<Arc<dyn StorePartition>> {
        Ok(Arc::new(MemoryPartition::new()))
    }

    fn destroy_store(&self, _store: &StoreLocation) -> Result<()> {
        Ok(())
    }

    fn restore_snapshot(
        &self,
        snapshot_dir: &std::path::Path,
        _store: &StoreLocation,
        _partition: u32,
    ) -> Result<Option<Arc<dyn StorePartition>>> {
        let mut cfs = crate::memory_dump::read(snapshot_dir)?;
        for required in [cf::DEFAULT, cf::METADATA] {
            cfs.entry(required.to_owned()).or_default();
        }
        // The dump was read whole: the directory is spent.
        if let Err(e) = crate::remove_store_dir(snapshot_dir) {
            tracing::warn!(path = %snapshot_dir.display(), "cannot delete a restored snapshot directory: {e}");
        }
        Ok(Some(Arc::new(MemoryPartition { cfs: RwLock::new(cfs) })))
    }

    fn partition_location(&self, store: &StoreLocation, partition: u32) -> String {
        format!("memory store {} partition {partition}", store.name())
    }
}
