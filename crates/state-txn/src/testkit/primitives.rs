//! Conformance cases for the windowed primitives quixstreams 3.28.1 added
//! for session windows, and for `expire_windows`' `end_inclusive`.

use std::sync::Arc;

use state_core::testkit::Harness;
use state_core::{cf, ChangelogSink, Codec, Direction, RecordingSink};

use super::window_index::windowed_txn;
use crate::{ExpireOptions, ExpiredWindow, TxnStatus, Window, WindowedTransaction, CHECKPOINT_NEVER};

fn starts(ws: Vec<Window<i64>>) -> Vec<(i64, i64)> {
    ws.into_iter().map(|w| (w.start, w.value)).collect()
}

/// `windows_cursor` / `iter_windows`: inclusive bounds, both directions,
/// this transaction's changes merged, deletes while walking, longer
/// prefixes excluded; `iter_prefixes` and `keys`.
pub fn windowed_iteration<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = store.assign_partition(0).expect("assign");
    let mut t = windowed_txn(&p, Codec::Json, None);
    for s in [0i64, 10, 20] {
        t.update_window(s, s + 10, &s, s, b"k").unwrap();
    }
    t.update_window(3, 4, &9, 3, b"k|x").unwrap();
    t.update_window(0, 5, &7, 4, b"k2").unwrap();
    let all: Vec<Window<i64>> = t
        .iter_windows(b"k", 0, None, Direction::Forward)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        starts(all),
        vec![(0, 0), (10, 10), (20, 20)],
        "start 0 is included; k|x is not"
    );
    t.commit().unwrap();

    let mut t = windowed_txn(&p, Codec::Json, None);
    let get = |t: &WindowedTransaction, from, to, d| -> Vec<(i64, i64)> {
        starts(
            t.iter_windows(b"k", from, to, d)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap(),
        )
    };
    assert_eq!(
        get(&t, 10, Some(10), Direction::Forward),
        vec![(10, 10)],
        "both bounds inclusive"
    );
    assert_eq!(get(&t, 5, None, Direction::Backward), vec![(20, 20), (10, 10)]);
    assert_eq!(get(&t, 21, Some(19), Direction::Forward), vec![], "an empty range");
    assert_eq!(
        get(&t, -5, Some(0), Direction::Forward),
        vec![(0, 0)],
        "a negative start counts as 0"
    );
    t.update_window(30, 40, &30, 35, b"k").unwrap();
    t.update_window(10, 20, &11, 15, b"k").unwrap();
    assert_eq!(
        get(&t, 0, None, Direction::Forward),
        vec![(0, 0), (10, 11), (20, 20), (30, 30)],
        "changes shadow and extend the store"
    );
    // Delete while walking: every window with an even start / 10.
    let mut cursor = t.windows_cursor(b"k", 0, None, Direction::Forward).unwrap();
    let mut seen = Vec::new();
    while let Some(w) = cursor.next::<i64, _>(&t).unwrap() {
        seen.push(w.start);
        if w.start == 0 {
            // Deleting a window not yet reached skips it.
            t.delete_window(20, 30, b"k").unwrap();
        }
        if w.start == 10 {
            t.delete_window(10, 20, b"k").unwrap();
        }
    }
    assert_eq!(seen, vec![0, 10, 30], "a window deleted ahead of the cursor is skipped");
    assert_eq!(get(&t, 0, None, Direction::Forward), vec![(0, 0), (30, 30)]);

    // iter_prefixes: stored prefixes in first-appearance order merged with
    // this transaction's (sorted); `k` comes twice because `k2|...` sorts
    // before `k|...` in the store while `k` < `k2` among prefixes.
    assert_eq!(
        t.iter_prefixes().unwrap(),
        vec![b"k".to_vec(), b"k2".to_vec(), b"k".to_vec(), b"k|x".to_vec()]
    );
    let keys = t.keys(cf::DEFAULT).unwrap();
    assert_eq!(
        keys.len(),
        4,
        "changed keys first, then stored ones not changed or deleted: {keys:?}"
    );
    assert_eq!(&keys[0][..2], b"k|");
    assert!(t.keys(cf::DEFAULT).unwrap().iter().all(|k| k.len() >= 17));
    assert_eq!(t.key_from_prefix::<String>(b"\"str\"").unwrap(), "str");

    // Many windows: the cursor reads the store in growing chunks; the walk
    // equals the merged view in both directions.
    let mut t = windowed_txn(&p, Codec::Json, None);
    for s in 0..300i64 {
        t.update_window(s * 10, s * 10 + 5, &s, s, b"many").unwrap();
    }
    t.commit().unwrap();
    let mut t = windowed_txn(&p, Codec::Json, None);
    for s in (0..300i64).step_by(7) {
        t.update_window(s * 10, s * 10 + 5, &-s, s, b"many").unwrap();
    }
    for s in (0..300i64).step_by(11) {
        t.delete_window(s * 10, s * 10 + 5, b"many").unwrap();
    }
    t.update_window(3001, 3002, &7, 1, b"many").unwrap();
    for direction in [Direction::Forward, Direction::Backward] {
        let mut want: Vec<(i64, i64)> = starts(t.get_windows(-1, 100_000, b"many", Direction::Forward).unwrap());
        if direction == Direction::Backward {
            want.reverse();
        }
        let got: Vec<Window<i64>> = t
            .iter_windows(b"many", 0, None, direction)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(starts(got), want, "{direction:?}");
    }
    let got: Vec<Window<i64>> = t
        .iter_windows(b"many", 995, Some(2000), Direction::Backward)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got.first().map(|w| w.start), Some(2000));
    assert_eq!(got.last().map(|w| w.start), Some(1000));
}

