//! Sliding windows: quixstreams' `SlidingWindow`
//! (`dataframe/windows/sliding.py`). Each stored window value is
//! `[max_timestamp, aggregation]`; only "left" windows (end equal to their
//! newest event) are emitted.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use state_core::{Direction, StorePartition};

use super::aggregations::Aggregations;
use super::kind::{Message, MessageKey, Processed, WindowKind};
use crate::error::Result;
use crate::options::{CollectedValues, ExpireOptions};
use crate::windowed::{ExpiredWindow, WindowedTransaction};

/// A sliding window (closing by key only, as in quixstreams).
#[derive(Clone, Debug)]
pub struct SlidingWindow {
    /// Window length, ms (windows are `[t - duration, t]`, both ends in).
    pub duration: i64,
    /// Grace, ms.
    pub grace: i64,
    /// What the window computes.
    pub aggs: Aggregations,
}

impl WindowKind for SlidingWindow {
    fn process_message(&self, txn: &mut WindowedTransaction, message: Message<'_>) -> Result<Processed> {
        let (key, prefix, value, timestamp) = message.parts();
        let duration = self.duration;
        let state_ts = txn.get_latest_timestamp(prefix)?;
        let latest = timestamp.max(state_ts);
        let max_expired_end = latest - self.grace - 1;
        let max_expired_start = max_expired_end - duration;
        let mut max_deleted_start = max_expired_start - duration;
        let left_start = (timestamp - duration).max(0);
        let left_end = timestamp;
        if timestamp <= max_expired_start {
            return Ok(Processed::default()); // late
        }
        let right_start = timestamp + 1;
        let right_end = right_start + duration;
        let mut right_exists = false;
        let mut starts = BTreeSet::from([left_start]);
        let mut updated = Vec::new();
        let windows = txn.get_windows::<Value>(
            (left_start - duration).max(0) - 1,
            right_start,
            prefix,
            Direction::Backward,
        )?;
        let mut broke = false;
        for w in windows {
            let (start, end) = (w.start, w.end);
            let max_timestamp = w.value.get(0).and_then(Value::as_i64).unwrap_or(0);
            let aggregation = w.value.get(1).cloned().unwrap_or(Value::Null);
            starts.insert(start);
            if start == right_start {
                right_exists = true;
            } else if end > left_end {
                if !right_exists && max_timestamp > timestamp {
                    self.update(
                        txn,
                        key,
                        prefix,
                        right_start,
                        right_end,
                        &aggregation,
                        timestamp,
                        max_timestamp,
                    )?;
                    right_exists = true;
                }
                if start > max_expired_start {
                    let max_timestamp = timestamp.max(max_timestamp);
                    let window = self.update(
                        txn,
                        key,
                        prefix,
                        start,
                        end,
                        &self.aggs.agg(&aggregation, value),
                        timestamp,
                        max_timestamp,
                    )?;
                    if end == max_timestamp {
                        updated.push(window);
                    }
                }
            } else if end == left_end {
                let rs = max_timestamp + 1;
                if !starts.contains(&rs) && max_timestamp < timestamp {
                    let v = self.aggs.agg(&self.aggs.init(), value);
                    self.update(txn, key, prefix, rs, rs + duration, &v, timestamp, timestamp)?;
                }
                if start > max_expired_start {
                    let v = self.aggs.agg(&aggregation, value);
                    updated.push(self.update(txn, key, prefix, start, end, &v, timestamp, timestamp)?);
                }
                broke = true;
                break;
            } else {
                let rs = max_timestamp + 1;
                let re = rs + duration;
                if !starts.contains(&rs) && re >= timestamp {
                    let v = if self.aggs.aggregate() {
                        self.aggs.agg(&self.aggs.init(), value)
                    } else {
                        Value::Null
                    };
                    self.update(txn, key, prefix, rs, re, &v, timestamp, timestamp)?;
                }
                let aggregation = if left_start > max_timestamp {
                    self.aggs.init()
                } else {
                    aggregation
                };
                let v = self.aggs.agg(&aggregation, value);
                updated.push(self.update(txn, key, prefix, left_start, left_end, &v, timestamp, timestamp)?);
                max_deleted_start = (start - 1).min(max_expired_start);
                broke = true;
                break;
            }
        }
        if !broke && left_start > max_expired_start {
            let v = self.aggs.agg(&self.aggs.init(), value);
            updated.push(self.update(txn, key, prefix, left_start, left_end, &v, timestamp, timestamp)?);
        }
        if self.aggs.collects() {
            txn.add_to_collection(Some(timestamp), value, prefix)?;
        }
        let options = ExpireOptions {
            collect: self.aggs.collects(),
            ..ExpireOptions::keep().end_inclusive()
        };
        let windows: Vec<ExpiredWindow<Value, Value>> = txn.expire_windows(max_expired_start, prefix, options)?;
        let mut expired = Vec::new();
        for w in windows {
            let max_timestamp = w.value.get(0).and_then(Value::as_i64).unwrap_or(-1);
            let aggregated = w.value.get(1).cloned().unwrap_or(Value::Null);
            if w.end == max_timestamp {
                expired.push((
                    key.clone(),
                    self.aggs.results(&aggregated, &w.collected, w.start, w.end),
                ));
            }
        }
        let values = if self.aggs.collects() {
            CollectedValues::Delete
        } else {
            CollectedValues::Keep
        };
        txn.delete_windows(max_deleted_start, values, prefix)?;
        updated.reverse();
        Ok(Processed { updated, expired })
    }
}

impl SlidingWindow {
    #[allow(clippy::too_many_arguments)]
    fn update<P: StorePartition + ?Sized>(
        &self,
        txn: &mut WindowedTransaction<P>,
        key: &MessageKey,
        prefix: &[u8],
        start: i64,
        end: i64,
        value: &Value,
        timestamp: i64,
        max_timestamp: i64,
    ) -> Result<(MessageKey, Value)> {
        txn.update_window(start, end, &json!([max_timestamp, value]), timestamp, prefix)?;
        Ok((key.clone(), self.aggs.results(value, &[], start, end)))
    }
}
