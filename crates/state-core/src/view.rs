//! Consistent read views of a partition, for readers on other threads
//! (interactive queries) while the owner keeps writing.

use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::partition::{Direction, KvIter, StorePartition};

/// A read-only view of one partition as of one moment: every read through
/// it sees the same batches, so several reads never straddle a checkpoint.
///
/// Get one from [`StorePartition::read_view`]; keep it short-lived (it may
/// pin old versions or, for the in-memory backend, hold writers back).
pub trait ReadView: Send + Sync {
    /// Reads `key` in `cf` as of the view.
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Iterates `cf` over `lower <= key < upper` as of the view.
    fn iter_range<'a>(
        &'a self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>>;
}

impl<T: ReadView + ?Sized> ReadView for &T {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).get(cf, key)
    }

    fn iter_range<'a>(
        &'a self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>> {
        (**self).iter_range(cf, lower, upper, direction)
    }
}

/// A [`ReadView`] as a read-only [`StorePartition`], so the transaction
/// types (and all their typed reads) run on a snapshot. Every write fails
/// with [`Error::ReadOnly`].
pub struct SnapshotPartition<'a> {
    view: Box<dyn ReadView + 'a>,
}

impl<'a> SnapshotPartition<'a> {
    /// Wraps `view`.
    pub fn new(view: Box<dyn ReadView + 'a>) -> Self {
        SnapshotPartition { view }
    }

    /// A snapshot of `partition` as of now.
    pub fn of(partition: &'a dyn StorePartition) -> Result<Self> {
        Ok(SnapshotPartition {
            view: partition.read_view()?,
        })
    }
}

impl StorePartition for SnapshotPartition<'_> {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.view.get(cf, key)
    }

    fn iter_range<'b>(
        &'b self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'b>> {
        self.view.iter_range(cf, lower, upper, direction)
    }

    fn write(&self, _batch: &WriteBatch) -> Result<()> {
        Err(Error::ReadOnly)
    }

    fn column_families(&self) -> Result<Vec<String>> {
        Err(Error::ReadOnly)
    }

    fn read_view(&self) -> Result<Box<dyn ReadView + '_>> {
        Ok(Box::new(&*self.view))
    }
}
