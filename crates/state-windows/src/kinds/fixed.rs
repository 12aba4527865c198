//! Tumbling and hopping windows: quixstreams 3.28.1's `FixedTimeWindow`
//! (`dataframe/windows/time_based.py`), without `before_update` /
//! `after_update` triggers.
//!
//! A record at `t` belongs to every window `[s, s + size)` with `s` a
//! multiple of the step, `t - size < s <= t` and `s >= 0`. Closing by key,
//! a window is late (and closes) once `end <= newest time of the key -
//! grace`; closing by partition, quixstreams' partition-wide expiry
//! (`expire_all_windows`) closes it, with two fixes documented in
//! `docs/formats.md`: a record is late for windows ending at or before the
//! last expired end (quixstreams subtracts grace twice there and keeps such
//! windows forever, bug B3), and a hopping size that is not a multiple of
//! the step still closes its windows (B2).

use serde::de::IgnoredAny;
use state_core::{cf, keys, StorePartition};
use state_txn::{ExpireOptions, ExpiredWindow, WindowedTransaction};

use super::{Closing, Cx, Kind};
use crate::error::Result;
use crate::layout::{Aggregation, Sealed};
use crate::result::WindowResult;

/// Tumbling (`step == size`) and hopping windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedKind {
    pub(crate) size: i64,
    pub(crate) step: i64,
    pub(crate) grace: i64,
    pub(crate) closing: Closing,
}

impl Sealed for FixedKind {}

impl FixedKind {
    /// quixstreams' `get_window_ranges`: the starts of the windows `t`
    /// belongs to, lowest first (negative starts are left out, not
    /// clipped). `t >= 0`.
    pub(crate) fn starts(&self, t: i64) -> impl Iterator<Item = i64> {
        let step = self.step;
        let last = t - t.rem_euclid(step);
        // The lowest k with last - k * step > t - size, and last - k * step >= 0.
        let k = ((last - t + self.size - 1) / step).min(last / step);
        let first = last - k * step;
        (0..=k).map(move |i| first + i * step)
    }
}

impl<V: ?Sized, G: Aggregation<V>> Kind<V, G> for FixedKind {
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
        let agg = cx.agg;
        // `max_end`: windows ending at or before it close (quixstreams'
        // max_expired_window_end); `late_bound`: a record is late for the
        // windows ending at or before it.
        let (max_end, late_bound) = match self.closing {
            Closing::Key => {
                let latest = timestamp.max(txn.get_latest_timestamp(key)?);
                (latest - self.grace, latest - self.grace)
            }
            Closing::Partition => {
                let last_expired_end = txn.get_latest_expired(b"")?;
                let latest = timestamp.max(last_expired_end);
                (latest - self.grace, (timestamp - self.grace).max(last_expired_end))
            }
        };
        let mut first_accepted = None;
        for start in self.starts(timestamp) {
            let end = start + self.size;
            if end <= late_bound {
                // quixstreams' late_by (`max_end - t`); where only our bound
                // makes the record late (B3), how far it is behind that.
                let late_by = if max_end > timestamp { max_end } else { late_bound } - timestamp;
                cx.late.window(key, value, timestamp, late_by, start, end);
                continue;
            }
            first_accepted.get_or_insert(start);
            if agg.aggregates() {
                let stored = agg.decoding(|| txn.get_window::<Option<G::Stored>>(start, end, key))?;
                let mut state = cx.state(stored.flatten());
                agg.add(&mut state, value, timestamp);
                txn.update_window(start, end, &agg.stored(&state), timestamp, key)?;
                if !cx.on_close() {
                    out.push(cx.updated(key, start, end, &state));
                }
            } else {
                // Collect-only windows store null: they only mark the window.
                txn.update_window(start, end, &(), timestamp, key)?;
            }
        }
        if agg.collects() {
            txn.add_to_collection(Some(timestamp), &agg.item(value), key)?;
        }
        match self.closing {
            Closing::Key => {
                if let Some(start) = first_accepted {
                    lower_cursor_below(txn, key, start)?;
                }
                self.expire_by_key(cx, txn, key, max_end - self.size, out)
            }
            Closing::Partition => self.expire_by_partition(cx, txn, max_end, out),
        }
    }

    #[allow(private_interfaces)]
    fn open_windows<P: StorePartition + ?Sized>(
        &self,
        cx: &Cx<'_, V, G>,
        txn: &WindowedTransaction<P>,
        key: &[u8],
    ) -> state_txn::Result<Vec<WindowResult<G::Output>>> {
        self.open(cx, txn, key)
    }
}

impl FixedKind {
    #[allow(private_interfaces)]
    pub(crate) fn open<V: ?Sized, G: Aggregation<V>, P: StorePartition + ?Sized>(
        &self,
        cx: &Cx<'_, V, G>,
        txn: &WindowedTransaction<P>,
        key: &[u8],
    ) -> state_txn::Result<Vec<WindowResult<G::Output>>> {
        super::stored_windows::<V, G, P, Option<G::Stored>>(cx, txn, key)?
            .into_iter()
            .map(|(start, end, stored)| cx.open_result(txn, key, (start, end), end, stored))
            .collect()
    }
}

/// A window accepted at or below the key's expiry cursor (possible only
/// after grace grew across a restart) would never be found by the next
/// expiry: lower the cursor below it, as quixstreams' session windows do.
/// quixstreams' fixed windows leave it (bug B16).
fn lower_cursor_below<P: StorePartition + ?Sized>(
    txn: &mut WindowedTransaction<P>,
    key: &[u8],
    start: i64,
) -> Result<()> {
    if let Some(cursor) = txn.get_expiry_checkpoint(key)? {
        if start <= cursor {
            txn.set_expiry_checkpoint(start - 1, key)?;
        }
    }
    Ok(())
}

