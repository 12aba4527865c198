//! Conformance cases for quixstreams 3.28.1's per-write TTL on key-value
//! transactions (any backend).

use std::sync::Arc;
use std::time::Duration;

use state_core::testkit::Harness;
use state_core::ttl::{self, SweepTombstones, TtlOptions, TtlState};
use state_core::{cf, ChangelogSink, Codec, Direction, KeyValue, RecordingSink, StorePartition};

use crate::{GetOptions, PartitionTransaction, SetOptions, TxnError, TxnStatus};

const T0: i64 = 1_700_000_000_000;

fn txn(p: &Arc<dyn StorePartition>, state: &Arc<TtlState>, sink: &Arc<RecordingSink>) -> PartitionTransaction {
    let sink: Arc<dyn ChangelogSink> = sink.clone();
    PartitionTransaction::with_ttl_state(p.clone(), Codec::Json, Some(sink), state.clone())
}

/// A transaction that reads the TTL state from the partition, as a
/// restarted process does.
fn reopened(p: &Arc<dyn StorePartition>, sink: &Arc<RecordingSink>) -> PartitionTransaction {
    let sink: Arc<dyn ChangelogSink> = sink.clone();
    PartitionTransaction::with_ttl(p.clone(), Codec::Json, Some(sink), TtlOptions::default()).expect("load")
}

fn all(p: &dyn StorePartition, cf_name: &str) -> Vec<KeyValue> {
    p.iter_range(cf_name, b"", None, Direction::Forward)
        .expect("iterate")
        .collect::<Result<_, _>>()
        .expect("items")
}

/// The first TTL write switches an empty partition into TTL mode in its own
/// batch; stamped values, index entries, metadata, the `__ttl_stamped__`
/// header and the migration-done marker (produced last) follow
/// quixstreams; reads hide values expired at the high-water (inclusive);
/// the sweep tombstones them.
pub fn ttl_writes_reads_and_sweep<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = store.assign_partition(0).expect("assign");
    let state = Arc::new(TtlState::load(&*p, TtlOptions::default()).expect("load"));
    let sink = Arc::new(RecordingSink::new());
    let mut t = txn(&p, &state, &sink);
    t.set_with("k1", "v", b"p", SetOptions::at(T0).ttl(Duration::from_secs(10)))
        .unwrap();
    t.set_with("k2", &[1, 2], b"p", SetOptions::at(T0)).unwrap();
    t.set_bytes_with(
        b"raw",
        b"\x01\x02",
        b"p",
        SetOptions::at(T0).ttl(Duration::from_millis(1500)),
    )
    .unwrap();
    assert_eq!(
        t.get::<_, String>("k1", b"p").unwrap().as_deref(),
        Some("v"),
        "before the switch, reads see plain values"
    );
    assert!(!state.is_enabled(), "the switch happens at prepare");
    t.prepare(None).unwrap();
    assert!(state.is_enabled());
    t.flush(Some(0)).unwrap();
    let records = sink.take();
    let names: Vec<(&str, bool)> = records.iter().map(|r| (r.cf.as_str(), r.ttl_stamped)).collect();
    assert_eq!(
        names,
        vec![
            ("default", true),
            ("default", true),
            ("default", true),
            (cf::TTL_SYSTEM, false)
        ],
        "default records stamped, the marker last"
    );
    let exp1 = (T0 + 10_000) as u64;
    assert_eq!(
        p.get(cf::DEFAULT, b"p|\"k1\"").unwrap(),
        Some(ttl::stamp_value(exp1, b"\"v\""))
    );
    assert_eq!(
        p.get(cf::DEFAULT, b"p|\"k2\"").unwrap(),
        Some(ttl::stamp_value(ttl::NEVER, b"[1,2]"))
    );
    assert_eq!(
        all(&*p, cf::TTL_INDEX).len(),
        2,
        "no index entry for never-expiring values"
    );
    assert_eq!(
        p.get(cf::METADATA, cf::TTL_ENABLED_KEY).unwrap().as_deref(),
        Some(&b"\x01"[..])
    );
    assert_eq!(
        p.get(cf::METADATA, cf::TTL_HIGH_WATER_KEY).unwrap(),
        Some((T0 as u64).to_be_bytes().to_vec())
    );

    let mut t = txn(&p, &state, &sink);
    assert_eq!(
        t.get_bytes_with(b"raw", b"p", GetOptions::at(T0 + 1_499))
            .unwrap()
            .as_deref(),
        Some(&b"\x01\x02"[..]),
        "get_bytes strips the stamp"
    );
    assert_eq!(
        t.get_bytes_with(b"raw", b"p", GetOptions::at(T0 + 1_500)).unwrap(),
        None,
        "expiry is inclusive"
    );
    assert!(!t.exists_bytes(b"raw", b"p").unwrap());
    assert!(t.exists("k1", b"p").unwrap(), "the high-water is T0 + 1.5 s");
    assert_eq!(
        t.get_with::<_, Vec<i64>>("k2", b"p", GetOptions::at(T0 + 99_999_999))
            .unwrap(),
        Some(vec![1, 2])
    );
    assert!(!t.exists("k1", b"p").unwrap(), "the high-water moved past k1");
    assert_eq!(
        t.get_raw(cf::DEFAULT, b"p|\"k1\"").unwrap(),
        Some(ttl::stamp_value(exp1, b"\"v\"")),
        "raw access keeps the stamp"
    );
    // Any write lets prepare sweep: both expired keys get tombstones.
    t.set("tick", &1, b"sys").unwrap();
    t.prepare(None).unwrap();
    t.flush(Some(1)).unwrap();
    let tombstones: Vec<Vec<u8>> = sink
        .take()
        .into_iter()
        .filter(|r| r.value.is_none())
        .inspect(|r| assert!(r.ttl_stamped, "sweep tombstones carry the header"))
        .map(|r| r.key)
        .collect();
    assert_eq!(tombstones, vec![b"p|\"k1\"".to_vec(), b"p|raw".to_vec()]);
    assert!(p.get(cf::DEFAULT, b"p|raw").unwrap().is_none());
    assert!(all(&*p, cf::TTL_INDEX).is_empty());
}

