//! Per-write TTL inside a key-value transaction, byte-compatible with
//! quixstreams 3.28.1 (`state/rocksdb/transaction.py`,
//! `state/rocksdb/partition.py`): stamping writes, the switch into TTL mode
//! at `prepare` (with the stamping of a populated store's existing values),
//! the read-time filter and the bounded sweep. Layouts are in
//! [`state_core::ttl`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use state_core::ttl::{self, StampEvidence, StampedRead, TtlState};
use state_core::{cf, Direction, StorePartition};

use crate::cache::{Cached, UpdateCache};
use crate::error::{Result, TxnError};

/// What a write carries besides key and value (quixstreams' `cf_name`,
/// `timestamp` and `ttl` arguments of `set` / `set_bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetOptions<'a> {
    /// Column family (default: `default`).
    pub cf: &'a str,
    /// The event time of the record being processed, ms. With a TTL it
    /// anchors the expiry; any timestamp also advances the partition's
    /// high-water when the partition is in TTL mode.
    pub timestamp: Option<i64>,
    /// How long the value lives after `timestamp`, rounded up to whole
    /// milliseconds. `None`: it never expires.
    pub ttl: Option<Duration>,
}

impl Default for SetOptions<'_> {
    fn default() -> Self {
        SetOptions {
            cf: cf::DEFAULT,
            timestamp: None,
            ttl: None,
        }
    }
}

impl<'a> SetOptions<'a> {
    /// Writes at event time `timestamp`, without a TTL.
    pub fn at(timestamp: i64) -> Self {
        SetOptions {
            timestamp: Some(timestamp),
            ..SetOptions::default()
        }
    }

    /// The same, expiring `ttl` after the timestamp.
    pub fn ttl(self, ttl: Duration) -> Self {
        SetOptions { ttl: Some(ttl), ..self }
    }

    /// The same, in column family `cf`.
    pub fn in_cf(self, cf: &'a str) -> Self {
        SetOptions { cf, ..self }
    }
}

/// What a read carries besides the key (quixstreams' `cf_name` and
/// `timestamp` arguments of `get` / `get_bytes` / `exists`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetOptions<'a> {
    /// Column family (default: `default`).
    pub cf: &'a str,
    /// The event time of the record being processed, ms. On a partition in
    /// TTL mode it advances the high-water before the read, so a value
    /// expiring at or before it reads as absent.
    pub timestamp: Option<i64>,
}

impl Default for GetOptions<'_> {
    fn default() -> Self {
        GetOptions {
            cf: cf::DEFAULT,
            timestamp: None,
        }
    }
}

impl<'a> GetOptions<'a> {
    /// Reads at event time `timestamp`.
    pub fn at(timestamp: i64) -> Self {
        GetOptions {
            timestamp: Some(timestamp),
            ..GetOptions::default()
        }
    }

    /// The same, in column family `cf`.
    pub fn in_cf(self, cf: &'a str) -> Self {
        GetOptions { cf, ..self }
    }
}

/// quixstreams' `_compute_stamp`: the stamp of a write. Errors leave
/// nothing staged.
pub(crate) fn compute_stamp(ttl_: Option<Duration>, timestamp: Option<i64>) -> Result<u64> {
    let Some(ttl_) = ttl_ else {
        return Ok(ttl::NEVER);
    };
    if ttl_.is_zero() {
        return Err(TxnError::InvalidTtl {
            reason: "the ttl must be positive".to_owned(),
        });
    }
    let Some(ts) = timestamp else {
        return Err(TxnError::InvalidTtl {
            reason: "a write with a ttl needs the record's event time: pass SetOptions::at(timestamp)".to_owned(),
        });
    };
    let expiry = i128::from(ts) + i128::from(ttl::ttl_to_ms(ttl_));
    if expiry <= 0 {
        return Err(TxnError::InvalidTtl {
            reason: format!(
                "timestamp {ts} + ttl {ttl_:?} gives the non-positive expiry {expiry} ms, which cannot be stamped"
            ),
        });
    }
    if expiry >= i128::from(ttl::MAX_PLAUSIBLE_STAMP_MS) {
        return Err(TxnError::InvalidTtl {
            reason: format!(
                "timestamp {ts} + ttl {ttl_:?} gives the expiry {expiry} ms, at or beyond {} (is the timestamp \
                 in ms?)",
                ttl::MAX_PLAUSIBLE_STAMP_MS
            ),
        });
    }
    if ts < 0 {
        tracing::warn!(
            timestamp = ts,
            "a ttl write without a usable event time (negative, e.g. Kafka NO_TIMESTAMP) is stored without a TTL"
        );
        return Ok(ttl::NEVER);
    }
    Ok(expiry as u64)
}

