//! Window reads and writes: one window by its bounds, and the windows of
//! a prefix in a range of starts, read from the change set and the shared
//! [`WindowIndex`](super::WindowIndex) where they can answer, from the
//! store otherwise.

use serde::de::DeserializeOwned;
use serde::Serialize;
use state_core::{cf, keys, Direction, StorePartition};

use super::layout::{
    bound, check_window, non_negative, stored_millis, window_key_len, with_window_key, Index, RawValue, RawWindow,
};
use super::transaction::WindowedTransaction;
use crate::cache::Cached;
use crate::error::Result;

/// Stored windows in a range that [`WindowedTransaction`] reads by point
/// reads from what the [`WindowIndex`](super::WindowIndex) lists; more are
/// read by one range scan.
const POINT_READ_WINDOWS: usize = 32;

/// A window's bounds and decoded aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window<V> {
    /// Start, ms (inclusive); never negative.
    pub start: i64,
    /// End, ms (exclusive); after `start`.
    pub end: i64,
    /// The aggregate stored for the window.
    pub value: V,
}

impl<V> Window<V> {
    /// The window read from the store as `(start, end)` and `value`; bounds
    /// above `i64::MAX` are [`crate::TxnError::StoredTimestampOutOfRange`].
    pub(super) fn stored(start: u64, end: u64, value: V) -> Result<Self> {
        Ok(Window {
            start: stored_millis("window start", start)?,
            end: stored_millis("window end", end)?,
            value,
        })
    }
}

impl<P: StorePartition + ?Sized> WindowedTransaction<P> {
    // ---- windows -----------------------------------------------------------

    /// The aggregate of window `[start, end)` under `prefix`, if any.
    ///
    /// quixstreams' argument order, for code that must mirror it;
    /// [`key`](Self::key)`(msg_key).get_window(start, end)` is the everyday
    /// form.
    pub fn get_window<V: DeserializeOwned>(&self, start: i64, end: i64, prefix: &[u8]) -> Result<Option<V>> {
        let (s, e) = check_window(start, end)?;
        self.base.require_started("get")?;
        // Not stored and not written here (every write but those through
        // `base_mut` is recorded as touched): nothing to look up. A
        // hopping record asks for ten windows that do not exist yet.
        if !self.untracked && self.stored_absent(prefix, s, e)? && !self.prefixes.borrow().touched_window(prefix, s, e)
        {
            return Ok(None);
        }
        with_window_key(prefix, s, e, |key| {
            match self.base.cached(cf::DEFAULT, key) {
                Cached::Value(bytes) => return Ok(Some(self.codec().decode(bytes)?)),
                Cached::Deleted => return Ok(None),
                Cached::Unknown => {}
            }
            if self.stored_absent(prefix, s, e)? {
                return Ok(None);
            }
            // Not touched here: the shared index's value is the stored
            // one, where it knows it. A late record reads windows that
            // exist; asking the partition for them also makes a
            // write-behind cache finish applying the last checkpoint on
            // this thread (`state_cache`'s `apply_behind_ops`).
            if let Some(value) = self.indexed_value(prefix, s, e, |bytes| self.codec().decode(bytes))? {
                return Ok(Some(value?));
            }
            match self.base.partition().get(cf::DEFAULT, key)? {
                Some(bytes) => Ok(Some(self.codec().decode(&bytes)?)),
                None => Ok(None),
            }
        })
    }

    /// `f` of the stored value of window `(start, end)` of `prefix` as the
    /// shared index knows it; `None` if it does not, or if this
    /// transaction may have changed the window (the caller asked the
    /// change set first, which knows every change but those through
    /// [`base_mut`](Self::base_mut)).
    fn indexed_value<T>(&self, prefix: &[u8], start: u64, end: u64, f: impl FnOnce(&[u8]) -> T) -> Result<Option<T>> {
        if self.untracked || !self.snapshot(prefix)? {
            return Ok(None);
        }
        let prefixes = self.prefixes.borrow();
        let Some(snap) = prefixes.get(prefix).and_then(|p| p.shared.as_ref()) else {
            return Ok(None);
        };
        let Some(windows) = snap.windows.as_ref() else {
            return Ok(None);
        };
        Ok(match windows.as_slice().binary_search(&(start, end)) {
            Ok(i) => snap.values.get(i).and_then(|v| v.as_deref()).map(f),
            Err(_) => None,
        })
    }

    /// The aggregate of window `[start, end)` under `prefix`, or `default`:
    /// quixstreams' `get_window(..., default=)`.
    pub fn get_window_or<V: DeserializeOwned>(&self, start: i64, end: i64, prefix: &[u8], default: V) -> Result<V> {
        Ok(self.get_window(start, end, prefix)?.unwrap_or(default))
    }

