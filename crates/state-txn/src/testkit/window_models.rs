//! Each quixstreams window type of [`super::windows`], run on the backend
//! under test against a naive in-memory model written from the window's
//! definition (no store, no indexes), with random events, commits and — on
//! durable backends — reopens of the partition. Every closed window must be
//! emitted exactly once, with the model's aggregates and collected values.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use state_core::testkit::Harness;
use state_core::{Codec, StorePartition};

use super::window_index::windowed_txn;
use super::windows::{
    Aggregations, Aggregator, Closing, CountWindow, FixedWindow, MessageKey, Processed, SessionWindow, SlidingWindow,
    WindowKind,
};
use crate::error::Result;
use crate::WindowedTransaction;

/// One step of a generated run.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// A message of key `key` at `ts` with value `value`.
    Event { key: u8, ts: i64, value: i64 },
    /// A message at `delta` after the key's newest timestamp (in-order runs).
    After { key: u8, delta: i64, value: i64 },
    /// A message `back` ms before the key's lateness bound (dropped).
    Late { key: u8, back: i64, value: i64 },
    /// Commit the transaction and start a new one.
    Commit,
    /// Commit, close the partition and open it again (durable backends).
    Reopen,
}

fn key_of(k: u8, typed: bool) -> MessageKey {
    if typed {
        MessageKey::Typed(format!("k{k}"))
    } else {
        MessageKey::Bytes(vec![b'a' + k])
    }
}

/// Count + sum + collect, the aggregations every model checks.
fn aggs() -> Aggregations {
    Aggregations::multi(&[("count", Aggregator::Count), ("sum", Aggregator::Sum)], Some("items"))
}

fn result(start: i64, end: i64, values: &[i64]) -> Value {
    json!({
        "start": start,
        "end": end,
        "count": values.len(),
        "sum": values.iter().sum::<i64>(),
        "items": values,
    })
}

/// A model: the windows closed by one message, in any order.
trait Model {
    fn event(&mut self, key: u8, ts: i64, value: i64) -> Vec<(u8, Value)>;
    /// The timestamp an `After`/`Late` step resolves to (`None`: skip it).
    fn resolve(&self, step: &Step) -> Option<(u8, i64, i64)> {
        match *step {
            Step::Event { key, ts, value } => Some((key, ts, value)),
            _ => None,
        }
    }
}

type Process = dyn Fn(&mut WindowedTransaction, &MessageKey, &Value, i64) -> Result<Processed>;

fn sorted(mut v: Vec<(MessageKey, Value)>) -> Vec<(MessageKey, String)> {
    let mut out: Vec<(MessageKey, String)> = v.drain(..).map(|(k, v)| (k, v.to_string())).collect();
    out.sort();
    out
}

fn drive<H: Harness>(
    h: &mut H,
    what: &str,
    strategy: impl Strategy<Value = Vec<Step>>,
    typed_keys: bool,
    process: &Process,
    new_model: &dyn Fn() -> Box<dyn Model>,
) {
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });
    let durable = h.durable();
    let store = std::cell::RefCell::new(h.open());
    // Partition numbers are never reused in a process: a durable store
    // keeps the partitions of earlier runs.
    static NEXT_PARTITION: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1000);
    let emitted = std::cell::Cell::new(0usize);
    runner
        .run(&strategy, |steps| {
            let n = NEXT_PARTITION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let codec = if n.is_multiple_of(2) {
                Codec::Json
            } else {
                Codec::MsgPack
            };
            let mut p: Arc<dyn StorePartition> = store.borrow_mut().assign_partition(n).expect("assign");
            let mut t = windowed_txn(&p, codec, None);
            let mut model = new_model();
            for step in &steps {
                match step {
                    Step::Commit | Step::Reopen => {
                        t.prepare(None).expect("prepare");
                        t.flush(None).expect("flush");
                        if matches!(step, Step::Reopen) && durable {
                            drop(t);
                            drop(p);
                            store.borrow_mut().revoke_partition(n).expect("revoke");
                            p = store.borrow_mut().assign_partition(n).expect("reassign");
                        }
                        t = windowed_txn(&p, codec, None);
                    }
                    _ => {
                        let Some((key, ts, value)) = model.resolve(step) else {
                            continue;
                        };
                        let mk = key_of(key, typed_keys);
                        let got = process(&mut t, &mk, &json!(value), ts).expect("process");
                        emitted.set(emitted.get() + got.expired.len());
                        let want: Vec<(MessageKey, Value)> = model
                            .event(key, ts, value)
                            .into_iter()
                            .map(|(k, v)| (key_of(k, typed_keys), v))
                            .collect();
                        prop_assert_eq!(
                            sorted(got.expired),
                            sorted(want),
                            "{} at key {} ts {} (steps {:?})",
                            what,
                            key,
                            ts,
                            steps
                        );
                    }
                }
            }
            drop(t);
            drop(p);
            store.borrow_mut().revoke_partition(n).expect("revoke");
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{what} disagrees with its model: {e}"));
    assert!(emitted.get() > 0, "{what}: the generated runs closed no window at all");
}

fn events(max_ts: i64) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            8 => (0u8..3, 0..max_ts, 1i64..6).prop_map(|(key, ts, value)| Step::Event { key, ts, value }),
            1 => Just(Step::Commit),
            1 => Just(Step::Reopen),
        ],
        1..50,
    )
}

