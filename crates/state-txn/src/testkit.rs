//! Conformance cases for windowed, timestamped and per-write-TTL
//! transactions, run by every backend through
//! [`state_core::testkit::Harness`] (the window operators built on them
//! have their own kit, `state_windows::testkit`):
//!
//! ```text
//! state_txn::txn_conformance_tests!(MyHarness::new());
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use state_core::testkit::{contents, Harness};
use state_core::{cf, ChangelogSink, Codec, Direction, RecordingSink, StorePartition, WriteBatch};

use crate::{
    CollectedValues, ExpireOptions, ExpiredWindow, TimestampedConfig, TimestampedTransaction, TxnError, Window,
    WindowedTransaction,
};

mod primitives;
mod ttl_cases;
mod window_index;

pub use primitives::{expire_end_inclusive, expiry_checkpoints, windowed_iteration};
pub use ttl_cases::{
    ttl_reads_sweep_and_save_the_clock, ttl_refresh_budget_and_local_sweep, ttl_refusals,
    ttl_switch_of_a_populated_store, ttl_writes_reads_and_sweep,
};
pub use window_index::{windowed_txn, with_window_index};

type P = Arc<dyn StorePartition>;

fn windowed(p: &P) -> WindowedTransaction {
    windowed_txn(p, Codec::Json, None)
}

fn timestamped(p: &P, config: TimestampedConfig) -> TimestampedTransaction {
    TimestampedTransaction::new(p.clone(), Codec::Json, None, config)
}

/// update / get / delete of windows, latest-timestamp tracking, and the
/// error cases.
pub fn window_basics<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = store.assign_partition(0).expect("assign");
    let mut t = windowed(&p);
    t.update_window(0, 10, &1, 5, b"k").unwrap();
    t.update_window(10, 20, &2, 15, b"k").unwrap();
    t.update_window(10, 20, &3, 12, b"k").unwrap();
    assert_eq!(t.get_window::<i64>(10, 20, b"k").unwrap(), Some(3), "update overwrites");
    assert_eq!(t.get_window::<i64>(10, 20, b"other").unwrap(), None);
    assert_eq!(
        t.get_latest_timestamp(b"k").unwrap(),
        15,
        "latest timestamp only moves forward"
    );
    assert_eq!(t.get_latest_timestamp(b"none").unwrap(), 0);
    t.delete_window(0, 10, b"k").unwrap();
    assert_eq!(t.get_window::<i64>(0, 10, b"k").unwrap(), None);
    assert!(matches!(
        t.get_window::<i64>(10, 10, b"k"),
        Err(TxnError::InvalidWindow { .. })
    ));
    assert!(matches!(
        t.delete_window(5, 1, b"k"),
        Err(TxnError::InvalidWindow { .. })
    ));
    t.commit().unwrap();

    let mut t = windowed(&p);
    assert_eq!(
        t.get_window::<i64>(10, 20, b"k").unwrap(),
        Some(3),
        "committed windows are read back"
    );
    assert_eq!(
        t.get_latest_timestamp(b"k").unwrap(),
        15,
        "latest timestamp is persisted"
    );
    let err = t.update_window(0, 10, &1, -1, b"k").unwrap_err();
    assert!(matches!(err, TxnError::NegativeTimestamp { .. }), "{err}");
    assert_eq!(
        t.status(),
        crate::TxnStatus::Failed,
        "an invalid update fails the transaction"
    );
    let mut t = windowed(&p);
    assert!(matches!(
        t.update_window(20, 10, &1, 1, b"k"),
        Err(TxnError::InvalidWindow { start: 20, end: 10 })
    ));
    let mut t = windowed(&p);
    assert!(matches!(
        t.update_window(-10, 10, &1, 1, b"k"),
        Err(TxnError::NegativeTimestamp { .. })
    ));
}

