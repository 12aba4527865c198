//! [`WindowedTransaction`]: time windows per key prefix on top of a
//! [`PartitionTransaction`], with the same byte layouts as quixstreams'
//! windowed RocksDB state.
//!
//! Layouts (see `docs/formats.md`):
//! * window `prefix | start | end` (u64 BE) in `default`, value = codec(aggregate);
//! * latest event time `prefix | __latest_timestamp__` in `__latest-timestamps__`;
//! * last expired start `prefix | __expired_start_gt__` in `__expiration-index__`;
//! * last deleted start `prefix | __deleted_start_gt__` in `__deletion-index__`;
//! * last deleted value id `prefix | __value_deleted_start_gt__` in
//!   `__value-deletion-index__`;
//! * collection values `prefix | id | counter` in `__values__`;
//! * the counter `__global_counter__` in `__global-counter__`.
//!
//! Index values are integers encoded with the store's codec, any integer in
//! `[-2^63, 2^64 - 1]` as quixstreams allows (its session windows store `-1`
//! and `2^64 - 1`). Every write goes through the base transaction, so all of
//! it reaches the changelog and is rebuilt by recovery.
//!
//! The methods quixstreams 3.28.1 added for session windows live in their
//! own files: [`iter`] (lazy window iteration, prefixes, keys) and
//! [`checkpoint`] (partition watermark, expiry checkpoints).

use std::collections::BTreeSet;

use std::cell::RefCell;

use rustc_hash::FxBuildHasher;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use state_core::{cf, keys, ChangelogSink, Codec, Direction, ProcessedOffsets, StorePartition};

use crate::cache::Cached;
use crate::error::{Result, TxnError};
use crate::options::{CollectedValues, ExpireOptions};
use crate::small::Few;
use crate::transaction::{PartitionTransaction, TxnStatus};

pub mod checkpoint;
pub mod index;
mod index_value;
pub mod iter;

pub use index::{WindowIndex, WindowIndexStats, DEFAULT_MAX_PREFIXES};
use index_value::IndexValue;
pub use iter::WindowCursor;

/// Stored windows in a range that [`WindowedTransaction`] reads by point
/// reads from what the [`WindowIndex`] lists; more are read by one range
/// scan.
const POINT_READ_WINDOWS: usize = 32;

pub(crate) const LATEST_TIMESTAMP_KEY: &[u8] = b"__latest_timestamp__";
pub(crate) const LATEST_EXPIRED_KEY: &[u8] = b"__expired_start_gt__";
pub(crate) const LATEST_DELETED_WINDOW_KEY: &[u8] = b"__deleted_start_gt__";
pub(crate) const LATEST_DELETED_VALUE_KEY: &[u8] = b"__value_deleted_start_gt__";
/// Key of the persistent counter in `__global-counter__` (windowed stores).
pub const GLOBAL_COUNTER_KEY: &[u8] = b"__global_counter__";

/// A window's bounds and decoded aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window<V> {
    /// Start, ms (inclusive).
    pub start: u64,
    /// End, ms (exclusive).
    pub end: u64,
    /// The aggregate stored for the window.
    pub value: V,
}

/// An expired window, with the prefix it belongs to and, for collection
/// windows, the values collected into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiredWindow<V, C> {
    /// Start, ms.
    pub start: u64,
    /// End, ms.
    pub end: u64,
    /// The aggregate.
    pub value: V,
    /// Collected values in insertion order (empty unless collecting).
    pub collected: Vec<C>,
    /// The key prefix (message key) of the window.
    pub prefix: Vec<u8>,
}

/// The per-prefix "latest ..." indexes of a windowed store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Index {
    Timestamp,
    Expired,
    DeletedWindow,
    DeletedValue,
}

impl Index {
    const COUNT: usize = 4;

    fn slot(self) -> usize {
        self as usize
    }

    fn location(self) -> (&'static str, &'static [u8]) {
        match self {
            Index::Timestamp => (cf::LATEST_TIMESTAMPS, LATEST_TIMESTAMP_KEY),
            Index::Expired => (cf::EXPIRATION_INDEX, LATEST_EXPIRED_KEY),
            Index::DeletedWindow => (cf::DELETION_INDEX, LATEST_DELETED_WINDOW_KEY),
            Index::DeletedValue => (cf::VALUE_DELETION_INDEX, LATEST_DELETED_VALUE_KEY),
        }
    }
}

fn check_window(start: i64, end: i64) -> Result<(u64, u64)> {
    if start < 0 {
        return Err(TxnError::NegativeTimestamp {
            what: "window start",
            value: start,
        });
    }
    if end <= start {
        return Err(TxnError::InvalidWindow { start, end });
    }
    Ok((start as u64, end as u64))
}

/// An index value as a `u64` (negative values as 0).
fn to_u64(value: i128) -> u64 {
    u64::try_from(value.max(0)).unwrap_or(u64::MAX)
}

/// The exclusive lower start bound of a scan resuming after a recorded
/// index value (quixstreams: `max(-1, recorded)`): `Some(None)` scans from
/// 0, `Some(Some(s))` from `s + 1`, `None` when nothing can follow.
fn exclusive_start(recorded: Option<i128>) -> Option<Option<u64>> {
    match recorded {
        None => Some(None),
        Some(v) if v < 0 => Some(None),
        Some(v) => u64::try_from(v).ok().map(Some),
    }
}

