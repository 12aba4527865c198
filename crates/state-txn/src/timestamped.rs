//! [`TimestampedTransaction`]: values by event time per key prefix, with
//! grace-period retention and optional duplicates, laid out as quixstreams'
//! `TimestampedStore`.
//!
//! Layouts (see `docs/formats.md`) — note the separator is always present,
//! even for an empty prefix, as in quixstreams:
//! * entry `prefix | ts | counter` (u64 BE) in `default`, value = codec(value);
//!   `counter` is 0 unless duplicates are kept;
//! * minimum eligible time `prefix | __min_eligible_timestamps__` in
//!   `__min-eligible-timestamps__`, value = u64 BE (not codec-encoded);
//! * the duplicates counter `| __global_counter__` in `__global-counter__`,
//!   value = codec(counter).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use state_core::{cf, keys, ChangelogSink, Codec, Direction, ProcessedOffsets, StorePartition};

use crate::error::{Result, TxnError};
use crate::status::TxnStatus;
use crate::transaction::PartitionTransaction;
use crate::windowed::GLOBAL_COUNTER_KEY;

/// Key of the per-prefix minimum eligible timestamp.
pub const MIN_ELIGIBLE_TIMESTAMPS_KEY: &[u8] = b"__min_eligible_timestamps__";

/// Retention settings of a timestamped store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimestampedConfig {
    /// How far behind the newest timestamp of a prefix an entry is kept, ms.
    /// Entries older than `newest - grace_ms` are deleted on `prepare`.
    pub grace_ms: u64,
    /// Keep entries with equal timestamps apart (a persisted counter makes
    /// each key unique and ordered) instead of overwriting.
    pub keep_duplicates: bool,
}

/// `prefix | rest`, with the separator even for an empty prefix.
fn ts_key(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 1 + rest.len());
    out.extend_from_slice(prefix);
    out.push(keys::SEPARATOR);
    out.extend_from_slice(rest);
    out
}

fn entry_key(prefix: &[u8], ts: u64, counter: u64) -> Vec<u8> {
    ts_key(prefix, &keys::encode_u64_pair(ts, counter))
}

fn bound(prefix: &[u8], ts: u64) -> Vec<u8> {
    ts_key(prefix, &keys::encode_u64(ts))
}

fn entry_len(prefix: &[u8]) -> usize {
    prefix.len() + 1 + keys::U64_PAIR_LEN
}

fn counter_key() -> Vec<u8> {
    ts_key(b"", GLOBAL_COUNTER_KEY)
}

/// A transaction over a timestamped store partition.
pub struct TimestampedTransaction<P: StorePartition + ?Sized = dyn StorePartition> {
    base: PartitionTransaction<P>,
    config: TimestampedConfig,
    /// Minimum eligible timestamps read or written, per prefix; a cell so
    /// reads (`&self`) can remember what they read.
    min_eligible: RefCell<HashMap<Vec<u8>, u64>>,
    touched: BTreeSet<Vec<u8>>,
    counter: Option<u64>,
}

impl<P: StorePartition + ?Sized> std::fmt::Debug for TimestampedTransaction<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimestampedTransaction")
            .field("base", &self.base)
            .field("config", &self.config)
            .finish()
    }
}

impl<P: StorePartition + ?Sized> TimestampedTransaction<P> {
    /// Starts a timestamped transaction on `partition`.
    pub fn new(
        partition: Arc<P>,
        codec: Codec,
        sink: Option<Arc<dyn ChangelogSink>>,
        config: TimestampedConfig,
    ) -> Self {
        TimestampedTransaction {
            base: PartitionTransaction::new(partition, codec, sink),
            config,
            min_eligible: RefCell::new(HashMap::new()),
            touched: BTreeSet::new(),
            counter: None,
        }
    }

    /// The underlying key-value transaction.
    pub fn base(&self) -> &PartitionTransaction<P> {
        &self.base
    }

    /// The transaction status.
    pub fn status(&self) -> TxnStatus {
        self.base.status()
    }

    fn fail_on_err<T>(&mut self, res: Result<T>) -> Result<T> {
        if res.is_err() && self.base.status() == TxnStatus::Started {
            self.base.mark_failed();
        }
        res
    }

