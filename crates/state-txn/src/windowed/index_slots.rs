//! The per-prefix index slots of a windowed transaction (latest
//! timestamp, last expired, last deleted window and value): read from the
//! transaction's prefix cache, its change set, the shared
//! [`WindowIndex`](super::WindowIndex) or the store, in that order;
//! written through the base transaction and remembered in the prefix cache.

use state_core::{keys, StorePartition};

use super::index_value::IndexValue;
use super::layout::{with_slot_key, Index};
use super::prefix_cache::{PrefixTxn, SharedSnapshot};
use super::transaction::WindowedTransaction;
use crate::cache::Cached;
use crate::error::Result;

impl<P: StorePartition + ?Sized> WindowedTransaction<P> {
    /// Takes `prefix`'s snapshot from the shared index if not taken yet;
    /// false without a shared index.
    pub(super) fn snapshot(&self, prefix: &[u8]) -> Result<bool> {
        let Some(shared) = &self.shared else { return Ok(false) };
        if self.prefixes.borrow().get(prefix).is_some_and(|p| p.shared.is_some()) {
            return Ok(true);
        }
        let snap = shared.with_prefix(&**self.base.partition(), self.codec(), prefix, |e, position| {
            SharedSnapshot {
                windows: e.windows.clone(),
                values: e.known_values().to_vec(),
                latest: e.latest,
                expired: e.expired,
                position,
            }
        })?;
        self.prefixes.borrow_mut().entry(prefix).shared = Some(snap);
        Ok(true)
    }

    /// Index slot `index` of `prefix`: what this transaction read or wrote
    /// before, else its change set, the shared index or the store (then
    /// remembered). `&self`: the prefix cache is a cell.
    pub(super) fn get_index(&self, index: Index, prefix: &[u8]) -> Result<Option<i64>> {
        if let Some(Some(v)) = self.prefixes.borrow().get(prefix).map(|p| p.slots.get(index)) {
            return Ok(v);
        }
        self.base.require_started("get")?;
        let value = self.read_index(index, prefix)?;
        self.prefixes.borrow_mut().entry(prefix).slots.set(index, value);
        Ok(value)
    }

    /// Reads index slot `index` of `prefix`: this transaction's change,
    /// else the shared index, else the store.
    fn read_index(&self, index: Index, prefix: &[u8]) -> Result<Option<i64>> {
        let from_shared = matches!(index, Index::Timestamp | Index::Expired) && self.shared.is_some();
        if from_shared && !self.untracked {
            // Only `set_index` writes these keys here, and it records the
            // value: the change set has nothing the slots do not.
            return self.shared_slot(index, prefix);
        }
        let (cf_name, suffix) = index.location();
        with_slot_key(prefix, suffix, |full| {
            Ok(match self.base.cached(cf_name, full) {
                Cached::Value(bytes) => Some(self.codec().decode::<IndexValue>(bytes)?.millis()),
                Cached::Deleted => None,
                Cached::Unknown if from_shared => self.shared_slot(index, prefix)?,
                Cached::Unknown => match self.base.partition().get(cf_name, full)? {
                    Some(bytes) => Some(self.codec().decode::<IndexValue>(&bytes)?.millis()),
                    None => None,
                },
            })
        })
    }

    /// Slot `index` (the latest timestamp or the last expired) of
    /// `prefix` as the shared index has it.
    fn shared_slot(&self, index: Index, prefix: &[u8]) -> Result<Option<i64>> {
        self.snapshot(prefix)?;
        let prefixes = self.prefixes.borrow();
        let snap = prefixes.get(prefix).and_then(|p| p.shared.as_ref());
        Ok(match (index, snap) {
            (Index::Timestamp, Some(s)) => s.latest,
            (_, Some(s)) => s.expired,
            (_, None) => None,
        })
    }

    /// Writes index slot `index` of `prefix` (`i64::MAX` is stored as
    /// `2^64 - 1`, see [`IndexValue::from_millis`]).
    pub(super) fn set_index(&mut self, index: Index, prefix: &[u8], value: i64) -> Result<()> {
        let (cf_name, key) = index.location();
        let codec = self.codec();
        self.value_buf.clear();
        codec.encode_into(&IndexValue::from_millis(value), &mut self.value_buf)?;
        self.key_buf.clear();
        keys::write_prefixed_key(&mut self.key_buf, prefix, key);
        self.base.set_raw_ref(cf_name, &self.key_buf, &self.value_buf)?;
        let p = self.prefix_mut(prefix);
        p.slots.set(index, Some(value));
        p.written |= 1 << index.slot();
        Ok(())
    }

    /// The value this transaction wrote to slot `index` of `prefix`, if it
    /// wrote one.
    pub(super) fn written_index(&mut self, index: Index, prefix: &[u8]) -> Option<i64> {
        self.prefixes.get_mut().get(prefix).and_then(|p| p.written_value(index))
    }

    fn prefix_mut(&mut self, prefix: &[u8]) -> &mut PrefixTxn {
        self.prefixes.get_mut().entry(prefix)
    }

    /// Records that this transaction deleted window `(start, end)`.
    pub(super) fn touch_deleted(&mut self, prefix: &[u8], start: u64, end: u64) {
        self.prefixes.get_mut().touch(prefix, start, end, None);
    }

    /// True if the shared index knows window `(start, end)` of `prefix` is
    /// not stored (false: stored, or not known).
    pub(super) fn stored_absent(&self, prefix: &[u8], start: u64, end: u64) -> Result<bool> {
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

    /// The latest event time seen for `prefix` by `update_window` (0 if
    /// none), in milliseconds. A stored value above `i64::MAX` reads as
    /// `i64::MAX` (`docs/formats.md`).
    ///
    /// quixstreams' argument order; [`key`](Self::key)`(msg_key).get_latest_timestamp()`
    /// is the everyday form.
    pub fn get_latest_timestamp(&self, prefix: &[u8]) -> Result<i64> {
        Ok(self.get_index(Index::Timestamp, prefix)?.unwrap_or(0))
    }
}
