//! The base transaction contract on the in-memory backend.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use state_core::{
    cf, ChangelogSink, Codec, Direction, MemoryPartition, ProcessedOffsets, RecordingSink, StorePartition,
};
use state_txn::{PartitionTransaction, TxnError, TxnStatus};

fn setup() -> (Arc<MemoryPartition>, Arc<RecordingSink>) {
    (Arc::new(MemoryPartition::new()), Arc::new(RecordingSink::new()))
}

fn txn(p: &Arc<MemoryPartition>, sink: &Arc<RecordingSink>) -> PartitionTransaction<MemoryPartition> {
    let sink: Arc<dyn ChangelogSink> = sink.clone();
    PartitionTransaction::new(p.clone(), Codec::Json, Some(sink))
}

#[test]
fn reads_see_own_writes_and_deletes_before_the_store() {
    let (p, sink) = setup();
    let mut t = txn(&p, &sink);
    t.set("a", &1, b"user").unwrap();
    t.set("b", &2, b"user").unwrap();
    t.commit().unwrap();

    let mut t = txn(&p, &sink);
    assert_eq!(t.get::<_, i64>("a", b"user").unwrap(), Some(1));
    t.set("a", &10, b"user").unwrap();
    t.delete("b", b"user").unwrap();
    assert_eq!(t.get::<_, i64>("a", b"user").unwrap(), Some(10), "update visible");
    assert_eq!(
        t.get::<_, i64>("b", b"user").unwrap(),
        None,
        "delete hides the stored value"
    );
    assert!(!t.exists("b", b"user").unwrap());
    assert!(t.exists("a", b"user").unwrap());
    assert_eq!(t.get::<_, i64>("a", b"other").unwrap(), None, "prefixes are separate");
    t.set("b", &3, b"user").unwrap();
    assert_eq!(t.get::<_, i64>("b", b"user").unwrap(), Some(3), "set after delete");
    assert_eq!(
        p.get(cf::DEFAULT, b"user|\"a\"").unwrap().as_deref(),
        Some(&b"1"[..]),
        "store untouched before flush"
    );
    t.commit().unwrap();
    assert_eq!(p.get(cf::DEFAULT, b"user|\"a\"").unwrap().as_deref(), Some(&b"10"[..]));
}

