//! Count windows: quixstreams 3.28.1's `CountWindow`
//! (`dataframe/windows/count_based.py`): tumbling (`step` = `count`),
//! hopping and sliding (`step` 1) windows of a number of records.
//!
//! No time indexes: one document per key, `prefix | "metadata"` in
//! `default`, holds the key's open windows
//! (`{"windows":[{"count":3,"start":95,"end":106,"aggregations":..,"collection_start_id":4}]}`).
//! A window closes when it holds `count` records, whatever their times; its
//! bounds are the smallest and largest event time in it. Collected values
//! are stored under per-key sequence ids.

use serde::{Deserialize, Serialize};
use state_core::StorePartition;
use state_txn::WindowedTransaction;

use super::{Cx, Kind};
use crate::error::Result;
use crate::layout::{Aggregation, Sealed};
use crate::result::WindowResult;

/// The key of the per-key document (JSON-encoded as a key: `"metadata"`).
const STATE_KEY: &str = "metadata";

/// Count windows of `count` records, a new one every `step` records
/// (`None`: tumbling).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountKind {
    pub(crate) count: i64,
    pub(crate) step: Option<i64>,
}

impl Sealed for CountKind {}

/// The per-key document, as read.
#[derive(Deserialize)]
struct StoredDoc<S> {
    windows: Vec<StoredWindow<S>>,
}

#[derive(Deserialize)]
struct StoredWindow<S> {
    count: i64,
    start: i64,
    end: i64,
    aggregations: Option<S>,
    collection_start_id: i64,
}

/// The per-key document, as written (quixstreams' field order).
#[derive(Serialize)]
struct DocOut<W> {
    windows: Vec<W>,
}

#[derive(Serialize)]
struct WindowOut<A> {
    count: i64,
    start: i64,
    end: i64,
    aggregations: A,
    collection_start_id: i64,
}

/// One open count window.
struct Open<S> {
    count: i64,
    start: i64,
    end: i64,
    state: S,
    collection_start_id: i64,
}

impl<V: ?Sized, G: Aggregation<V>> Kind<V, G> for CountKind {
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
        let agg = cx.agg;
        let (aggregates, collects) = (agg.aggregates(), agg.collects());
        let stored: Option<StoredDoc<G::Stored>> = agg.decoding(|| txn.base().get(STATE_KEY, key))?;
        let mut windows: Vec<Open<G::State>> = stored
            .map(|d| d.windows)
            .unwrap_or_default()
            .into_iter()
            .map(|w| Open {
                count: w.count,
                start: w.start,
                end: w.end,
                state: cx.state(w.aggregations),
                collection_start_id: w.collection_start_id,
            })
            .collect();
        let open = |collection_start_id| Open {
            count: 0,
            start: timestamp,
            end: timestamp,
            state: agg.init(),
            collection_start_id,
        };
        // -1: no collection id yet.
        let mut collection_start_id = -1;
        match (windows.first(), self.step) {
            (None, _) => {
                collection_start_id = 0;
                windows.push(open(0));
            }
            (Some(first), Some(step)) if first.count % step == 0 => {
                if collects {
                    collection_start_id = first.collection_start_id + first.count;
                }
                windows.push(open(collection_start_id));
            }
            _ => {}
        }
        if collects {
            if collection_start_id == -1 {
                collection_start_id = windows[0].collection_start_id + windows[0].count;
            }
            txn.add_to_collection(Some(collection_start_id), &agg.item(value), key)?;
        }
        let only_window = windows.len() == 1;
        let mut full = Vec::new();
        for (i, w) in windows.iter_mut().enumerate() {
            w.count += 1;
            if timestamp < w.start {
                w.start = timestamp;
            } else if timestamp > w.end {
                w.end = timestamp;
            }
            if aggregates {
                agg.add(&mut w.state, value, timestamp);
                if !cx.on_close() {
                    out.push(cx.updated(key, w.start, w.end, &w.state));
                }
            }
            if w.count >= self.count {
                full.push(i);
                let collected = if collects {
                    let csid = w.collection_start_id;
                    let collected = agg.decoding(|| txn.get_from_collection(csid, csid + self.count, key))?;
                    // Tumbling windows (and a hopping window with no other
                    // open: the next restarts at id 0) delete from 0;
                    // quixstreams deletes a hopping window's values from
                    // the last deleted id, which leaves the restarted
                    // window's stale id 0 behind when step >= count (B7).
                    // Only the first `step` values go: the rest belong to
                    // later windows.
                    let (delete_from, step) = match self.step {
                        None => (Some(0), self.count),
                        Some(step) => (only_window.then_some(0), step),
                    };
                    txn.delete_from_collection(csid + step, key, delete_from)?;
                    collected
                } else {
                    Vec::new()
                };
                if cx.on_close() {
                    out.push(WindowResult {
                        key: key.to_vec(),
                        start: w.start,
                        end: w.end,
                        value: agg.output(&w.state, collected),
                    });
                }
            }
        }
        // As quixstreams: by index, in order (at most one window is full).
        for i in full {
            if i < windows.len() {
                windows.remove(i);
            }
        }
        let doc = DocOut {
            windows: windows
                .iter()
                .map(|w| WindowOut {
                    count: w.count,
                    start: w.start,
                    end: w.end,
                    aggregations: agg.stored(&w.state),
                    collection_start_id: w.collection_start_id,
                })
                .collect(),
        };
        txn.base_mut().set(STATE_KEY, &doc, key)?;
        Ok(())
    }

    #[allow(private_interfaces)]
    fn open_windows<P: StorePartition + ?Sized>(
        &self,
        cx: &Cx<'_, V, G>,
        txn: &WindowedTransaction<P>,
        key: &[u8],
    ) -> state_txn::Result<Vec<WindowResult<G::Output>>> {
        let agg = cx.agg;
        let stored: Option<StoredDoc<G::Stored>> = agg.decoding(|| txn.base().get(STATE_KEY, key))?;
        let mut out = Vec::new();
        for w in stored.map(|d| d.windows).unwrap_or_default() {
            let csid = w.collection_start_id;
            let collected = if agg.collects() {
                agg.decoding(|| txn.get_from_collection(csid, csid + w.count, key))?
            } else {
                Vec::new()
            };
            out.push(cx.result(key.to_vec(), w.start, w.end, w.aggregations, collected));
        }
        Ok(out)
    }
}
