//! Sliding windows: quixstreams 3.28.1's `SlidingWindow`
//! (`dataframe/windows/sliding.py`), closing by key only (as quixstreams).
//!
//! A window is `[start, end]`, both inclusive, and stores
//! `[newest timestamp in it, state]`. A record at `t` has a *left* window
//! `[max(0, t - size), t]` and a *right* window `[t + 1, t + 1 + size]`;
//! the algorithm keeps, per key, every window that ends at one of its
//! records, plus the right windows that later records need. Only windows
//! that end at their newest record are emitted. quixstreams' oddities are
//! kept for byte compatibility (bugs B10 and B11 in `docs/formats.md`): a
//! record whose own left window is closed is dropped, but one that misses
//! only some older windows is reported late for those and still counts in
//! the others; a left window built from an older window's state is created
//! without the closing check.

use serde::de::IgnoredAny;
use state_core::{Direction, StorePartition};
use state_txn::{CollectedValues, ExpireOptions, ExpiredWindow, Window, WindowedTransaction};

use super::{Cx, Kind};

/// A stored sliding window value: `[newest timestamp, state]`.
type SlidingValue<S> = (i64, Option<S>);
use crate::error::{Result, WindowError};
use crate::layout::{Aggregation, Sealed};
use crate::result::WindowResult;

/// Sliding windows of `size` ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlidingKind {
    pub(crate) size: i64,
    pub(crate) grace: i64,
}

impl Sealed for SlidingKind {}

/// One record's view of its key while it is processed.
struct Record<'a, 'c, V: ?Sized, G, P: StorePartition + ?Sized> {
    cx: &'a Cx<'c, V, G>,
    txn: &'a mut WindowedTransaction<P>,
    key: &'a [u8],
    value: &'a V,
    timestamp: i64,
}

impl<V: ?Sized, G: Aggregation<V>, P: StorePartition + ?Sized> Record<'_, '_, V, G, P> {
    /// Stores `[max_timestamp, state]` (`state` `None`: `null`) for window
    /// `[start, end]`.
    fn write(&mut self, start: i64, end: i64, max_timestamp: i64, state: Option<&G::State>) -> Result<()> {
        let agg = self.cx.agg;
        let value = (max_timestamp, state.map(|s| agg.stored(s)));
        Ok(self.txn.update_window(start, end, &value, self.timestamp, self.key)?)
    }

    /// `state` with this record added, stored for window `[start, end]`
    /// with `max_timestamp`; returns the new state.
    fn add_and_write(&mut self, start: i64, end: i64, max_timestamp: i64, mut state: G::State) -> Result<G::State> {
        self.cx.agg.add(&mut state, self.value, self.timestamp);
        self.write(start, end, max_timestamp, Some(&state))?;
        Ok(state)
    }

    fn late(&self, start: i64, end: i64, late_by: i64) {
        self.cx
            .late
            .window(self.key, self.value, self.timestamp, late_by, start, end);
    }
}

