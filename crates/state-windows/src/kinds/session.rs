//! Session windows: quixstreams 3.28.1's `SessionWindow`
//! (`dataframe/windows/session.py`).
//!
//! Records of a key at most `gap` apart share a session, stored half-open
//! as `[first event, last event + 1)`. A record joins the session it is
//! within one gap of, extends it, or bridges two sessions (their states
//! merge). A record is late when `t < watermark - gap - grace`; a session
//! closes once `end <= watermark - 2 gap - grace`. The watermark is the
//! key's newest event time, or the partition's when closing by partition
//! (then a partition-wide checkpoint says when the next session may close,
//! so most records cost no sweep).
//!
//! quixstreams probes the neighbouring sessions with two store iterators
//! and a third for expiry; here the key's sessions are read once (from the
//! window index when the transaction has one) and the expiry works on that
//! list, with the same writes.

use state_core::{Direction, StorePartition};
use state_txn::{Window, WindowedTransaction};

use super::{Closing, Cx, Kind};
use crate::error::Result;
use crate::layout::{Aggregation, MergeAggregation, Sealed};
use crate::result::WindowResult;

/// Session windows with inactivity gap `gap` ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionKind {
    pub(crate) gap: i64,
    pub(crate) grace: i64,
    pub(crate) closing: Closing,
}

impl Sealed for SessionKind {}

/// One stored session of a key.
struct Session<S> {
    start: i64,
    end: i64,
    state: S,
}

impl SessionKind {
    /// The sessions of `key`, in start order, with their states.
    fn sessions<V: ?Sized, G: Aggregation<V>, P: StorePartition + ?Sized>(
        cx: &Cx<'_, V, G>,
        txn: &WindowedTransaction<P>,
        key: &[u8],
    ) -> Result<Vec<Session<G::State>>> {
        let windows: Vec<Window<Option<G::Stored>>> = cx
            .agg
            .decoding(|| txn.get_windows(-1, i64::MAX, key, Direction::Forward))?;
        Ok(windows
            .into_iter()
            .map(|w| {
                let (start, end) = (w.start, w.end);
                Session {
                    start,
                    end,
                    state: cx.state(w.value),
                }
            })
            .collect())
    }

    /// quixstreams' `_matches`: the record is within one gap of the session.
    fn joins<S>(&self, s: &Session<S>, t: i64) -> bool {
        s.start - self.gap <= t && s.end + self.gap > t
    }

    /// Closes the sessions of `key` (`sessions`, in start order, as stored
    /// now) that end at or before `close_before`, from the key's cursor on
    /// (quixstreams' `expire_by_key`). Returns the index of the first
    /// session left open.
    #[allow(clippy::too_many_arguments)]
    fn expire_key<V: ?Sized, G: Aggregation<V>, P: StorePartition + ?Sized>(
        &self,
        cx: &Cx<'_, V, G>,
        txn: &mut WindowedTransaction<P>,
        key: &[u8],
        cursor: Option<i64>,
        sessions: &mut Vec<Session<G::State>>,
        close_before: i64,
        out: &mut Vec<WindowResult<G::Output>>,
    ) -> Result<Option<usize>> {
        let scan_from = cursor.map_or(0, |c| c.saturating_add(1));
        let first = sessions.partition_point(|s| s.start < scan_from);
        let closing = sessions[first..].iter().take_while(|s| s.end <= close_before).count();
        if closing == 0 {
            return Ok((first < sessions.len()).then_some(first));
        }
        let collects = cx.agg.collects();
        let closed: Vec<Session<G::State>> = sessions.drain(first..first + closing).collect();
        if cx.on_close() {
            for s in &closed {
                let collected = if collects {
                    cx.agg.decoding(|| txn.get_from_collection(s.start, s.end, key))?
                } else {
                    Vec::new()
                };
                out.push(WindowResult {
                    key: key.to_vec(),
                    start: s.start,
                    end: s.end,
                    value: cx.agg.output(&s.state, collected),
                });
            }
        }
        for s in &closed {
            txn.delete_window(s.start, s.end, key)?;
            if collects {
                txn.delete_from_collection(s.end, key, Some(s.start))?;
            }
        }
        if let Some(last) = closed.last() {
            txn.set_expiry_checkpoint(last.start, key)?;
        }
        Ok((first < sessions.len()).then_some(first))
    }

