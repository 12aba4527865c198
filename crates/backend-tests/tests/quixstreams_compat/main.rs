//! Byte compatibility with quixstreams under the JSON codec.
//!
//! `fixtures/quixstreams/*.json` were produced by quixstreams 3.28.1 running
//! the scripts in `fixtures/quixstreams/generate.py`. Each test runs the same
//! script here and requires the same bytes in every column family and the
//! same changelog records per checkpoint. quixstreams orders records inside
//! one checkpoint by prefix insertion order (and Python set order for
//! deletes); we emit them in key order, so each checkpoint's records are
//! compared as a sorted list.
//!
//! The issue #15 scenarios (`traced` module below) also compare every
//! header of every record (`__ttl_stamped__` included), the windows each
//! message emits (session and sliding windows run on our primitives through
//! `state-windows`' operators), the return value of every traced
//! primitive call, and the reads after replaying quixstreams' own TTL
//! changelog.

mod traced;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};
use state_core::{ChangelogSink, Codec, Direction, ProcessedOffsets, RecordingSink, StorePartition};
use state_rocksdb::{RocksDbOptions, RocksDbPartition};
use state_txn::{
    CollectedValues, ExpireOptions, ExpiredWindow, PartitionTransaction, TimestampedConfig, TimestampedTransaction,
    WindowedTransaction,
};

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/quixstreams")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every non-empty column family as `{name: [[key_hex, value_hex], ...]}`,
/// the form of the fixtures' `column_families`.
fn dump(p: &dyn StorePartition) -> Value {
    let mut out = serde_json::Map::new();
    for name in p.column_families().unwrap() {
        let items: Vec<Value> = p
            .iter_range(&name, b"", None, Direction::Forward)
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                json!([hex(&k), hex(&v)])
            })
            .collect();
        if !items.is_empty() {
            out.insert(name, Value::Array(items));
        }
    }
    Value::Object(out)
}

struct Session {
    _dir: tempfile::TempDir,
    partition: Arc<RocksDbPartition>,
    sink: Arc<RecordingSink>,
}

impl Session {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let partition = Arc::new(RocksDbPartition::open(dir.path().join("0"), &RocksDbOptions::default()).unwrap());
        Session {
            _dir: dir,
            partition,
            sink: Arc::new(RecordingSink::new()),
        }
    }

    fn sink(&self) -> Option<Arc<dyn ChangelogSink>> {
        Some(self.sink.clone() as Arc<dyn ChangelogSink>)
    }

    fn column_families(&self) -> Value {
        dump(&*self.partition)
    }

    /// Changelog records per checkpoint (keyed by the processed-offsets
    /// header), each checkpoint sorted.
    fn changelog(&self) -> BTreeMap<String, Vec<(String, String, Option<String>)>> {
        let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for r in self.sink.records() {
            let header = String::from_utf8(r.processed_offsets.clone().unwrap()).unwrap();
            out.entry(header)
                .or_default()
                .push((r.cf.clone(), hex(&r.key), r.value.as_deref().map(hex)));
        }
        for v in out.values_mut() {
            v.sort();
        }
        out
    }
}

