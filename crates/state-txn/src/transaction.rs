//! [`PartitionTransaction`]: buffered, read-your-writes changes to one store
//! partition, emitted to the changelog on `prepare` and written atomically
//! with the changelog offset on `flush`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use state_core::ttl::{TtlOptions, TtlState};
use state_core::{
    cf, keys, ChangelogRecord, ChangelogSink, Codec, Direction, KeyValue, ProcessedOffsets, StorePartition, WriteBatch,
};

use crate::cache::{Cached, UpdateCache};
use crate::error::{Result, TxnError};
use crate::status::TxnStatus;
use crate::ttl::{GetOptions, SetOptions, TtlTxn};

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
///
/// # The state of one message key
/// [`key`](Self::key)`(msg_key)` is the everyday API: a [`KeyView`](crate::KeyView) whose
/// methods take the state key only, so the message key (the prefix) and
/// the state key cannot be swapped:
///
/// ```
/// # use std::sync::Arc;
/// # use state_core::{Codec, MemoryPartition};
/// # use state_txn::PartitionTransaction;
/// # let partition = Arc::new(MemoryPartition::new());
/// let mut txn = PartitionTransaction::new(partition, Codec::MsgPack, None);
/// let mut user = txn.key(b"user-1"); // the Kafka message key
/// let n = user.get::<u64>("count")?.unwrap_or(0);
/// user.set("count", &(n + 1))?;
/// assert_eq!(user.get::<u64>("count")?, Some(1));
/// # Ok::<(), state_txn::TxnError>(())
/// ```
///
/// The methods that take the message key last, as `prefix` ([`get`](Self::get),
/// [`set`](Self::set), ...), keep quixstreams' argument order for code
/// that mirrors it byte for byte.
///
/// # Per-write TTL
/// A transaction made with [`with_ttl`](Self::with_ttl) implements
/// quixstreams 3.28.1's per-write TTL on the `default` column family:
/// [`set_with`](Self::set_with) takes a TTL and the record's event time; the
/// first such write switches the partition into TTL mode at `prepare`; from
/// then on values are stored stamped (`expires_at ++ payload`), reads
/// ([`get_with`](Self::get_with), [`get_bytes_with`](Self::get_bytes_with),
/// [`exists_with`](Self::exists_with) and their plain forms) strip the stamp
/// and hide values expired at the partition's high-water, and `prepare`
/// sweeps expired keys (tombstones on the changelog). The `*_raw` methods and
/// [`iter_range`](Self::iter_range) see stored bytes as they are, stamps
/// included. Without TTL, a write with a TTL is refused.
///
/// The high-water is the partition's event-time clock. Reads with a
/// timestamp move it as writes do, and a transaction whose reads moved it
/// sweeps at `prepare` and saves it at `flush` even if it changed nothing,
/// so a value that read as expired never reads as live again after a
/// restart (quixstreams sweeps and saves only in transactions that write).
///
/// ```
/// # use std::sync::Arc;
/// # use std::time::Duration;
/// # use state_core::{Codec, MemoryPartition};
/// use state_txn::{GetOptions, PartitionTransaction, SetOptions, TtlOptions};
/// # let partition = Arc::new(MemoryPartition::new());
/// let mut txn = PartitionTransaction::with_ttl(partition.clone(), Codec::MsgPack, None, TtlOptions::default())?;
/// let ts = 1_700_000_000_000; // the record's timestamp, ms
/// txn.key(b"user-1").set_with("session", &7, SetOptions::at(ts).ttl(Duration::from_secs(60)))?;
/// txn.commit()?;
/// let txn = PartitionTransaction::with_ttl(partition, Codec::MsgPack, None, TtlOptions::default())?;
/// let later = GetOptions::at(ts + 60_000);
/// assert_eq!(txn.key_ref(b"user-1").get_with::<u64>("session", later)?, None);
/// # Ok::<(), state_txn::TxnError>(())
/// ```
pub struct PartitionTransaction<P: StorePartition + ?Sized = dyn StorePartition> {
    partition: Arc<P>,
    codec: Codec,
    sink: Option<Arc<dyn ChangelogSink>>,
    cache: UpdateCache,
    status: TxnStatus,
    ttl: Option<TtlTxn>,
    /// The batch `flush` fills (kept for reuse by a later transaction).
    batch: WriteBatch,
}