/// Reads keep the event-time clock as writes do: a transaction that only
/// read at a later event time sweeps what expired (tombstones on the
/// changelog) and saves the clock, so after a restart a read without a
/// timestamp does not return a value that already read as expired.
pub fn ttl_reads_sweep_and_save_the_clock<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = store.assign_partition(0).expect("assign");
    let sink = Arc::new(RecordingSink::new());
    let mut t = reopened(&p, &sink);
    t.key(b"u")
        .set_with("session", &7, SetOptions::at(T0).ttl(Duration::from_secs(10)))
        .unwrap();
    t.key(b"u").set_with("name", "alice", SetOptions::at(T0)).unwrap();
    t.commit().unwrap();
    sink.take();

    // A read-only transaction at T0 + 20 s: the session has expired.
    let mut t = reopened(&p, &sink);
    let later = GetOptions::at(T0 + 20_000);
    assert_eq!(t.key_ref(b"u").get_with::<i64>("session", later).unwrap(), None);
    assert!(!t.is_changed(), "a read changes nothing");
    t.prepare(None).unwrap();
    t.flush(Some(3)).unwrap();
    let tombstones: Vec<Vec<u8>> = sink
        .take()
        .into_iter()
        .filter(|r| r.value.is_none())
        .map(|r| r.key)
        .collect();
    assert_eq!(tombstones, vec![b"u|\"session\"".to_vec()], "the read's sweep");
    assert_eq!(
        p.get(cf::METADATA, cf::TTL_HIGH_WATER_KEY).unwrap(),
        Some(((T0 + 20_000) as u64).to_be_bytes().to_vec()),
        "the clock is saved"
    );

    // Restarted: a read without a timestamp judges by the saved clock.
    let t = reopened(&p, &sink);
    assert_eq!(t.key_ref(b"u").get::<i64>("session").unwrap(), None);
    assert_eq!(t.key_ref(b"u").get::<String>("name").unwrap().as_deref(), Some("alice"));

    // A read that does not move the clock writes nothing.
    let t = reopened(&p, &sink);
    let offset = p.changelog_offset().unwrap();
    assert_eq!(
        t.key_ref(b"u")
            .get_with::<String>("name", GetOptions::at(T0 + 5_000))
            .unwrap()
            .as_deref(),
        Some("alice")
    );
    t.commit().unwrap();
    assert!(sink.take().is_empty());
    assert_eq!(p.changelog_offset().unwrap(), offset);
}

