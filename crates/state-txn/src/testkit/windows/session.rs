//! Session windows: quixstreams 3.28.1's `SessionWindow`
//! (`dataframe/windows/session.py`), on the primitives added for it:
//! `windows_cursor` (quixstreams' `iter_windows`), the expiry checkpoints,
//! the partition watermark, `iter_prefixes` and `key_from_prefix`.

use serde_json::Value;
use state_core::{Direction, StorePartition};

use super::aggregations::Aggregations;
use super::kind::{Closing, Message, MessageKey, Processed, WindowKind};
use crate::error::Result;
use crate::windowed::{Window, WindowedTransaction, CHECKPOINT_NEVER};

/// The partition checkpoint when no session is open: no watermark reaches
/// it (quixstreams' `_NO_OPEN_SESSIONS`, stored as `2^64 - 1`).
const NO_OPEN_SESSIONS: i64 = CHECKPOINT_NEVER;

/// A session window: events at most `gap` apart share a session, stored
/// half-open as `[first event, last event + 1)`.
#[derive(Clone, Debug)]
pub struct SessionWindow {
    /// Inactivity gap, ms.
    pub gap: i64,
    /// Grace, ms.
    pub grace: i64,
    /// Whose watermark closes sessions.
    pub closing: Closing,
    /// What the session computes.
    pub aggs: Aggregations,
}

fn matches(w: &Window<Value>, timestamp: i64, gap: i64) -> bool {
    w.start - gap <= timestamp && w.end + gap > timestamp
}

fn first_window<P: StorePartition + ?Sized>(
    txn: &WindowedTransaction<P>,
    prefix: &[u8],
    start_from: i64,
    start_to: Option<i64>,
    direction: Direction,
) -> Result<Option<Window<Value>>> {
    txn.windows_cursor(prefix, start_from, start_to, direction)?.next(txn)
}

impl WindowKind for SessionWindow {
    fn process_message(&self, txn: &mut WindowedTransaction, message: Message<'_>) -> Result<Processed> {
        let (key, prefix, value, timestamp) = message.parts();
        let (gap, grace) = (self.gap, self.grace);
        let aggs = &self.aggs;
        let by_partition = self.closing == Closing::Partition;
        let key_latest = txn.get_latest_timestamp(prefix)?;
        let watermark = if by_partition {
            txn.advance_partition_timestamp(timestamp.max(key_latest))?
        } else {
            timestamp.max(key_latest)
        };
        let late_before = watermark - gap - grace;
        let close_before = late_before - gap;
        if timestamp < late_before {
            return Ok(Processed::default()); // late
        }
        let previous = first_window(txn, prefix, 0, Some(timestamp), Direction::Backward)?;
        let following = first_window(txn, prefix, timestamp + 1, None, Direction::Forward)?;
        let matched: Vec<Window<Value>> = [previous, following]
            .into_iter()
            .flatten()
            .filter(|w| matches(w, timestamp, gap))
            .collect();
        let or_init = |v: &Value| if v.is_null() { aggs.init() } else { v.clone() };
        let (start, end, aggregated) = match matched.as_slice() {
            [p, f] => {
                let start = p.start.min(timestamp);
                let end = f.end.max(timestamp + 1);
                txn.delete_window(p.start, p.end, prefix)?;
                txn.delete_window(f.start, f.end, prefix)?;
                let aggregated = if aggs.aggregate() {
                    aggs.merge(&aggs.agg(&or_init(&p.value), value), &or_init(&f.value))
                } else {
                    Value::Null
                };
                (start, end, aggregated)
            }
            [m] => {
                let start = m.start.min(timestamp);
                let end = m.end.max(timestamp + 1);
                if (start, end) != (m.start, m.end) {
                    txn.delete_window(m.start, m.end, prefix)?;
                }
                let aggregated = if aggs.aggregate() {
                    aggs.agg(&or_init(&m.value), value)
                } else {
                    Value::Null
                };
                (start, end, aggregated)
            }
            _ => {
                let aggregated = if aggs.aggregate() {
                    aggs.agg(&aggs.init(), value)
                } else {
                    Value::Null
                };
                (timestamp, timestamp + 1, aggregated)
            }
        };
        if aggs.collects() {
            txn.add_to_collection(Some(timestamp), value, prefix)?;
        }
        txn.update_window(start, end, &aggregated, timestamp, prefix)?;
        // A larger grace after a restart can admit an event below the key's
        // expiry cursor; lower the cursor so the scan finds it again.
        if let Some(cursor) = txn.get_expiry_checkpoint(prefix)? {
            if start <= cursor {
                txn.set_expiry_checkpoint(start - 1, prefix)?;
            }
        }
        let mut out = Processed::default();
        if aggs.aggregate() {
            out.updated
                .push((key.clone(), aggs.results(&aggregated, &[], start, end)));
        }
        out.expired = if by_partition {
            let checkpoint = txn.get_expiry_checkpoint(b"")?;
            let candidate = end.saturating_add(2 * gap + grace);
            if checkpoint.is_some_and(|c| candidate < c) {
                txn.set_expiry_checkpoint(candidate, b"")?;
            }
            self.expire_by_partition(txn, watermark, close_before, key)?
        } else {
            self.expire_by_key(txn, key, prefix, close_before)?
        };
        Ok(out)
    }
}