fn non_negative(what: &'static str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| TxnError::NegativeTimestamp { what, value })
}

/// `prefix | u64(n)`: the bound of a range of keys under `prefix` whose
/// first integer is `n`.
fn bound(prefix: &[u8], n: u64) -> Vec<u8> {
    keys::prefixed_key(prefix, &keys::encode_u64(n))
}

/// A window's start, end and stored value bytes.
type RawWindow = (u64, u64, Vec<u8>);

fn window_key_len(prefix: &[u8]) -> usize {
    prefix.len() + usize::from(!prefix.is_empty()) + keys::U64_PAIR_LEN
}

/// A transaction over a windowed store partition.
///
/// Windows are `[start, end)` in milliseconds; negative times and windows
/// with `end <= start` are refused with a typed error.
pub struct WindowedTransaction<P: StorePartition + ?Sized = dyn StorePartition> {
    base: PartitionTransaction<P>,
    /// What this transaction knows per prefix. Keyed by prefix alone so a
    /// lookup needs no allocation; in a cell so reads (`&self`) can take a
    /// prefix's snapshot from the shared index.
    prefixes: RefCell<PrefixMap>,
    counter: Option<u64>,
    /// The partition's shared index, if the owner made one.
    shared: Option<Arc<WindowIndex>>,
    /// [`base_mut`](Self::base_mut) was used: windows may have changed
    /// behind the back of `prefixes`, so ranges read the change set.
    untracked: bool,
    /// Reused buffers for keys and values written.
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

/// The prefixes a transaction touched, keyed by their bytes. Prefix bytes
/// live back to back in one buffer (no allocation per prefix), and the
/// last prefix found is remembered: a record's calls all name the same
/// prefix, so most lookups are one comparison.
#[derive(Debug, Default)]
struct PrefixMap {
    bytes: Vec<u8>,
    entries: Vec<(std::ops::Range<usize>, PrefixTxn)>,
    table: hashbrown::HashTable<u32>,
    last: std::cell::Cell<Option<u32>>,
}

fn prefix_hash(prefix: &[u8]) -> u64 {
    std::hash::BuildHasher::hash_one(&FxBuildHasher, prefix)
}

impl PrefixMap {
    fn position(&self, prefix: &[u8]) -> Option<u32> {
        if let Some(i) = self.last.get() {
            if self.bytes[self.entries[i as usize].0.clone()] == *prefix {
                return Some(i);
            }
        }
        let (bytes, entries) = (&self.bytes, &self.entries);
        let found = self
            .table
            .find(prefix_hash(prefix), |&i| {
                bytes[entries[i as usize].0.clone()] == *prefix
            })
            .copied();
        if found.is_some() {
            self.last.set(found);
        }
        found
    }

    fn get(&self, prefix: &[u8]) -> Option<&PrefixTxn> {
        self.position(prefix).map(|i| &self.entries[i as usize].1)
    }

    /// Forgets every prefix, keeping the buffers.
    fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
        self.table.clear();
        self.last.set(None);
    }

    /// Every prefix with what the transaction knows of it.
    fn iter(&self) -> impl Iterator<Item = (&[u8], &PrefixTxn)> {
        self.entries.iter().map(|(range, p)| (&self.bytes[range.clone()], p))
    }

    /// The entry of `prefix`, made empty if missing.
    fn entry(&mut self, prefix: &[u8]) -> &mut PrefixTxn {
        let i = match self.position(prefix) {
            Some(i) => i,
            None => {
                let start = self.bytes.len();
                self.bytes.extend_from_slice(prefix);
                self.entries.push((start..self.bytes.len(), PrefixTxn::default()));
                let i = (self.entries.len() - 1) as u32;
                let (bytes, entries) = (&self.bytes, &self.entries);
                self.table.insert_unique(prefix_hash(prefix), i, |&j| {
                    prefix_hash(&bytes[entries[j as usize].0.clone()])
                });
                self.last.set(Some(i));
                i
            }
        };
        &mut self.entries[i as usize].1
    }
}

/// What one transaction knows about one prefix.
#[derive(Debug, Default)]
struct PrefixTxn {
    /// Index values read or written, per [`Index`] slot.
    slots: Slots,
    /// Slots this transaction wrote (bit per [`Index::slot`]).
    written: u8,
    /// Windows this transaction set (`true`) or deleted (`false`) through
    /// the windowed API, with the last thing done to each.
    touched: Few<(u64, u64, bool)>,
    /// The prefix's committed state from the shared index, taken on first
    /// use (`None`: not taken yet).
    shared: Option<SharedSnapshot>,
}

/// Index values known to a transaction, per [`Index`] slot: compact,
/// because a transaction keeps them for every prefix it touches.
#[derive(Clone, Copy, Debug, Default)]
struct Slots {
    values: [i128; Index::COUNT],
    /// Bit per slot: the value is known (else `get` says `None`).
    known: u8,
    /// Bit per slot: the stored value exists (else it is absent).
    present: u8,
}

impl Slots {
    /// `None`: not known; `Some(None)`: known absent.
    fn get(&self, index: Index) -> Option<Option<i128>> {
        let bit = 1 << index.slot();
        (self.known & bit != 0).then(|| (self.present & bit != 0).then_some(self.values[index.slot()]))
    }