impl FixedKind {
    fn options<V: ?Sized, G: Aggregation<V>>(agg: &G) -> ExpireOptions {
        ExpireOptions {
            collect: agg.collects(),
            ..ExpireOptions::delete()
        }
    }

    fn expire_by_key<V: ?Sized, G: Aggregation<V>, P: StorePartition + ?Sized>(
        &self,
        cx: &Cx<'_, V, G>,
        txn: &mut WindowedTransaction<P>,
        key: &[u8],
        max_start: i64,
        out: &mut Vec<WindowResult<G::Output>>,
    ) -> Result<()> {
        let options = Self::options(cx.agg);
        if !cx.on_close() {
            let _: Vec<ExpiredWindow<IgnoredAny, IgnoredAny>> = txn.expire_windows(max_start, key, options)?;
            return Ok(());
        }
        let expired: Vec<ExpiredWindow<Option<G::Stored>, G::Item>> =
            cx.agg.decoding(|| txn.expire_windows(max_start, key, options))?;
        for w in expired {
            let (start, end) = (w.start, w.end);
            // `w.prefix` is `key`, already copied: one allocation per
            // closed window less (ten per hopping record).
            debug_assert_eq!(w.prefix, key);
            out.push(cx.result(w.prefix, start, end, w.value, w.collected));
        }
        Ok(())
    }

    fn expire_by_partition<V: ?Sized, G: Aggregation<V>, P: StorePartition + ?Sized>(
        &self,
        cx: &Cx<'_, V, G>,
        txn: &mut WindowedTransaction<P>,
        max_end: i64,
        out: &mut Vec<WindowResult<G::Output>>,
    ) -> Result<()> {
        if self.size % self.step != 0 {
            return self.expire_uneven(cx, txn, max_end, out);
        }
        let options = Self::options(cx.agg);
        if !cx.on_close() {
            let _: Vec<ExpiredWindow<IgnoredAny, IgnoredAny>> = txn.expire_all_windows(max_end, self.step, options)?;
            return Ok(());
        }
        let expired: Vec<ExpiredWindow<Option<G::Stored>, G::Item>> = cx
            .agg
            .decoding(|| txn.expire_all_windows(max_end, self.step, options))?;
        for w in expired {
            let (start, end) = (w.start, w.end);
            out.push(cx.result(w.prefix, start, end, w.value, w.collected));
        }
        Ok(())
    }

    /// Partition-wide expiry of hopping windows whose size is not a
    /// multiple of the step. quixstreams (`expire_all_windows`) expires only
    /// windows whose end is exactly `L + k * step` after the first expiry,
    /// which such windows never have, so they never close (bug B2). Here
    /// every window with `L < end <= L'` closes, where `L'` is the end
    /// quixstreams records; for sizes that are multiples of the step this
    /// is the same set.
    fn expire_uneven<V: ?Sized, G: Aggregation<V>, P: StorePartition + ?Sized>(
        &self,
        cx: &Cx<'_, V, G>,
        txn: &mut WindowedTransaction<P>,
        max_end: i64,
        out: &mut Vec<WindowResult<G::Output>>,
    ) -> Result<()> {
        let step = self.step;
        let last = txn.get_latest_expired(b"")?;
        let (above, upto) = if last != 0 {
            if last.saturating_add(step) > max_end {
                return Ok(());
            }
            (last, last + (max_end - last) / step * step)
        } else {
            (i64::MIN, max_end - max_end.rem_euclid(step))
        };
        let mut due = Vec::new();
        for key in txn.keys(cf::DEFAULT)? {
            let Ok((prefix, start, end)) = keys::parse_window_key(&key) else {
                continue;
            };
            let (Ok(start), Ok(end)) = (i64::try_from(start), i64::try_from(end)) else {
                continue;
            };
            if end > above && end <= upto {
                due.push((prefix.to_vec(), start, end));
            }
        }
        let agg = cx.agg;
        // Read every closing window before deleting any (a window's
        // collected values may reach below a later window's start).
        if cx.on_close() {
            for (prefix, start, end) in &due {
                let stored = agg.decoding(|| txn.get_window::<Option<G::Stored>>(*start, *end, prefix))?;
                let collected = if agg.collects() {
                    agg.decoding(|| txn.get_from_collection(*start, *end, prefix))?
                } else {
                    Vec::new()
                };
                out.push(cx.result(prefix.clone(), *start, *end, stored.flatten(), collected));
            }
        }
        for (prefix, start, end) in &due {
            txn.delete_window(*start, *end, prefix)?;
            if agg.collects() {
                txn.delete_from_collection(*start, prefix, None)?;
            }
        }
        txn.set_expiry_checkpoint(upto, b"")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(size: i64, step: i64, t: i64) -> Vec<i64> {
        FixedKind {
            size,
            step,
            grace: 0,
            closing: Closing::Key,
        }
        .starts(t)
        .collect()
    }

    #[test]
    fn ranges_match_quixstreams_get_window_ranges() {
        assert_eq!(starts(10, 10, 25), vec![20]);
        assert_eq!(starts(10, 5, 25), vec![20, 25]);
        assert_eq!(starts(10, 5, 3), vec![0]);
        assert_eq!(starts(10, 10, 0), vec![0]);
        assert_eq!(starts(10, 3, 11), vec![3, 6, 9]);
        assert_eq!(
            starts(10_000, 1_000, 12_345),
            (3..=12).map(|s| s * 1000).collect::<Vec<_>>()
        );
        assert_eq!(starts(10_000, 1_000, 999), vec![0]);
        // A window ending exactly at t does not hold t.
        assert_eq!(starts(10, 5, 10), vec![5, 10]);
    }
}
