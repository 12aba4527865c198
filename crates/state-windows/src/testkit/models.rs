//! Naive models of the window kinds: each written from the kind's
//! definition (which records belong to which window, when a record is
//! late, when a window closes), holding every record in memory, with no
//! store, index or cursor. The operators must emit exactly what they say.

use std::collections::{BTreeMap, BTreeSet};

/// A closed window as the models and the operators under test report it:
/// key, start, end and the values in it (count and sum follow).
pub type Closed = (u8, i64, i64, Vec<i64>);

/// What one record did in a model: the windows it closed, and whether it
/// came too late for at least one of its windows.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Windows closed by the record, any order.
    pub closed: Vec<Closed>,
    /// True if the record was late for some window.
    pub late: bool,
}

/// A model of one window kind.
pub trait Model {
    /// One record.
    fn record(&mut self, key: u8, ts: i64, value: i64) -> Outcome;

    /// The newest event time of `key` (for generated in-order records).
    fn newest(&self, key: u8) -> Option<i64>;

    /// The time before which a record of `key` is late for its newest
    /// window (for generated late records), if known.
    fn late_bound(&self, key: u8) -> Option<i64>;

    /// The open windows of `key` with what they hold so far (`None`: the
    /// model does not say).
    fn open(&self, key: u8) -> Option<Vec<Closed>>;
}

/// Values of `key` with `start <= ts < end`, in (ts, arrival) order.
fn values_in(values: &[(i64, i64)], start: i64, end: i64) -> Vec<i64> {
    let mut v: Vec<(i64, usize, i64)> = values
        .iter()
        .enumerate()
        .filter(|(_, (ts, _))| (start..end).contains(ts))
        .map(|(i, (ts, v))| (*ts, i, *v))
        .collect();
    v.sort();
    v.into_iter().map(|(_, _, v)| v).collect()
}

/// The windows `[s, s + size)` holding `ts` (`s` a multiple of `step`,
/// `s >= 0`).
fn fixed_windows(ts: i64, size: i64, step: i64) -> Vec<(i64, i64)> {
    (0..=ts / step)
        .map(|k| k * step)
        .filter(|s| *s <= ts && ts < s + size)
        .map(|s| (s, s + size))
        .collect()
}

/// Tumbling and hopping windows. Closing by key: a record is late for its
/// windows ending at or before `newest of the key - grace`, and such
/// windows close at the key's records. Closing by partition: windows
/// close once their end is at or before the partition's closing bound, the
/// step-aligned `max over records (t - grace)` (kept as quixstreams keeps
/// it: only advanced by whole steps once set, and reset below 0 while
/// timestamps are below the grace); a record is late for windows ending at
/// or before the bound.
#[derive(Debug)]
pub struct FixedModel {
    size: i64,
    step: i64,
    grace: i64,
    by_partition: bool,
    newest: BTreeMap<u8, i64>,
    /// Partition closing: quixstreams' recorded end `L`.
    last_end: i64,
    open: BTreeSet<(u8, i64, i64)>,
    values: BTreeMap<u8, Vec<(i64, i64)>>,
}

impl FixedModel {
    /// Windows of `size`, one every `step`, closed per key or per partition.
    pub fn new(size: i64, step: i64, grace: i64, by_partition: bool) -> Self {
        FixedModel {
            size,
            step,
            grace,
            by_partition,
            newest: BTreeMap::new(),
            last_end: 0,
            open: BTreeSet::new(),
            values: BTreeMap::new(),
        }
    }

    fn close(&mut self, due: impl Fn(&(u8, i64, i64)) -> bool) -> Vec<Closed> {
        let closing: Vec<(u8, i64, i64)> = self.open.iter().filter(|w| due(w)).copied().collect();
        closing
            .into_iter()
            .map(|w| {
                self.open.remove(&w);
                (w.0, w.1, w.2, values_in(&self.values[&w.0], w.1, w.2))
            })
            .collect()
    }
}

impl Model for FixedModel {
    fn record(&mut self, key: u8, ts: i64, value: i64) -> Outcome {
        let newest = self.newest.get(&key).copied().unwrap_or(0).max(ts);
        self.newest.insert(key, newest);
        let late_bound = if self.by_partition {
            self.last_end
        } else {
            newest - self.grace
        };
        let mut late = false;
        for (s, e) in fixed_windows(ts, self.size, self.step) {
            if e <= late_bound {
                late = true;
            } else {
                self.open.insert((key, s, e));
            }
        }
        self.values.entry(key).or_default().push((ts, value));
        let closed = if self.by_partition {
            let max_end = ts.max(self.last_end) - self.grace;
            if self.last_end != 0 {
                if self.last_end + self.step <= max_end {
                    self.last_end += (max_end - self.last_end) / self.step * self.step;
                }
            } else {
                self.last_end = max_end - max_end.rem_euclid(self.step);
            }
            let bound = self.last_end;
            self.close(|w| w.2 <= bound)
        } else {
            let bound = newest - self.grace;
            self.close(|w| w.0 == key && w.2 <= bound)
        };
        Outcome { closed, late }
    }