    fn set(&mut self, index: Index, value: Option<i128>) {
        let bit = 1 << index.slot();
        self.known |= bit;
        match value {
            Some(v) => {
                self.present |= bit;
                self.values[index.slot()] = v;
            }
            None => self.present &= !bit,
        }
    }
}

/// A prefix's committed state, as the shared index has it.
#[derive(Debug)]
struct SharedSnapshot {
    /// Stored windows, sorted; `None`: not indexed.
    windows: Option<Few<(u64, u64)>>,
    latest: Option<i128>,
    expired: Option<i128>,
    /// Where the index held the prefix (a hint: entries move).
    position: u32,
}

thread_local! {
    static WINDOW_KEY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `prefix | start | end` built in a reused buffer.
fn with_window_key<T>(prefix: &[u8], start: u64, end: u64, f: impl FnOnce(&[u8]) -> T) -> T {
    WINDOW_KEY.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            keys::write_prefixed_key(&mut buf, prefix, &keys::encode_u64_pair(start, end));
            f(&buf)
        }
        // Re-entered (a backend reading through a transaction).
        Err(_) => f(&keys::window_key(prefix, start, end)),
    })
}

/// The buffers a windowed transaction leaves to the next one on its
/// partition (kept by the partition's [`WindowIndex`]).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    prefixes: PrefixMap,
    base: crate::transaction::Recycled,
}

impl<P: StorePartition + ?Sized> Drop for WindowedTransaction<P> {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            let mut prefixes = std::mem::take(self.prefixes.get_mut());
            prefixes.clear();
            shared.put_scratch(Scratch {
                prefixes,
                base: self.base.recycle(),
            });
        }
    }
}

impl<P: StorePartition + ?Sized> std::fmt::Debug for WindowedTransaction<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowedTransaction").field("base", &self.base).finish()
    }
}

