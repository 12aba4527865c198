//! [`PartitionTransaction`]: buffered, read-your-writes changes to one store
//! partition, emitted to the changelog on `prepare` and written atomically
//! with the changelog offset on `flush`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use state_core::{
    cf, keys, ChangelogRecord, ChangelogSink, Codec, Direction, KeyValue, ProcessedOffsets, StorePartition, WriteBatch,
};

use crate::cache::{Cached, UpdateCache};
use crate::error::{Result, TxnError};

/// The life cycle of a transaction.
///
/// `Started -> Prepared -> Complete`; any error on the way -> `Failed`.
/// Failed and complete transactions refuse all further use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnStatus {
    /// Accepts reads and writes.
    Started,
    /// Changes were sent to the changelog; only `flush` is allowed.
    Prepared,
    /// Changes were written to the partition.
    Complete,
    /// An operation failed; the transaction wrote nothing locally.
    Failed,
}

impl fmt::Display for TxnStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TxnStatus::Started => "started",
            TxnStatus::Prepared => "prepared",
            TxnStatus::Complete => "complete",
            TxnStatus::Failed => "failed",
        })
    }
}

/// A transaction over one store partition.
///
/// * Reads see the transaction's own writes and deletes before the store.
/// * Nothing reaches the partition before [`flush`](Self::flush), which
///   writes every change and the changelog offset in one atomic batch.
/// * [`prepare`](Self::prepare) sends one changelog record per changed key
///   (tombstones for deletes) to the sink, if the transaction has one;
///   local-only column families are never sent.
///
/// Keys are `prefix | key`: typed keys are encoded with the codec, raw-key
/// methods (`*_bytes`, `*_raw`) take key bytes as they are, as quixstreams
/// does for `bytes` keys.
pub struct PartitionTransaction<P: StorePartition + ?Sized = dyn StorePartition> {
    partition: Arc<P>,
    codec: Codec,
    sink: Option<Arc<dyn ChangelogSink>>,
    cache: UpdateCache,
    status: TxnStatus,
}

impl<P: StorePartition + ?Sized> fmt::Debug for PartitionTransaction<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionTransaction")
            .field("status", &self.status)
            .field("codec", &self.codec)
            .field("changes", &self.cache.len())
            .field("has_changelog", &self.sink.is_some())
            .finish()
    }
}

impl<P: StorePartition + ?Sized> PartitionTransaction<P> {
    /// Starts a transaction on `partition`; `sink` receives the changelog
    /// records on `prepare` (`None`: no changelog).
    pub fn new(partition: Arc<P>, codec: Codec, sink: Option<Arc<dyn ChangelogSink>>) -> Self {
        PartitionTransaction {
            partition,
            codec,
            sink,
            cache: UpdateCache::default(),
            status: TxnStatus::Started,
        }
    }

    /// The current status.
    pub fn status(&self) -> TxnStatus {
        self.status
    }

    /// True if the transaction has changes to write.
    pub fn is_changed(&self) -> bool {
        !self.cache.is_empty()
    }

    /// Number of keys changed so far.
    pub fn changed_keys(&self) -> usize {
        self.cache.len()
    }

    /// The value codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The partition this transaction writes to.
    pub fn partition(&self) -> &Arc<P> {
        &self.partition
    }

    /// True if `prepare` emits to a changelog.
    pub fn has_changelog(&self) -> bool {
        self.sink.is_some()
    }

