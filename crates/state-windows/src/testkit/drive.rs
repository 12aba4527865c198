//! Runs a window operator and its model side by side on generated
//! records, with commits and restarts between any two records.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use state_core::testkit::{replicated_contents, Harness};
use state_core::{ChangelogSink, Codec, MemoryPartition, RecordingSink, StorePartition, WriteBatch};
use state_txn::{WindowIndex, WindowedTransaction};

use super::models::{Closed, Model};
use crate::kinds::Kind;
use crate::layout::Aggregation;
use crate::{WindowOperator, WindowResult};

/// One step of a generated run.
#[derive(Clone, Debug)]
pub enum Step {
    /// A record of key `key` at `ts`.
    Event {
        /// Key index.
        key: u8,
        /// Event time.
        ts: i64,
        /// Value.
        value: i64,
    },
    /// A record `delta` after its key's newest time (in-order runs).
    After {
        /// Key index.
        key: u8,
        /// Distance from the key's newest time.
        delta: i64,
        /// Value.
        value: i64,
    },
    /// A record `back` before its key's lateness bound.
    Late {
        /// Key index.
        key: u8,
        /// Distance below the bound.
        back: i64,
        /// Value.
        value: i64,
    },
    /// Commit the transaction and start a new one.
    Commit,
    /// Commit, close the partition and open it again (from disk on a
    /// durable backend; a fresh transaction and window index otherwise).
    Reopen,
    /// Prepare (the changelog gets the transaction's records), then fail
    /// before the local write, and process the records since the last
    /// commit again in a new transaction: at-least-once's retry of a
    /// checkpoint delivered but never committed. Its records stay in the
    /// changelog, where a full replay applies them once later commits
    /// passed their offsets.
    Retry,
}

impl Step {
    fn resolve(&self, model: &dyn Model) -> Option<(u8, i64, i64)> {
        match *self {
            Step::Event { key, ts, value } => Some((key, ts, value)),
            // Times start at 1: a sliding window cannot take a record at 0.
            Step::After { key, delta, value } => Some((key, model.newest(key).map_or(delta + 1, |n| n + delta), value)),
            Step::Late { key, back, value } => {
                let ts = model.late_bound(key)? - back;
                (ts >= 1).then_some((key, ts, value))
            }
            Step::Commit | Step::Reopen | Step::Retry => None,
        }
    }
}

/// Records of up to 3 keys at random times below `max_ts` (out of order,
/// some late), with commits, restarts and retried checkpoints.
pub fn events(max_ts: i64) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            8 => (0u8..3, 1..max_ts, 1i64..6).prop_map(|(key, ts, value)| Step::Event { key, ts, value }),
            1 => Just(Step::Commit),
            1 => Just(Step::Reopen),
            1 => Just(Step::Retry),
        ],
        1..60,
    )
}

/// Records in time order per key, plus some late enough to be dropped.
pub fn in_order(max_delta: i64) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            8 => (0u8..2, 0..max_delta, 1i64..6).prop_map(|(key, delta, value)| Step::After { key, delta, value }),
            1 => (0u8..2, 0i64..5, 1i64..6).prop_map(|(key, back, value)| Step::Late { key, back, value }),
            1 => Just(Step::Commit),
            1 => Just(Step::Reopen),
            1 => Just(Step::Retry),
        ],
        1..60,
    )
}

/// The key bytes of key index `k`.
pub fn key_of(k: u8) -> [u8; 1] {
    [b'a' + k]
}

fn sorted(mut v: Vec<Closed>) -> Vec<Closed> {
    v.sort();
    v
}

/// A window result as the models report windows, its count and sum
/// checked against its values.
fn closed(w: WindowResult<(u64, i64, Vec<i64>)>) -> Closed {
    let (count, sum, items) = w.value;
    assert_eq!(count as usize, items.len(), "count of {items:?}");
    assert_eq!(sum, items.iter().sum::<i64>(), "sum of {items:?}");
    (w.key[0] - b'a', w.start, w.end, items)
}

/// What processing one record did: the windows it closed, sorted, and
/// whether it was reported late.
type Seen = (Vec<Closed>, bool);

/// Partition numbers are never reused in a process: a durable store keeps
/// the partitions of earlier runs.
static NEXT_PARTITION: AtomicU32 = AtomicU32::new(1000);

fn begin(
    p: &Arc<dyn StorePartition>,
    codec: Codec,
    index: Option<&Arc<WindowIndex>>,
    changelog: &Arc<RecordingSink>,
) -> WindowedTransaction {
    let sink: Arc<dyn ChangelogSink> = changelog.clone();
    match index {
        Some(i) => WindowedTransaction::with_index(p.clone(), codec, Some(sink), i.clone()),
        None => WindowedTransaction::new(p.clone(), codec, Some(sink)),
    }
}

/// Applies the changelog records `changelog` recorded since the last call
/// to `replica`, as a restore does.
fn replay_into(replica: &MemoryPartition, changelog: &RecordingSink) {
    let mut batch = WriteBatch::default();
    for r in changelog.take() {
        batch.push(&r.cf, &r.key, r.value.as_deref());
    }
    replica.write(&batch).expect("replaying into memory");
}