    /// Sets the aggregate of window `[start, end)` and raises the prefix's
    /// latest timestamp to `timestamp` if it is newer.
    ///
    /// quixstreams' argument order (message key last, as `prefix`);
    /// [`key`](Self::key)`(msg_key).update_window(start, end, &value, timestamp)`
    /// is the everyday form.
    pub fn update_window<V: Serialize + ?Sized>(
        &mut self,
        start: i64,
        end: i64,
        value: &V,
        timestamp: i64,
        prefix: &[u8],
    ) -> Result<()> {
        self.guarded(|t| {
            non_negative("timestamp", timestamp)?;
            let (s, e) = check_window(start, end)?;
            t.base.require_started("set")?;
            let codec = t.codec();
            t.value_buf.clear();
            codec.encode_into(value, &mut t.value_buf)?;
            t.key_buf.clear();
            keys::write_prefixed_key(&mut t.key_buf, prefix, &keys::encode_u64_pair(s, e));
            if t.stored_absent(prefix, s, e)? {
                t.base.set_raw_new(cf::DEFAULT, &t.key_buf, &t.value_buf)?;
            } else {
                t.base.set_raw_ref(cf::DEFAULT, &t.key_buf, &t.value_buf)?;
            }
            t.prefixes.get_mut().touch(prefix, s, e, Some(&t.value_buf));
            let latest = t.get_index(Index::Timestamp, prefix)?;
            let updated = latest.map_or(timestamp, |l| l.max(timestamp));
            // Rewriting the value this transaction already wrote changes
            // nothing (a hopping record updates several windows at once).
            if !t.untracked && t.written_index(Index::Timestamp, prefix) == Some(updated) {
                return Ok(());
            }
            t.set_index(Index::Timestamp, prefix, updated)
        })
    }

    /// Deletes window `[start, end)` under `prefix`.
    pub fn delete_window(&mut self, start: i64, end: i64, prefix: &[u8]) -> Result<()> {
        let (s, e) = check_window(start, end)?;
        self.base.delete_raw(cf::DEFAULT, keys::window_key(prefix, s, e))?;
        self.touch_deleted(prefix, s, e);
        Ok(())
    }

    /// Deletes a window found by a range read.
    pub(super) fn delete_found(&mut self, prefix: &[u8], start: u64, end: u64) -> Result<()> {
        self.key_buf.clear();
        keys::write_prefixed_key(&mut self.key_buf, prefix, &keys::encode_u64_pair(start, end));
        self.base.delete_raw_ref(cf::DEFAULT, &self.key_buf)?;
        self.touch_deleted(prefix, start, end);
        Ok(())
    }

    /// The windows of `prefix` with `lower <= start <= upper`, by key,
    /// from the shared index plus this transaction's own changes: `None`
    /// when that cannot answer (no index, the prefix's windows are not
    /// indexed, too many to read one by one, or changes made through
    /// [`base_mut`](Self::base_mut)). Values come from the change set for
    /// the windows this transaction touched, from the index where it
    /// knows them, else from the store.
    fn windows_indexed(&self, lower: u64, upper: u64, prefix: &[u8]) -> Result<Option<Vec<RawWindow>>> {
        if self.untracked || !self.snapshot(prefix)? {
            return Ok(None);
        }
        // Bounds, and the value when the index knows it and this
        // transaction did not touch the window (every change but those
        // through `base_mut`, excluded above, is recorded as touched).
        let found: Vec<(u64, u64, Option<RawValue>)> = {
            let prefixes = self.prefixes.borrow();
            let Some(p) = prefixes.get(prefix) else { return Ok(None) };
            let Some(snap) = p.shared.as_ref() else { return Ok(None) };
            let Some(w) = snap.windows.as_ref() else {
                return Ok(None);
            };
            let w = w.as_slice();
            let from = w.partition_point(|&(s, _)| s < lower);
            let to = w.partition_point(|&(s, _)| s <= upper);
            if to - from > POINT_READ_WINDOWS {
                return Ok(None);
            }
            let touched: Vec<(u64, u64)> = prefixes
                .touched(p)
                .filter(|w| (lower..=upper).contains(&w.0))
                .map(|w| (w.0, w.1))
                .collect();
            let mut found = Vec::with_capacity(to - from + touched.len());
            for (i, &(s, e)) in w.iter().enumerate().take(to).skip(from) {
                let known = match snap.values.get(i) {
                    Some(Some(v)) if !touched.contains(&(s, e)) => Some(RawValue::copy(v)),
                    _ => None,
                };
                found.push((s, e, known));
            }
            if !touched.is_empty() {
                let committed = &w[from..to];
                found.extend(
                    touched
                        .iter()
                        .filter(|t| committed.binary_search(t).is_err())
                        .map(|&(s, e)| (s, e, None)),
                );
                found.sort_unstable_by_key(|w| (w.0, w.1));
            }
            found
        };
        let mut out = Vec::with_capacity(found.len());
        for (s, e, known) in found {
            if let Some(v) = known {
                out.push((s, e, v));
                continue;
            }
            with_window_key(prefix, s, e, |key| -> Result<()> {
                match self.base.cached(cf::DEFAULT, key) {
                    Cached::Value(v) => out.push((s, e, RawValue::copy(v))),
                    Cached::Deleted => {}
                    Cached::Unknown => {
                        if let Some(v) = self.base.partition().get(cf::DEFAULT, key)? {
                            out.push((s, e, RawValue::Owned(v)));
                        }
                    }
                }
                Ok(())
            })?;
        }
        Ok(Some(out))
    }

    pub(super) fn windows_raw(
        &self,
        start_from: Option<u64>,
        start_to: u64,
        prefix: &[u8],
        direction: Direction,
    ) -> Result<Vec<RawWindow>> {
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
            out.push((s, e, RawValue::Owned(value)));
        }
        Ok(out)
    }

    /// Windows under `prefix` with `start_from < start <= start_to`, by start
    /// (then end), in `direction`. `start_from = -1` includes 0.
    ///
    /// quixstreams' argument order; [`key`](Self::key)`(msg_key).get_windows(..)`
    /// is the everyday form.
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
            .map(|(start, end, v)| Window::stored(start, end, self.codec().decode(&v)?))
            .collect()
    }
}