    fn newest(&self, key: u8) -> Option<i64> {
        self.newest.get(&key).copied()
    }

    fn late_bound(&self, key: u8) -> Option<i64> {
        if self.by_partition {
            (self.last_end > 0).then_some(self.last_end)
        } else {
            self.newest(key).map(|n| n - self.grace)
        }
    }

    fn open(&self, key: u8) -> Option<Vec<Closed>> {
        Some(
            self.open
                .iter()
                .filter(|w| w.0 == key)
                .map(|w| (key, w.1, w.2, values_in(&self.values[&key], w.1, w.2)))
                .collect(),
        )
    }
}

/// Sliding windows, for records in time order per key (plus records late
/// enough to be dropped): every record at `t` has the window
/// `[max(0, t - size), t]` holding every record of the key in it; it
/// closes once `end <= newest - grace - 1`. A record at or before
/// `newest - grace - 1 - size` is dropped.
#[derive(Debug)]
pub struct SlidingModel {
    size: i64,
    grace: i64,
    newest: BTreeMap<u8, i64>,
    values: BTreeMap<u8, Vec<(i64, i64)>>,
    emitted: BTreeMap<u8, BTreeSet<i64>>,
}

impl SlidingModel {
    /// Windows of `size`.
    pub fn new(size: i64, grace: i64) -> Self {
        SlidingModel {
            size,
            grace,
            newest: BTreeMap::new(),
            values: BTreeMap::new(),
            emitted: BTreeMap::new(),
        }
    }
}

impl Model for SlidingModel {
    fn record(&mut self, key: u8, ts: i64, value: i64) -> Outcome {
        let newest = self.newest.get(&key).copied().unwrap_or(0).max(ts);
        let max_start = newest - self.grace - 1 - self.size;
        if ts <= max_start {
            return Outcome {
                closed: Vec::new(),
                late: true,
            };
        }
        self.newest.insert(key, newest);
        let values = self.values.entry(key).or_default();
        values.push((ts, value));
        let emitted = self.emitted.entry(key).or_default();
        let ends: BTreeSet<i64> = values.iter().map(|(t, _)| *t).collect();
        let mut closed = Vec::new();
        for end in ends {
            let start = (end - self.size).max(0);
            if start <= max_start && emitted.insert(end) {
                closed.push((key, start, end, values_in(values, start, end + 1)));
            }
        }
        Outcome { closed, late: false }
    }

    fn newest(&self, key: u8) -> Option<i64> {
        self.newest.get(&key).copied()
    }

    fn late_bound(&self, key: u8) -> Option<i64> {
        self.newest(key).map(|n| n - self.grace - 1 - self.size)
    }

    fn open(&self, _: u8) -> Option<Vec<Closed>> {
        None
    }
}

/// Session windows: per key, accepted records at most `gap` apart form a
/// session `[first, last + 1)`; a record before `watermark - gap - grace`
/// is dropped; a session closes once `end <= watermark - 2 gap - grace`.
/// The watermark is the key's newest time, or (closing by partition) the
/// partition's, where every key's due sessions close together.
#[derive(Debug)]
pub struct SessionModel {
    gap: i64,
    grace: i64,
    by_partition: bool,
    partition_watermark: i64,
    newest: BTreeMap<u8, i64>,
    /// Accepted records of sessions not closed yet: (ts, arrival, value).
    open: BTreeMap<u8, Vec<(i64, usize, i64)>>,
    arrivals: usize,
}

impl SessionModel {
    /// Sessions with inactivity gap `gap`.
    pub fn new(gap: i64, grace: i64, by_partition: bool) -> Self {
        SessionModel {
            gap,
            grace,
            by_partition,
            partition_watermark: 0,
            newest: BTreeMap::new(),
            open: BTreeMap::new(),
            arrivals: 0,
        }
    }

    fn sessions(&self, key: u8) -> Vec<Vec<(i64, usize, i64)>> {
        let mut records = self.open.get(&key).cloned().unwrap_or_default();
        records.sort();
        let mut out: Vec<Vec<(i64, usize, i64)>> = Vec::new();
        for r in records {
            match out.last_mut() {
                Some(s) if r.0 - s.last().map_or(r.0, |l| l.0) <= self.gap => s.push(r),
                _ => out.push(vec![r]),
            }
        }
        out
    }