/// Runs `op` against a fresh `model()` for each generated run of `steps`,
/// on partitions of `h`'s store, with and without a window index, under
/// both codecs. Every record must close exactly the windows the model
/// closes (same bounds, count, sum and collected values, in any order)
/// and be reported late exactly when the model says it is; a retried
/// checkpoint's records, processed again, must give the same results.
/// After every commit, the changelog so far replayed into an empty
/// partition (retried checkpoints' records included) must hold what the
/// partition holds (every column family the changelog carries).
pub fn drive<H, K, G>(
    h: &mut H,
    what: &str,
    steps: impl Strategy<Value = Vec<Step>>,
    op: WindowOperator<i64, K, G>,
    model: &dyn Fn() -> Box<dyn Model>,
) where
    H: Harness,
    K: Kind<i64, G>,
    G: Aggregation<i64, Output = (u64, i64, Vec<i64>)>,
{
    let late = Arc::new(AtomicUsize::new(0));
    let seen = late.clone();
    let op = op.on_late(move |_| {
        seen.fetch_add(1, Ordering::Relaxed);
    });
    // One record through the operator.
    let process = |txn: &mut WindowedTransaction, key: u8, ts: i64, value: i64| -> Seen {
        late.store(0, Ordering::Relaxed);
        let got = op.process(txn, &key_of(key), ts, &value).expect("process");
        let closed: Vec<Closed> = sorted(got.into_iter().map(closed).collect());
        (closed, late.load(Ordering::Relaxed) > 0)
    };
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });
    let durable = h.durable();
    let store = RefCell::new(h.open());
    let closed_total = RefCell::new(0usize);
    runner
        .run(&steps, |steps| {
            let n = NEXT_PARTITION.fetch_add(1, Ordering::Relaxed);
            let codec = if n.is_multiple_of(2) {
                Codec::Json
            } else {
                Codec::MsgPack
            };
            let indexed = n % 4 < 2;
            let new_index = || indexed.then(|| Arc::new(WindowIndex::new(2)));
            let mut p: Arc<dyn StorePartition> = store.borrow_mut().assign_partition(n).expect("assign");
            let mut index = new_index();
            let changelog = Arc::new(RecordingSink::new());
            let replica = MemoryPartition::new();
            let mut txn = begin(&p, codec, index.as_ref(), &changelog);
            let mut m = model();
            // The records since the last commit, with what each closed and
            // whether it was late: a retry processes them again.
            let mut uncommitted: Vec<((u8, i64, i64), Seen)> = Vec::new();
            for step in &steps {
                if let Step::Retry = step {
                    txn.prepare(None).expect("prepare");
                    drop(txn);
                    txn = begin(&p, codec, index.as_ref(), &changelog);
                    for ((key, ts, value), first) in &uncommitted {
                        prop_assert_eq!(
                            &process(&mut txn, *key, *ts, *value),
                            first,
                            "{}: a retry of key {} at {} closed other windows or judged its lateness otherwise",
                            what,
                            key,
                            ts
                        );
                    }
                    continue;
                }
                if let Step::Commit | Step::Reopen = step {
                    uncommitted.clear();
                    txn.prepare(None).expect("prepare");
                    txn.flush(None).expect("flush");
                    replay_into(&replica, &changelog);
                    prop_assert!(
                        replicated_contents(&*p) == replicated_contents(&replica),
                        "{}: the changelog replays to another state than the partition's ({:?}, index {})",
                        what,
                        codec,
                        indexed
                    );
                    if let Step::Reopen = step {
                        drop(txn);
                        if durable {
                            drop(p);
                            store.borrow_mut().revoke_partition(n).expect("revoke");
                            p = store.borrow_mut().assign_partition(n).expect("reassign");
                        }
                        index = new_index();
                    }
                    txn = begin(&p, codec, index.as_ref(), &changelog);
                    continue;
                }
                let Some((key, ts, value)) = step.resolve(&*m) else {
                    continue;
                };
                let (got, was_late) = process(&mut txn, key, ts, value);
                let want = m.record(key, ts, value);
                *closed_total.borrow_mut() += got.len();
                uncommitted.push(((key, ts, value), (got.clone(), was_late)));
                prop_assert_eq!(
                    got,
                    sorted(want.closed),
                    "{}: closed windows of key {} at {} ({:?}, index {})",
                    what,
                    key,
                    ts,
                    codec,
                    indexed
                );
                prop_assert_eq!(was_late, want.late, "{}: lateness of key {} at {}", what, key, ts);
                if let Some(open) = m.open(key) {
                    let got: Vec<Closed> = op
                        .open_windows(&txn, &key_of(key))
                        .expect("open windows")
                        .into_iter()
                        .map(closed)
                        .collect();
                    prop_assert_eq!(sorted(got), sorted(open), "{}: open windows of key {}", what, key);
                }
            }
            drop(txn);
            drop(p);
            store.borrow_mut().revoke_partition(n).expect("revoke");
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{what} disagrees with its model: {e}"));
    assert!(
        *closed_total.borrow() > 0,
        "{what}: the generated runs closed no window at all"
    );
}
