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
use crate::spec::{KeyValue, StoreHandle, StoreType, Timestamped, Windowed};

/// What a reader may read: the partitions whose state is restored and owned
/// here, by (store id, partition).
#[derive(Default)]
pub(crate) struct Readable {
    partitions: HashMap<(usize, u32), (Arc<dyn StorePartition>, PartitionFormat)>,
}

/// The registry the manager updates and readers consult.
pub(crate) type SharedReadable = Arc<RwLock<Readable>>;

impl Readable {
    pub(crate) fn open(&mut self, id: usize, p: u32, partition: Arc<dyn StorePartition>, format: PartitionFormat) {
        self.partitions.insert((id, p), (partition, format));
    }

    pub(crate) fn close(&mut self, id: usize, p: u32) {
        self.partitions.remove(&(id, p));
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
/// Keys are routed to partitions the way producers route them:
/// [`partition_for_key`].
#[derive(Clone)]
pub struct StateReader {
    pub(crate) manager: u64,
    pub(crate) readable: SharedReadable,
}

impl std::fmt::Debug for StateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateReader")
            .field("partitions", &self.readable.read().partitions.len())
            .finish()
    }
}

/// Kafka's default partitioner for keyed records: murmur2 of the key bytes,
/// positive, modulo the partition count — what the Java client and
/// librdkafka's `murmur2_random` (and `murmur2`) use, so a key's records
/// and its state are in the partition this returns. `partitions` must be > 0.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Kafka's murmur2 (seed 0x9747b28c), as in `org.apache.kafka.common.utils.Utils`.
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h = SEED ^ len as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= u32::from(tail[2]) << 16;
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

impl StateReader {
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
        store: &StoreHandle<KeyValue>,
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
        store: &StoreHandle<KeyValue>,
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
        store: &StoreHandle<Windowed>,
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
        store: &StoreHandle<Windowed>,
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
        store: &StoreHandle<Windowed>,
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
        store: &StoreHandle<Timestamped>,
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
        store: &StoreHandle<Timestamped>,
        partition: u32,
        timestamp: i64,
        prefix: &[u8],
    ) -> Result<Option<V>> {
        self.with_timestamped(store, partition, |t| t.get_latest(timestamp, prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key) as i32, want, "{:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn keys_land_where_the_java_client_puts_them() {
        // toPositive(murmur2(key)) % partitions, as Kafka's DefaultPartitioner.
        assert_eq!(
            partition_for_key(b"foobar", 4),
            (((-790_332_482i32) as u32) & 0x7fff_ffff) % 4
        );
        for p in [1, 3, 12] {
            assert!(partition_for_key(b"any", p) < p);
        }
    }
}