/// `get_windows`: start_from exclusive, start_to inclusive, both
/// directions, cache and store merged, other prefixes excluded.
pub fn window_ranges<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = store.assign_partition(0).expect("assign");
    let mut t = windowed(&p);
    for s in [0i64, 10, 20, 30] {
        t.update_window(s, s + 10, &s, s, b"k").unwrap();
    }
    t.update_window(10, 20, &99, 10, b"k2").unwrap();
    t.update_window(10, 20, &98, 10, b"k|x").unwrap();
    t.commit().unwrap();

    let mut t = windowed(&p);
    t.update_window(40, 50, &40, 40, b"k").unwrap();
    t.delete_window(20, 30, b"k").unwrap();
    let starts = |ws: Vec<Window<i64>>| ws.into_iter().map(|w| w.start).collect::<Vec<_>>();
    assert_eq!(
        starts(t.get_windows(-1, 100, b"k", Direction::Forward).unwrap()),
        vec![0, 10, 30, 40],
        "cache merged, deletes hidden"
    );
    assert_eq!(
        starts(t.get_windows(0, 30, b"k", Direction::Forward).unwrap()),
        vec![10, 30],
        "exclusive from, inclusive to"
    );
    assert_eq!(
        starts(t.get_windows(0, 30, b"k", Direction::Backward).unwrap()),
        vec![30, 10],
        "backwards"
    );
    assert_eq!(
        starts(t.get_windows(30, 30, b"k", Direction::Forward).unwrap()),
        Vec::<i64>::new()
    );
    let w = t.get_windows::<i64>(5, 15, b"k", Direction::Forward).unwrap();
    assert_eq!(
        w,
        vec![Window {
            start: 10,
            end: 20,
            value: 10
        }]
    );
    assert_eq!(
        starts(t.get_windows(-1, 100, b"k2", Direction::Forward).unwrap()),
        vec![10]
    );
    assert_eq!(
        starts(t.get_windows(-1, 100, b"k|x", Direction::Forward).unwrap()),
        vec![10]
    );
}

/// `expire_windows` emits each window once, across transactions and (for
/// durable backends) across a reopen, and deletes them when asked.
pub fn expiry_emits_each_window_once<H: Harness>(h: &mut H) {
    {
        let mut store = h.open();
        let p = store.assign_partition(0).expect("assign");
        let mut t = windowed(&p);
        for s in [0i64, 10, 20] {
            t.update_window(s, s + 10, &s, s + 1, b"k").unwrap();
        }
        let first: Vec<ExpiredWindow<i64, ()>> = t.expire_windows(10, b"k", ExpireOptions::keep()).unwrap();
        assert_eq!(first.iter().map(|w| w.start).collect::<Vec<_>>(), vec![0, 10]);
        assert_eq!(first[0].prefix, b"k");
        let again: Vec<ExpiredWindow<i64, ()>> = t.expire_windows(10, b"k", ExpireOptions::keep()).unwrap();
        assert!(again.is_empty(), "no window is emitted twice in one transaction");
        assert_eq!(t.get_latest_expired(b"k").unwrap(), 10);
        t.prepare(None).unwrap();
        t.flush(Some(1)).unwrap();

        let mut t = windowed(&p);
        let next: Vec<ExpiredWindow<i64, ()>> = t.expire_windows(20, b"k", ExpireOptions::delete()).unwrap();
        assert_eq!(
            next.iter().map(|w| (w.start, w.value)).collect::<Vec<_>>(),
            vec![(20, 20)],
            "only the new window"
        );
        assert_eq!(t.get_window::<i64>(20, 30, b"k").unwrap(), None, "deleted on expiry");
        assert_eq!(
            t.get_window::<i64>(0, 10, b"k").unwrap(),
            Some(0),
            "expired without delete stays"
        );
        t.prepare(None).unwrap();
        t.flush(Some(2)).unwrap();
        drop(p);
        store.revoke_partition(0).unwrap();
    }
    if h.durable() {
        let mut store = h.open();
        let p = store.assign_partition(0).expect("assign");
        let mut t = windowed(&p);
        let after: Vec<ExpiredWindow<i64, ()>> = t.expire_windows(1000, b"k", ExpireOptions::delete()).unwrap();
        assert!(after.is_empty(), "nothing is emitted again after a reopen");
        t.update_window(30, 40, &30, 31, b"k").unwrap();
        let newer: Vec<ExpiredWindow<i64, ()>> = t.expire_windows(1000, b"k", ExpireOptions::delete()).unwrap();
        assert_eq!(newer.len(), 1);
    }
}