// ---- tumbling and hopping -------------------------------------------------

/// quixstreams' fixed windows by definition: per key, the watermark is the
/// newest timestamp; a message lands in each of its windows that does not
/// start at or before `watermark - grace - duration`; a window closes once
/// its start is at or before that bound, with every value whose timestamp
/// falls in it (late ones too).
struct FixedKeyModel {
    duration: i64,
    step: i64,
    grace: i64,
    watermark: BTreeMap<u8, i64>,
    windows: BTreeMap<(u8, i64, i64), Vec<i64>>,
    values: BTreeMap<u8, Vec<(i64, i64)>>,
}

fn ranges(ts: i64, duration: i64, step: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut s = ts - ts.rem_euclid(step);
    while s > ts - duration && s >= 0 {
        out.push((s, s + duration));
        s -= step;
    }
    out.reverse();
    out
}

fn collected(values: &[(i64, i64)], start: i64, end: i64) -> Vec<i64> {
    // Collection order is (timestamp, arrival).
    let mut v: Vec<(i64, usize, i64)> = values
        .iter()
        .enumerate()
        .filter(|(_, (ts, _))| (start..end).contains(ts))
        .map(|(i, (ts, v))| (*ts, i, *v))
        .collect();
    v.sort();
    v.into_iter().map(|(_, _, v)| v).collect()
}

impl Model for FixedKeyModel {
    fn event(&mut self, key: u8, ts: i64, value: i64) -> Vec<(u8, Value)> {
        let wm = self.watermark.entry(key).or_insert(0);
        *wm = (*wm).max(ts);
        let max_start = *wm - self.grace - self.duration;
        for (s, e) in ranges(ts, self.duration, self.step) {
            if s > max_start {
                self.windows.entry((key, s, e)).or_default().push(value);
            }
        }
        let vals = self.values.entry(key).or_default();
        vals.push((ts, value));
        let closed: Vec<(u8, i64, i64)> = self
            .windows
            .keys()
            .filter(|(k, s, _)| *k == key && *s <= max_start)
            .copied()
            .collect();
        closed
            .into_iter()
            .map(|w| {
                let agg = self.windows.remove(&w).unwrap_or_default();
                let mut r = result(w.1, w.2, &agg);
                r["items"] = json!(collected(vals, w.1, w.2));
                (key, r)
            })
            .collect()
    }
}

/// Fixed windows closed by partition: quixstreams keeps one partition-wide
/// value L, the end of the last expired window, takes `max(ts, L)` as the
/// watermark, and on each message closes either every window ending at or
/// before the step-aligned `watermark - grace` (L unset/0) or exactly those
/// ending at `L + step`, `L + 2 step`, ... up to it.
struct FixedPartitionModel {
    inner: FixedKeyModel,
    last: i64,
}

