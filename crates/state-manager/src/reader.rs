//! [`StateReader`]: interactive queries. Other threads (an HTTP handler, a
//! gRPC service) read the committed state of the partitions this instance
//! owns, without the manager's lock, through consistent snapshots.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;
use state_core::{Direction, PartitionFormat, SnapshotPartition, StorePartition};
use state_txn::{PartitionTransaction, TimestampedTransaction, Window, WindowedTransaction};

use crate::error::{ManagerError, Result};
use crate::partitioner::Partitioner;
use crate::spec::{KeyValueStore, StoreHandle, StoreType, TimestampedStore, WindowedStore};

/// What a reader may read: the partitions whose state is restored and owned
/// here, by (store id, partition).
#[derive(Default)]
struct Readable {
    partitions: HashMap<(usize, u32), (Arc<dyn StorePartition>, PartitionFormat)>,
}

/// One readable store partition: (store id, partition, the open partition,
/// what it was found to be on open).
pub(crate) type ReadablePartition = (usize, u32, Arc<dyn StorePartition>, PartitionFormat);

/// The manager's side of its readers: which store partitions they may
/// read. Updated by the manager, consulted by every [`StateReader`] it
/// hands out.
pub(crate) struct Readers {
    manager: u64,
    partitioner: Partitioner,
    readable: Arc<RwLock<Readable>>,
}

impl Readers {
    /// No readable partitions, for the manager with id `manager`, whose
    /// source topics' producers route keys with `partitioner`.
    pub(crate) fn new(manager: u64, partitioner: Partitioner) -> Self {
        Readers {
            manager,
            partitioner,
            readable: Default::default(),
        }
    }

    /// A reader of the partitions made readable here.
    pub(crate) fn reader(&self) -> StateReader {
        StateReader {
            manager: self.manager,
            partitioner: self.partitioner,
            readable: self.readable.clone(),
        }
    }

    /// Makes `partitions` readable, all at once (a reader sees either none
    /// or all of them).
    pub(crate) fn open(&self, partitions: impl IntoIterator<Item = ReadablePartition>) {
        let mut readable = self.readable.write();
        for (id, p, partition, format) in partitions {
            readable.partitions.insert((id, p), (partition, format));
        }
    }

    /// Stops readers from reading partition `p` of the stores `ids`.
    pub(crate) fn close(&self, ids: &[usize], p: u32) {
        let mut readable = self.readable.write();
        for id in ids {
            readable.partitions.remove(&(*id, p));
        }
    }
}

/// Reads the committed state of the store partitions this instance owns,
/// from any thread, without taking the manager's lock. `Send + Sync +
/// Clone`; get it from [`crate::StateStoreManager::reader`].
///
/// * Only partitions assigned here and restored are readable; any other is
///   [`ManagerError::NotOwned`] — never stale data (a revoked partition
///   stops being readable before it is closed).
/// * Each call reads through one snapshot of the partition, so the reads of
///   one call (`with_*` closures included) never straddle a checkpoint.
/// * "Committed" is what the last checkpoint flushed: changes of the
///   checkpoint in progress are not visible.
///
/// A key's partition is where the source topics' producers put it:
/// [`partition_of`](Self::partition_of), with the manager's
/// [`Partitioner`] ([`crate::ManagerConfig::partitioner`]).
#[derive(Clone)]
pub struct StateReader {
    manager: u64,
    partitioner: Partitioner,
    readable: Arc<RwLock<Readable>>,
}

impl std::fmt::Debug for StateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateReader")
            .field("partitions", &self.readable.read().partitions.len())
            .finish()
    }
}

impl StateReader {
    /// The partitioner the source topics' producers use
    /// ([`crate::ManagerConfig::partitioner`]).
    pub fn partitioner(&self) -> Partitioner {
        self.partitioner
    }

    /// The partition of a source topic with `partitions` partitions that
    /// records with key `key` (and so the key's state) are in, routed with
    /// [`partitioner`](Self::partitioner); `None` where that partitioner
    /// places a record at random (see [`Partitioner::partition`]).
    pub fn partition_of(&self, key: &[u8], partitions: u32) -> Option<u32> {
        self.partitioner.partition(key, partitions)
    }