/// A refresh drops the old index entry; a delete leaves it for the sweep,
/// which visits at most `max_evictions_per_flush` entries per flush; with
/// `SweepTombstones::LocalOnly` expired keys are deleted without records.
pub fn ttl_refresh_budget_and_local_sweep<H: Harness>(h: &mut H) {
    for sweep in [SweepTombstones::Changelog, SweepTombstones::LocalOnly] {
        let mut store = h.open();
        let no = if sweep == SweepTombstones::Changelog { 10 } else { 11 };
        let p = store.assign_partition(no).expect("assign");
        let options = TtlOptions {
            max_evictions_per_flush: 1,
            sweep,
            ..TtlOptions::default()
        };
        let state = Arc::new(TtlState::load(&*p, options).expect("load"));
        let sink = Arc::new(RecordingSink::new());
        let mut t = txn(&p, &state, &sink);
        for k in ["a", "b", "c"] {
            t.set_with(k, &1, b"", SetOptions::at(T0).ttl(Duration::from_secs(1)))
                .unwrap();
        }
        t.commit().unwrap();
        let mut t = txn(&p, &state, &sink);
        t.set_with("a", &2, b"", SetOptions::at(T0).ttl(Duration::from_secs(5)))
            .unwrap();
        t.delete("b", b"").unwrap();
        t.commit().unwrap();
        let index: Vec<Vec<u8>> = all(&*p, cf::TTL_INDEX).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            index,
            vec![
                ttl::index_key((T0 + 1000) as u64, b"\"b\""),
                ttl::index_key((T0 + 1000) as u64, b"\"c\""),
                ttl::index_key((T0 + 5000) as u64, b"\"a\""),
            ],
            "the refresh of a replaced its entry; the delete of b left a ghost"
        );
        sink.take();
        let mut t = txn(&p, &state, &sink);
        t.set_with("tick", &1, b"", SetOptions::at(T0 + 2000)).unwrap();
        t.commit().unwrap();
        assert_eq!(
            all(&*p, cf::TTL_INDEX).len(),
            2,
            "budget 1: only the ghost of b was visited"
        );
        let mut t = txn(&p, &state, &sink);
        t.set("tick", &2, b"").unwrap();
        t.commit().unwrap();
        assert!(
            p.get(cf::DEFAULT, b"\"c\"").unwrap().is_none(),
            "c is swept by the next flush"
        );
        let tombstones = sink.take().into_iter().filter(|r| r.value.is_none()).count();
        match sweep {
            SweepTombstones::Changelog => assert_eq!(tombstones, 1),
            SweepTombstones::LocalOnly => assert_eq!(tombstones, 0, "local-only sweeps produce nothing"),
        }
    }
}