impl Model for FixedPartitionModel {
    fn event(&mut self, key: u8, ts: i64, value: i64) -> Vec<(u8, Value)> {
        let m = &mut self.inner;
        let latest = ts.max(self.last);
        let max_end = latest - m.grace;
        let max_start = max_end - m.duration;
        for (s, e) in ranges(ts, m.duration, m.step) {
            if s > max_start {
                m.windows.entry((key, s, e)).or_default().push(value);
            }
        }
        m.values.entry(key).or_default().push((ts, value));
        let hit: Box<dyn Fn(i64) -> bool> = if self.last != 0 {
            let mut ends = Vec::new();
            let mut next = self.last + m.step;
            while next <= max_end {
                ends.push(next);
                next += m.step;
            }
            let Some(&l) = ends.last() else { return Vec::new() };
            self.last = l;
            Box::new(move |e| ends.contains(&e))
        } else {
            let l = max_end - max_end.rem_euclid(m.step);
            self.last = l;
            Box::new(move |e| e <= l)
        };
        let closed: Vec<(u8, i64, i64)> = m.windows.keys().filter(|(_, _, e)| hit(*e)).copied().collect();
        closed
            .into_iter()
            .map(|w| {
                let agg = m.windows.remove(&w).unwrap_or_default();
                let mut r = result(w.1, w.2, &agg);
                r["items"] = json!(collected(&m.values[&w.0], w.1, w.2));
                (w.0, r)
            })
            .collect()
    }
}

fn fixed_key_model(duration: i64, step: i64, grace: i64) -> FixedKeyModel {
    FixedKeyModel {
        duration,
        step,
        grace,
        watermark: BTreeMap::new(),
        windows: BTreeMap::new(),
        values: BTreeMap::new(),
    }
}

/// Tumbling windows (duration 10, grace 5, closed by key).
pub fn tumbling_windows_match_a_naive_model<H: Harness>(h: &mut H) {
    let w = FixedWindow {
        duration: 10,
        step: None,
        grace: 5,
        closing: Closing::Key,
        aggs: aggs(),
    };
    drive(
        h,
        "tumbling windows",
        events(120),
        false,
        &move |t, k, v, ts| w.process(t, k, v, ts),
        &|| Box::new(fixed_key_model(10, 10, 5)),
    );
}

/// Hopping windows (duration 10, step 5, grace 3, closed by key).
pub fn hopping_windows_match_a_naive_model<H: Harness>(h: &mut H) {
    let w = FixedWindow {
        duration: 10,
        step: Some(5),
        grace: 3,
        closing: Closing::Key,
        aggs: aggs(),
    };
    drive(
        h,
        "hopping windows",
        events(120),
        false,
        &move |t, k, v, ts| w.process(t, k, v, ts),
        &|| Box::new(fixed_key_model(10, 5, 3)),
    );
}

/// Tumbling and hopping windows closed by partition, with typed keys (the
/// closed windows of other keys come back through `key_from_prefix`).
pub fn fixed_windows_by_partition_match_a_naive_model<H: Harness>(h: &mut H) {
    for (step, grace) in [(None, 0), (Some(5), 4)] {
        let w = FixedWindow {
            duration: 10,
            step,
            grace,
            closing: Closing::Partition,
            aggs: aggs(),
        };
        drive(
            h,
            "fixed windows by partition",
            events(150),
            true,
            &move |t, k, v, ts| w.process(t, k, v, ts),
            &move || {
                Box::new(FixedPartitionModel {
                    inner: fixed_key_model(10, step.unwrap_or(10), grace),
                    last: 0,
                })
            },
        );
    }
}

// ---- sliding ----------------------------------------------------------------

/// Sliding windows by definition, for messages in timestamp order per key
/// (plus messages late enough to be dropped): every message at `t` has the
/// window `[max(0, t - duration), t]` holding every message in it; it closes
/// once its start is at or before `newest - grace - 1 - duration`.
struct SlidingModel {
    duration: i64,
    grace: i64,
    newest: BTreeMap<u8, i64>,
    values: BTreeMap<u8, Vec<(i64, i64)>>,
    emitted: BTreeMap<u8, std::collections::BTreeSet<i64>>,
}