    fn require(&self, operation: &'static str, allowed: &[TxnStatus]) -> Result<()> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(TxnError::InvalidStatus {
                operation,
                status: self.status,
                allowed: if allowed.len() == 1 {
                    "started"
                } else {
                    "started or prepared"
                },
            })
        }
    }

    fn started(&self, operation: &'static str) -> Result<()> {
        self.require(operation, &[TxnStatus::Started])
    }

    /// Errors with [`TxnError::InvalidStatus`] unless the transaction is started.
    pub(crate) fn require_started(&self, operation: &'static str) -> Result<()> {
        self.started(operation)
    }

    /// Marks the transaction failed (a layer above hit an error mid-change).
    pub(crate) fn mark_failed(&mut self) {
        self.status = TxnStatus::Failed;
    }

    /// Runs a mutation; an error fails the transaction.
    fn mutate<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let res = f(self);
        if res.is_err() {
            self.status = TxnStatus::Failed;
        }
        res
    }

    /// Encodes `prefix | codec(key)`.
    pub fn encode_key<K: Serialize + ?Sized>(&self, key: &K, prefix: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(prefix.len() + 16);
        self.encode_key_into(key, prefix, &mut out)?;
        Ok(out)
    }

    /// Appends `prefix | codec(key)` to `out`.
    fn encode_key_into<K: Serialize + ?Sized>(&self, key: &K, prefix: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if !prefix.is_empty() {
            out.extend_from_slice(prefix);
            out.push(keys::SEPARATOR);
        }
        Ok(self.codec.encode_into(key, out)?)
    }

    /// Runs `f` on `prefix | codec(key)` encoded into a reused per-thread
    /// buffer: reads need the key only for the lookup, so they should not
    /// pay an allocation for it.
    fn with_encoded_key<K: Serialize + ?Sized, T>(
        &self,
        key: &K,
        prefix: &[u8],
        f: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<T> {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                self.encode_key_into(key, prefix, &mut buf)?;
                f(&buf)
            }
            // Re-entered from inside `f` (a backend reading through a
            // transaction): fall back to a fresh buffer.
            Err(_) => f(&self.encode_key(key, prefix)?),
        })
    }

    // ---- raw access by full key and column family --------------------------

    /// Reads the bytes of full key `key` in `cf`, cache first.
    pub fn get_raw(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.started("get")?;
        self.read_raw(cf, key)
    }

    fn read_raw(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.cache.get(cf, key) {
            Cached::Value(v) => Ok(Some(v.to_vec())),
            Cached::Deleted => Ok(None),
            Cached::Unknown => Ok(self.partition.get(cf, key)?),
        }
    }

    /// Reads and decodes full key `key` in `cf`.
    fn read_decoded<V: DeserializeOwned>(&self, cf: &str, key: &[u8]) -> Result<Option<V>> {
        // Decode straight from the cache without copying.
        match self.cache.get(cf, key) {
            Cached::Value(v) => Ok(Some(self.codec.decode(v)?)),
            Cached::Deleted => Ok(None),
            Cached::Unknown => match self.partition.get(cf, key)? {
                Some(bytes) => Ok(Some(self.codec.decode(&bytes)?)),
                None => Ok(None),
            },
        }
    }

    /// True if full key `key` has a value in `cf`, cache first.
    pub fn exists_raw(&self, cf: &str, key: &[u8]) -> Result<bool> {
        self.started("exists")?;
        match self.cache.get(cf, key) {
            Cached::Value(_) => Ok(true),
            Cached::Deleted => Ok(false),
            Cached::Unknown => Ok(self.partition.exists(cf, key)?),
        }
    }

    /// Sets full key `key` in `cf` to `value`.
    pub fn set_raw(&mut self, cf: &str, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.started("set")?;
        self.cache.set(cf, &key, &value);
        Ok(())
    }

    /// Deletes full key `key` in `cf`.
    pub fn delete_raw(&mut self, cf: &str, key: Vec<u8>) -> Result<()> {
        self.started("delete")?;
        self.cache.delete(cf, &key);
        Ok(())
    }

    /// Key-value pairs of `cf` with `lower <= key < upper` as this
    /// transaction sees them: the store overlaid with the cache (updates
    /// replace, deletes hide), in the given direction.
    pub fn iter_range(
        &self,
        cf: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<Vec<KeyValue>> {
        self.started("iterate")?;
        let changes = self.cache.range(cf, lower, upper);
        let merged: Vec<KeyValue> = if changes.is_empty() {
            // Common case: nothing of this range changed, the store's order is final.
            self.partition
                .iter_range(cf, lower, upper, Direction::Forward)?
                .collect::<state_core::Result<Vec<_>>>()?
        } else {
            let mut view: BTreeMap<Vec<u8>, Vec<u8>> = self
                .partition
                .iter_range(cf, lower, upper, Direction::Forward)?
                .collect::<state_core::Result<_>>()?;
            for (k, v) in changes {
                match v {
                    Some(v) => {
                        view.insert(k.to_vec(), v.to_vec());
                    }
                    None => {
                        view.remove(k);
                    }
                }
            }
            view.into_iter().collect()
        };
        Ok(match direction {
            Direction::Forward => merged,
            Direction::Backward => merged.into_iter().rev().collect(),
        })
    }

    // ---- typed access in the default column family -------------------------

    /// Reads `key` under `prefix` and decodes its value.
    pub fn get<K: Serialize + ?Sized, V: DeserializeOwned>(&self, key: &K, prefix: &[u8]) -> Result<Option<V>> {
        self.get_in(cf::DEFAULT, key, prefix)
    }

    /// [`get`](Self::get) in column family `cf`.
    pub fn get_in<K: Serialize + ?Sized, V: DeserializeOwned>(
        &self,
        cf: &str,
        key: &K,
        prefix: &[u8],
    ) -> Result<Option<V>> {
        self.started("get")?;
        self.with_encoded_key(key, prefix, |full| self.read_decoded(cf, full))
    }

    /// Reads `key` under `prefix`, or `default` if it has no value.
    pub fn get_or<K: Serialize + ?Sized, V: DeserializeOwned>(&self, key: &K, prefix: &[u8], default: V) -> Result<V> {
        Ok(self.get(key, prefix)?.unwrap_or(default))
    }

    /// Encodes and sets `key` under `prefix` to `value`. An encoding error
    /// fails the transaction.
    pub fn set<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
        prefix: &[u8],
    ) -> Result<()> {
        self.set_in(cf::DEFAULT, key, value, prefix)
    }

    /// [`set`](Self::set) in column family `cf`.
    pub fn set_in<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        cf: &str,
        key: &K,
        value: &V,
        prefix: &[u8],
    ) -> Result<()> {
        self.started("set")?;
        self.mutate(|t| {
            // The change set copies key and value into its own buffer, so
            // they are encoded into reused per-thread buffers.
            thread_local! {
                static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
                    const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
            }
            SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
                Ok(mut bufs) => {
                    let (k, v) = &mut *bufs;
                    k.clear();
                    v.clear();
                    t.encode_key_into(key, prefix, k)?;
                    t.codec.encode_into(value, v)?;
                    t.cache.set(cf, k, v);
                    Ok(())
                }
                // Re-entered (a serializer writing through a transaction).
                Err(_) => {
                    let k = t.encode_key(key, prefix)?;
                    let v = t.codec.encode(value)?;
                    t.cache.set(cf, &k, &v);
                    Ok(())
                }
            })
        })
    }

    /// Deletes `key` under `prefix` (no error if it has no value).
    pub fn delete<K: Serialize + ?Sized>(&mut self, key: &K, prefix: &[u8]) -> Result<()> {
        self.delete_in(cf::DEFAULT, key, prefix)
    }

    /// [`delete`](Self::delete) in column family `cf`.
    pub fn delete_in<K: Serialize + ?Sized>(&mut self, cf: &str, key: &K, prefix: &[u8]) -> Result<()> {
        self.started("delete")?;
        self.mutate(|t| {
            let key = t.encode_key(key, prefix)?;
            t.cache.delete(cf, &key);
            Ok(())
        })
    }

    /// True if `key` under `prefix` has a value.
    pub fn exists<K: Serialize + ?Sized>(&self, key: &K, prefix: &[u8]) -> Result<bool> {
        self.started("exists")?;
        self.with_encoded_key(key, prefix, |full| self.exists_raw(cf::DEFAULT, full))
    }

    // ---- raw keys and values in the default column family ------------------

    /// Reads the value bytes of raw key bytes `key` under `prefix`.
    pub fn get_bytes(&self, key: &[u8], prefix: &[u8]) -> Result<Option<Vec<u8>>> {
        self.started("get")?;
        self.read_raw(cf::DEFAULT, &keys::prefixed_key(prefix, key))
    }

    /// Sets raw key bytes `key` under `prefix` to raw value bytes.
    pub fn set_bytes(&mut self, key: &[u8], value: &[u8], prefix: &[u8]) -> Result<()> {
        self.set_raw(cf::DEFAULT, keys::prefixed_key(prefix, key), value.to_vec())
    }

    /// Deletes raw key bytes `key` under `prefix`.
    pub fn delete_bytes(&mut self, key: &[u8], prefix: &[u8]) -> Result<()> {
        self.delete_raw(cf::DEFAULT, keys::prefixed_key(prefix, key))
    }

    /// True if raw key bytes `key` under `prefix` have a value.
    pub fn exists_bytes(&self, key: &[u8], prefix: &[u8]) -> Result<bool> {
        self.exists_raw(cf::DEFAULT, &keys::prefixed_key(prefix, key))
    }

    // ---- commit -------------------------------------------------------------

    /// Sends one changelog record per changed key to the sink (if any), with
    /// the `__processed_tp_offsets__` header encoding `processed_offsets`,
    /// and moves to `Prepared`. Records go in column-family name order, then
    /// key order; local-only column families are skipped. Any sink error
    /// fails the transaction.
    pub fn prepare(&mut self, processed_offsets: Option<&ProcessedOffsets>) -> Result<()> {
        self.started("prepare")?;
        let res = self.emit_changelog(processed_offsets);
        self.status = if res.is_ok() {
            TxnStatus::Prepared
        } else {
            TxnStatus::Failed
        };
        res
    }

    fn emit_changelog(&self, processed_offsets: Option<&ProcessedOffsets>) -> Result<()> {
        let Some(sink) = &self.sink else { return Ok(()) };
        let header = processed_offsets.map(ProcessedOffsets::to_header);
        // quixstreams writes `null` when no offsets are given.
        let header: &[u8] = header.as_deref().unwrap_or(b"null");
        for (cf_name, changes) in self.cache.sorted_cfs() {
            if cf::is_local_only(cf_name) {
                continue;
            }
            for (key, value) in changes.sorted() {
                sink.send(ChangelogRecord {
                    cf: cf_name,
                    key,
                    value,
                    processed_offsets: Some(header),
                })?;
            }
        }
        Ok(())
    }

    /// Writes every change and `changelog_offset` (if given) to the
    /// partition in one atomic batch and moves to `Complete`. A transaction
    /// without changes writes nothing, not even the offset. An offset lower
    /// than the stored one is refused. Allowed when started or prepared.
    pub fn flush(&mut self, changelog_offset: Option<u64>) -> Result<()> {
        self.require("flush", &[TxnStatus::Started, TxnStatus::Prepared])?;
        let res = self.write_changes(changelog_offset);
        self.status = if res.is_ok() {
            TxnStatus::Complete
        } else {
            TxnStatus::Failed
        };
        res
    }

    fn write_changes(&mut self, changelog_offset: Option<u64>) -> Result<()> {
        if self.cache.is_empty() {
            return Ok(());
        }
        if let Some(requested) = changelog_offset {
            if let Some(stored) = self.partition.changelog_offset()? {
                if requested < stored {
                    return Err(TxnError::ChangelogOffsetRegression { stored, requested });
                }
            }
        }
        let mut batch = WriteBatch::with_capacity(self.cache.len(), 0);
        // Keys are unique per column family, so any order is correct; key
        // order is the fast one (RocksDB's memtable inserts reuse their
        // search path between neighbouring keys).
        for (cf_name, changes) in self.cache.sorted_cfs() {
            for (key, value) in changes.sorted() {
                batch.push(cf_name, key, value);
            }
        }
        if let Some(offset) = changelog_offset {
            batch.set_changelog_offset(offset);
        }
        self.partition.write(&batch)?;
        self.cache = UpdateCache::default();
        Ok(())
    }

    /// `prepare(None)` then `flush(None)`: commits a transaction that has no
    /// source offsets or changelog offset to record (tests, tools).
    pub fn commit(mut self) -> Result<()> {
        self.prepare(None)?;
        self.flush(None)
    }
}