    fn partition<T: StoreType>(
        &self,
        store: &StoreHandle<T>,
        partition: u32,
    ) -> Result<(Arc<dyn StorePartition>, PartitionFormat)> {
        if store.manager != self.manager {
            return Err(ManagerError::ForeignHandle {
                stream: store.stream.to_string(),
                store: store.name.to_string(),
            });
        }
        self.readable
            .read()
            .partitions
            .get(&(store.id, partition))
            .cloned()
            .ok_or_else(|| ManagerError::NotOwned {
                stream: store.stream.to_string(),
                store: store.name.to_string(),
                partition,
            })
    }

    /// True if partition `partition` of `store` is readable here.
    pub fn owns<T: StoreType>(&self, store: &StoreHandle<T>, partition: u32) -> bool {
        self.partition(store, partition).is_ok()
    }

    /// Runs `read` on a read-only key-value transaction over one snapshot
    /// of partition `partition` (several reads, one moment):
    /// `t.key_ref(msg_key).get("count")`, say.
    pub fn with_key_value<R>(
        &self,
        store: &StoreHandle<KeyValueStore>,
        partition: u32,
        read: impl FnOnce(&PartitionTransaction<SnapshotPartition<'_>>) -> state_txn::Result<R>,
    ) -> Result<R> {
        let (p, format) = self.partition(store, partition)?;
        let snapshot = Arc::new(SnapshotPartition::of(p.as_ref())?);
        let txn = match &format.ttl {
            Some(ttl) => PartitionTransaction::with_ttl_state(snapshot, format.codec, None, ttl.clone()),
            None => PartitionTransaction::new(snapshot, format.codec, None),
        };
        Ok(read(&txn)?)
    }

    /// The value of `key` under `prefix` (typically the message key).
    pub fn get<K: Serialize + ?Sized, V: DeserializeOwned>(
        &self,
        store: &StoreHandle<KeyValueStore>,
        partition: u32,
        key: &K,
        prefix: &[u8],
    ) -> Result<Option<V>> {
        self.with_key_value(store, partition, |t| t.get(key, prefix))
    }

    /// Runs `read` on a read-only windowed transaction over one snapshot
    /// (`t.key_ref(msg_key).get_window(start, end)`, say).
    pub fn with_windowed<R>(
        &self,
        store: &StoreHandle<WindowedStore>,
        partition: u32,
        read: impl FnOnce(&WindowedTransaction<SnapshotPartition<'_>>) -> state_txn::Result<R>,
    ) -> Result<R> {
        let (p, format) = self.partition(store, partition)?;
        let snapshot = Arc::new(SnapshotPartition::of(p.as_ref())?);
        let txn = WindowedTransaction::new(snapshot, format.codec, None);
        Ok(read(&txn)?)
    }

    /// The aggregate of window `[start, end)` under `prefix`.
    pub fn get_window<V: DeserializeOwned>(
        &self,
        store: &StoreHandle<WindowedStore>,
        partition: u32,
        start: i64,
        end: i64,
        prefix: &[u8],
    ) -> Result<Option<V>> {
        self.with_windowed(store, partition, |t| t.get_window(start, end, prefix))
    }

    /// Windows under `prefix` with `start_from < start <= start_to`.
    pub fn get_windows<V: DeserializeOwned>(
        &self,
        store: &StoreHandle<WindowedStore>,
        partition: u32,
        start_from: i64,
        start_to: i64,
        prefix: &[u8],
        direction: Direction,
    ) -> Result<Vec<Window<V>>> {
        self.with_windowed(store, partition, |t| {
            t.get_windows(start_from, start_to, prefix, direction)
        })
    }

    /// Runs `read` on a read-only timestamped transaction over one snapshot
    /// (`t.key_ref(msg_key).get_latest(timestamp)`, say).
    pub fn with_timestamped<R>(
        &self,
        store: &StoreHandle<TimestampedStore>,
        partition: u32,
        read: impl FnOnce(&TimestampedTransaction<SnapshotPartition<'_>>) -> state_txn::Result<R>,
    ) -> Result<R> {
        let (p, format) = self.partition(store, partition)?;
        let snapshot = Arc::new(SnapshotPartition::of(p.as_ref())?);
        let txn = TimestampedTransaction::new(snapshot, format.codec, None, store.settings);
        Ok(read(&txn)?)
    }

    /// The newest value of `prefix` at or before `timestamp`.
    pub fn get_latest<V: DeserializeOwned>(
        &self,
        store: &StoreHandle<TimestampedStore>,
        partition: u32,
        timestamp: i64,
        prefix: &[u8],
    ) -> Result<Option<V>> {
        self.with_timestamped(store, partition, |t| t.get_latest(timestamp, prefix))
    }
}