impl SlidingModel {
    fn bound(&self, key: u8) -> Option<i64> {
        self.newest.get(&key).map(|n| n - self.grace - 1 - self.duration)
    }
}

impl Model for SlidingModel {
    fn resolve(&self, step: &Step) -> Option<(u8, i64, i64)> {
        match *step {
            // A message at 0 would make the empty window [0, 0], which
            // quixstreams (and we) refuse: timestamps start at 1.
            Step::After { key, delta, value } => {
                Some((key, self.newest.get(&key).map_or(delta + 1, |n| n + delta), value))
            }
            Step::Late { key, back, value } => {
                let ts = self.bound(key)? - back;
                (ts >= 1).then_some((key, ts, value))
            }
            _ => None,
        }
    }

    fn event(&mut self, key: u8, ts: i64, value: i64) -> Vec<(u8, Value)> {
        let newest = self.newest.get(&key).copied().unwrap_or(0).max(ts);
        let max_start = newest - self.grace - 1 - self.duration;
        if ts <= max_start {
            return Vec::new();
        }
        self.newest.insert(key, newest);
        let vals = self.values.entry(key).or_default();
        vals.push((ts, value));
        let emitted = self.emitted.entry(key).or_default();
        let mut ends: Vec<i64> = vals.iter().map(|(t, _)| *t).collect();
        ends.sort();
        ends.dedup();
        let mut out = Vec::new();
        for end in ends {
            let start = (end - self.duration).max(0);
            if start <= max_start && emitted.insert(end) {
                let inside = collected(vals, start, end + 1);
                out.push((key, result(start, end, &inside)));
            }
        }
        out
    }
}

/// Sliding windows (duration 10, grace 3), messages in order per key.
pub fn sliding_windows_match_a_naive_model<H: Harness>(h: &mut H) {
    let w = SlidingWindow {
        duration: 10,
        grace: 3,
        aggs: aggs(),
    };
    let steps = proptest::collection::vec(
        prop_oneof![
            8 => (0u8..2, 0i64..8, 1i64..6).prop_map(|(key, delta, value)| Step::After { key, delta, value }),
            1 => (0u8..2, 0i64..5, 1i64..6).prop_map(|(key, back, value)| Step::Late { key, back, value }),
            1 => Just(Step::Commit),
            1 => Just(Step::Reopen),
        ],
        1..50,
    );
    drive(
        h,
        "sliding windows",
        steps,
        false,
        &move |t, k, v, ts| w.process(t, k, v, ts),
        &|| {
            Box::new(SlidingModel {
                duration: 10,
                grace: 3,
                newest: BTreeMap::new(),
                values: BTreeMap::new(),
                emitted: BTreeMap::new(),
            })
        },
    );
}

// ---- count ------------------------------------------------------------------

type CountState = (usize, i64, i64, Vec<i64>);

/// Count windows by definition: a window opens with a key's first message
/// and, hopping, every `step` messages after the oldest open window's
/// start; it closes with its `max_count`-th message, holding exactly its
/// messages.
struct CountModel {
    max_count: usize,
    step: Option<usize>,
    /// Per key: (messages, first timestamp, last timestamp, values).
    windows: BTreeMap<u8, Vec<CountState>>,
}

impl Model for CountModel {
    fn event(&mut self, key: u8, ts: i64, value: i64) -> Vec<(u8, Value)> {
        let ws = self.windows.entry(key).or_default();
        let open = match (ws.first(), self.step) {
            (None, _) => true,
            (Some(first), Some(step)) => first.0 % step == 0,
            (Some(_), None) => false,
        };
        if open {
            ws.push((0, ts, ts, Vec::new()));
        }
        let mut out = Vec::new();
        for w in ws.iter_mut() {
            w.0 += 1;
            w.1 = w.1.min(ts);
            w.2 = w.2.max(ts);
            w.3.push(value);
            if w.0 >= self.max_count {
                out.push((key, result(w.1, w.2, &w.3)));
            }
        }
        ws.retain(|w| w.0 < self.max_count);
        out
    }
}