    /// The minimum eligible timestamp of `prefix` (0 if none), in
    /// milliseconds: entries before it are expired. A stored value above
    /// `i64::MAX` is [`TxnError::StoredTimestampOutOfRange`].
    ///
    /// quixstreams' argument order; [`key`](Self::key)`(msg_key).min_eligible_timestamp()`
    /// is the everyday form.
    pub fn min_eligible_timestamp(&self, prefix: &[u8]) -> Result<i64> {
        crate::windowed::stored_millis("minimum eligible timestamp", self.min_eligible_stored(prefix)?)
    }

    /// The stored minimum eligible timestamp of `prefix` (0 if none),
    /// remembered for the rest of the transaction.
    fn min_eligible_stored(&self, prefix: &[u8]) -> Result<u64> {
        if let Some(v) = self.min_eligible.borrow().get(prefix) {
            return Ok(*v);
        }
        let stored = match self.base.get_raw(
            cf::MIN_ELIGIBLE_TIMESTAMPS,
            &ts_key(prefix, MIN_ELIGIBLE_TIMESTAMPS_KEY),
        )? {
            Some(bytes) => keys::decode_u64(&bytes)?,
            None => 0,
        };
        self.min_eligible.borrow_mut().insert(prefix.to_vec(), stored);
        Ok(stored)
    }

    fn next_counter(&mut self) -> Result<u64> {
        let current = match self.counter {
            Some(c) => Some(c),
            None => match self.base.get_raw(cf::GLOBAL_COUNTER, &counter_key())? {
                Some(bytes) => Some(self.base.codec().decode::<u64>(&bytes)?),
                None => None,
            },
        };
        let next = match current {
            None | Some(u64::MAX) => 0,
            Some(c) => c + 1,
        };
        self.counter = Some(next);
        Ok(next)
    }

    /// Stores `value` at event time `timestamp` under `prefix` and raises the
    /// prefix's minimum eligible timestamp to `timestamp - grace_ms`.
    ///
    /// quixstreams' argument order (message key last, as `prefix`);
    /// [`key`](Self::key)`(msg_key).set_for_timestamp(timestamp, &value)` is
    /// the everyday form.
    pub fn set_for_timestamp<V: Serialize + ?Sized>(&mut self, timestamp: i64, value: &V, prefix: &[u8]) -> Result<()> {
        self.base.require_started("set_for_timestamp")?;
        let res = self.set_inner(timestamp, value, prefix);
        self.fail_on_err(res)
    }

    fn set_inner<V: Serialize + ?Sized>(&mut self, timestamp: i64, value: &V, prefix: &[u8]) -> Result<()> {
        let ts = u64::try_from(timestamp).map_err(|_| TxnError::NegativeTimestamp {
            what: "timestamp",
            value: timestamp,
        })?;
        let encoded = self.base.codec().encode(value)?;
        let counter = if self.config.keep_duplicates {
            self.next_counter()?
        } else {
            0
        };
        self.base
            .set_raw(cf::DEFAULT, entry_key(prefix, ts, counter), encoded)?;
        let candidate = ts.saturating_sub(self.config.grace_ms);
        let current = self.min_eligible_stored(prefix)?;
        let min = current.max(candidate);
        self.base.set_raw(
            cf::MIN_ELIGIBLE_TIMESTAMPS,
            ts_key(prefix, MIN_ELIGIBLE_TIMESTAMPS_KEY),
            keys::encode_u64(min).to_vec(),
        )?;
        self.min_eligible.get_mut().insert(prefix.to_vec(), min);
        self.touched.insert(prefix.to_vec());
        Ok(())
    }

    /// The newest value of `prefix` at or before `timestamp` (and not before
    /// the minimum eligible timestamp), from this transaction's changes and
    /// the store; deletes in the transaction hide stored values.
    ///
    /// quixstreams' argument order; [`key`](Self::key)`(msg_key).get_latest(timestamp)`
    /// is the everyday form.
    pub fn get_latest<V: DeserializeOwned>(&self, timestamp: i64, prefix: &[u8]) -> Result<Option<V>> {
        self.base.require_started("get_latest")?;
        if timestamp < 0 {
            return Ok(None);
        }
        let lower = bound(prefix, self.min_eligible_stored(prefix)?);
        let upper = bound(prefix, (timestamp as u64).saturating_add(1));
        if upper <= lower {
            return Ok(None);
        }
        let want = entry_len(prefix);
        let items = self
            .base
            .iter_range(cf::DEFAULT, &lower, Some(&upper), Direction::Backward)?;
        for (k, v) in items {
            if keys::in_layout(&k, want, "timestamped")? {
                return Ok(Some(self.base.codec().decode(&v)?));
            }
        }
        Ok(None)
    }

