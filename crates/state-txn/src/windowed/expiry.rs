//! Expiry: windows of one prefix up to a start (`expire_windows`,
//! `delete_windows`), and of the whole partition by step
//! (`expire_all_windows`), each emitted once thanks to the recorded
//! last-expired and last-deleted indexes.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use state_core::{cf, keys, Direction, StorePartition};

use super::layout::{exclusive_start, stored_millis, Index};
use super::transaction::WindowedTransaction;
use crate::error::{Result, TxnError};
use crate::options::{CollectedValues, ExpireOptions};

/// An expired window, with the prefix it belongs to and, for collection
/// windows, the values collected into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiredWindow<V, C> {
    /// Start, ms (inclusive); never negative.
    pub start: i64,
    /// End, ms (exclusive).
    pub end: i64,
    /// The aggregate.
    pub value: V,
    /// Collected values in insertion order (empty unless collecting).
    pub collected: Vec<C>,
    /// The key prefix (message key) of the window.
    pub prefix: Vec<u8>,
}

impl<P: StorePartition + ?Sized> WindowedTransaction<P> {
    /// The windows of `prefix` with start <= `max_start_time` that
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
    ///
    /// quixstreams' argument order; [`key`](Self::key)`(msg_key).expire_windows(max_start_time, options)`
    /// is the everyday form.
    pub fn expire_windows<V: DeserializeOwned, C: DeserializeOwned>(
        &mut self,
        max_start_time: i64,
        prefix: &[u8],
        options: ExpireOptions,
    ) -> Result<Vec<ExpiredWindow<V, C>>> {
        self.base.require_started("expire_windows")?;
        self.guarded(|t| t.expire_windows_inner(max_start_time, prefix, options))
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
        let from = exclusive_start(self.get_index(Index::Expired, prefix)?);
        let windows = self.windows_raw(from, max_start_time as u64, prefix, Direction::Forward)?;
        let Some(&(last_start, _, _)) = windows.last() else {
            return Ok(Vec::new());
        };
        // At most `max_start_time`, so an i64.
        self.set_index(Index::Expired, prefix, stored_millis("window start", last_start)?)?;
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
    ///
    /// quixstreams' argument order; [`key`](Self::key)`(msg_key).delete_windows(..)`
    /// is the everyday form.
    pub fn delete_windows(&mut self, max_start_time: i64, values: CollectedValues, prefix: &[u8]) -> Result<()> {
        self.base.require_started("delete_windows")?;
        self.guarded(|t| t.delete_windows_inner(max_start_time, values, prefix))
    }

    fn delete_windows_inner(&mut self, max_start_time: i64, values: CollectedValues, prefix: &[u8]) -> Result<()> {
        if max_start_time < 0 {
            return Ok(());
        }
        let from = exclusive_start(self.get_index(Index::DeletedWindow, prefix)?);
        let windows = self.windows_raw(from, max_start_time as u64, prefix, Direction::Forward)?;
        for (start, end, _) in &windows {
            self.delete_found(prefix, *start, *end)?;
        }
        // quixstreams skips recording a last deleted start of 0.
        if let Some(&(last, _, _)) = windows.last() {
            if last > 0 {
                self.set_index(Index::DeletedWindow, prefix, stored_millis("window start", last)?)?;
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
        self.guarded(|t| t.expire_all_windows_inner(max_end_time, step_ms, options))
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
        let last_expired = i128::from(self.get_index(Index::Expired, b"")?.unwrap_or(0));
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
        let recorded = i64::try_from(new_last).map_err(|_| TxnError::IndexValueOutOfRange {
            what: "window end expired up to",
            value: new_last,
        })?;
        self.set_index(Index::Expired, b"", recorded)?;
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
            start: stored_millis("window start", start)?,
            end: stored_millis("window end", end)?,
            value: self.codec().decode(value)?,
            collected,
            prefix: prefix.to_vec(),
        })
    }
}
