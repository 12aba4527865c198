//! Count-based windows: quixstreams' `CountWindow`
//! (`dataframe/windows/count_based.py`). No time indexes: one document per
//! key, `prefix | "metadata"` in `default`, holds the open windows.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::aggregations::Aggregations;
use super::kind::{Message, Processed, WindowKind};
use crate::error::Result;
use crate::windowed::WindowedTransaction;

/// The per-key document (field order as quixstreams builds it, so its JSON
/// bytes are the same).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct CountWindowsData {
    windows: Vec<CountWindowData>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct CountWindowData {
    count: i64,
    start: i64,
    end: i64,
    aggregations: Value,
    collection_start_id: i64,
}

/// A tumbling (`step: None`) or hopping count window.
#[derive(Clone, Debug)]
pub struct CountWindow {
    /// Messages per window.
    pub max_count: i64,
    /// A new window every `step` messages (`None`: tumbling).
    pub step: Option<i64>,
    /// What the window computes.
    pub aggs: Aggregations,
}

const STATE_KEY: &str = "metadata";

impl WindowKind for CountWindow {
    fn process_message(&self, txn: &mut WindowedTransaction, message: Message<'_>) -> Result<Processed> {
        let (key, prefix, value, timestamp) = message.parts();
        let mut data: CountWindowsData = txn.base().get(STATE_KEY, prefix)?.unwrap_or_default();
        let collect = self.aggs.collects();
        let mut collection_start_id = -1;
        if data.windows.is_empty() {
            collection_start_id = 0;
            data.windows.push(self.new_window(timestamp, 0));
        } else if let Some(step) = self.step {
            let first = &data.windows[0];
            if first.count % step == 0 {
                if collect {
                    collection_start_id = first.collection_start_id + first.count;
                }
                data.windows.push(self.new_window(timestamp, collection_start_id));
            }
        }
        if collect {
            if collection_start_id == -1 {
                collection_start_id = data.windows[0].collection_start_id + data.windows[0].count;
            }
            txn.add_to_collection(Some(collection_start_id), value, prefix)?;
        }
        let mut out = Processed::default();
        let mut to_remove = Vec::new();
        for (index, window) in data.windows.iter_mut().enumerate() {
            window.count += 1;
            if timestamp < window.start {
                window.start = timestamp;
            } else if timestamp > window.end {
                window.end = timestamp;
            }
            if self.aggs.aggregate() {
                window.aggregations = self.aggs.agg(&window.aggregations, value);
                out.updated.push((
                    key.clone(),
                    self.aggs.results(&window.aggregations, &[], window.start, window.end),
                ));
            }
            if window.count >= self.max_count {
                to_remove.push(index);
                let collected: Vec<Value> = if collect {
                    let csid = window.collection_start_id;
                    let collected = txn.get_from_collection(csid, csid + self.max_count, prefix)?;
                    let (delete_start, step) = match self.step {
                        None => (Some(0), self.max_count),
                        Some(step) => (None, step),
                    };
                    txn.delete_from_collection(csid + step, prefix, delete_start)?;
                    collected
                } else {
                    Vec::new()
                };
                out.expired.push((
                    key.clone(),
                    self.aggs
                        .results(&window.aggregations, &collected, window.start, window.end),
                ));
            }
        }
        // As quixstreams: removes by index, in order.
        for i in to_remove {
            if i < data.windows.len() {
                data.windows.remove(i);
            }
        }
        txn.base_mut().set(STATE_KEY, &data, prefix)?;
        Ok(out)
    }
}

impl CountWindow {
    fn new_window(&self, timestamp: i64, collection_start_id: i64) -> CountWindowData {
        CountWindowData {
            count: 0,
            start: timestamp,
            end: timestamp,
            aggregations: self.aggs.init(),
            collection_start_id,
        }
    }
}