/// The TTL side of one transaction.
#[derive(Debug)]
pub(crate) struct TtlTxn {
    pub(crate) state: Arc<TtlState>,
    /// A write with a TTL (and a usable timestamp) happened: `prepare`
    /// switches an unflipped partition into TTL mode.
    batch_has_ttl_writes: bool,
    /// Unflipped partition: the stamp each key gets at the switch.
    pending: HashMap<Vec<u8>, u64>,
    max_batch_ttl_ms: Option<u64>,
    /// Existing values stamped by the switch of a populated store: produced
    /// before the transaction's own records, written first in its batch.
    pub(crate) backfill: Vec<(Vec<u8>, Vec<u8>)>,
    warned_unstamped: std::cell::Cell<bool>,
}

impl TtlTxn {
    pub(crate) fn new(state: Arc<TtlState>) -> Self {
        TtlTxn {
            state,
            batch_has_ttl_writes: false,
            pending: HashMap::new(),
            max_batch_ttl_ms: None,
            backfill: Vec::new(),
            warned_unstamped: std::cell::Cell::new(false),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.state.is_enabled()
    }

    /// Stages a `default` write of `payload` (already encoded) under full
    /// key `key`.
    pub(crate) fn set<P: StorePartition + ?Sized>(
        &mut self,
        partition: &P,
        cache: &mut UpdateCache,
        key: &[u8],
        payload: &[u8],
        options: &SetOptions<'_>,
    ) -> Result<()> {
        if self.enabled() {
            self.state.advance_high_water(options.timestamp);
            let stamp = compute_stamp(options.ttl, options.timestamp)?;
            if options.ttl.is_some() {
                self.batch_has_ttl_writes = true;
            }
            delete_stale_index_entry(partition, cache, key, stamp)?;
            cache.set(cf::DEFAULT, key, &ttl::stamp_value(stamp, payload));
            if stamp != ttl::NEVER {
                cache.set(cf::TTL_INDEX, &ttl::index_key(stamp, key), b"");
            }
            return Ok(());
        }
        if let Some(t) = options.ttl {
            let stamp = compute_stamp(Some(t), options.timestamp)?;
            if options.timestamp.is_some_and(|ts| ts >= 0) {
                self.batch_has_ttl_writes = true;
            }
            let ms = ttl::ttl_to_ms(t);
            self.max_batch_ttl_ms = Some(self.max_batch_ttl_ms.map_or(ms, |m| m.max(ms)));
            self.pending.insert(key.to_vec(), stamp);
            self.state.advance_high_water(options.timestamp);
        } else if !self.pending.is_empty() {
            self.pending.remove(key);
        }
        cache.set(cf::DEFAULT, key, payload);
        Ok(())
    }

    /// A `default` delete of full key `key`: forgets a pending stamp. The
    /// index entry of a stamped value stays until the sweep removes it.
    pub(crate) fn on_delete(&mut self, key: &[u8]) {
        if !self.pending.is_empty() {
            self.pending.remove(key);
        }
    }

    /// The read-time filter: what a `default` read of `raw` returns, after
    /// advancing the high-water with `timestamp`. Unflipped partitions read
    /// verbatim and do not move the high-water.
    pub(crate) fn read<'v>(&self, timestamp: Option<i64>, raw: &'v [u8]) -> Option<&'v [u8]> {
        if !self.enabled() {
            return Some(raw);
        }
        self.state.advance_high_water(timestamp);
        match ttl::read_stamped(raw, self.state.high_water()) {
            StampedRead::Live(payload) => Some(payload),
            StampedRead::Expired => None,
            StampedRead::Unstamped(raw) => {
                if !self.warned_unstamped.replace(true) {
                    tracing::warn!(
                        "a value of a partition in TTL mode carries no valid stamp; returning it as it is \
                         (never expiring), as quixstreams does"
                    );
                }
                Some(raw)
            }
        }
    }

    /// Advances the high-water for a read that found nothing.
    pub(crate) fn touch(&self, timestamp: Option<i64>) {
        if self.enabled() {
            self.state.advance_high_water(timestamp);
        }
    }

    /// At `prepare`: switches an unflipped partition into TTL mode if this
    /// transaction wrote with a TTL (stamping a populated store's values
    /// first), then runs the sweep if its deletes go to the changelog.
    pub(crate) fn prepare<P: StorePartition + ?Sized>(&mut self, partition: &P, cache: &mut UpdateCache) -> Result<()> {
        if self.batch_has_ttl_writes && !self.enabled() {
            self.switch_into_ttl_mode(partition, cache)?;
        }
        // A transaction that changed nothing sweeps only if its reads moved
        // the clock (quixstreams: never), so a value that read as expired is
        // gone from the store and the changelog too.
        let moved = || self.state.unsaved_high_water().is_some();
        if self.enabled()
            && self.state.options().sweep == ttl::SweepTombstones::Changelog
            && (!cache.is_empty() || moved())
        {
            let mut deletes = Vec::new();
            sweep(partition, cache, &self.state, &mut deletes)?;
            for (cf_name, key) in deletes {
                cache.delete(cf_name, &key);
            }
        }
        Ok(())
    }

    fn switch_into_ttl_mode<P: StorePartition + ?Sized>(
        &mut self,
        partition: &P,
        cache: &mut UpdateCache,
    ) -> Result<()> {
        let populated = partition
            .iter_range(cf::DEFAULT, b"", None, Direction::Forward)?
            .next()
            .transpose()?
            .is_some();
        if populated {
            self.backfill(partition, cache)?;
        }
        // The transaction's own writes get their pending stamps.
        let staged: Vec<(Vec<u8>, Vec<u8>)> = cache
            .cf_changes(cf::DEFAULT)
            .map(|c| {
                c.iter()
                    .filter_map(|(k, v)| v.map(|v| (k.to_vec(), v.to_vec())))
                    .collect()
            })
            .unwrap_or_default();
        for (key, raw) in staged {
            let stamp = self.pending.get(&key).copied().unwrap_or(ttl::NEVER);
            cache.set(cf::DEFAULT, &key, &ttl::stamp_value(stamp, &raw));
            if stamp != ttl::NEVER {
                cache.set(cf::TTL_INDEX, &ttl::index_key(stamp, &key), b"");
            }
        }
        cache.set(cf::METADATA, cf::TTL_ENABLED_KEY, b"\x01");
        cache.set(
            cf::METADATA,
            cf::TTL_FORMAT_VERSION_KEY,
            &cf::TTL_FORMAT_VERSION.to_be_bytes(),
        );
        cache.set(
            cf::TTL_SYSTEM,
            cf::TTL_MIGRATION_DONE_KEY,
            &cf::TTL_FORMAT_VERSION.to_be_bytes(),
        );
        self.pending.clear();
        self.state.enable();
        self.state.set_migration_done();
        tracing::info!(
            stamped_existing = self.backfill.len(),
            "switched the partition into per-write TTL mode"
        );
        Ok(())
    }

    /// quixstreams' `backfill_legacy_records`, inside this transaction: every
    /// stored value not rewritten by it is stamped with one expiry,
    /// `high-water + (legacy_records_ttl or the largest ttl written)`.
    fn backfill<P: StorePartition + ?Sized>(&mut self, partition: &P, cache: &mut UpdateCache) -> Result<()> {
        let options = self.state.options();
        let ttl_ms = match options.legacy_records_ttl {
            Some(t) => Some(ttl::ttl_to_ms(t)),
            None => self.max_batch_ttl_ms,
        };
        let (Some(hw), Some(ttl_ms)) = (self.state.high_water(), ttl_ms) else {
            return Err(TxnError::InvalidTtl {
                reason: "switching a populated store into TTL mode needs the event time of a ttl write".to_owned(),
            });
        };
        let mut expiry = hw.saturating_add(ttl_ms);
        if expiry >= ttl::MAX_PLAUSIBLE_STAMP_MS {
            tracing::warn!(
                high_water = hw,
                ttl_ms,
                "the expiry for existing values is beyond the readable range; they never expire"
            );
            expiry = ttl::NEVER;
        }
        let limit = options.max_backfill_records;
        let now = ttl::wall_clock_ms();
        // Every stored key not rewritten by this transaction, in key order
        // (deleted ones included: their stamped record is produced, then the
        // delete wins, as when quixstreams commits the backfill first).
        let mut census = Vec::new();
        let mut records = 0usize;
        for item in partition.iter_range(cf::DEFAULT, b"", None, Direction::Forward)? {
            let (key, value) = item?;
            if matches!(cache.get(cf::DEFAULT, &key), Cached::Value(_)) {
                continue;
            }
            records += 1;
            if records <= limit {
                census.push((key, value));
            }
        }
        if records > limit {
            return Err(TxnError::TtlBackfillTooLarge { records, limit });
        }
        for (key, value) in census {
            if ttl::stamp_evidence(&value, now) == StampEvidence::Stamped {
                // Already stamped (a v3.24.0 value): kept as it is, indexed
                // at its own stamp, not produced.
                if let Some((stamp, _)) = ttl::decode_stamp(&value) {
                    if stamp != ttl::NEVER {
                        cache.set(cf::TTL_INDEX, &ttl::index_key(stamp, &key), b"");
                    }
                }
                continue;
            }
            if expiry != ttl::NEVER {
                cache.set(cf::TTL_INDEX, &ttl::index_key(expiry, &key), b"");
            }
            let stamped = ttl::stamp_value(expiry, &value);
            self.backfill.push((key, stamped));
        }
        Ok(())
    }
}

