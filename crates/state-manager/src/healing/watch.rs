//! [`DamageWatch`]: damage found while processing (a read of a damaged
//! block, a write refused because a background job found a damaged file),
//! not at open or by a restore.
//!
//! The processing transactions read and write their partitions through a
//! [`Watched`] handle; every error that reports damage is noted here, and
//! the manager rebuilds the partitions noted before it commits (see
//! `StateStoreManager::heal_damaged`). The error still reaches the caller:
//! the record whose processing failed is not processed, and the manager
//! rewinds to it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use state_core::{Direction, Error, KvIter, PartitionStats, ReadView, Result, StorePartition, WriteBatch};

use super::damage::{self, Damage};

/// One store partition found damaged while processing.
#[derive(Debug)]
pub(crate) struct Found {
    /// What kind of damage.
    pub(crate) damage: Damage,
    /// The error that reported it (the first one).
    pub(crate) error: Error,
}

/// The store partitions found damaged while processing, keyed by (store
/// id, partition), until the manager takes them.
#[derive(Clone, Debug, Default)]
pub(crate) struct DamageWatch {
    found: Arc<Mutex<BTreeMap<(usize, u32), Found>>>,
    /// `found` is not empty; changed only under its lock, read without it
    /// (the manager asks on every turn of the poll loop).
    noted: Arc<AtomicBool>,
}

impl DamageWatch {
    /// `partition` of store `id`, read and written through a handle that
    /// notes its damage here.
    pub(crate) fn watch(&self, partition: Arc<dyn StorePartition>, id: usize, p: u32) -> Arc<dyn StorePartition> {
        Arc::new(Watched {
            inner: partition,
            key: (id, p),
            watch: self.clone(),
        })
    }

    /// True if some damage was noted and not taken yet.
    pub(crate) fn any(&self) -> bool {
        self.noted.load(Ordering::Acquire)
    }

    /// True if partition `p` of store `id` was noted and not taken yet.
    pub(crate) fn holds(&self, id: usize, p: u32) -> bool {
        self.found.lock().contains_key(&(id, p))
    }

    /// Takes everything noted.
    pub(crate) fn take(&self) -> BTreeMap<(usize, u32), Found> {
        let mut found = self.found.lock();
        self.noted.store(false, Ordering::Release);
        std::mem::take(&mut *found)
    }

    /// Passes `result` on, noting its error first if it reports damage.
    fn note<T>(&self, key: (usize, u32), result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            if let Some(damage) = damage::of_state(e) {
                let mut found = self.found.lock();
                found.entry(key).or_insert_with(|| Found {
                    damage,
                    error: copy_of(e),
                });
                self.noted.store(true, Ordering::Release);
            }
        }
        result
    }
}

/// A copy of damage error `e` (the caller keeps the original).
fn copy_of(e: &Error) -> Error {
    match e {
        Error::PartitionCorrupt { backend, path, reason } => Error::PartitionCorrupt {
            backend,
            path: path.clone(),
            reason: reason.clone(),
        },
        Error::CorruptChangelogOffset { len } => Error::CorruptChangelogOffset { len: *len },
        other => Error::PartitionCorrupt {
            backend: "unknown",
            path: Path::new("").to_owned(),
            reason: other.to_string(),
        },
    }
}

/// A store partition whose damage errors are noted in a [`DamageWatch`].
struct Watched {
    inner: Arc<dyn StorePartition>,
    key: (usize, u32),
    watch: DamageWatch,
}

impl StorePartition for Watched {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.watch.note(self.key, self.inner.get(cf, key))
    }

    fn exists(&self, cf: &str, key: &[u8]) -> Result<bool> {
        self.watch.note(self.key, self.inner.exists(cf, key))
    }

    fn iter_range<'a>(
        &'a self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>> {
        let it = self
            .watch
            .note(self.key, self.inner.iter_range(cf, lower, upper, direction))?;
        Ok(Box::new(it.map(move |item| self.watch.note(self.key, item))))
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.watch.note(self.key, self.inner.write(batch))
    }

    fn write_bulk(&self, batch: &WriteBatch) -> Result<()> {
        self.watch.note(self.key, self.inner.write_bulk(batch))
    }

    fn load_bulk(&self, batch: &WriteBatch) -> Result<()> {
        self.watch.note(self.key, self.inner.load_bulk(batch))
    }

    fn persist(&self) -> Result<()> {
        self.watch.note(self.key, self.inner.persist())
    }

    fn changelog_offset(&self) -> Result<Option<u64>> {
        self.watch.note(self.key, self.inner.changelog_offset())
    }

    fn write_changelog_offset(&self, offset: u64) -> Result<()> {
        self.watch.note(self.key, self.inner.write_changelog_offset(offset))
    }

    fn put(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.watch.note(self.key, self.inner.put(cf, key, value))
    }

    fn delete(&self, cf: &str, key: &[u8]) -> Result<()> {
        self.watch.note(self.key, self.inner.delete(cf, key))
    }

    fn prefers_sorted_batches(&self) -> bool {
        self.inner.prefers_sorted_batches()
    }

    fn column_families(&self) -> Result<Vec<String>> {
        self.inner.column_families()
    }

    fn read_view(&self) -> Result<Box<dyn ReadView + '_>> {
        self.inner.read_view()
    }

    fn snapshot(&self, dir: &Path) -> Result<Option<state_core::LocalSnapshot>> {
        self.inner.snapshot(dir)
    }

    fn stats(&self) -> PartitionStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_says_whether_damage_waits_to_be_taken() {
        let watch = DamageWatch::default();
        assert!(!watch.any());
        let other = watch.note::<()>((1, 2), Err(Error::ReadOnly));
        assert!(other.is_err(), "the error is passed on");
        assert!(!watch.any(), "an error that reports no damage is not noted");
        let _ = watch.note::<()>((1, 2), Err(Error::CorruptChangelogOffset { len: 3 }));
        let _ = watch
            .clone()
            .note::<()>((1, 3), Err(Error::CorruptChangelogOffset { len: 4 }));
        assert!(watch.any(), "a clone notes into the same watch");
        assert!(watch.holds(1, 2) && watch.holds(1, 3));
        assert_eq!(watch.take().len(), 2);
        assert!(!watch.any(), "taken");
        assert!(!watch.holds(1, 2));
        let _ = watch.note::<()>((1, 2), Err(Error::CorruptChangelogOffset { len: 3 }));
        assert!(watch.any(), "noted again after a take");
    }
}