    /// Closes the due sessions of every key of the partition, gated by the
    /// partition checkpoint, and recomputes the checkpoint (quixstreams'
    /// `expire_by_partition`).
    fn expire_partition<V: ?Sized, G: Aggregation<V>, P: StorePartition + ?Sized>(
        &self,
        cx: &Cx<'_, V, G>,
        txn: &mut WindowedTransaction<P>,
        watermark: i64,
        close_before: i64,
        out: &mut Vec<WindowResult<G::Output>>,
    ) -> Result<()> {
        if txn.get_expiry_checkpoint(b"")?.is_some_and(|c| watermark < c) {
            return Ok(());
        }
        let expire_after = 2 * self.gap + self.grace;
        let mut next = state_txn::CHECKPOINT_NEVER;
        for prefix in txn.iter_prefixes()? {
            let mut sessions = Self::sessions(cx, txn, &prefix)?;
            let cursor = txn.get_expiry_checkpoint(&prefix)?;
            // The first session at or after the (moved) cursor stays open.
            let first_open = self.expire_key(cx, txn, &prefix, cursor, &mut sessions, close_before, out)?;
            if let Some(i) = first_open {
                next = next.min(sessions[i].end.saturating_add(expire_after));
            }
        }
        Ok(txn.set_expiry_checkpoint(next, b"")?)
    }
}

impl<V: ?Sized, G: MergeAggregation<V>> Kind<V, G> for SessionKind {
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
        let (gap, agg) = (self.gap, cx.agg);
        let by_partition = self.closing == Closing::Partition;
        let key_latest = txn.get_latest_timestamp(key)?;
        let watermark = if by_partition {
            txn.advance_partition_timestamp(timestamp.max(key_latest))?
        } else {
            timestamp.max(key_latest)
        };
        let late_before = watermark - gap - self.grace;
        let close_before = late_before - gap;
        if timestamp < late_before {
            cx.late
                .window(key, value, timestamp, late_before - timestamp, timestamp, timestamp + 1);
            return Ok(());
        }
        let mut sessions = Self::sessions(cx, txn, key)?;
        // The neighbours in start order: the last session starting at or
        // before t, the first starting after it. Sessions are disjoint and
        // more than a gap apart, so only those can take the record.
        let after = sessions.partition_point(|s| s.start <= timestamp);
        let previous = after.checked_sub(1).filter(|&i| self.joins(&sessions[i], timestamp));
        let following = (after < sessions.len() && self.joins(&sessions[after], timestamp)).then_some(after);
        let aggregates = agg.aggregates();
        let (start, end, state, insert_at) = match (previous, following) {
            (Some(p), Some(f)) => {
                let later = sessions.remove(f);
                let earlier = sessions.remove(p);
                txn.delete_window(earlier.start, earlier.end, key)?;
                txn.delete_window(later.start, later.end, key)?;
                let mut state = earlier.state;
                agg.add(&mut state, value, timestamp);
                let state = if aggregates {
                    agg.merge(state, later.state)
                } else {
                    state
                };
                (earlier.start.min(timestamp), later.end.max(timestamp + 1), state, p)
            }
            (Some(i), None) | (None, Some(i)) => {
                let matched = sessions.remove(i);
                let (start, end) = (matched.start.min(timestamp), matched.end.max(timestamp + 1));
                if (start, end) != (matched.start, matched.end) {
                    // The key holds the bounds: a resized session moves.
                    txn.delete_window(matched.start, matched.end, key)?;
                }
                let mut state = matched.state;
                agg.add(&mut state, value, timestamp);
                (start, end, state, i)
            }
            (None, None) => {
                let mut state = agg.init();
                agg.add(&mut state, value, timestamp);
                (timestamp, timestamp + 1, state, after)
            }
        };
        if agg.collects() {
            txn.add_to_collection(Some(timestamp), &agg.item(value), key)?;
        }
        if aggregates {
            txn.update_window(start, end, &agg.stored(&state), timestamp, key)?;
        } else {
            txn.update_window(start, end, &(), timestamp, key)?;
        }
        // A larger grace after a restart can admit a record below the key's
        // expiry cursor, where the next expiry would never look.
        let mut cursor = txn.get_expiry_checkpoint(key)?;
        if cursor.is_some_and(|c| start <= c) {
            txn.set_expiry_checkpoint(start - 1, key)?;
            cursor = Some(start - 1);
        }
        if aggregates && !cx.on_close() {
            out.push(cx.updated(key, start, end, &state));
        }
        if by_partition {
            // An unset checkpoint means "sweep now"; between sweeps it only
            // comes down.
            let candidate = end.saturating_add(2 * gap + self.grace);
            if txn.get_expiry_checkpoint(b"")?.is_some_and(|c| candidate < c) {
                txn.set_expiry_checkpoint(candidate, b"")?;
            }
            return self.expire_partition(cx, txn, watermark, close_before, out);
        }
        sessions.insert(insert_at.min(sessions.len()), Session { start, end, state });
        self.expire_key(cx, txn, key, cursor, &mut sessions, close_before, out)?;
        Ok(())
    }

    #[allow(private_interfaces)]
    fn open_windows<P: StorePartition + ?Sized>(
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