#[test]
fn keys_are_prefix_separator_encoded_key() {
    let (p, sink) = setup();
    let mut t = txn(&p, &sink);
    t.set("count", &5, b"k1").unwrap();
    t.set("nopfx", &1, b"").unwrap();
    t.set_bytes(b"raw", b"\x00\x01", b"k1").unwrap();
    t.commit().unwrap();
    assert_eq!(p.get(cf::DEFAULT, b"k1|\"count\"").unwrap().as_deref(), Some(&b"5"[..]));
    assert_eq!(p.get(cf::DEFAULT, b"\"nopfx\"").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(
        p.get(cf::DEFAULT, b"k1|raw").unwrap().as_deref(),
        Some(&b"\x00\x01"[..])
    );
}

#[test]
fn prepare_emits_one_record_per_change_with_headers() {
    let (p, sink) = setup();
    let mut t = txn(&p, &sink);
    t.set("a", &1, b"p").unwrap();
    t.set("a", &2, b"p").unwrap(); // same key twice: one record
    t.delete("gone", b"p").unwrap();
    t.set_raw(cf::LATEST_TIMESTAMPS, b"p|__latest_timestamp__".to_vec(), b"9".to_vec())
        .unwrap();
    t.set_raw(cf::METADATA, b"local".to_vec(), b"x".to_vec()).unwrap();
    let offsets = ProcessedOffsets::new().with("input", 17);
    t.prepare(Some(&offsets)).unwrap();
    assert_eq!(t.status(), TxnStatus::Prepared);
    let recs = sink.records();
    let summary: Vec<_> = recs
        .iter()
        .map(|r| {
            (
                r.cf.as_str(),
                String::from_utf8_lossy(&r.key).into_owned(),
                r.value.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                cf::LATEST_TIMESTAMPS,
                "p|__latest_timestamp__".to_string(),
                Some(b"9".to_vec())
            ),
            (cf::DEFAULT, "p|\"a\"".to_string(), Some(b"2".to_vec())),
            (cf::DEFAULT, "p|\"gone\"".to_string(), None),
        ],
        "sorted by cf then key, tombstone for delete, metadata never emitted"
    );
    for r in &recs {
        assert_eq!(r.processed_offsets.as_deref(), Some(&br#"{"input":17}"#[..]));
    }
    // A prepared transaction only flushes.
    assert!(matches!(t.set("x", &1, b"p"), Err(TxnError::InvalidStatus { .. })));
    assert!(matches!(
        t.get::<_, i64>("a", b"p"),
        Err(TxnError::InvalidStatus { .. })
    ));
    t.flush(Some(5)).unwrap();
    assert_eq!(p.changelog_offset().unwrap(), Some(5));
    assert_eq!(
        p.get(cf::METADATA, b"local").unwrap().as_deref(),
        Some(&b"x"[..]),
        "local cf is written locally"
    );
}

#[test]
fn no_sink_means_no_records_but_flush_still_writes() {
    let p = Arc::new(MemoryPartition::new());
    let mut t = PartitionTransaction::new(p.clone(), Codec::MsgPack, None);
    assert!(!t.has_changelog());
    t.set("k", &7u32, b"").unwrap();
    t.prepare(None).unwrap();
    t.flush(Some(3)).unwrap();
    assert_eq!(t.status(), TxnStatus::Complete);
    let t = PartitionTransaction::new(p.clone(), Codec::MsgPack, None);
    assert_eq!(t.get::<_, u32>("k", b"").unwrap(), Some(7));
}

#[test]
fn empty_transaction_writes_nothing_not_even_the_offset() {
    let (p, sink) = setup();
    let mut t = txn(&p, &sink);
    assert!(!t.is_changed());
    t.prepare(None).unwrap();
    t.flush(Some(100)).unwrap();
    assert_eq!(p.changelog_offset().unwrap(), None);
    assert!(sink.records().is_empty());
}

#[test]
fn offset_regression_is_refused_and_fails_the_transaction() {
    let (p, sink) = setup();
    let mut t = txn(&p, &sink);
    t.set("k", &1, b"").unwrap();
    t.prepare(None).unwrap();
    t.flush(Some(10)).unwrap();

    let mut t = txn(&p, &sink);
    t.set("k", &2, b"").unwrap();
    t.prepare(None).unwrap();
    let err = t.flush(Some(9)).unwrap_err();
    assert!(
        matches!(
            err,
            TxnError::ChangelogOffsetRegression {
                stored: 10,
                requested: 9
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("recreated"),
        "the message says what to do: {err}"
    );
    assert_eq!(t.status(), TxnStatus::Failed);
    assert_eq!(p.changelog_offset().unwrap(), Some(10));
    let check = txn(&p, &sink);
    assert_eq!(
        check.get::<_, i64>("k", b"").unwrap(),
        Some(1),
        "nothing of the failed flush is visible"
    );

    // The same offset is fine (a checkpoint that produced nothing new).
    let mut t = txn(&p, &sink);
    t.set("k", &3, b"").unwrap();
    t.flush(Some(10)).unwrap();
}

#[test]
fn failed_and_complete_transactions_refuse_use() {
    let (p, sink) = setup();
    let mut t = PartitionTransaction::new(p.clone(), Codec::Raw, Some(sink.clone() as Arc<dyn ChangelogSink>));
    // The raw codec refuses an integer value: the transaction fails.
    let err = t.set_in(cf::DEFAULT, b"k".as_slice(), &42u32, b"").unwrap_err();
    assert!(matches!(err, TxnError::Core(state_core::Error::Encode { .. })), "{err}");
    assert_eq!(t.status(), TxnStatus::Failed);
    for res in [t.prepare(None), t.flush(None), t.set_bytes(b"a", b"b", b"")] {
        assert!(matches!(
            res,
            Err(TxnError::InvalidStatus {
                status: TxnStatus::Failed,
                ..
            })
        ));
    }
    assert!(t.get_bytes(b"a", b"").is_err());

    let mut t = txn(&p, &sink);
    t.set("k", &1, b"").unwrap();
    t.prepare(None).unwrap();
    t.flush(None).unwrap();
    let err = t.set("k", &2, b"").unwrap_err();
    assert!(err.to_string().contains("complete"), "{err}");
    assert!(t.flush(None).is_err());
    assert!(t.prepare(None).is_err());
}

#[test]
fn decode_errors_do_not_fail_the_transaction_or_lose_data() {
    let (p, sink) = setup();
    p.put(cf::DEFAULT, b"\"k\"", b"{not json").unwrap();
    let mut t = txn(&p, &sink);
    let err = t.get::<_, i64>("k", b"").unwrap_err();
    assert!(
        matches!(err, TxnError::Core(state_core::Error::Decode { codec: "json", .. })),
        "{err}"
    );
    assert_eq!(t.status(), TxnStatus::Started);
    assert_eq!(t.get_bytes(b"\"k\"", b"").unwrap().as_deref(), Some(&b"{not json"[..]));
    t.set("other", &1, b"").unwrap();
    t.commit().unwrap();
    assert_eq!(
        p.get(cf::DEFAULT, b"\"k\"").unwrap().as_deref(),
        Some(&b"{not json"[..])
    );
}

#[test]
fn sink_errors_fail_prepare() {
    struct Broken;
    impl ChangelogSink for Broken {
        fn send(&self, _: state_core::ChangelogRecord<'_>) -> state_core::Result<()> {
            Err(state_core::Error::Changelog("broker down".into()))
        }
    }
    let p = Arc::new(MemoryPartition::new());
    let mut t = PartitionTransaction::new(p.clone(), Codec::Json, Some(Arc::new(Broken) as Arc<dyn ChangelogSink>));
    t.set("k", &1, b"").unwrap();
    assert!(t.prepare(None).is_err());
    assert_eq!(t.status(), TxnStatus::Failed);
    assert!(t.flush(None).is_err());
    assert_eq!(p.get(cf::DEFAULT, b"\"k\"").unwrap(), None);
}

#[test]
fn merged_range_iteration() {
    let (p, sink) = setup();
    for k in [b"a1", b"a2", b"a3", b"b1"] {
        p.put(cf::DEFAULT, k, b"store").unwrap();
    }
    let mut t = txn(&p, &sink);
    t.delete_raw(cf::DEFAULT, b"a2".to_vec()).unwrap();
    t.set_raw(cf::DEFAULT, b"a0".to_vec(), b"cache".to_vec()).unwrap();
    t.set_raw(cf::DEFAULT, b"a3".to_vec(), b"cache".to_vec()).unwrap();
    t.set_raw(cf::DEFAULT, b"c".to_vec(), b"out of range".to_vec()).unwrap();
    let got = t.iter_range(cf::DEFAULT, b"a", Some(b"b"), Direction::Forward).unwrap();
    let expect: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"a0".to_vec(), b"cache".to_vec()),
        (b"a1".to_vec(), b"store".to_vec()),
        (b"a3".to_vec(), b"cache".to_vec()),
    ];
    assert_eq!(got, expect);
    let back = t
        .iter_range(cf::DEFAULT, b"a", Some(b"b"), Direction::Backward)
        .unwrap();
    assert_eq!(back, expect.into_iter().rev().collect::<Vec<_>>());
}

#[derive(Debug, Clone)]
enum Op {
    Set(u8, u16),
    Delete(u8),
    Get(u8),
    Commit,
    Abandon,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..16, any::<u16>()).prop_map(|(k, v)| Op::Set(k, v)),
        2 => (0u8..16).prop_map(Op::Delete),
        3 => (0u8..16).prop_map(Op::Get),
        1 => Just(Op::Commit),
        1 => Just(Op::Abandon),
    ]
}

proptest! {
    /// Random sets, deletes, reads, commits and abandoned transactions agree
    /// with a BTreeMap model of committed state plus pending changes.
    #[test]
    fn transactions_match_a_btreemap_model(ops in proptest::collection::vec(op(), 1..80)) {
        let p = Arc::new(MemoryPartition::new());
        let mut committed: BTreeMap<u8, u16> = BTreeMap::new();
        let mut pending = committed.clone();
        let mut t = PartitionTransaction::new(p.clone(), Codec::MsgPack, None);
        let mut offset = 0u64;
        for op in ops {
            match op {
                Op::Set(k, v) => { t.set(&k, &v, b"pfx").unwrap(); pending.insert(k, v); }
                Op::Delete(k) => { t.delete(&k, b"pfx").unwrap(); pending.remove(&k); }
                Op::Get(k) => prop_assert_eq!(t.get::<_, u16>(&k, b"pfx").unwrap(), pending.get(&k).copied()),
                Op::Commit => {
                    offset += 1;
                    t.prepare(None).unwrap();
                    t.flush(Some(offset)).unwrap();
                    committed = pending.clone();
                    t = PartitionTransaction::new(p.clone(), Codec::MsgPack, None);
                }
                Op::Abandon => {
                    pending = committed.clone();
                    t = PartitionTransaction::new(p.clone(), Codec::MsgPack, None);
                }
            }
        }
        let fresh = PartitionTransaction::new(p.clone(), Codec::MsgPack, None);
        for k in 0u8..16 {
            prop_assert_eq!(fresh.get::<_, u16>(&k, b"pfx").unwrap(), committed.get(&k).copied());
        }
        let stored = fresh.iter_range(cf::DEFAULT, b"", None, Direction::Forward).unwrap();
        prop_assert_eq!(stored.len(), committed.len());
    }
}