/// Collections: values come back in (id, counter) order, collected into
/// expiring windows, and are deleted with them.
pub fn collections<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = store.assign_partition(0).expect("assign");
    let mut t = windowed(&p);
    let c0 = t.add_to_collection(Some(5), &"a", b"k").unwrap();
    let c1 = t.add_to_collection(Some(3), &"b", b"k").unwrap();
    let c2 = t.add_to_collection(Some(5), &"c", b"k").unwrap();
    t.add_to_collection(Some(12), &"late", b"k").unwrap();
    t.add_to_collection(Some(4), &"other", b"k2").unwrap();
    assert_eq!((c0, c1, c2), (0, 1, 2), "the counter orders entries");
    assert_eq!(
        t.get_from_collection::<String>(0, 10, b"k").unwrap(),
        vec!["b", "a", "c"],
        "by id then counter"
    );
    t.update_window(0, 10, &(), 9, b"k").unwrap();
    t.update_window(10, 20, &(), 12, b"k").unwrap();
    t.commit().unwrap();

    let mut t = windowed(&p);
    let n = t.add_to_collection(None, &"auto", b"k3").unwrap();
    assert_eq!(n, 5, "the counter is persisted across transactions");
    let expired: Vec<ExpiredWindow<(), String>> =
        t.expire_windows(0, b"k", ExpireOptions::delete().collecting()).unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].collected, vec!["b", "a", "c"]);
    assert_eq!(t.get_window::<()>(0, 10, b"k").unwrap(), None);
    t.commit().unwrap();
    // Values with id < the expired window's start (0) are deleted by expiry; the
    // window's own values go when a later window expires or by delete_windows.
    let mut t = windowed(&p);
    t.delete_windows(10, CollectedValues::Delete, b"k").unwrap();
    assert_eq!(
        t.get_from_collection::<String>(0, 100, b"k").unwrap(),
        vec!["late"],
        "ids < 10 deleted"
    );
    assert_eq!(
        t.get_window::<()>(10, 20, b"k").unwrap(),
        None,
        "windows up to start 10 deleted"
    );
    assert_eq!(
        t.get_from_collection::<String>(0, 100, b"k2").unwrap(),
        vec!["other"],
        "other prefixes untouched"
    );
    t.delete_from_collection(100, b"k", None).unwrap();
    assert!(t.get_from_collection::<String>(0, 100, b"k").unwrap().is_empty());
    t.commit().unwrap();
}

/// `expire_all_windows` over every prefix, by step.
pub fn expire_all_windows_by_step<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = store.assign_partition(0).expect("assign");
    let mut t = windowed(&p);
    for prefix in [&b"a"[..], b"b"] {
        for s in [0i64, 10, 20, 30] {
            t.update_window(s, s + 10, &s, s, prefix).unwrap();
        }
    }
    let first: Vec<ExpiredWindow<i64, ()>> = t.expire_all_windows(25, 10, ExpireOptions::delete()).unwrap();
    let mut got: Vec<_> = first.iter().map(|w| (w.prefix.clone(), w.end)).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (b"a".to_vec(), 10),
            (b"a".to_vec(), 20),
            (b"b".to_vec(), 10),
            (b"b".to_vec(), 20)
        ]
    );
    t.commit().unwrap();
    let mut t = windowed(&p);
    let second: Vec<ExpiredWindow<i64, ()>> = t.expire_all_windows(35, 10, ExpireOptions::delete()).unwrap();
    assert_eq!(
        second.iter().map(|w| w.end).collect::<Vec<_>>(),
        vec![30, 30],
        "only the next step"
    );
    let none: Vec<ExpiredWindow<i64, ()>> = t.expire_all_windows(39, 10, ExpireOptions::delete()).unwrap();
    assert!(none.is_empty());
    assert!(
        t.expire_all_windows::<i64, ()>(40, 0, ExpireOptions::delete()).is_err(),
        "a zero step is refused"
    );
}