    fn interval_items(&self, start: i64, end: i64, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let start = start.max(0) as u64;
        let end = end.max(0) as u64;
        if start >= end {
            return Ok(Vec::new());
        }
        let want = entry_len(prefix);
        let mut out = Vec::new();
        for (k, v) in self.base.iter_range(
            cf::DEFAULT,
            &bound(prefix, start),
            Some(&bound(prefix, end)),
            Direction::Forward,
        )? {
            if keys::in_layout(&k, want, "timestamped")? {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    /// Values of `prefix` with `start <= timestamp < end`, oldest first.
    pub fn get_interval<V: DeserializeOwned>(&self, start: i64, end: i64, prefix: &[u8]) -> Result<Vec<V>> {
        self.base.require_started("get_interval")?;
        self.interval_items(start, end, prefix)?
            .into_iter()
            .map(|(_, v)| Ok(self.base.codec().decode(&v)?))
            .collect()
    }

    /// The first `limit` values of `prefix` with `start <= timestamp < end`,
    /// oldest first: quixstreams' `get_interval(..., limit=)`. A limit of 0
    /// returns nothing.
    pub fn get_interval_limited<V: DeserializeOwned>(
        &self,
        start: i64,
        end: i64,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<V>> {
        self.base.require_started("get_interval")?;
        self.interval_items(start, end, prefix)?
            .into_iter()
            .take(limit)
            .map(|(_, v)| Ok(self.base.codec().decode(&v)?))
            .collect()
    }

    /// Deletes the entries of `prefix` with `start <= timestamp < end`,
    /// returning how many were deleted.
    pub fn delete_interval(&mut self, start: i64, end: i64, prefix: &[u8]) -> Result<usize> {
        self.base.require_started("delete_interval")?;
        let items = self.interval_items(start, end, prefix)?;
        let n = items.len();
        for (k, _) in items {
            self.base.delete_raw(cf::DEFAULT, k)?;
        }
        Ok(n)
    }

    /// Deletes expired entries of every prefix written in this transaction
    /// (from the cache and the store), persists the duplicates counter,
    /// then prepares the base transaction.
    pub fn prepare(&mut self, processed_offsets: Option<&ProcessedOffsets>) -> Result<()> {
        self.base.require_started("prepare")?;
        let res = self.expire_and_persist();
        self.fail_on_err(res)?;
        self.base.prepare(processed_offsets)
    }

    fn expire_and_persist(&mut self) -> Result<()> {
        let prefixes: Vec<Vec<u8>> = self.touched.iter().cloned().collect();
        for prefix in prefixes {
            let min = self.min_eligible_stored(&prefix)?;
            if min == 0 {
                continue;
            }
            let want = entry_len(&prefix);
            let lower = ts_key(&prefix, b"");
            let upper = bound(&prefix, min);
            for (k, _) in self
                .base
                .iter_range(cf::DEFAULT, &lower, Some(&upper), Direction::Forward)?
            {
                // The length check keeps longer prefixes sharing these bytes
                // (e.g. `key|x...`) out of this prefix's expiry.
                if k.len() == want {
                    self.base.delete_raw(cf::DEFAULT, k)?;
                }
            }
        }
        if let Some(counter) = self.counter {
            let v = self.base.codec().encode(&counter)?;
            self.base.set_raw(cf::GLOBAL_COUNTER, counter_key(), v)?;
        }
        Ok(())
    }

    /// Flushes the base transaction.
    pub fn flush(&mut self, changelog_offset: Option<u64>) -> Result<()> {
        self.base.flush(changelog_offset)
    }

    /// `prepare(None)` then `flush(None)`.
    pub fn commit(mut self) -> Result<()> {
        self.prepare(None)?;
        self.flush(None)
    }
}
