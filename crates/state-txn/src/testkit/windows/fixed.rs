//! Tumbling and hopping windows: quixstreams' `FixedTimeWindow`
//! (`dataframe/windows/time_based.py`), without `before_update` /
//! `after_update` callbacks.

use serde_json::Value;

use super::aggregations::Aggregations;
use super::kind::{Closing, Message, MessageKey, Processed, WindowKind};
use crate::error::Result;
use crate::options::ExpireOptions;
use crate::windowed::{ExpiredWindow, WindowedTransaction};

/// A tumbling (`step: None`) or hopping window.
#[derive(Clone, Debug)]
pub struct FixedWindow {
    /// Window length, ms.
    pub duration: i64,
    /// Hop, ms (`None`: tumbling).
    pub step: Option<i64>,
    /// How long after its end a window still takes late events, ms.
    pub grace: i64,
    /// Whose watermark closes windows.
    pub closing: Closing,
    /// What the window computes.
    pub aggs: Aggregations,
}

/// quixstreams' `get_window_ranges`: the windows `timestamp` falls in,
/// ascending.
pub(crate) fn window_ranges(timestamp: i64, duration: i64, step: Option<i64>) -> Vec<(i64, i64)> {
    let step = step.unwrap_or(duration);
    let mut out = Vec::new();
    let mut start = timestamp - timestamp.rem_euclid(step);
    while start > timestamp - duration && start >= 0 {
        out.push((start, start + duration));
        start -= step;
    }
    out.reverse();
    out
}

impl WindowKind for FixedWindow {
    fn process_message(&self, txn: &mut WindowedTransaction, message: Message<'_>) -> Result<Processed> {
        let (key, prefix, value, timestamp) = message.parts();
        let latest = match self.closing {
            Closing::Partition => timestamp.max(txn.get_latest_expired(b"")?),
            Closing::Key => timestamp.max(txn.get_latest_timestamp(prefix)?),
        };
        // Saturating: the recorded end may be `CHECKPOINT_NEVER`.
        let max_end = latest.saturating_sub(self.grace);
        let max_start = max_end.saturating_sub(self.duration);
        let mut out = Processed::default();
        for (start, end) in window_ranges(timestamp, self.duration, self.step) {
            if start <= max_start {
                continue; // late: quixstreams logs it (or calls on_late)
            }
            let mut aggregated = Value::Null;
            if self.aggs.aggregate() {
                let current = txn
                    .get_window::<Value>(start, end, prefix)?
                    .filter(|v| !v.is_null())
                    .unwrap_or_else(|| self.aggs.init());
                aggregated = self.aggs.agg(&current, value);
                out.updated
                    .push((key.clone(), self.aggs.results(&aggregated, &[], start, end)));
            }
            txn.update_window(start, end, &aggregated, timestamp, prefix)?;
        }
        if self.aggs.collects() {
            txn.add_to_collection(Some(timestamp), value, prefix)?;
        }
        let options = ExpireOptions {
            collect: self.aggs.collects(),
            ..ExpireOptions::delete()
        };
        let expired: Vec<(MessageKey, ExpiredWindow<Value, Value>)> = match self.closing {
            Closing::Partition => {
                let step = self.step.unwrap_or(self.duration);
                let windows: Vec<ExpiredWindow<Value, Value>> = txn.expire_all_windows(max_end, step, options)?;
                let mut out = Vec::with_capacity(windows.len());
                for w in windows {
                    out.push((key.from_prefix(txn, &w.prefix)?, w));
                }
                out
            }
            Closing::Key => {
                let max_start = max_start.max(-1);
                let windows: Vec<ExpiredWindow<Value, Value>> = txn.expire_windows(max_start, prefix, options)?;
                windows.into_iter().map(|w| (key.clone(), w)).collect()
            }
        };
        for (k, w) in expired {
            out.expired
                .push((k, self.aggs.results(&w.value, &w.collected, w.start, w.end)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::window_ranges;

    #[test]
    fn ranges_match_quixstreams() {
        assert_eq!(window_ranges(25, 10, None), vec![(20, 30)]);
        assert_eq!(window_ranges(25, 10, Some(5)), vec![(20, 30), (25, 35)]);
        assert_eq!(window_ranges(3, 10, Some(5)), vec![(0, 10)]);
        assert_eq!(window_ranges(0, 10, None), vec![(0, 10)]);
    }
}