/// `get_latest`: newest at or before the time, cache against store, deletes
/// in the cache hide stored values.
pub fn timestamped_latest<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = store.assign_partition(0).expect("assign");
    let cfg = TimestampedConfig {
        grace_ms: 1000,
        keep_duplicates: false,
    };
    let mut t = timestamped(&p, cfg);
    t.set_for_timestamp(10, &"s10", b"k").unwrap();
    t.set_for_timestamp(30, &"s30", b"k").unwrap();
    t.commit().unwrap();

    let mut t = timestamped(&p, cfg);
    assert_eq!(t.get_latest::<String>(29, b"k").unwrap().as_deref(), Some("s10"));
    assert_eq!(
        t.get_latest::<String>(30, b"k").unwrap().as_deref(),
        Some("s30"),
        "at the time counts"
    );
    assert_eq!(t.get_latest::<String>(9, b"k").unwrap(), None);
    t.set_for_timestamp(20, &"c20", b"k").unwrap();
    assert_eq!(
        t.get_latest::<String>(25, b"k").unwrap().as_deref(),
        Some("c20"),
        "a newer cached value wins"
    );
    assert_eq!(
        t.get_latest::<String>(35, b"k").unwrap().as_deref(),
        Some("s30"),
        "a newer stored value wins"
    );
    assert_eq!(t.delete_interval(30, 31, b"k").unwrap(), 1);
    assert_eq!(
        t.get_latest::<String>(35, b"k").unwrap().as_deref(),
        Some("c20"),
        "a cached delete hides the store"
    );
    assert_eq!(t.get_interval::<String>(0, 100, b"k").unwrap(), vec!["s10", "c20"]);
    assert_eq!(
        t.get_interval::<String>(10, 20, b"k").unwrap(),
        vec!["s10"],
        "end exclusive"
    );
    assert!(t.get_latest::<String>(35, b"k2").unwrap().is_none());
    t.commit().unwrap();
    let mut t = timestamped(&p, cfg);
    assert_eq!(t.get_latest::<String>(100, b"k").unwrap().as_deref(), Some("c20"));
    assert!(matches!(
        t.set_for_timestamp(-1, &"x", b"k"),
        Err(TxnError::NegativeTimestamp { .. })
    ));
}