impl SessionWindow {
    /// Closes the sessions of one key that end at or before `close_before`.
    fn expire_by_key<P: StorePartition + ?Sized>(
        &self,
        txn: &mut WindowedTransaction<P>,
        key: &MessageKey,
        prefix: &[u8],
        close_before: i64,
    ) -> Result<Vec<(MessageKey, Value)>> {
        let cursor = txn.get_expiry_checkpoint(prefix)?;
        let scan_from = cursor.map_or(0, |c| c.saturating_add(1));
        let mut closing = Vec::new();
        let mut it = txn.windows_cursor(prefix, scan_from, None, Direction::Forward)?;
        while let Some(w) = it.next::<Value, _>(txn)? {
            if w.end > close_before {
                break;
            }
            closing.push(w);
        }
        if closing.is_empty() {
            return Ok(Vec::new());
        }
        let collect = self.aggs.collects();
        let mut results = Vec::with_capacity(closing.len());
        for w in &closing {
            let collected: Vec<Value> = if collect {
                txn.get_from_collection(w.start, w.end, prefix)?
            } else {
                Vec::new()
            };
            results.push((key.clone(), self.aggs.results(&w.value, &collected, w.start, w.end)));
        }
        for w in &closing {
            txn.delete_window(w.start, w.end, prefix)?;
            if collect {
                txn.delete_from_collection(w.end, prefix, Some(w.start))?;
            }
        }
        if let Some(last) = closing.last() {
            txn.set_expiry_checkpoint(last.start, prefix)?;
        }
        Ok(results)
    }

    /// Closes the due sessions of every key, gated by the partition
    /// checkpoint, and recomputes the checkpoint.
    fn expire_by_partition<P: StorePartition + ?Sized>(
        &self,
        txn: &mut WindowedTransaction<P>,
        watermark: i64,
        close_before: i64,
        message_key: &MessageKey,
    ) -> Result<Vec<(MessageKey, Value)>> {
        if txn.get_expiry_checkpoint(b"")?.is_some_and(|c| watermark < c) {
            return Ok(Vec::new());
        }
        let expire_after = 2 * self.gap + self.grace;
        let mut results = Vec::new();
        let mut next_checkpoint = NO_OPEN_SESSIONS;
        for prefix in txn.iter_prefixes()? {
            let key = message_key.from_prefix(txn, &prefix)?;
            results.extend(self.expire_by_key(txn, &key, &prefix, close_before)?);
            let cursor = txn.get_expiry_checkpoint(&prefix)?;
            let scan_from = cursor.map_or(0, |c| c.saturating_add(1));
            if let Some(first) = first_window(txn, &prefix, scan_from, None, Direction::Forward)? {
                next_checkpoint = next_checkpoint.min(first.end.saturating_add(expire_after));
            }
        }
        txn.set_expiry_checkpoint(next_checkpoint, b"")?;
        Ok(results)
    }
}