/// The buffers of a finished transaction, emptied, for the next
/// transaction on the same partition: its change set and batch keep their
/// capacity, so a steady stream of checkpoints stops allocating them.
#[derive(Debug, Default)]
pub(crate) struct Recycled {
    changes: UpdateCache,
    batch: WriteBatch,
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
        Self::with_recycled(partition, codec, sink, Recycled::default())
    }

    /// [`new`](Self::new) with the buffers of an earlier transaction.
    pub(crate) fn with_recycled(
        partition: Arc<P>,
        codec: Codec,
        sink: Option<Arc<dyn ChangelogSink>>,
        recycled: Recycled,
    ) -> Self {
        PartitionTransaction {
            partition,
            codec,
            sink,
            cache: recycled.changes,
            status: TxnStatus::Started,
            ttl: None,
            batch: recycled.batch,
        }
    }

    /// Empties this transaction's buffers and hands them over for reuse.
    /// The transaction is then failed (unless it completed).
    pub(crate) fn recycle(&mut self) -> Recycled {
        if self.status != TxnStatus::Complete {
            self.status = TxnStatus::Failed;
        }
        let mut changes = std::mem::take(&mut self.cache);
        changes.clear();
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        Recycled { changes, batch }
    }

    /// Starts a transaction on a key-value partition with per-write TTL,
    /// reading the partition's TTL mode and event-time clock from the
    /// partition itself (three point reads). Use it when transactions on
    /// the partition run one after the other and nothing else writes to it;
    /// a manager that also recovers the partition shares one state between
    /// them with [`with_ttl_state`](Self::with_ttl_state).
    pub fn with_ttl(
        partition: Arc<P>,
        codec: Codec,
        sink: Option<Arc<dyn ChangelogSink>>,
        options: TtlOptions,
    ) -> Result<Self> {
        let state = TtlState::load(&*partition, options)?;
        Ok(Self::with_ttl_state(partition, codec, sink, Arc::new(state)))
    }

    /// Starts a transaction on a key-value partition with per-write TTL;
    /// `ttl` is the partition's shared state (from
    /// [`state_core::check_store_format`] with TTL support, or
    /// [`TtlState::load`]), the same for every transaction and for recovery.
    pub fn with_ttl_state(
        partition: Arc<P>,
        codec: Codec,
        sink: Option<Arc<dyn ChangelogSink>>,
        ttl: Arc<TtlState>,
    ) -> Self {
        PartitionTransaction {
            ttl: Some(TtlTxn::new(ttl)),
            ..PartitionTransaction::new(partition, codec, sink)
        }
    }

    /// The partition's TTL state, if this transaction has per-write TTL.
    pub fn ttl_state(&self) -> Option<&Arc<TtlState>> {
        self.ttl.as_ref().map(|t| &t.state)
    }

    /// The change set (for the windowed layer's merged iteration).
    pub(crate) fn cache(&self) -> &UpdateCache {
        &self.cache
    }

    /// What the change set holds for `key` in `cf`.
    pub(crate) fn cached(&self, cf: &str, key: &[u8]) -> Cached<'_> {
        self.cache.get(cf, key)
    }

    /// The TTL side of this transaction, when `cf` is the one it applies to.
    fn ttl_for(&self, cf_name: &str) -> Option<&TtlTxn> {
        self.ttl.as_ref().filter(|_| cf_name == cf::DEFAULT)
    }

    /// The current status.
    pub fn status(&self) -> TxnStatus {
        self.status
    }

    /// True once `prepare` succeeded (quixstreams' `prepared`).
    pub fn is_prepared(&self) -> bool {
        self.status == TxnStatus::Prepared
    }

    /// True once `flush` succeeded (quixstreams' `completed`).
    pub fn is_completed(&self) -> bool {
        self.status == TxnStatus::Complete
    }

    /// True after an error (quixstreams' `failed`): every later call is
    /// refused.
    pub fn is_failed(&self) -> bool {
        self.status == TxnStatus::Failed
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

    /// Reads the bytes of full key `key` in `cf`, cache first, exactly as
    /// stored (a TTL-mode value keeps its stamp).
    pub fn get_raw(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.started("get")?;
        self.read_raw(cf, key)
    }

    /// Reads the value of full key `key` as a user sees it: in the `default`
    /// column family of a TTL transaction, stamp stripped and expired values
    /// hidden, after advancing the high-water with `timestamp`.
    fn read_user(&self, cf: &str, key: &[u8], timestamp: Option<i64>) -> Result<Option<Vec<u8>>> {
        let Some(t) = self.ttl_for(cf) else {
            return self.read_raw(cf, key);
        };
        t.touch(timestamp);
        Ok(self
            .read_raw(cf, key)?
            .and_then(|raw| t.read(None, &raw).map(<[u8]>::to_vec)))
    }

    fn read_raw(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.cache.get(cf, key) {
            Cached::Value(v) => Ok(Some(v.to_vec())),
            Cached::Deleted => Ok(None),
            Cached::Unknown => Ok(self.partition.get(cf, key)?),
        }
    }

    /// Reads and decodes full key `key` in `cf`.
    fn read_decoded<V: DeserializeOwned>(&self, cf: &str, key: &[u8], timestamp: Option<i64>) -> Result<Option<V>> {
        if let Some(t) = self.ttl_for(cf) {
            t.touch(timestamp);
            return match self.cache.get(cf, key) {
                Cached::Value(v) => t
                    .read(None, v)
                    .map(|p| self.codec.decode(p))
                    .transpose()
                    .map_err(Into::into),
                Cached::Deleted => Ok(None),
                Cached::Unknown => match self.partition.get(cf, key)? {
                    Some(bytes) => Ok(t.read(None, &bytes).map(|p| self.codec.decode(p)).transpose()?),
                    None => Ok(None),
                },
            };
        }
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

    /// True if full key `key` has a value in `cf`, cache first (in the
    /// `default` column family of a TTL transaction: a value not expired).
    pub fn exists_raw(&self, cf: &str, key: &[u8]) -> Result<bool> {
        self.started("exists")?;
        self.exists_at(cf, key, None)
    }

    fn exists_at(&self, cf: &str, key: &[u8], timestamp: Option<i64>) -> Result<bool> {
        if self.ttl_for(cf).is_some() {
            return Ok(self.read_user(cf, key, timestamp)?.is_some());
        }
        match self.cache.get(cf, key) {
            Cached::Value(_) => Ok(true),
            Cached::Deleted => Ok(false),
            Cached::Unknown => Ok(self.partition.exists(cf, key)?),
        }
    }

    /// Sets full key `key` in `cf` to `value`, stored exactly as given (no
    /// TTL stamp is added).
    pub fn set_raw(&mut self, cf: &str, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.started("set")?;
        self.cache.set(cf, &key, &value);
        Ok(())
    }

    /// Sets full key `key` in `cf` that the caller knows has no committed
    /// value in the partition: flushed as [`WriteBatch::put_new`], and a
    /// later delete of it in this transaction writes nothing locally.
    pub(crate) fn set_raw_new(&mut self, cf: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.started("set")?;
        self.cache.set_new(cf, key, value);
        Ok(())
    }

    /// [`set_raw`](Self::set_raw) from borrowed bytes.
    pub(crate) fn set_raw_ref(&mut self, cf: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.started("set")?;
        self.cache.set(cf, key, value);
        Ok(())
    }

    /// [`delete_raw`](Self::delete_raw) of borrowed bytes.
    pub(crate) fn delete_raw_ref(&mut self, cf: &str, key: &[u8]) -> Result<()> {
        self.started("delete")?;
        self.stage_delete(cf, key);
        Ok(())
    }

    /// Deletes full key `key` in `cf`.
    pub fn delete_raw(&mut self, cf: &str, key: Vec<u8>) -> Result<()> {
        self.started("delete")?;
        self.stage_delete(cf, &key);
        Ok(())
    }

    fn stage_delete(&mut self, cf: &str, key: &[u8]) {
        if cf == cf::DEFAULT {
            if let Some(t) = self.ttl.as_mut() {
                t.on_delete(key);
            }
        }
        self.cache.delete(cf, key);
    }

    /// Stages `payload` (already encoded) under full key `key` as
    /// `options` say: stamped in the `default` column family of a TTL
    /// transaction, as it is elsewhere.
    fn stage_set(&mut self, key: &[u8], payload: &[u8], options: &SetOptions<'_>) -> Result<()> {
        if options.cf == cf::DEFAULT {
            if let Some(t) = self.ttl.as_mut() {
                return t.set(&*self.partition, &mut self.cache, key, payload, options);
            }
        }
        if options.ttl.is_some() {
            return Err(TxnError::TtlUnsupported {
                reason: if options.cf == cf::DEFAULT {
                    "this transaction has no per-write TTL; start it with PartitionTransaction::with_ttl \
                     (a manager's store: register it with StoreSpec::ttl)"
                } else {
                    "per-write TTL applies to the default column family only"
                },
            });
        }
        self.cache.set(options.cf, key, payload);
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
    ///
    /// quixstreams' argument order (message key last, as `prefix`);
    /// [`key`](Self::key)`(msg_key).get(key)` is the everyday form.
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
        self.with_encoded_key(key, prefix, |full| self.read_decoded(cf, full, None))
    }

    /// Reads `key` under `prefix` as `options` say (column family, event
    /// time), and decodes its value: quixstreams' `get(key, prefix,
    /// cf_name=, timestamp=)`.
    ///
    /// quixstreams' argument order (message key last, as `prefix`);
    /// [`key`](Self::key)`(msg_key).get_with(key, options)` is the everyday form.
    pub fn get_with<K: Serialize + ?Sized, V: DeserializeOwned>(
        &self,
        key: &K,
        prefix: &[u8],
        options: GetOptions<'_>,
    ) -> Result<Option<V>> {
        self.started("get")?;
        self.with_encoded_key(key, prefix, |full| {
            self.read_decoded(options.cf, full, options.timestamp)
        })
    }

    /// Reads `key` under `prefix`, or `default` if it has no value.
    ///
    /// quixstreams' argument order (message key last, as `prefix`);
    /// [`key`](Self::key)`(msg_key).get_or(key, default)` is the everyday form.
    pub fn get_or<K: Serialize + ?Sized, V: DeserializeOwned>(&self, key: &K, prefix: &[u8], default: V) -> Result<V> {
        Ok(self.get(key, prefix)?.unwrap_or(default))
    }

    /// Encodes and sets `key` under `prefix` to `value`. An encoding error
    /// fails the transaction.
    ///
    /// quixstreams' argument order (message key last, as `prefix`);
    /// [`key`](Self::key)`(msg_key).set(key, &value)` is the everyday form.
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
        if cf == cf::DEFAULT && self.ttl.is_some() {
            return self.set_with(key, value, prefix, SetOptions::default());
        }
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

    /// Encodes and sets `key` under `prefix` to `value` as `options` say
    /// (column family, event time, TTL): quixstreams' `set(key, value,
    /// prefix, cf_name=, timestamp=, ttl=)`. Any error (encoding, an invalid
    /// TTL, a TTL without TTL support) fails the transaction and stages
    /// nothing.
    ///
    /// quixstreams' argument order (message key last, as `prefix`);
    /// [`key`](Self::key)`(msg_key).set_with(key, &value, options)` is the everyday form.
    pub fn set_with<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
        prefix: &[u8],
        options: SetOptions<'_>,
    ) -> Result<()> {
        self.started("set")?;
        self.mutate(|t| {
            let k = t.encode_key(key, prefix)?;
            let v = t.codec.encode(value)?;
            t.stage_set(&k, &v, &options)
        })
    }

    /// Deletes `key` under `prefix` (no error if it has no value).
    ///
    /// quixstreams' argument order (message key last, as `prefix`);
    /// [`key`](Self::key)`(msg_key).delete(key)` is the everyday form.
    pub fn delete<K: Serialize + ?Sized>(&mut self, key: &K, prefix: &[u8]) -> Result<()> {
        self.delete_in(cf::DEFAULT, key, prefix)
    }

    /// [`delete`](Self::delete) in column family `cf`.
    pub fn delete_in<K: Serialize + ?Sized>(&mut self, cf: &str, key: &K, prefix: &[u8]) -> Result<()> {
        self.started("delete")?;
        self.mutate(|t| {
            let key = t.encode_key(key, prefix)?;
            t.stage_delete(cf, &key);
            Ok(())
        })
    }

    /// True if `key` under `prefix` has a value.
    ///
    /// quixstreams' argument order (message key last, as `prefix`);
    /// [`key`](Self::key)`(msg_key).exists(key)` is the everyday form.
    pub fn exists<K: Serialize + ?Sized>(&self, key: &K, prefix: &[u8]) -> Result<bool> {
        self.exists_in(cf::DEFAULT, key, prefix)
    }

    /// True if `key` under `prefix` has a value in column family `cf`.
    pub fn exists_in<K: Serialize + ?Sized>(&self, cf: &str, key: &K, prefix: &[u8]) -> Result<bool> {
        self.exists_with(key, prefix, GetOptions { cf, timestamp: None })
    }

    /// True if `key` under `prefix` has a value as `options` say (column
    /// family, event time): quixstreams' `exists(key, prefix, cf_name=,
    /// timestamp=)`. A value expired at the high-water does not exist.
    ///
    /// quixstreams' argument order (message key last, as `prefix`);
    /// [`key`](Self::key)`(msg_key).exists_with(key, options)` is the everyday form.
    pub fn exists_with<K: Serialize + ?Sized>(&self, key: &K, prefix: &[u8], options: GetOptions<'_>) -> Result<bool> {
        self.started("exists")?;
        self.with_encoded_key(key, prefix, |full| self.exists_at(options.cf, full, options.timestamp))
    }

    // ---- raw keys and values in the default column family ------------------

    /// Reads the value bytes of raw key bytes `key` under `prefix` (without
    /// a TTL stamp; expired values read as `None`).
    ///
    /// quixstreams' argument order (message key last, as `prefix`);
    /// [`key`](Self::key)`(msg_key).get_bytes(key)` is the everyday form.
    pub fn get_bytes(&self, key: &[u8], prefix: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_bytes_with(key, prefix, GetOptions::default())
    }

    /// Reads the value bytes of raw key bytes `key` under `prefix` as
    /// `options` say: quixstreams' `get_bytes(key, prefix, cf_name=,
    /// timestamp=)`.
    pub fn get_bytes_with(&self, key: &[u8], prefix: &[u8], options: GetOptions<'_>) -> Result<Option<Vec<u8>>> {
        self.started("get")?;
        self.read_user(options.cf, &keys::prefixed_key(prefix, key), options.timestamp)
    }

    /// Sets raw key bytes `key` under `prefix` to raw value bytes (stamped
    /// in a TTL transaction, never expiring).
    ///
    /// quixstreams' argument order (message key last, as `prefix`);
    /// [`key`](Self::key)`(msg_key).set_bytes(key, value)` is the everyday form.
    pub fn set_bytes(&mut self, key: &[u8], value: &[u8], prefix: &[u8]) -> Result<()> {
        self.set_bytes_with(key, value, prefix, SetOptions::default())
    }

    /// Sets raw key bytes `key` under `prefix` to raw value bytes as
    /// `options` say: quixstreams' `set_bytes(key, value, prefix, cf_name=,
    /// timestamp=, ttl=)`. An error fails the transaction.
    pub fn set_bytes_with(&mut self, key: &[u8], value: &[u8], prefix: &[u8], options: SetOptions<'_>) -> Result<()> {
        self.started("set")?;
        self.mutate(|t| t.stage_set(&keys::prefixed_key(prefix, key), value, &options))
    }

    /// Deletes raw key bytes `key` under `prefix`.
    ///
    /// quixstreams' argument order (message key last, as `prefix`);
    /// [`key`](Self::key)`(msg_key).delete_bytes(key)` is the everyday form.
    pub fn delete_bytes(&mut self, key: &[u8], prefix: &[u8]) -> Result<()> {
        self.delete_raw(cf::DEFAULT, keys::prefixed_key(prefix, key))
    }

    /// True if raw key bytes `key` under `prefix` have a value.
    ///
    /// quixstreams' argument order (message key last, as `prefix`);
    /// [`key`](Self::key)`(msg_key).exists_bytes(key)` is the everyday form.
    pub fn exists_bytes(&self, key: &[u8], prefix: &[u8]) -> Result<bool> {
        self.exists_raw(cf::DEFAULT, &keys::prefixed_key(prefix, key))
    }

    // ---- commit -------------------------------------------------------------

    /// Sends one changelog record per changed key to the sink (if any), with
    /// the `__processed_tp_offsets__` header encoding `processed_offsets`,
    /// and moves to `Prepared`. Records go in column-family name order, then
    /// key order, `__ttl_system__` last; local-only column families are
    /// skipped. Records of stores whose codec is not JSON carry the
    /// `__value_codec__` header.
    ///
    /// With per-write TTL, first: a transaction that wrote with a TTL
    /// switches an unflipped partition into TTL mode (stamping a populated
    /// store's values, whose records go first with `null` offsets), then the
    /// bounded sweep deletes expired keys (in a transaction that changed
    /// something, or whose reads moved the high-water). `default` records of a partition
    /// in TTL mode carry the `__ttl_stamped__` header. Any error fails the
    /// transaction.
    pub fn prepare(&mut self, processed_offsets: Option<&ProcessedOffsets>) -> Result<()> {
        self.started("prepare")?;
        let res = match self.ttl.as_mut() {
            Some(t) => t.prepare(&*self.partition, &mut self.cache),
            None => Ok(()),
        };
        let res = res.and_then(|()| self.emit_changelog(processed_offsets));
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
        let value_codec = (self.codec != Codec::Json).then_some(self.codec);
        let stamped = self.ttl.as_ref().is_some_and(TtlTxn::enabled);
        if let Some(t) = &self.ttl {
            // The values stamped by the switch into TTL mode, as quixstreams'
            // backfill produces them: before the checkpoint's own records,
            // always applied on recovery.
            for (key, value) in &t.backfill {
                sink.send(ChangelogRecord {
                    cf: cf::DEFAULT,
                    key,
                    value: Some(value),
                    processed_offsets: Some(b"null"),
                    ttl_stamped: true,
                    value_codec,
                })?;
            }
        }
        let mut cfs = self.cache.sorted_cfs();
        // quixstreams produces the migration-done marker last.
        if let Some(i) = cfs.iter().position(|(name, _)| *name == cf::TTL_SYSTEM) {
            let system = cfs.remove(i);
            cfs.push(system);
        }
        for (cf_name, changes) in cfs {
            if cf::is_local_only(cf_name) {
                continue;
            }
            let ttl_stamped = stamped && cf_name == cf::DEFAULT;
            for (key, value) in changes.sorted() {
                sink.send(ChangelogRecord {
                    cf: cf_name,
                    key,
                    value,
                    processed_offsets: Some(header),
                    ttl_stamped,
                    value_codec,
                })?;
            }
        }
        Ok(())
    }

    /// Writes every change and `changelog_offset` (if given) to the
    /// partition in one atomic batch and moves to `Complete`. A transaction
    /// without changes writes nothing, not even the offset. An offset lower
    /// than the stored one is refused. Allowed when started or prepared.
    /// A partition in TTL mode also stores its high-water in the batch (and,
    /// with [`state_core::ttl::SweepTombstones::LocalOnly`], the sweep's
    /// deletes); when reads moved the high-water, it is stored even by a
    /// transaction without changes (without the offset).
    pub fn flush(&mut self, changelog_offset: Option<u64>) -> Result<()> {
        self.flush_then(changelog_offset, |_| ())
    }

    /// [`flush`](Self::flush), then, if the write succeeded, `after` with
    /// the changes written (the windowed layer updates its shared index).
    pub(crate) fn flush_then(&mut self, changelog_offset: Option<u64>, after: impl FnOnce(&UpdateCache)) -> Result<()> {
        self.require("flush", &[TxnStatus::Started, TxnStatus::Prepared])?;
        let res = self.write_changes(changelog_offset);
        self.status = if res.is_ok() {
            after(&self.cache);
            self.cache.clear();
            TxnStatus::Complete
        } else {
            TxnStatus::Failed
        };
        res
    }

    fn write_changes(&mut self, changelog_offset: Option<u64>) -> Result<()> {
        let changelog_offset = if !self.cache.is_empty() {
            changelog_offset
        } else if self.unsaved_clock() {
            // Nothing changed, but reads moved the TTL clock: save it (and
            // run a local-only sweep) without an offset, as nothing was
            // produced.
            None
        } else {
            return Ok(());
        };
        if let Some(requested) = changelog_offset {
            if let Some(stored) = self.partition.changelog_offset()? {
                if requested < stored {
                    return Err(TxnError::ChangelogOffsetRegression { stored, requested });
                }
            }
        }
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        let res = self.fill_batch(&mut batch, changelog_offset);
        let res = res.and_then(|clock| {
            self.partition.write(&batch)?;
            if let (Some(hw), Some(t)) = (clock, &self.ttl) {
                t.state.note_high_water_saved(hw);
            }
            Ok(())
        });
        self.batch = batch;
        res
    }

    /// True if this is a TTL transaction on a partition in TTL mode whose
    /// event-time clock moved past the one the partition holds.
    fn unsaved_clock(&self) -> bool {
        self.ttl
            .as_ref()
            .is_some_and(|t| t.enabled() && t.state.unsaved_high_water().is_some())
    }

    /// Fills `batch` with the transaction's changes; returns the TTL
    /// high-water it carries, if any.
    fn fill_batch(&self, batch: &mut WriteBatch, changelog_offset: Option<u64>) -> Result<Option<u64>> {
        if let Some(t) = &self.ttl {
            // Stamped existing values first: the transaction's own changes
            // (a delete, say) come later in the batch and win.
            for (key, value) in &t.backfill {
                batch.put(cf::DEFAULT, key, value);
            }
        }
        // Keys are unique per column family, so any order is correct; key
        // order is the fast one for RocksDB (its memtable inserts reuse
        // their search path between neighbouring keys), so the changes are
        // sorted for partitions that say so.
        let sorted = self.partition.prefers_sorted_batches();
        for (cf_name, changes) in self.cache.sorted_cfs() {
            changes.for_each_flagged(sorted, |(key, value, new_key)| match value {
                Some(v) if new_key => batch.put_new(cf_name, key, v),
                Some(v) => batch.put(cf_name, key, v),
                // Created and deleted here, never stored: nothing to
                // delete (the changelog still gets its tombstone).
                None if new_key => {}
                None => batch.delete(cf_name, key),
            });
        }
        let mut clock = None;
        if let Some(t) = self.ttl.as_ref().filter(|t| t.enabled()) {
            clock = t.state.high_water();
            if let Some(hw) = clock {
                batch.put(cf::METADATA, cf::TTL_HIGH_WATER_KEY, &hw.to_be_bytes());
            }
            if t.state.options().sweep == state_core::ttl::SweepTombstones::LocalOnly {
                let mut deletes = Vec::new();
                crate::ttl::sweep(&*self.partition, &self.cache, &t.state, &mut deletes)?;
                for (cf_name, key) in deletes {
                    batch.delete(cf_name, &key);
                }
            }
        }
        if let Some(offset) = changelog_offset {
            batch.set_changelog_offset(offset);
        }
        Ok(clock)
    }

    /// `prepare(None)` then `flush(None)`: commits a transaction that has no
    /// source offsets or changelog offset to record (tests, tools).
    pub fn commit(mut self) -> Result<()> {
        self.prepare(None)?;
        self.flush(None)
    }
}