/// Grace expiry deletes old entries of the prefixes written, from the cache
/// and the store, and never touches prefixes that share leading bytes.
pub fn timestamped_grace_expiry<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = store.assign_partition(0).expect("assign");
    let cfg = TimestampedConfig {
        grace_ms: 10,
        keep_duplicates: false,
    };
    let mut t = timestamped(&p, cfg);
    t.set_for_timestamp(1, &1, b"key").unwrap();
    t.set_for_timestamp(5, &5, b"key").unwrap();
    t.set_for_timestamp(1, &1, b"key2").unwrap();
    t.set_for_timestamp(2, &2, b"key|x").unwrap();
    t.commit().unwrap();

    let mut t = timestamped(&p, cfg);
    t.set_for_timestamp(13, &13, b"key").unwrap(); // min eligible for "key" -> 3
    assert_eq!(t.min_eligible_timestamp(b"key").unwrap(), 3);
    assert_eq!(
        t.get_latest::<i64>(2, b"key").unwrap(),
        None,
        "below the minimum eligible time"
    );
    t.set_for_timestamp(2, &2, b"key").unwrap(); // late, already expired on prepare
    t.commit().unwrap();

    let t = timestamped(&p, cfg);
    assert_eq!(
        t.get_interval::<i64>(0, 100, b"key").unwrap(),
        vec![5, 13],
        "1 and 2 expired (store and cache)"
    );
    assert_eq!(
        t.get_interval::<i64>(0, 100, b"key2").unwrap(),
        vec![1],
        "key2 shares bytes but keeps its entries"
    );
    assert_eq!(
        t.get_interval::<i64>(0, 100, b"key|x").unwrap(),
        vec![2],
        "key|x keeps its entries"
    );
    assert_eq!(
        t.min_eligible_timestamp(b"key").unwrap(),
        3,
        "min eligible time is persisted"
    );
    assert_eq!(
        p.get(cf::MIN_ELIGIBLE_TIMESTAMPS, b"key|__min_eligible_timestamps__")
            .unwrap(),
        Some(3u64.to_be_bytes().to_vec()),
        "stored as u64 BE"
    );
}

/// Equal timestamps are kept apart and ordered when duplicates are kept,
/// and overwrite each other otherwise.
pub fn timestamped_duplicates<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = store.assign_partition(0).expect("assign");
    let dup = TimestampedConfig {
        grace_ms: 1000,
        keep_duplicates: true,
    };
    let mut t = timestamped(&p, dup);
    t.set_for_timestamp(7, &"a", b"k").unwrap();
    t.set_for_timestamp(7, &"b", b"k").unwrap();
    t.commit().unwrap();
    let mut t = timestamped(&p, dup);
    t.set_for_timestamp(7, &"c", b"k").unwrap();
    assert_eq!(
        t.get_interval::<String>(7, 8, b"k").unwrap(),
        vec!["a", "b", "c"],
        "kept in order"
    );
    assert_eq!(
        t.get_latest::<String>(7, b"k").unwrap().as_deref(),
        Some("c"),
        "the newest duplicate is latest"
    );
    t.commit().unwrap();
    assert_eq!(
        p.get(cf::GLOBAL_COUNTER, b"|__global_counter__").unwrap().as_deref(),
        Some(&b"2"[..]),
        "counter persisted"
    );

    let plain = TimestampedConfig {
        grace_ms: 1000,
        keep_duplicates: false,
    };
    let mut t = timestamped(&p, plain);
    t.set_for_timestamp(9, &"x", b"j").unwrap();
    t.set_for_timestamp(9, &"y", b"j").unwrap();
    assert_eq!(
        t.get_interval::<String>(0, 100, b"j").unwrap(),
        vec!["y"],
        "without duplicates the last write wins"
    );
}

/// Windowed changes recorded from the changelog and replayed into an empty
/// partition give identical state in every column family.
pub fn changelog_replay_rebuilds_every_column_family<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let source = store.assign_partition(0).expect("assign");
    let target = store.assign_partition(1).expect("assign");
    let sink = Arc::new(RecordingSink::new());
    let dyn_sink: Arc<dyn ChangelogSink> = sink.clone();
    for round in 0..3i64 {
        let mut t = crate::testkit::windowed_txn(&source, Codec::Json, Some(dyn_sink.clone()));
        for k in [&b"a"[..], b"b"] {
            let s = round * 10;
            t.update_window(s, s + 10, &(round + 1), s + 5, k).unwrap();
            t.add_to_collection(Some(s), &format!("v{round}"), k).unwrap();
        }
        let _: Vec<ExpiredWindow<i64, String>> = t
            .expire_windows(round * 10 - 10, b"a", ExpireOptions::delete().collecting())
            .unwrap();
        t.delete_windows(round * 10 - 20, CollectedValues::Delete, b"b")
            .unwrap();
        t.prepare(None).unwrap();
        t.flush(Some(round as u64)).unwrap();
        let mut ts = TimestampedTransaction::new(
            source.clone(),
            Codec::Json,
            Some(dyn_sink.clone()),
            TimestampedConfig {
                grace_ms: 5,
                keep_duplicates: true,
            },
        );
        ts.set_for_timestamp(round * 7, &round, b"t").unwrap();
        ts.prepare(None).unwrap();
        ts.flush(None).unwrap();
    }
    let records = sink.records();
    assert!(
        records.iter().all(|r| r.cf != cf::METADATA),
        "metadata is never emitted"
    );
    let mut batch = WriteBatch::new();
    for r in &records {
        batch.push(&r.cf, &r.key, r.value.as_deref());
    }
    target.write(&batch).unwrap();
    assert_eq!(
        contents(&*target),
        contents(&*source),
        "replayed state equals the original in every cf"
    );
    assert!(
        contents(&*source).len() >= 5,
        "the scenario touches the windowed column families"
    );
}