/// quixstreams' `_delete_stale_index_entry`: before `key` is rewritten with
/// `new_stamp`, drop the index entry of its old stamp.
fn delete_stale_index_entry<P: StorePartition + ?Sized>(
    partition: &P,
    cache: &mut UpdateCache,
    key: &[u8],
    new_stamp: u64,
) -> Result<()> {
    let old = match cache.get(cf::DEFAULT, key) {
        Cached::Deleted => return Ok(()),
        Cached::Value(v) => ttl::decode_stamp(v).map(|(s, _)| s),
        Cached::Unknown => match partition.get(cf::DEFAULT, key)? {
            Some(v) => ttl::decode_stamp(&v).map(|(s, _)| s),
            None => None,
        },
    };
    if let Some(old) = old {
        if old != ttl::NEVER && old != new_stamp {
            cache.delete(cf::TTL_INDEX, &ttl::index_key(old, key));
        }
    }
    Ok(())
}

/// The bounded sweep (quixstreams' `sweep_expired_into_cache` / `_run_sweep`):
/// walks the stored index in expiry order up to the high-water, visiting at
/// most `max_evictions_per_flush` entries, and pushes to `deletes` the
/// `default` keys that expired (unless this transaction rewrote them) and
/// every index entry visited (unless this transaction wrote it).
pub(crate) fn sweep<P: StorePartition + ?Sized>(
    partition: &P,
    cache: &UpdateCache,
    state: &TtlState,
    deletes: &mut Vec<(&'static str, Vec<u8>)>,
) -> Result<()> {
    let Some(hw) = state.high_water() else {
        return Ok(());
    };
    let budget = state.options().max_evictions_per_flush;
    if budget == 0 {
        return Ok(());
    }
    let staged = |cf_name: &str, key: &[u8]| matches!(cache.get(cf_name, key), Cached::Value(_));
    let upper = hw.checked_add(1).map(u64::to_be_bytes);
    let mut visited = 0usize;
    let drop_index = |index_key: Vec<u8>, deletes: &mut Vec<(&'static str, Vec<u8>)>| {
        if !staged(cf::TTL_INDEX, &index_key) {
            deletes.push((cf::TTL_INDEX, index_key));
        }
    };
    for item in partition.iter_range(cf::TTL_INDEX, b"", upper.as_ref().map(|u| &u[..]), Direction::Forward)? {
        if visited >= budget {
            break;
        }
        let (index_key, _) = item?;
        let Some((expires_at, user_key)) = ttl::parse_index_key(&index_key) else {
            visited += 1;
            drop_index(index_key, deletes);
            continue;
        };
        if expires_at > hw {
            break;
        }
        visited += 1;
        let main = partition.get(cf::DEFAULT, user_key)?;
        let main_stamp = main.as_deref().and_then(ttl::decode_stamp).map(|(s, _)| s);
        if main_stamp.is_some_and(|s| s != ttl::NEVER && s == expires_at) && !staged(cf::DEFAULT, user_key) {
            deletes.push((cf::DEFAULT, user_key.to_vec()));
        }
        drop_index(index_key, deletes);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_follow_quixstreams_rules() {
        assert_eq!(compute_stamp(None, None).unwrap(), ttl::NEVER);
        assert_eq!(
            compute_stamp(Some(Duration::from_secs(60)), Some(1_700_000_001_000)).unwrap(),
            1_700_000_061_000
        );
        assert_eq!(
            compute_stamp(Some(Duration::from_secs(5)), Some(-1)).unwrap(),
            ttl::NEVER,
            "NO_TIMESTAMP stores without a TTL"
        );
        for (t, ts) in [
            (Duration::ZERO, Some(1)),
            (Duration::from_secs(1), None),
            (Duration::from_millis(1), Some(-1)),
            (Duration::from_secs(1), Some(ttl::MAX_PLAUSIBLE_STAMP_MS as i64)),
        ] {
            assert!(
                matches!(compute_stamp(Some(t), ts), Err(TxnError::InvalidTtl { .. })),
                "{t:?} {ts:?}"
            );
        }
    }
}