fn expected_changelog(fx: &Value) -> BTreeMap<String, Vec<(String, String, Option<String>)>> {
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for r in fx["changelog"].as_array().unwrap() {
        assert_eq!(r["headers"], json!(["__column_family__", "__processed_tp_offsets__"]));
        out.entry(r["processed_offsets"].as_str().unwrap().to_string())
            .or_default()
            .push((
                r["cf"].as_str().unwrap().to_string(),
                r["key_hex"].as_str().unwrap().to_string(),
                r["value_hex"].as_str().map(str::to_string),
            ));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

fn offsets(n: i64) -> ProcessedOffsets {
    ProcessedOffsets::new().with("input", n)
}

#[test]
fn key_value_session_matches_quixstreams() {
    let fx = fixture("kv");
    let s = Session::new();
    let mut t = PartitionTransaction::new(s.partition.clone(), Codec::Json, s.sink());
    t.set("count", &1, b"user-1").unwrap();
    t.set(
        "profile",
        &json!({"a": 1.5, "b": [1, "é", null, true], "big": 1e20, "small": 1e-7}),
        b"user-1",
    )
    .unwrap();
    t.set("count", &7, b"user-2").unwrap();
    t.set("noprefix", "x", b"").unwrap();
    t.delete("gone", b"user-2").unwrap();
    t.prepare(Some(&offsets(5))).unwrap();
    t.flush(Some(9)).unwrap();
    let mut t = PartitionTransaction::new(s.partition.clone(), Codec::Json, s.sink());
    t.set("count", &2, b"user-1").unwrap();
    t.delete("profile", b"user-1").unwrap();
    t.prepare(Some(&offsets(6))).unwrap();
    t.flush(Some(10)).unwrap();

    assert_eq!(s.changelog(), expected_changelog(&fx));
    assert_eq!(s.column_families(), fx["column_families"]);
}

fn expired_json<V: serde::Serialize, C: serde::Serialize>(ws: &[ExpiredWindow<V, C>]) -> Value {
    Value::Array(
        ws.iter()
            .map(|w| {
                json!([
                    [w.start, w.end],
                    w.value,
                    w.collected,
                    String::from_utf8_lossy(&w.prefix)
                ])
            })
            .collect(),
    )
}

#[test]
fn windowed_session_matches_quixstreams() {
    let fx = fixture("windowed");
    let s = Session::new();
    let mut t = WindowedTransaction::new(s.partition.clone(), Codec::Json, s.sink());
    t.update_window(0, 10, &1, 5, b"k").unwrap();
    t.update_window(10, 20, &2, 15, b"k").unwrap();
    t.update_window(20, 30, &3, 25, b"k").unwrap();
    t.update_window(0, 10, &4, 7, b"k2").unwrap();
    t.add_to_collection(Some(0), "a", b"k").unwrap();
    t.add_to_collection(Some(12), "b", b"k").unwrap();
    t.add_to_collection(Some(3), "c", b"k2").unwrap();
    let e1: Vec<ExpiredWindow<i64, String>> = t.expire_windows(0, b"k", ExpireOptions::delete()).unwrap();
    t.prepare(Some(&offsets(1))).unwrap();
    t.flush(Some(1)).unwrap();
    let mut t = WindowedTransaction::new(s.partition.clone(), Codec::Json, s.sink());
    let e2: Vec<ExpiredWindow<i64, String>> = t
        .expire_windows(10, b"k", ExpireOptions::delete().collecting())
        .unwrap();
    t.delete_windows(0, CollectedValues::Delete, b"k2").unwrap();
    let windows: Vec<Value> = t
        .get_windows::<i64>(-1, 100, b"k", Direction::Forward)
        .unwrap()
        .into_iter()
        .map(|w| json!([[w.start, w.end], w.value]))
        .collect();
    t.prepare(Some(&offsets(2))).unwrap();
    t.flush(Some(2)).unwrap();

    assert_eq!(expired_json(&e1), fx["results"]["expire_1"]);
    assert_eq!(expired_json(&e2), fx["results"]["expire_2"]);
    assert_eq!(Value::Array(windows), fx["results"]["windows_k"]);
    assert_eq!(s.changelog(), expected_changelog(&fx));
    assert_eq!(s.column_families(), fx["column_families"]);
}

#[test]
fn timestamped_session_matches_quixstreams() {
    let fx = fixture("timestamped");
    let s = Session::new();
    let cfg = TimestampedConfig {
        grace_ms: 10,
        keep_duplicates: true,
    };
    let mut t = TimestampedTransaction::new(s.partition.clone(), Codec::Json, s.sink(), cfg);
    t.set_for_timestamp(1, "a", b"key").unwrap();
    t.set_for_timestamp(5, "b", b"key").unwrap();
    t.set_for_timestamp(5, "c", b"key").unwrap();
    t.set_for_timestamp(1, "x", b"key2").unwrap();
    let latest_5: Option<String> = t.get_latest(5, b"key").unwrap();
    t.prepare(Some(&offsets(3))).unwrap();
    t.flush(Some(4)).unwrap();
    let mut t = TimestampedTransaction::new(s.partition.clone(), Codec::Json, s.sink(), cfg);
    t.set_for_timestamp(20, "d", b"key").unwrap();
    let latest_19: Option<String> = t.get_latest(19, b"key").unwrap();
    let interval: Vec<String> = t.get_interval(0, 100, b"key").unwrap();
    t.prepare(Some(&offsets(4))).unwrap();
    t.flush(Some(5)).unwrap();

    assert_eq!(json!(latest_5), fx["results"]["latest_5"]);
    assert_eq!(json!(latest_19), fx["results"]["latest_19"]);
    assert_eq!(json!(interval), fx["results"]["interval"]);
    assert_eq!(s.changelog(), expected_changelog(&fx));
    assert_eq!(s.column_families(), fx["column_families"]);
}