/// The first TTL write into a populated store stamps its values with
/// `high-water + the largest ttl written` (records first, with `null`
/// offsets), in the same batch as the switch; over the limit it is refused
/// and nothing is written.
pub fn ttl_switch_of_a_populated_store<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = store.assign_partition(0).expect("assign");
    let state = Arc::new(TtlState::load(&*p, TtlOptions::default()).expect("load"));
    let sink = Arc::new(RecordingSink::new());
    let mut t = txn(&p, &state, &sink);
    t.set("name", "alice", b"u").unwrap();
    t.set("gone", &0, b"u").unwrap();
    t.commit().unwrap();
    sink.take();

    // Over the limit: refused, nothing written or produced.
    let small = Arc::new(
        TtlState::load(
            &*p,
            TtlOptions {
                max_backfill_records: 1,
                ..TtlOptions::default()
            },
        )
        .expect("load"),
    );
    let before: Vec<KeyValue> = all(&*p, cf::DEFAULT);
    let mut t = txn(&p, &small, &sink);
    t.set_with("session", &7, b"u", SetOptions::at(T0).ttl(Duration::from_secs(60)))
        .unwrap();
    let err = t.prepare(None).unwrap_err();
    assert!(
        matches!(err, TxnError::TtlBackfillTooLarge { records: 2, limit: 1 }),
        "{err}"
    );
    assert_eq!(t.status(), TxnStatus::Failed);
    assert!(sink.take().is_empty(), "nothing produced");
    assert_eq!(all(&*p, cf::DEFAULT), before, "nothing written");
    assert!(p.get(cf::METADATA, cf::TTL_ENABLED_KEY).unwrap().is_none());
    assert!(!small.is_enabled());

    let mut t = txn(&p, &state, &sink);
    t.set_with("session", &7, b"u", SetOptions::at(T0).ttl(Duration::from_secs(60)))
        .unwrap();
    t.delete("gone", b"u").unwrap();
    t.prepare(Some(&state_core::ProcessedOffsets::new().with("input", 1)))
        .unwrap();
    t.flush(Some(5)).unwrap();
    let records = sink.take();
    let expiry = (T0 + 60_000) as u64;
    type Produced = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);
    let first: Vec<Produced> = records
        .iter()
        .take(2)
        .map(|r| (r.key.clone(), r.value.clone(), r.processed_offsets.clone()))
        .collect();
    assert_eq!(
        first,
        vec![
            (
                b"u|\"gone\"".to_vec(),
                Some(ttl::stamp_value(expiry, b"0")),
                Some(b"null".to_vec())
            ),
            (
                b"u|\"name\"".to_vec(),
                Some(ttl::stamp_value(expiry, b"\"alice\"")),
                Some(b"null".to_vec())
            ),
        ],
        "existing values first, stamped at high-water + the largest ttl, always applied"
    );
    assert_eq!(
        p.get(cf::DEFAULT, b"u|\"name\"").unwrap(),
        Some(ttl::stamp_value(expiry, b"\"alice\""))
    );
    assert!(
        p.get(cf::DEFAULT, b"u|\"gone\"").unwrap().is_none(),
        "the transaction's delete wins"
    );
    let t = txn(&p, &state, &sink);
    assert_eq!(
        t.get_with::<_, String>("name", b"u", GetOptions::at(T0 + 59_999))
            .unwrap()
            .as_deref(),
        Some("alice")
    );
    assert_eq!(
        t.get_with::<_, String>("name", b"u", GetOptions::at(T0 + 60_000))
            .unwrap(),
        None
    );
}

/// Without TTL support a TTL write is refused and fails the transaction;
/// invalid TTLs fail it before anything is staged.
pub fn ttl_refusals<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = store.assign_partition(0).expect("assign");
    let mut t = PartitionTransaction::new(p.clone(), Codec::Json, None);
    let err = t
        .set_with("k", &1, b"", SetOptions::at(T0).ttl(Duration::from_secs(1)))
        .unwrap_err();
    assert!(matches!(err, TxnError::TtlUnsupported { .. }), "{err}");
    assert_eq!(t.status(), TxnStatus::Failed);
    let state = Arc::new(TtlState::load(&*p, TtlOptions::default()).expect("load"));
    let sink = Arc::new(RecordingSink::new());
    for options in [
        SetOptions::default().ttl(Duration::from_secs(1)),
        SetOptions::at(T0).ttl(Duration::ZERO),
        SetOptions::at(-1).ttl(Duration::from_millis(1)),
        SetOptions::at(T0).ttl(Duration::from_secs(1)).in_cf(cf::VALUES),
    ] {
        let mut t = txn(&p, &state, &sink);
        assert!(t.set_with("k", &1, b"", options).is_err(), "{options:?}");
        assert_eq!(t.status(), TxnStatus::Failed);
        assert!(!t.is_changed(), "nothing staged");
    }
}