/// Expiry checkpoints: unset is not 0, `-1` and [`CHECKPOINT_NEVER`]
/// (`2^64 - 1`) are stored with quixstreams' bytes, and every stored value
/// above `i64::MAX` reads as `CHECKPOINT_NEVER`; the partition watermark
/// only moves forward and is written only when it does.
pub fn expiry_checkpoints<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = store.assign_partition(0).expect("assign");
    let sink = Arc::new(RecordingSink::new());
    let dyn_sink: Arc<dyn ChangelogSink> = sink.clone();
    let mut t = windowed_txn(&p, Codec::Json, Some(dyn_sink.clone()));
    assert_eq!(t.get_expiry_checkpoint(b"k").unwrap(), None);
    assert_eq!(t.get_latest_expired(b"k").unwrap(), 0);
    t.set_expiry_checkpoint(0, b"k").unwrap();
    assert_eq!(t.get_expiry_checkpoint(b"k").unwrap(), Some(0), "0 is not unset");
    t.set_expiry_checkpoint(-1, b"k2").unwrap();
    t.set_expiry_checkpoint(CHECKPOINT_NEVER, b"").unwrap();
    assert_eq!(t.get_partition_timestamp().unwrap(), 0);
    assert_eq!(t.advance_partition_timestamp(50).unwrap(), 50);
    assert_eq!(t.advance_partition_timestamp(20).unwrap(), 50, "never backwards");
    t.prepare(None).unwrap();
    t.flush(None).unwrap();
    let records = sink.take();
    let latest: Vec<_> = records.iter().filter(|r| r.cf == cf::LATEST_TIMESTAMPS).collect();
    assert_eq!(latest.len(), 1, "one watermark record");
    assert_eq!(latest[0].value.as_deref(), Some(&b"50"[..]));
    assert_eq!(
        p.get(cf::EXPIRATION_INDEX, b"k2|__expired_start_gt__")
            .unwrap()
            .as_deref(),
        Some(&b"-1"[..])
    );
    assert_eq!(
        p.get(cf::EXPIRATION_INDEX, b"__expired_start_gt__").unwrap().as_deref(),
        Some(&b"18446744073709551615"[..])
    );

    let mut t = windowed_txn(&p, Codec::Json, Some(dyn_sink));
    assert_eq!(t.get_expiry_checkpoint(b"k").unwrap(), Some(0));
    assert_eq!(t.get_expiry_checkpoint(b"k2").unwrap(), Some(-1));
    assert_eq!(t.get_latest_expired(b"k2").unwrap(), -1);
    assert_eq!(t.get_expiry_checkpoint(b"").unwrap(), Some(CHECKPOINT_NEVER));
    assert_eq!(t.get_partition_timestamp().unwrap(), 50);
    assert_eq!(t.advance_partition_timestamp(50).unwrap(), 50);
    t.prepare(None).unwrap();
    assert!(sink.take().is_empty(), "a watermark that did not move writes nothing");

    // Written by another tool: 2^63 is above i64::MAX, 2^64 above any slot.
    let mut t = windowed_txn(&p, Codec::Json, None);
    for (prefix, stored) in [
        (&b"k3"[..], &b"9223372036854775808"[..]),
        (b"k4", b"18446744073709551616"),
    ] {
        let mut key = prefix.to_vec();
        key.extend_from_slice(b"|__expired_start_gt__");
        t.base_mut()
            .set_raw(cf::EXPIRATION_INDEX, key, stored.to_vec())
            .unwrap();
    }
    t.commit().unwrap();
    let t = windowed_txn(&p, Codec::Json, None);
    assert_eq!(t.get_expiry_checkpoint(b"k3").unwrap(), Some(CHECKPOINT_NEVER));
    assert!(t.get_expiry_checkpoint(b"k4").is_err(), "outside what a slot holds");
    assert_eq!(
        t.status(),
        TxnStatus::Started,
        "a read error does not fail the transaction"
    );

    // A cursor of -1 expires a window starting at 0; a cursor of 0 does not.
    let mut t = windowed_txn(&p, Codec::Json, None);
    t.update_window(0, 10, &1, 5, b"k").unwrap();
    t.update_window(0, 10, &1, 5, b"k2").unwrap();
    let a: Vec<ExpiredWindow<i64, ()>> = t.expire_windows(100, b"k", ExpireOptions::keep()).unwrap();
    let b: Vec<ExpiredWindow<i64, ()>> = t.expire_windows(100, b"k2", ExpireOptions::keep()).unwrap();
    assert!(a.is_empty(), "cursor 0 hides the window at 0");
    assert_eq!(b.len(), 1, "cursor -1 does not");
}

/// `end_inclusive` collects values whose id equals the window end.
pub fn expire_end_inclusive<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = store.assign_partition(0).expect("assign");
    let mut t = windowed_txn(&p, Codec::Json, None);
    t.update_window(10, 20, &1, 20, b"s").unwrap();
    for id in [9i64, 10, 15, 20, 21] {
        t.add_to_collection(Some(id), &id, b"s").unwrap();
    }
    let mut t2 = windowed_txn(&p, Codec::Json, None);
    t2.update_window(10, 20, &1, 20, b"s").unwrap();
    for id in [9i64, 10, 15, 20, 21] {
        t2.add_to_collection(Some(id), &id, b"s").unwrap();
    }
    let incl: Vec<ExpiredWindow<i64, i64>> = t
        .expire_windows(10, b"s", ExpireOptions::keep().collecting().end_inclusive())
        .unwrap();
    assert_eq!(incl[0].collected, vec![10, 15, 20]);
    let excl: Vec<ExpiredWindow<i64, i64>> = t2.expire_windows(10, b"s", ExpireOptions::keep().collecting()).unwrap();
    assert_eq!(excl[0].collected, vec![10, 15]);
}