impl<P: StorePartition + ?Sized> WindowedTransaction<P> {
    /// Starts a windowed transaction on `partition`.
    pub fn new(partition: Arc<P>, codec: Codec, sink: Option<Arc<dyn ChangelogSink>>) -> Self {
        WindowedTransaction {
            base: PartitionTransaction::new(partition, codec, sink),
            prefixes: RefCell::new(PrefixMap::default()),
            counter: None,
            shared: None,
            untracked: false,
            key_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// Starts a windowed transaction on `partition` that reads per-prefix
    /// metadata (latest timestamp, last expired start, which windows exist)
    /// from `index`, the partition's shared [`WindowIndex`], and updates it
    /// after a successful flush. Reads and writes give exactly what
    /// [`new`](Self::new) gives; `get_window` of a missing window and
    /// `expire_windows` with nothing to expire read nothing from the
    /// partition, and created windows are flushed as
    /// [`state_core::WriteBatch::put_new`]. See [`WindowIndex`] for the
    /// owner's side of the contract.
    pub fn with_index(
        partition: Arc<P>,
        codec: Codec,
        sink: Option<Arc<dyn ChangelogSink>>,
        index: Arc<WindowIndex>,
    ) -> Self {
        // The buffers the partition's previous transaction left behind.
        let scratch = index.take_scratch();
        WindowedTransaction {
            base: PartitionTransaction::with_recycled(partition, codec, sink, scratch.base),
            prefixes: RefCell::new(scratch.prefixes),
            counter: None,
            shared: Some(index),
            untracked: false,
            key_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// The shared index this transaction uses, if any.
    pub fn index(&self) -> Option<&Arc<WindowIndex>> {
        self.shared.as_ref()
    }

    /// The underlying key-value transaction (for plain `get`/`set`).
    pub fn base(&self) -> &PartitionTransaction<P> {
        &self.base
    }

    /// Mutable access to the underlying key-value transaction. Windows
    /// written through it are seen by every windowed read (range reads of
    /// this transaction then merge its whole change set).
    pub fn base_mut(&mut self) -> &mut PartitionTransaction<P> {
        self.untracked = true;
        &mut self.base
    }

    /// The transaction status.
    pub fn status(&self) -> TxnStatus {
        self.base.status()
    }

    pub(crate) fn codec(&self) -> Codec {
        self.base.codec()
    }

    fn fail_on_err<T>(&mut self, res: Result<T>) -> Result<T> {
        if res.is_err() && self.base.status() == TxnStatus::Started {
            // Reads of corrupt indexes must not leave half-done work behind.
            self.base.mark_failed();
        }
        res
    }

    // ---- indexes -----------------------------------------------------------

    /// Takes `prefix`'s snapshot from the shared index if not taken yet;
    /// false without a shared index.
    fn snapshot(&self, prefix: &[u8]) -> Result<bool> {
        let Some(shared) = &self.shared else { return Ok(false) };
        if self.prefixes.borrow().get(prefix).is_some_and(|p| p.shared.is_some()) {
            return Ok(true);
        }
        let snap = shared.with_prefix(&**self.base.partition(), self.codec(), prefix, |e, position| {
            SharedSnapshot {
                windows: e.windows.clone(),
                latest: e.latest,
                expired: e.expired,
                position,
            }
        })?;
        self.prefixes.borrow_mut().entry(prefix).shared = Some(snap);
        Ok(true)
    }

    fn get_index(&mut self, index: Index, prefix: &[u8]) -> Result<Option<i128>> {
        if let Some(Some(v)) = self.prefixes.get_mut().get(prefix).map(|p| p.slots.get(index)) {
            return Ok(v);
        }
        self.base.require_started("get")?;
        let (cf_name, key) = index.location();
        let mut full = std::mem::take(&mut self.key_buf);
        full.clear();
        keys::write_prefixed_key(&mut full, prefix, key);
        let res = self.read_index(index, prefix, cf_name, &full);
        self.key_buf = full;
        let value = res?;
        self.remember_index(index, prefix, value);
        Ok(value)
    }

    /// Reads index slot `index` of `prefix` (full key `full` in `cf_name`):
    /// this transaction's change, else the shared index, else the store.
    fn read_index(&self, index: Index, prefix: &[u8], cf_name: &str, full: &[u8]) -> Result<Option<i128>> {
        let from_shared = matches!(index, Index::Timestamp | Index::Expired) && self.shared.is_some();
        if from_shared && !self.untracked {
            // Only `set_index` writes these keys here, and it records the
            // value: the change set has nothing the slots do not.
            self.snapshot(prefix)?;
            let prefixes = self.prefixes.borrow();
            let snap = prefixes.get(prefix).and_then(|p| p.shared.as_ref());
            return Ok(match (index, snap) {
                (Index::Timestamp, Some(s)) => s.latest,
                (_, Some(s)) => s.expired,
                (_, None) => None,
            });
        }
        Ok(match self.base.cached(cf_name, full) {
            Cached::Value(bytes) => Some(self.codec().decode::<IndexValue>(bytes)?.0),
            Cached::Deleted => None,
            Cached::Unknown if from_shared => {
                self.snapshot(prefix)?;
                let prefixes = self.prefixes.borrow();
                let snap = prefixes.get(prefix).and_then(|p| p.shared.as_ref());
                match (index, snap) {
                    (Index::Timestamp, Some(s)) => s.latest,
                    (_, Some(s)) => s.expired,
                    (_, None) => None,
                }
            }
            Cached::Unknown => match self.base.partition().get(cf_name, full)? {
                Some(bytes) => Some(self.codec().decode::<IndexValue>(&bytes)?.0),
                None => None,
            },
        })
    }

    fn set_index(&mut self, index: Index, prefix: &[u8], value: i128) -> Result<()> {
        let (cf_name, key) = index.location();
        let codec = self.codec();
        self.value_buf.clear();
        codec.encode_into(&IndexValue::new(value)?, &mut self.value_buf)?;
        self.key_buf.clear();
        keys::write_prefixed_key(&mut self.key_buf, prefix, key);
        self.base.set_raw_ref(cf_name, &self.key_buf, &self.value_buf)?;
        let p = self.prefix_mut(prefix);
        p.slots.set(index, Some(value));
        p.written |= 1 << index.slot();
        Ok(())
    }

    fn prefix_mut(&mut self, prefix: &[u8]) -> &mut PrefixTxn {
        self.prefixes.get_mut().entry(prefix)
    }

    fn remember_index(&mut self, index: Index, prefix: &[u8], value: Option<i128>) {
        self.prefix_mut(prefix).slots.set(index, value);
    }

    /// Records that this transaction set (`present`) or deleted window
    /// `(start, end)`.
    fn touch(&mut self, prefix: &[u8], start: u64, end: u64, present: bool) {
        let touched = &mut self.prefix_mut(prefix).touched;
        match touched.as_mut_slice().iter_mut().find(|w| (w.0, w.1) == (start, end)) {
            Some(w) => w.2 = present,
            None => touched.push((start, end, present)),
        }
    }

    /// True if the shared index knows window `(start, end)` of `prefix` is
    /// not stored (false: stored, or not known).
    fn stored_absent(&self, prefix: &[u8], start: u64, end: u64) -> Result<bool> {
        if !self.snapshot(prefix)? {
            return Ok(false);
        }
        Ok(self
            .prefixes
            .borrow()
            .get(prefix)
            .and_then(|p| p.shared.as_ref())
            .and_then(|s| s.windows.as_ref())
            .is_some_and(|w| w.as_slice().binary_search(&(start, end)).is_err()))
    }

    /// The latest event time seen for `prefix` by `update_window` (0 if none;
    /// a negative stored value, which neither library writes, reads as 0).
    pub fn get_latest_timestamp(&mut self, prefix: &[u8]) -> Result<u64> {
        Ok(to_u64(self.get_index(Index::Timestamp, prefix)?.unwrap_or(0)))
    }

    // ---- windows -----------------------------------------------------------

    /// The aggregate of window `[start, end)` under `prefix`, if any.
    pub fn get_window<V: DeserializeOwned>(&self, start: i64, end: i64, prefix: &[u8]) -> Result<Option<V>> {
        let (s, e) = check_window(start, end)?;
        self.base.require_started("get")?;
        with_window_key(prefix, s, e, |key| {
            match self.base.cached(cf::DEFAULT, key) {
                Cached::Value(bytes) => return Ok(Some(self.codec().decode(bytes)?)),
                Cached::Deleted => return Ok(None),
                Cached::Unknown => {}
            }
            if self.stored_absent(prefix, s, e)? {
                return Ok(None);
            }
            match self.base.partition().get(cf::DEFAULT, key)? {
                Some(bytes) => Ok(Some(self.codec().decode(&bytes)?)),
                None => Ok(None),
            }
        })
    }

    /// The aggregate of window `[start, end)` under `prefix`, or `default`:
    /// quixstreams' `get_window(..., default=)`.
    pub fn get_window_or<V: DeserializeOwned>(&self, start: i64, end: i64, prefix: &[u8], default: V) -> Result<V> {
        Ok(self.get_window(start, end, prefix)?.unwrap_or(default))
    }

    /// Sets the aggregate of window `[start, end)` and raises the prefix's
    /// latest timestamp to `timestamp` if it is newer.
    pub fn update_window<V: Serialize + ?Sized>(
        &mut self,
        start: i64,
        end: i64,
        value: &V,
        timestamp: i64,
        prefix: &[u8],
    ) -> Result<()> {
        let res = self.update_window_inner(start, end, value, timestamp, prefix);
        self.fail_on_err(res)
    }

    fn update_window_inner<V: Serialize + ?Sized>(
        &mut self,
        start: i64,
        end: i64,
        value: &V,
        timestamp: i64,
        prefix: &[u8],
    ) -> Result<()> {
        let ts = non_negative("timestamp", timestamp)?;
        let (s, e) = check_window(start, end)?;
        self.base.require_started("set")?;
        let codec = self.codec();
        self.value_buf.clear();
        codec.encode_into(value, &mut self.value_buf)?;
        self.key_buf.clear();
        keys::write_prefixed_key(&mut self.key_buf, prefix, &keys::encode_u64_pair(s, e));
        if self.stored_absent(prefix, s, e)? {
            self.base.set_raw_new(cf::DEFAULT, &self.key_buf, &self.value_buf)?;
        } else {
            self.base.set_raw_ref(cf::DEFAULT, &self.key_buf, &self.value_buf)?;
        }
        self.touch(prefix, s, e, true);
        let latest = self.get_index(Index::Timestamp, prefix)?;
        let updated = latest.map_or(i128::from(ts), |l| l.max(i128::from(ts)));
        self.set_index(Index::Timestamp, prefix, updated)
    }

    /// Deletes window `[start, end)` under `prefix`.
    pub fn delete_window(&mut self, start: i64, end: i64, prefix: &[u8]) -> Result<()> {
        let (s, e) = check_window(start, end)?;
        self.base.delete_raw(cf::DEFAULT, keys::window_key(prefix, s, e))?;
        self.touch(prefix, s, e, false);
        Ok(())
    }

    /// Deletes a window found by a range read.
    fn delete_found(&mut self, prefix: &[u8], start: u64, end: u64) -> Result<()> {
        self.key_buf.clear();
        keys::write_prefixed_key(&mut self.key_buf, prefix, &keys::encode_u64_pair(start, end));
        self.base.delete_raw_ref(cf::DEFAULT, &self.key_buf)?;
        self.touch(prefix, start, end, false);
        Ok(())
    }

    /// The windows of `prefix` with `lower <= start <= upper`, by key,
    /// from the shared index plus this transaction's own changes: `None`
    /// when that cannot answer (no index, the prefix's windows are not
    /// indexed, too many to read one by one, or changes made through
    /// [`base_mut`](Self::base_mut)).
    fn windows_indexed(&self, lower: u64, upper: u64, prefix: &[u8]) -> Result<Option<Vec<RawWindow>>> {
        if self.untracked || !self.snapshot(prefix)? {
            return Ok(None);
        }
        let found = {
            let prefixes = self.prefixes.borrow();
            let Some(p) = prefixes.get(prefix) else { return Ok(None) };
            let Some(w) = p.shared.as_ref().and_then(|s| s.windows.as_ref()) else {
                return Ok(None);
            };
            let w = w.as_slice();
            let from = w.partition_point(|&(s, _)| s < lower);
            let to = w.partition_point(|&(s, _)| s <= upper);
            if to - from > POINT_READ_WINDOWS {
                return Ok(None);
            }
            let mut found = w[from..to].to_vec();
            let before = found.len();
            found.extend(
                p.touched
                    .as_slice()
                    .iter()
                    .filter(|w| (lower..=upper).contains(&w.0))
                    .map(|w| (w.0, w.1)),
            );
            if found.len() > before {
                found.sort_unstable();
                found.dedup();
            }
            found
        };
        let mut out = Vec::with_capacity(found.len());
        for (s, e) in found {
            with_window_key(prefix, s, e, |key| -> Result<()> {
                match self.base.cached(cf::DEFAULT, key) {
                    Cached::Value(v) => out.push((s, e, v.to_vec())),
                    Cached::Deleted => {}
                    Cached::Unknown => {
                        if let Some(v) = self.base.partition().get(cf::DEFAULT, key)? {
                            out.push((s, e, v));
                        }
                    }
                }
                Ok(())
            })?;
        }
        Ok(Some(out))
    }

    fn windows_raw(
        &self,
        start_from: Option<u64>,
        start_to: u64,
        prefix: &[u8],
        direction: Direction,
    ) -> Result<Vec<(u64, u64, Vec<u8>)>> {
        // start_from is exclusive: scan from start_from + 1.
        let lower_start = match start_from {
            Some(s) => match s.checked_add(1) {
                Some(v) => v,
                None => return Ok(Vec::new()),
            },
            None => 0,
        };
        if lower_start > start_to {
            return Ok(Vec::new());
        }
        if let Some(mut found) = self.windows_indexed(lower_start, start_to, prefix)? {
            if direction == Direction::Backward {
                found.reverse();
            }
            return Ok(found);
        }
        let lower = bound(prefix, lower_start);
        let upper = start_to.checked_add(1).map(|u| bound(prefix, u));
        let upper = match upper {
            Some(u) => Some(u),
            None => keys::prefix_upper_bound(&keys::prefixed_key(prefix, b"")),
        };
        let want_len = window_key_len(prefix);
        let mut out = Vec::new();
        for (key, value) in self.base.iter_range(cf::DEFAULT, &lower, upper.as_deref(), direction)? {
            if !keys::in_layout(&key, want_len, "window")? {
                continue; // a key of another (longer) prefix inside the range
            }
            let (_, s, e) = keys::parse_window_key(&key)?;
            out.push((s, e, value));
        }
        Ok(out)
    }

    /// Windows under `prefix` with `start_from < start <= start_to`, by start
    /// (then end), in `direction`. `start_from = -1` includes 0.
    pub fn get_windows<V: DeserializeOwned>(
        &self,
        start_from: i64,
        start_to: i64,
        prefix: &[u8],
        direction: Direction,
    ) -> Result<Vec<Window<V>>> {
        if start_to < 0 {
            return Ok(Vec::new());
        }
        let from = u64::try_from(start_from).ok();
        self.windows_raw(from, start_to as u64, prefix, direction)?
            .into_iter()
            .map(|(start, end, v)| {
                Ok(Window {
                    start,
                    end,
                    value: self.codec().decode(&v)?,
                })
            })
            .collect()
    }

    /// Expires the windows of `prefix` with start <= `max_start_time` that
    /// were not expired before, in start order. Records the last expired
    /// start so no window is ever returned twice (across transactions and
    /// restarts). See [`ExpireOptions`] for deleting the windows and
    /// collecting their values (`end_inclusive`: values with an id equal to
    /// the window end are collected too, as sliding windows need).
    ///
    /// Unlike quixstreams' generator this runs at once: the index is written
    /// and the windows deleted when it returns, whether or not the caller
    /// looks at every window (every quixstreams window type consumes the
    /// whole generator, so the stored result is the same).
    pub fn expire_windows<V: DeserializeOwned, C: DeserializeOwned>(
        &mut self,
        max_start_time: i64,
        prefix: &[u8],
        options: ExpireOptions,
    ) -> Result<Vec<ExpiredWindow<V, C>>> {
        self.base.require_started("expire_windows")?;
        let res = self.expire_windows_inner(max_start_time, prefix, options);
        self.fail_on_err(res)
    }

    fn expire_windows_inner<V: DeserializeOwned, C: DeserializeOwned>(
        &mut self,
        max_start_time: i64,
        prefix: &[u8],
        options: ExpireOptions,
    ) -> Result<Vec<ExpiredWindow<V, C>>> {
        let ExpireOptions {
            delete,
            collect,
            end_inclusive,
        } = options;
        if max_start_time < 0 {
            return Ok(Vec::new());
        }
        let last_expired = self.get_index(Index::Expired, prefix)?;
        let Some(from) = exclusive_start(last_expired) else {
            return Ok(Vec::new());
        };
        let windows = self.windows_raw(from, max_start_time as u64, prefix, Direction::Forward)?;
        let Some(&(last_start, _, _)) = windows.last() else {
            return Ok(Vec::new());
        };
        self.set_index(Index::Expired, prefix, i128::from(last_start))?;
        let mut out = Vec::with_capacity(windows.len());
        for (start, end, bytes) in &windows {
            // Sliding windows collect values at `end` too.
            let collect_end = if end_inclusive { end.saturating_add(1) } else { *end };
            out.push(self.expired_window(prefix, *start, *end, collect_end, bytes, collect)?);
        }
        if delete {
            for (start, end, _) in &windows {
                self.delete_found(prefix, *start, *end)?;
            }
            if collect {
                self.delete_collection_range(None, last_start, prefix)?;
            }
        }
        Ok(out)
    }

    /// Deletes the windows of `prefix` with start <= `max_start_time` (from
    /// the last deleted start on) and, with [`CollectedValues::Delete`], the
    /// collected values with id < `max_start_time`.
    pub fn delete_windows(&mut self, max_start_time: i64, values: CollectedValues, prefix: &[u8]) -> Result<()> {
        self.base.require_started("delete_windows")?;
        let res = self.delete_windows_inner(max_start_time, values, prefix);
        self.fail_on_err(res)
    }

    fn delete_windows_inner(&mut self, max_start_time: i64, values: CollectedValues, prefix: &[u8]) -> Result<()> {
        if max_start_time < 0 {
            return Ok(());
        }
        let last_deleted = self.get_index(Index::DeletedWindow, prefix)?;
        let Some(from) = exclusive_start(last_deleted) else {
            return Ok(());
        };
        let windows = self.windows_raw(from, max_start_time as u64, prefix, Direction::Forward)?;
        for (start, end, _) in &windows {
            self.delete_found(prefix, *start, *end)?;
        }
        // quixstreams skips recording a last deleted start of 0.
        if let Some(&(last, _, _)) = windows.last() {
            if last > 0 {
                self.set_index(Index::DeletedWindow, prefix, i128::from(last))?;
            }
        }
        if values == CollectedValues::Delete {
            self.delete_collection_range(None, max_start_time as u64, prefix)?;
        }
        Ok(())
    }

    /// Expires windows of every prefix in the partition whose end is at or
    /// before the step-aligned `max_end_time`, as quixstreams'
    /// `expire_all_windows`: the first call expires every window ending at or
    /// before `max_end_time - max_end_time % step_ms` (Python's modulo, so a
    /// negative `max_end_time` is allowed and recorded); later calls expire
    /// the windows ending exactly at each step after the last recorded one.
    /// The recorded value (partition-wide, under the empty prefix) is a
    /// window end. Windows come in key order (quixstreams yields this
    /// transaction's changed windows first).
    pub fn expire_all_windows<V: DeserializeOwned, C: DeserializeOwned>(
        &mut self,
        max_end_time: i64,
        step_ms: i64,
        options: ExpireOptions,
    ) -> Result<Vec<ExpiredWindow<V, C>>> {
        self.base.require_started("expire_all_windows")?;
        let res = self.expire_all_windows_inner(max_end_time, step_ms, options);
        self.fail_on_err(res)
    }

    fn expire_all_windows_inner<V: DeserializeOwned, C: DeserializeOwned>(
        &mut self,
        max_end_time: i64,
        step_ms: i64,
        options: ExpireOptions,
    ) -> Result<Vec<ExpiredWindow<V, C>>> {
        let ExpireOptions { delete, collect, .. } = options;
        let max_end = i128::from(max_end_time);
        if step_ms <= 0 {
            return Err(TxnError::InvalidWindow { start: 0, end: step_ms });
        }
        let step = i128::from(step_ms);
        let last_expired = self.get_index(Index::Expired, b"")?.unwrap_or(0);
        // Which window ends qualify, and the new recorded end.
        let (ends, new_last): (Option<BTreeSet<u64>>, i128) = if last_expired != 0 {
            let mut ends = BTreeSet::new();
            let mut last = None;
            let mut next = last_expired + step;
            while next <= max_end {
                last = Some(next);
                if let Ok(end) = u64::try_from(next) {
                    ends.insert(end);
                }
                next += step;
            }
            match last {
                Some(l) => (Some(ends), l),
                None => return Ok(Vec::new()),
            }
        } else {
            (None, max_end - max_end.rem_euclid(step))
        };
        let all = self.base.iter_range(cf::DEFAULT, b"", None, Direction::Forward)?;
        let mut expired = Vec::new();
        for (key, value) in all {
            let Ok((prefix, start, end)) = keys::parse_window_key(&key) else {
                continue;
            };
            let hit = match &ends {
                Some(set) => set.contains(&end),
                None => i128::from(end) <= new_last,
            };
            if hit {
                expired.push((prefix.to_vec(), start, end, value));
            }
        }
        let mut out = Vec::with_capacity(expired.len());
        for (prefix, start, end, bytes) in &expired {
            out.push(self.expired_window(prefix, *start, *end, *end, bytes, collect)?);
        }
        if delete {
            for (prefix, start, end, _) in &expired {
                self.delete_found(prefix, *start, *end)?;
                if collect {
                    self.delete_collection_range(None, *start, prefix)?;
                }
            }
        }
        self.set_index(Index::Expired, b"", new_last)?;
        Ok(out)
    }

    /// Decodes one expired window, with its values collected in
    /// `[start, collect_end)` if asked.
    fn expired_window<V: DeserializeOwned, C: DeserializeOwned>(
        &self,
        prefix: &[u8],
        start: u64,
        end: u64,
        collect_end: u64,
        value: &[u8],
        collect: bool,
    ) -> Result<ExpiredWindow<V, C>> {
        let collected = if collect {
            self.collection_values(start, collect_end, prefix)?
        } else {
            Vec::new()
        };
        Ok(ExpiredWindow {
            start,
            end,
            value: self.codec().decode(value)?,
            collected,
            prefix: prefix.to_vec(),
        })
    }

    // ---- collections -------------------------------------------------------

    fn next_counter(&mut self) -> Result<u64> {
        let current = match self.counter {
            Some(c) => Some(c),
            None => {
                let key = GLOBAL_COUNTER_KEY;
                match self.base.get_raw(cf::GLOBAL_COUNTER, key)? {
                    Some(bytes) => Some(self.codec().decode::<u64>(&bytes)?),
                    None => None,
                }
            }
        };
        let next = match current {
            None => 0,
            Some(u64::MAX) => 0,
            Some(c) => c + 1,
        };
        self.counter = Some(next);
        Ok(next)
    }

    /// Adds `value` to the collection of `prefix` under id `id` (a window
    /// start or event time; `None`: the counter itself), returning the
    /// counter that makes the entry unique and ordered.
    pub fn add_to_collection<V: Serialize + ?Sized>(
        &mut self,
        id: Option<i64>,
        value: &V,
        prefix: &[u8],
    ) -> Result<u64> {
        let res = self.add_to_collection_inner(id, value, prefix);
        self.fail_on_err(res)
    }

    fn add_to_collection_inner<V: Serialize + ?Sized>(
        &mut self,
        id: Option<i64>,
        value: &V,
        prefix: &[u8],
    ) -> Result<u64> {
        self.base.require_started("add_to_collection")?;
        let id = id.map(|i| non_negative("collection id", i)).transpose()?;
        let encoded = self.codec().encode(value)?;
        let counter = self.next_counter()?;
        let key = keys::window_key(prefix, id.unwrap_or(counter), counter);
        self.base.set_raw(cf::VALUES, key, encoded)?;
        Ok(counter)
    }

    fn collection_items(&self, start: u64, end: u64, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let want_len = window_key_len(prefix);
        let mut out = Vec::new();
        for (k, v) in self.base.iter_range(
            cf::VALUES,
            &bound(prefix, start),
            Some(&bound(prefix, end)),
            Direction::Forward,
        )? {
            if keys::in_layout(&k, want_len, "window collection")? {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    fn collection_values<C: DeserializeOwned>(&self, start: u64, end: u64, prefix: &[u8]) -> Result<Vec<C>> {
        self.collection_items(start, end, prefix)?
            .into_iter()
            .map(|(_, v)| Ok(self.codec().decode(&v)?))
            .collect()
    }

    /// Values collected under `prefix` with `start <= id < end`, in (id,
    /// counter) order.
    pub fn get_from_collection<C: DeserializeOwned>(&self, start: i64, end: i64, prefix: &[u8]) -> Result<Vec<C>> {
        self.base.require_started("get_from_collection")?;
        let start = start.max(0) as u64;
        let end = non_negative("collection end", end)?;
        self.collection_values(start, end, prefix)
    }

    /// Deletes the values collected under `prefix` with id < `end`, starting
    /// at `start` or, if `None`, at the last deleted id.
    pub fn delete_from_collection(&mut self, end: i64, prefix: &[u8], start: Option<i64>) -> Result<()> {
        self.base.require_started("delete_from_collection")?;
        let res = (|| {
            let end = non_negative("collection end", end)?;
            let start = start.map(|s| s.max(0) as u64);
            self.delete_collection_range(start, end, prefix)
        })();
        self.fail_on_err(res)
    }

    fn delete_collection_range(&mut self, start: Option<u64>, end: u64, prefix: &[u8]) -> Result<()> {
        let start = match start {
            Some(s) => s,
            None => to_u64(self.get_index(Index::DeletedValue, prefix)?.unwrap_or(0)),
        };
        let mut last_id = None;
        for (key, _) in self.collection_items(start, end, prefix)? {
            let (_, id, _) = keys::parse_window_key(&key)?;
            last_id = Some(last_id.map_or(id, |l: u64| l.max(id)));
            self.base.delete_raw(cf::VALUES, key)?;
        }
        if let Some(id) = last_id {
            self.set_index(Index::DeletedValue, prefix, i128::from(id))?;
        }
        Ok(())
    }

    // ---- commit ------------------------------------------------------------

    /// Persists the counter (if used), then prepares the base transaction.
    pub fn prepare(&mut self, processed_offsets: Option<&ProcessedOffsets>) -> Result<()> {
        self.base.require_started("prepare")?;
        if let Some(counter) = self.counter {
            let res = self
                .codec()
                .encode(&counter)
                .map_err(TxnError::from)
                .and_then(|v| self.base.set_raw(cf::GLOBAL_COUNTER, GLOBAL_COUNTER_KEY.to_vec(), v));
            self.fail_on_err(res)?;
        }
        self.base.prepare(processed_offsets)
    }

    /// Flushes the base transaction (see [`PartitionTransaction::flush`]);
    /// once the write succeeded, the shared [`WindowIndex`] (if any) takes
    /// the changes.
    pub fn flush(&mut self, changelog_offset: Option<u64>) -> Result<()> {
        let Some(shared) = self.shared.clone() else {
            return self.base.flush(changelog_offset);
        };
        if self.untracked {
            // Changes made through `base_mut`: read them from the change set.
            let codec = self.codec();
            return self
                .base
                .flush_then(changelog_offset, |changes| shared.apply(changes, codec));
        }
        // Every change went through the windowed API, which recorded per
        // prefix what it did: one index update per prefix.
        let prefixes = &self.prefixes;
        self.base.flush_then(changelog_offset, |_| {
            let prefixes = prefixes.borrow();
            shared.apply_tracked(prefixes.iter().map(|(prefix, p)| {
                index::Tracked {
                    prefix,
                    position: p.shared.as_ref().map(|s| s.position),
                    windows: p.touched.as_slice(),
                    latest: (p.written & (1 << Index::Timestamp.slot()) != 0)
                        .then(|| p.slots.get(Index::Timestamp))
                        .flatten()
                        .flatten(),
                    expired: (p.written & (1 << Index::Expired.slot()) != 0)
                        .then(|| p.slots.get(Index::Expired))
                        .flatten()
                        .flatten(),
                }
            }))
        })
    }

    /// `prepare(None)` then `flush(None)`.
    pub fn commit(mut self) -> Result<()> {
        self.prepare(None)?;
        self.flush(None)
    }
}