    fn close(&mut self, key: u8, close_before: i64) -> Vec<Closed> {
        let mut out = Vec::new();
        for s in self.sessions(key) {
            let (start, end) = (s[0].0, s[s.len() - 1].0 + 1);
            if end <= close_before {
                out.push((key, start, end, s.iter().map(|r| r.2).collect()));
                if let Some(open) = self.open.get_mut(&key) {
                    open.retain(|r| !s.contains(r));
                }
            }
        }
        out
    }
}

impl Model for SessionModel {
    fn record(&mut self, key: u8, ts: i64, value: i64) -> Outcome {
        let key_newest = self.newest.get(&key).copied().unwrap_or(0);
        let watermark = if self.by_partition {
            self.partition_watermark = self.partition_watermark.max(ts.max(key_newest));
            self.partition_watermark
        } else {
            ts.max(key_newest)
        };
        let late_before = watermark - self.gap - self.grace;
        if ts < late_before {
            return Outcome {
                closed: Vec::new(),
                late: true,
            };
        }
        self.newest.insert(key, key_newest.max(ts));
        self.arrivals += 1;
        self.open.entry(key).or_default().push((ts, self.arrivals, value));
        let close_before = late_before - self.gap;
        let closed = if self.by_partition {
            let keys: Vec<u8> = self.open.keys().copied().collect();
            keys.into_iter().flat_map(|k| self.close(k, close_before)).collect()
        } else {
            self.close(key, close_before)
        };
        Outcome { closed, late: false }
    }

    fn newest(&self, key: u8) -> Option<i64> {
        self.newest.get(&key).copied()
    }

    fn late_bound(&self, key: u8) -> Option<i64> {
        let watermark = if self.by_partition {
            self.partition_watermark
        } else {
            self.newest(key)?
        };
        Some(watermark - self.gap - self.grace)
    }

    fn open(&self, key: u8) -> Option<Vec<Closed>> {
        Some(
            self.sessions(key)
                .into_iter()
                .map(|s| (key, s[0].0, s[s.len() - 1].0 + 1, s.iter().map(|r| r.2).collect()))
                .collect(),
        )
    }
}

/// An open count window: records, min and max time, values.
type CountWindow = (usize, i64, i64, Vec<i64>);

/// Count windows: a window opens with a key's first record and, hopping,
/// whenever the oldest open window has a multiple of `step` records; it
/// closes with its `count`-th record, holding exactly its records.
#[derive(Debug)]
pub struct CountModel {
    count: usize,
    step: Option<usize>,
    /// Per key: (records, min ts, max ts, values).
    windows: BTreeMap<u8, Vec<CountWindow>>,
    newest: BTreeMap<u8, i64>,
}

impl CountModel {
    /// Windows of `count` records, one every `step` (`None`: tumbling).
    pub fn new(count: usize, step: Option<usize>) -> Self {
        CountModel {
            count,
            step,
            windows: BTreeMap::new(),
            newest: BTreeMap::new(),
        }
    }
}

impl Model for CountModel {
    fn record(&mut self, key: u8, ts: i64, value: i64) -> Outcome {
        let n = self.newest.entry(key).or_insert(ts);
        *n = (*n).max(ts);
        let ws = self.windows.entry(key).or_default();
        let open = match (ws.first(), self.step) {
            (None, _) => true,
            (Some(first), Some(step)) => first.0 % step == 0,
            (Some(_), None) => false,
        };
        if open {
            ws.push((0, ts, ts, Vec::new()));
        }
        let mut closed = Vec::new();
        for w in ws.iter_mut() {
            w.0 += 1;
            w.1 = w.1.min(ts);
            w.2 = w.2.max(ts);
            w.3.push(value);
            if w.0 >= self.count {
                closed.push((key, w.1, w.2, w.3.clone()));
            }
        }
        ws.retain(|w| w.0 < self.count);
        Outcome { closed, late: false }
    }

    fn newest(&self, key: u8) -> Option<i64> {
        self.newest.get(&key).copied()
    }

    fn late_bound(&self, _: u8) -> Option<i64> {
        None
    }

    fn open(&self, key: u8) -> Option<Vec<Closed>> {
        Some(
            self.windows
                .get(&key)
                .into_iter()
                .flatten()
                .map(|w| (key, w.1, w.2, w.3.clone()))
                .collect(),
        )
    }
}