#[derive(Clone, Debug)]
enum WindowOp {
    Update { key: u8, start: u8, ts: u8 },
    Expire { key: u8, max_start: u8, delete: bool },
    Commit,
}

fn window_op() -> impl Strategy<Value = WindowOp> {
    prop_oneof![
        5 => (0u8..3, 0u8..20, 0u8..40).prop_map(|(key, start, ts)| WindowOp::Update { key, start, ts }),
        2 => (0u8..3, 0u8..25, any::<bool>()).prop_map(|(key, max_start, delete)| WindowOp::Expire { key, max_start, delete }),
        1 => Just(WindowOp::Commit),
    ]
}

/// The naive model: windows per key, and the last expired start per key.
#[derive(Clone, Default, Debug)]
struct Model {
    windows: BTreeMap<(u8, i64), i64>,
    last_expired: BTreeMap<u8, i64>,
}

impl Model {
    fn expire(&mut self, key: u8, max_start: i64, delete: bool) -> Vec<(i64, i64)> {
        let from = self.last_expired.get(&key).copied();
        let hits: Vec<(i64, i64)> = self
            .windows
            .iter()
            .filter(|((k, s), _)| *k == key && *s <= max_start && from.is_none_or(|f| *s > f))
            .map(|((_, s), v)| (*s, *v))
            .collect();
        if let Some(&(last, _)) = hits.last() {
            self.last_expired.insert(key, last);
        }
        if delete {
            for (s, _) in &hits {
                self.windows.remove(&(key, *s));
            }
        }
        hits
    }
}

/// Random window updates, expiries and commits agree with a naive model
/// (a `BTreeMap` of windows and a last-expired marker per key).
pub fn windows_match_a_naive_model<H: Harness>(h: &mut H) {
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let store = std::cell::RefCell::new(h.open());
    let partition_no = std::cell::Cell::new(100u32);
    runner
        .run(&proptest::collection::vec(window_op(), 1..60), |ops| {
            partition_no.set(partition_no.get() + 1);
            let p = store.borrow_mut().assign_partition(partition_no.get()).expect("assign");
            let mut model = Model::default();
            let mut t = crate::testkit::windowed_txn(&p, Codec::MsgPack, None);
            for op in ops {
                match op {
                    WindowOp::Update { key, start, ts } => {
                        let start = i64::from(start) * 10;
                        let value = i64::from(ts);
                        t.update_window(start, start + 10, &value, i64::from(ts), &[key])
                            .unwrap();
                        model.windows.insert((key, start), value);
                    }
                    WindowOp::Expire { key, max_start, delete } => {
                        let max_start = i64::from(max_start) * 10;
                        let got: Vec<ExpiredWindow<i64, ()>> = t
                            .expire_windows(
                                max_start,
                                &[key],
                                ExpireOptions {
                                    delete,
                                    ..ExpireOptions::keep()
                                },
                            )
                            .unwrap();
                        let got: Vec<(i64, i64)> = got.into_iter().map(|w| (w.start, w.value)).collect();
                        prop_assert_eq!(got, model.expire(key, max_start, delete));
                    }
                    WindowOp::Commit => {
                        t.prepare(None).unwrap();
                        t.flush(None).unwrap();
                        t = crate::testkit::windowed_txn(&p, Codec::MsgPack, None);
                    }
                }
            }
            for key in 0u8..3 {
                let got: Vec<(i64, i64)> = t
                    .get_windows::<i64>(-1, 1000, &[key], Direction::Forward)
                    .unwrap()
                    .into_iter()
                    .map(|w| (w.start, w.value))
                    .collect();
                let want: Vec<(i64, i64)> = model
                    .windows
                    .iter()
                    .filter(|((k, _), _)| *k == key)
                    .map(|((_, s), v)| (*s, *v))
                    .collect();
                prop_assert_eq!(got, want);
            }
            drop(t);
            drop(p);
            store.borrow_mut().revoke_partition(partition_no.get()).expect("revoke");
            Ok(())
        })
        .unwrap_or_else(|e| panic!("windowed transactions disagree with the model: {e}"));
}