/// Tumbling (3 messages) and hopping (4 messages every 2) count windows.
pub fn count_windows_match_a_naive_model<H: Harness>(h: &mut H) {
    for (max_count, step) in [(3usize, None), (4, Some(2usize))] {
        let w = CountWindow {
            max_count: max_count as i64,
            step: step.map(|s| s as i64),
            aggs: aggs(),
        };
        drive(
            h,
            "count windows",
            events(100),
            false,
            &move |t, k, v, ts| w.process(t, k, v, ts),
            &move || {
                Box::new(CountModel {
                    max_count,
                    step,
                    windows: BTreeMap::new(),
                })
            },
        );
    }
}

// ---- session ----------------------------------------------------------------

/// Session windows by definition: per key, accepted messages at most `gap`
/// apart form a session `[first, last + 1)`; a message is dropped when it is
/// before `watermark - gap - grace`; a session closes once its end is at or
/// before `watermark - 2 gap - grace`. The watermark is the key's newest
/// timestamp, or (closing by partition) the partition's, where every key's
/// due sessions close together.
struct SessionModel {
    gap: i64,
    grace: i64,
    closing: Closing,
    partition_watermark: i64,
    newest: BTreeMap<u8, i64>,
    /// Accepted messages of sessions not closed yet: (ts, arrival, value).
    open: BTreeMap<u8, Vec<(i64, usize, i64)>>,
    arrivals: usize,
}

impl SessionModel {
    fn sessions(&self, key: u8) -> Vec<Vec<(i64, usize, i64)>> {
        let mut events = self.open.get(&key).cloned().unwrap_or_default();
        events.sort();
        let mut out: Vec<Vec<(i64, usize, i64)>> = Vec::new();
        for e in events {
            match out.last_mut() {
                Some(s) if e.0 - s.last().map_or(e.0, |l| l.0) <= self.gap => s.push(e),
                _ => out.push(vec![e]),
            }
        }
        out
    }

    fn close(&mut self, key: u8, close_before: i64) -> Vec<(u8, Value)> {
        let mut out = Vec::new();
        for s in self.sessions(key) {
            let (start, end) = (s[0].0, s[s.len() - 1].0 + 1);
            if end <= close_before {
                let values: Vec<i64> = s.iter().map(|e| e.2).collect();
                out.push((key, result(start, end, &values)));
                if let Some(open) = self.open.get_mut(&key) {
                    open.retain(|e| !s.contains(e));
                }
            }
        }
        out
    }
}

impl Model for SessionModel {
    fn event(&mut self, key: u8, ts: i64, value: i64) -> Vec<(u8, Value)> {
        let key_newest = self.newest.get(&key).copied().unwrap_or(0);
        let watermark = match self.closing {
            Closing::Key => ts.max(key_newest),
            Closing::Partition => {
                self.partition_watermark = self.partition_watermark.max(ts.max(key_newest));
                self.partition_watermark
            }
        };
        let late_before = watermark - self.gap - self.grace;
        if ts < late_before {
            return Vec::new();
        }
        self.newest.insert(key, key_newest.max(ts));
        self.arrivals += 1;
        self.open.entry(key).or_default().push((ts, self.arrivals, value));
        let close_before = late_before - self.gap;
        match self.closing {
            Closing::Key => self.close(key, close_before),
            Closing::Partition => {
                let keys: Vec<u8> = self.open.keys().copied().collect();
                keys.into_iter().flat_map(|k| self.close(k, close_before)).collect()
            }
        }
    }
}

/// Session windows (gap 10, grace 4) closed by key and by partition.
pub fn session_windows_match_a_naive_model<H: Harness>(h: &mut H) {
    for closing in [Closing::Key, Closing::Partition] {
        let w = SessionWindow {
            gap: 10,
            grace: 4,
            closing,
            aggs: aggs(),
        };
        drive(
            h,
            "session windows",
            events(200),
            closing == Closing::Partition,
            &move |t, k, v, ts| w.process(t, k, v, ts),
            &move || {
                Box::new(SessionModel {
                    gap: 10,
                    grace: 4,
                    closing,
                    partition_watermark: 0,
                    newest: BTreeMap::new(),
                    open: BTreeMap::new(),
                    arrivals: 0,
                })
            },
        );
    }
}