impl<V: ?Sized, G: Aggregation<V>> Kind<V, G> for SlidingKind {
    #[allow(private_interfaces)]
    fn process<P: StorePartition + ?Sized>(
        &self,
        cx: &Cx<'_, V, G>,
        txn: &mut WindowedTransaction<P>,
        key: &[u8],
        timestamp: i64,
        value: &V,
        out: &mut Vec<WindowResult<G::Output>>,
    ) -> Result<()> {
        super::time_in_range(cx.name, timestamp)?;
        let (size, agg) = (self.size, cx.agg);
        let latest = timestamp.max(txn.get_latest_timestamp(key)?);
        let max_expired_end = latest - self.grace - 1;
        let max_expired_start = max_expired_end - size;
        let mut max_deleted_start = max_expired_start - size;
        let late_by = max_expired_end + 1 - timestamp;
        let (left_start, left_end) = ((timestamp - size).max(0), timestamp);
        if timestamp <= max_expired_start {
            cx.late.window(key, value, timestamp, late_by, left_start, left_end);
            return Ok(());
        }
        if timestamp == 0 {
            return Err(WindowError::SlidingAtZero {
                window: cx.name.to_owned(),
            });
        }
        let (right_start, right_end) = (timestamp + 1, timestamp + 1 + size);
        let mut right_exists = false;
        let mut starts = vec![left_start];
        // Newest start first; a snapshot: windows written below are not seen.
        let windows: Vec<Window<SlidingValue<G::Stored>>> =
            agg.decoding(|| txn.get_windows((left_start - size).max(0) - 1, right_start, key, Direction::Backward))?;
        let mut r = Record {
            cx,
            txn,
            key,
            value,
            timestamp,
        };
        let mut updated: Vec<(i64, i64, G::State)> = Vec::new();
        let mut left_done = false;
        for w in windows {
            let (start, end) = (w.start, w.end);
            let (max_timestamp, stored) = w.value;
            starts.push(start);
            if start == right_start {
                right_exists = true;
            } else if end > left_end {
                // `None`: stored as null (a collect-only right window).
                let state: Option<G::State> = stored.map(|s| agg.restore(s));
                // The right window, if it does not exist and will not be
                // empty: a copy of this window as stored.
                if !right_exists && max_timestamp > timestamp {
                    r.write(right_start, right_end, max_timestamp, state.as_ref())?;
                    right_exists = true;
                }
                if start > max_expired_start {
                    let newest = timestamp.max(max_timestamp);
                    let state = state.unwrap_or_else(|| agg.init());
                    let state = r.add_and_write(start, end, newest, state)?;
                    if end == newest {
                        updated.push((start, end, state));
                    }
                } else {
                    r.late(start, end, late_by);
                }
            } else if end == left_end {
                // The right window of the previous record, holding only
                // this one.
                let previous_right = max_timestamp + 1;
                if !starts.contains(&previous_right) && max_timestamp < timestamp {
                    r.add_and_write(previous_right, previous_right + size, timestamp, agg.init())?;
                }
                if start > max_expired_start {
                    let state = r.add_and_write(start, end, timestamp, cx.state(stored))?;
                    updated.push((start, end, state));
                } else {
                    r.late(start, end, late_by);
                }
                left_done = true;
                break;
            } else {
                let previous_right = max_timestamp + 1;
                let previous_right_end = previous_right + size;
                if !starts.contains(&previous_right) && previous_right_end >= timestamp {
                    if agg.aggregates() {
                        r.add_and_write(previous_right, previous_right_end, timestamp, agg.init())?;
                    } else {
                        r.write(previous_right, previous_right_end, timestamp, None)?;
                    }
                }
                // The left window, from this window's state if it reaches
                // back far enough (created without the closing check: B11).
                let base = if left_start > max_timestamp {
                    agg.init()
                } else {
                    cx.state(stored)
                };
                let state = r.add_and_write(left_start, left_end, timestamp, base)?;
                updated.push((left_start, left_end, state));
                // No older window is needed by a later record of this key.
                max_deleted_start = (start - 1).min(max_expired_start);
                left_done = true;
                break;
            }
        }
        if !left_done && left_start > max_expired_start {
            let state = r.add_and_write(left_start, left_end, timestamp, agg.init())?;
            updated.push((left_start, left_end, state));
        }
        if agg.collects() {
            txn.add_to_collection(Some(timestamp), &agg.item(value), key)?;
        }
        let options = ExpireOptions {
            collect: agg.collects(),
            ..ExpireOptions::keep().end_inclusive()
        };
        if cx.on_close() {
            let expired: Vec<ExpiredWindow<SlidingValue<G::Stored>, G::Item>> =
                agg.decoding(|| txn.expire_windows(max_expired_start, key, options))?;
            for w in expired {
                let (start, end) = (w.start, w.end);
                let (max_timestamp, stored) = w.value;
                if end == max_timestamp {
                    out.push(cx.result(key.to_vec(), start, end, stored, w.collected));
                }
            }
        } else {
            let _: Vec<ExpiredWindow<IgnoredAny, IgnoredAny>> = txn.expire_windows(max_expired_start, key, options)?;
            out.extend(
                updated
                    .iter()
                    .rev()
                    .map(|(start, end, state)| cx.updated(key, *start, *end, state)),
            );
        }
        let values = if agg.collects() {
            CollectedValues::Delete
        } else {
            CollectedValues::Keep
        };
        txn.delete_windows(max_deleted_start, values, key)?;
        Ok(())
    }

    /// The stored windows that end at their newest record and are not
    /// closed yet (the others are helpers, or were emitted).
    #[allow(private_interfaces)]
    fn open_windows<P: StorePartition + ?Sized>(
        &self,
        cx: &Cx<'_, V, G>,
        txn: &WindowedTransaction<P>,
        key: &[u8],
    ) -> state_txn::Result<Vec<WindowResult<G::Output>>> {
        let closed_up_to = txn.get_expiry_checkpoint(key)?.unwrap_or(-1);
        super::stored_windows::<V, G, P, SlidingValue<G::Stored>>(cx, txn, key)?
            .into_iter()
            .filter(|(start, end, (max_timestamp, _))| *start > closed_up_to && end == max_timestamp)
            .map(|(start, end, (_, stored))| cx.open_result(txn, key, (start, end), end + 1, stored))
            .collect()
    }
}