/// A named conformance case.
pub type Case<H> = (&'static str, fn(&mut H));

// Every case, by name.
crate::__txn_case_list!(txn_conformance_tests { @cases_fn });

/// The kit's cases, the only list of them: `[indexed]` ones run a second
/// time with every windowed transaction sharing its partition's
/// `WindowIndex` ([`with_window_index`]). Passes the list to
/// `$crate::$callback!`, after `$args`.
#[doc(hidden)]
#[macro_export]
macro_rules! __txn_case_list {
    ($callback:ident { $($args:tt)* }) => {
        $crate::$callback! { $($args)*;
            [indexed] window_basics,
            [indexed] window_ranges,
            [indexed] expiry_emits_each_window_once,
            [indexed] collections,
            [indexed] expire_all_windows_by_step,
            [] timestamped_latest,
            [] timestamped_grace_expiry,
            [] timestamped_duplicates,
            [indexed] changelog_replay_rebuilds_every_column_family,
            [indexed] windows_match_a_naive_model,
            [indexed] windowed_iteration,
            [indexed] expiry_checkpoints,
            [indexed] expire_end_inclusive,
            [] ttl_writes_reads_and_sweep,
            [] ttl_reads_sweep_and_save_the_clock,
            [] ttl_refresh_budget_and_local_sweep,
            [] ttl_switch_of_a_populated_store,
            [] ttl_refusals,
        }
    };
}

/// Expands to one `#[test]` per windowed/timestamped case, and one more per
/// windowed case with every transaction sharing its partition's
/// `WindowIndex` (module `with_window_index`); each test makes a fresh
/// harness with `$make`.
#[macro_export]
macro_rules! txn_conformance_tests {
    ($make:expr) => {
        mod txn_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__txn_case_list!(txn_conformance_tests { @tests $make });
        }
    };
    (@tests $make:expr; $([$($indexed:ident)?] $case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                let mut h = $make;
                $crate::testkit::$case(&mut h);
            }
        )*

        /// The windowed cases again, every transaction sharing its
        /// partition's `WindowIndex`.
        mod with_window_index {
            #[allow(unused_imports)]
            use super::*;
            $($crate::txn_conformance_tests!(@indexed $make; $($indexed)? $case);)*
        }
    };
    (@indexed $make:expr; indexed $case:ident) => {
        #[test]
        fn $case() {
            let mut h = $make;
            $crate::testkit::with_window_index(|| $crate::testkit::$case(&mut h));
        }
    };
    (@indexed $make:expr; $case:ident) => {};
    (@cases_fn; $([$($indexed:ident)?] $case:ident,)*) => {
        /// Every case, by name.
        pub fn cases<H: Harness>() -> Vec<Case<H>> {
            vec![$((stringify!($case), $case::<H> as fn(&mut H))),*]
        }
    };
}
