//! The issue #15 fixtures: session and sliding windows, the windowed
//! primitives, per-write TTL (with replays of quixstreams' own changelog)
//! and the min-eligible-timestamp divergence.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{dump, fixture, hex};
use serde_json::{json, Value};
use state_core::{
    ChangelogSink, Codec, Direction, OwnedChangelogRecord, ProcessedOffsets, RecordingSink, ReplayCheck,
    ReplayedRecord, StorePartition, WriteBatch,
};
use state_rocksdb::{RocksDbOptions, RocksDbPartition};
use state_txn::{
    ExpireOptions, ExpiredWindow, GetOptions, PartitionTransaction, SetOptions, TimestampedConfig,
    TimestampedTransaction, TtlOptions, TtlState, Window, WindowedTransaction, CHECKPOINT_NEVER,
};
use state_windows::{Closing, Collect, Count, Emit, Session, Sliding, Sum};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// `{"hex": ...}` (quixstreams bytes) to bytes.
fn bytes_of(v: &Value) -> Vec<u8> {
    unhex(v["hex"].as_str().expect("a {hex} value"))
}

fn offsets(v: &Value) -> ProcessedOffsets {
    let mut o = ProcessedOffsets::new();
    for (topic, n) in v.as_object().expect("offsets") {
        o = o.with(topic.clone(), n.as_i64().expect("offset"));
    }
    o
}

/// One partition directory, reopened on demand, with the records of every
/// transaction recorded.
struct Dir {
    _tmp: tempfile::TempDir,
    path: PathBuf,
    partition: Option<Arc<RocksDbPartition>>,
    sink: Arc<RecordingSink>,
}

impl Dir {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("0");
        let mut d = Dir {
            _tmp: tmp,
            path,
            partition: None,
            sink: Arc::new(RecordingSink::new()),
        };
        d.reopen();
        d
    }

    fn reopen(&mut self) {
        self.partition = None;
        self.partition = Some(Arc::new(
            RocksDbPartition::open(&self.path, &RocksDbOptions::default()).unwrap(),
        ));
    }

    fn p(&self) -> Arc<dyn StorePartition> {
        self.partition.clone().expect("open")
    }

    fn sink(&self) -> Option<Arc<dyn ChangelogSink>> {
        Some(self.sink.clone() as Arc<dyn ChangelogSink>)
    }
}

/// A record as `(cf, key, value, sorted headers)`, both sides.
type Rec = (String, String, Option<String>, Vec<(String, String)>);

fn ours(records: Vec<OwnedChangelogRecord>) -> Vec<Rec> {
    let mut out: Vec<Rec> = records
        .iter()
        .map(|r| {
            let rec = r.as_record();
            let mut headers: Vec<(String, String)> = rec.headers().map(|(n, v)| (n.to_owned(), hex(v))).collect();
            headers.sort();
            (r.cf.clone(), hex(&r.key), r.value.as_deref().map(hex), headers)
        })
        .collect();
    out.sort();
    out
}

fn theirs(records: &Value) -> Vec<Rec> {
    let mut out: Vec<Rec> = records
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            let mut headers: Vec<(String, String)> = r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_owned(),
                        h[1].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            headers.sort();
            (
                r["cf"].as_str().unwrap().to_owned(),
                r["key_hex"].as_str().unwrap().to_owned(),
                r["value_hex"].as_str().map(str::to_owned),
                headers,
            )
        })
        .collect();
    out.sort();
    out
}

/// quixstreams' `producer.last_offset` after the records of checkpoints up
/// to and including `ck`.
fn last_offset(fx: &Value, ck: usize) -> Option<u64> {
    let n: usize = fx["checkpoints"].as_array().unwrap()[..=ck]
        .iter()
        .map(|c| c["changelog"].as_array().unwrap().len())
        .sum();
    n.checked_sub(1).map(|n| n as u64)
}

// ---- windows ------------------------------------------------------------------

/// A message key as the fixtures write it (`{"hex": ..}`: bytes, its own
/// state prefix; a string: JSON-encoded as its prefix).
fn prefix_of(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => Codec::Json.encode(s).unwrap(),
        other => bytes_of(other),
    }
}

/// A state prefix labelled as quixstreams' `key_from_prefix` labels it for
/// a message whose key looks like `current`.
fn key_json(prefix: &[u8], current: &Value) -> Value {
    match current {
        Value::String(_) => Value::String(Codec::Json.decode(prefix).unwrap()),
        _ => json!({ "hex": hex(prefix) }),
    }
}

/// What one message emitted: `(state prefix, window)`.
type Emitted = Vec<(Vec<u8>, Value)>;

/// One message through the operator of `emit` for the checkpoint's
/// `window_config`.
type Process<'a> = dyn Fn(&Value, Emit, &mut WindowedTransaction, &[u8], &Value, i64) -> Emitted + 'a;

/// Feeds a window fixture's messages through our window operator, one
/// transaction per checkpoint (reopening the partition where quixstreams
/// did), once per emit mode of `emits`, and compares the windows emitted
/// on close with the fixture's `expired` lists and those emitted on update
/// with its `updated` lists; each run compares the changelog records and
/// the bytes too (they do not depend on the emit mode).
fn run_window_fixture(name: &str, emits: &[Emit], process: &Process<'_>) {
    for emit in emits {
        let (emit, list) = match emit {
            Emit::OnClose => (Emit::OnClose, "expired"),
            Emit::OnUpdate => (Emit::OnUpdate, "updated"),
        };
        let fx = fixture(name);
        let mut dir = Dir::new();
        for (n, ck) in fx["checkpoints"].as_array().unwrap().iter().enumerate() {
            if ck["reopened_before"].as_bool().unwrap_or(false) {
                dir.reopen();
            }
            let mut t = WindowedTransaction::new(dir.p(), Codec::Json, dir.sink());
            for m in ck["messages"].as_array().unwrap() {
                let ts = m["timestamp_ms"].as_i64().unwrap();
                let got = process(
                    &ck["window_config"],
                    emit,
                    &mut t,
                    &prefix_of(&m["key"]),
                    &m["value"],
                    ts,
                );
                let got: Vec<Value> = got
                    .into_iter()
                    .map(|(k, w)| json!({"key": key_json(&k, &m["key"]), "window": w}))
                    .collect();
                let at = format!("{name} checkpoint {n} message at offset {}", m["offset"]);
                assert_eq!(Value::Array(got), m[list], "{at}: {list} windows");
            }
            t.prepare(Some(&offsets(&ck["processed_offsets"]))).unwrap();
            t.flush(last_offset(&fx, n)).unwrap();
            assert_eq!(
                ours(dir.sink.take()),
                theirs(&ck["changelog"]),
                "{name} checkpoint {n}: changelog records"
            );
        }
        dir.reopen();
        assert_eq!(dump(&*dir.p()), fx["column_families"], "{name}: every column family");
    }
}

/// A window result as quixstreams writes it: `start`, `end`, then `fields`.
fn window(start: i64, end: i64, mut fields: Value) -> Value {
    fields["start"] = json!(start);
    fields["end"] = json!(end);
    fields
}

/// Collected values are read only when a window closes (an operator that
/// collects emits on close only), so the windows with a collector are
/// compared on close; `session_key` and the #24 fixtures (`state-windows`'
/// compat test) cover updates.
#[test]
fn session_windows_closed_by_partition_match_quixstreams() {
    run_window_fixture("session_partition", &[Emit::OnClose], &|_, emit, t, k, v, ts| {
        Session::new(Duration::from_millis(10))
            .grace(Duration::from_millis(5))
            .closing(Closing::Partition)
            .emit(emit)
            .agg((("count", Count::new()), ("sum", Sum::new()), ("values", Collect::new())))
            .unwrap()
            .process(t, k, ts, &v.as_i64().unwrap())
            .unwrap()
            .into_iter()
            .map(|w| {
                let (count, sum, values) = w.value;
                (
                    w.key,
                    window(w.start, w.end, json!({"count": count, "sum": sum, "values": values})),
                )
            })
            .collect()
    });
}

#[test]
fn session_windows_closed_by_key_match_quixstreams() {
    run_window_fixture(
        "session_key",
        &[Emit::OnClose, Emit::OnUpdate],
        &|config, emit, t, k, v, ts| {
            let grace = config["_grace_ms"].as_u64().unwrap_or(0);
            Session::new(Duration::from_millis(10))
                .grace(Duration::from_millis(grace))
                .emit(emit)
                .aggregate(Count::new())
                .unwrap()
                .process(t, k, ts, v)
                .unwrap()
                .into_iter()
                .map(|w| (w.key, window(w.start, w.end, json!({"value": w.value}))))
                .collect()
        },
    );
}

#[test]
fn sliding_windows_match_quixstreams() {
    run_window_fixture("sliding", &[Emit::OnClose], &|_, emit, t, k, v, ts| {
        Sliding::new(Duration::from_millis(10))
            .grace(Duration::from_millis(5))
            .emit(emit)
            .agg((("sum", Sum::new()), ("items", Collect::new())))
            .unwrap()
            .process(t, k, ts, &v.as_i64().unwrap())
            .unwrap()
            .into_iter()
            .map(|w| {
                let (sum, items) = w.value;
                (w.key, window(w.start, w.end, json!({"sum": sum, "items": items})))
            })
            .collect()
    });
}

// ---- the primitives, call by call -------------------------------------------

fn opt_i64(v: &Value) -> Option<i64> {
    v.as_i64()
}

fn windows_json(ws: Vec<Window<Value>>, prefix: &[u8]) -> Value {
    Value::Array(
        ws.into_iter()
            .map(|w| json!([[w.start, w.end], w.value, {"hex": hex(prefix)}]))
            .collect(),
    )
}

/// A checkpoint as quixstreams returns it: `CHECKPOINT_NEVER` is its
/// `2^64 - 1` (the mapping of docs/formats.md, "Timestamps in the API").
fn checkpoint_json(c: Option<i64>) -> Value {
    match c {
        None => Value::Null,
        Some(CHECKPOINT_NEVER) => json!(u64::MAX),
        Some(v) => json!(v),
    }
}

/// Replays every traced call of `windowed_primitives` against our
/// primitives and compares each result.
#[test]
fn windowed_primitives_match_quixstreams_call_by_call() {
    let fx = fixture("windowed_primitives");
    let mut dir = Dir::new();
    for (n, ck) in fx["checkpoints"].as_array().unwrap().iter().enumerate() {
        if ck["reopened_before"].as_bool().unwrap_or(false) {
            dir.reopen();
        }
        let mut t = WindowedTransaction::new(dir.p(), Codec::Json, dir.sink());
        for call in ck["trace"].as_array().unwrap() {
            let name = call["call"].as_str().unwrap();
            let args = call["args"].as_array().unwrap();
            let kw = &call["kwargs"];
            let prefix = || -> Vec<u8> {
                if kw.get("prefix").is_some() {
                    bytes_of(&kw["prefix"])
                } else if let Some(first) = args.first().filter(|a| a.get("hex").is_some()) {
                    bytes_of(first)
                } else {
                    Vec::new()
                }
            };
            let got: Value = match name {
                "get_expiry_checkpoint" => checkpoint_json(t.get_expiry_checkpoint(&prefix()).unwrap()),
                "set_expiry_checkpoint" => {
                    // quixstreams' 2^64 - 1 is CHECKPOINT_NEVER here.
                    let v = args[0]
                        .as_i64()
                        .or_else(|| args[0].as_u64().map(|_| CHECKPOINT_NEVER))
                        .unwrap();
                    t.set_expiry_checkpoint(v, &prefix()).unwrap();
                    Value::Null
                }
                "get_latest_expired" => checkpoint_json(Some(t.get_latest_expired(&prefix()).unwrap())),
                "get_partition_timestamp" => json!(t.get_partition_timestamp().unwrap()),
                "advance_partition_timestamp" => {
                    json!(t.advance_partition_timestamp(args[0].as_i64().unwrap()).unwrap())
                }
                "update_window" => {
                    t.update_window(
                        args[0].as_i64().unwrap(),
                        args[1].as_i64().unwrap(),
                        &kw["value"],
                        kw["timestamp_ms"].as_i64().unwrap(),
                        &prefix(),
                    )
                    .unwrap();
                    Value::Null
                }
                "delete_window" => {
                    t.delete_window(args[0].as_i64().unwrap(), args[1].as_i64().unwrap(), &prefix())
                        .unwrap();
                    Value::Null
                }
                "add_to_collection" => json!(t
                    .add_to_collection(opt_i64(&kw["id"]), &kw["value"], &prefix())
                    .unwrap()),
                "iter_windows" => {
                    let from = kw.get("start_from_ms").and_then(Value::as_i64).unwrap_or(0);
                    let to = kw.get("start_to_ms").and_then(Value::as_i64);
                    let dir = if kw.get("backwards").and_then(Value::as_bool).unwrap_or(false) {
                        Direction::Backward
                    } else {
                        Direction::Forward
                    };
                    let p = prefix();
                    let ws: Vec<Window<Value>> = t
                        .iter_windows(&p, from, to, dir)
                        .unwrap()
                        .collect::<Result<_, _>>()
                        .unwrap();
                    windows_json(ws, &p)
                }
                "get_windows" => {
                    let p = prefix();
                    let ws = t
                        .get_windows::<Value>(
                            args[0].as_i64().unwrap(),
                            args[1].as_i64().unwrap(),
                            &p,
                            Direction::Forward,
                        )
                        .unwrap();
                    windows_json(ws, &p)
                }
                "iter_prefixes" => Value::Array(
                    t.iter_prefixes()
                        .unwrap()
                        .into_iter()
                        .map(|p| json!({"hex": hex(&p)}))
                        .collect(),
                ),
                "keys" => Value::Array(
                    t.keys("default")
                        .unwrap()
                        .into_iter()
                        .map(|k| json!({"hex": hex(&k)}))
                        .collect(),
                ),
                "key_from_prefix" => {
                    let p = prefix();
                    if kw["message_key"].get("hex").is_some() {
                        json!({"hex": hex(&p)}) // a bytes key is its own prefix
                    } else {
                        json!(t.key_from_prefix::<String>(&p).unwrap())
                    }
                }
                "expire_windows" => {
                    let mut o = if kw["delete"].as_bool().unwrap_or(true) {
                        ExpireOptions::delete()
                    } else {
                        ExpireOptions::keep()
                    };
                    if kw["collect"].as_bool().unwrap_or(false) {
                        o = o.collecting();
                    }
                    if kw["end_inclusive"].as_bool().unwrap_or(false) {
                        o = o.end_inclusive();
                    }
                    let p = prefix();
                    let ws: Vec<ExpiredWindow<Value, Value>> =
                        t.expire_windows(kw["max_start_time"].as_i64().unwrap(), &p, o).unwrap();
                    Value::Array(
                        ws.into_iter()
                            .map(|w| json!([[w.start, w.end], w.value, w.collected, {"hex": hex(&w.prefix)}]))
                            .collect(),
                    )
                }
                other => panic!("untraced call {other}"),
            };
            let want = call
                .get("yielded")
                .or_else(|| call.get("returned"))
                .cloned()
                .unwrap_or(Value::Null);
            assert_eq!(got, want, "checkpoint {n}: {name} {args:?} {kw}");
        }
        t.prepare(Some(&offsets(&ck["processed_offsets"]))).unwrap();
        t.flush(last_offset(&fx, n)).unwrap();
        assert_eq!(
            ours(dir.sink.take()),
            theirs(&ck["changelog"]),
            "checkpoint {n}: changelog"
        );
    }
    dir.reopen();
    assert_eq!(dump(&*dir.p()), fx["column_families"], "every column family");
}

// ---- per-write TTL --------------------------------------------------------------

fn ttl_options(fx: &Value) -> TtlOptions {
    let mut o = TtlOptions::default();
    if let Some(n) = fx["config"]["options"]["max_evictions_per_flush"].as_u64() {
        o.max_evictions_per_flush = n as usize;
    }
    o
}

/// Runs one read of a fixture (`get` / `get_bytes` / `exists` at a
/// timestamp) and returns it as the fixture renders it.
fn read(t: &PartitionTransaction, r: &Value) -> Value {
    let prefix = bytes_of(&r["prefix"]);
    let options = GetOptions {
        timestamp: r["timestamp"].as_i64(),
        ..GetOptions::default()
    };
    match r["op"].as_str().unwrap() {
        "get" => t
            .get_with::<_, Value>(r["key"].as_str().unwrap(), &prefix, options)
            .unwrap()
            .unwrap_or(Value::Null),
        "get_bytes" => match t.get_bytes_with(&bytes_of(&r["key"]), &prefix, options).unwrap() {
            Some(b) => json!({"hex": hex(&b)}),
            None => Value::Null,
        },
        "exists" => json!(t.exists_with(r["key"].as_str().unwrap(), &prefix, options).unwrap()),
        other => panic!("unknown read {other}"),
    }
}

fn check_reads(t: &PartitionTransaction, state: &TtlState, reads: &Value, at: &str) {
    for r in reads.as_array().unwrap() {
        assert_eq!(read(t, r), r["result"], "{at}: {r}");
        assert_eq!(
            state.high_water().map(|h| h as i64),
            r["high_water_after"].as_i64(),
            "{at}: high-water after {r}"
        );
    }
}

const T0: i64 = 1_700_000_000_000;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The checkpoints of `ttl_populated_flip`, as quixstreams' script runs
/// them: legacy writes, the switch of the populated store (its values
/// stamped at high-water + 60 s), refreshes, deletes, a write without a
/// usable timestamp, an already expired write, and the sweep with a budget
/// of 2 over four checkpoints.
fn populated_flip_checkpoint(n: usize, t: &mut PartitionTransaction) {
    let at = SetOptions::at;
    match n {
        0 => {
            t.set_with("name", "alice", b"user-1", at(T0)).unwrap();
            t.set_with("count", &1, b"user-1", at(T0)).unwrap();
            t.set_with("name", "bob", b"user-2", at(T0)).unwrap();
            t.set_bytes_with(b"raw", b"\x01\x02", b"user-2", at(T0)).unwrap();
            t.set_with("gone", &0, b"user-2", at(T0)).unwrap();
            t.delete("gone", b"user-2").unwrap();
        }
        1 => {
            t.set_with("session", &json!({"id": 7}), b"user-1", at(T0 + 1_000).ttl(secs(60)))
                .unwrap();
            t.set_with("plain", "no-ttl", b"user-1", at(T0 + 1_000)).unwrap();
            t.set_bytes_with(b"blob", b"\xde\xad", b"user-3", at(T0 + 1_000).ttl(secs(30)))
                .unwrap();
            t.set_with("lww", &1, b"user-3", at(T0 + 1_000).ttl(secs(5))).unwrap();
            t.set_with("lww", &2, b"user-3", at(T0 + 1_000)).unwrap();
        }
        2 => {
            t.set_with("refreshed", "v1", b"user-4", at(T0 + 30_000).ttl(secs(100)))
                .unwrap();
            t.set_with("perm", "v1", b"user-4", at(T0 + 30_000).ttl(secs(5)))
                .unwrap();
            t.set_with("short", "s", b"user-3", at(T0 + 30_000).ttl(Duration::from_millis(1)))
                .unwrap();
            t.set_with("nots", "n", b"user-3", at(-1).ttl(secs(5))).unwrap();
            t.set_with("session", &json!({"id": 8}), b"user-1", at(T0 + 30_000).ttl(secs(10)))
                .unwrap();
            t.delete("name", b"user-2").unwrap();
        }
        3 => {
            t.set_with("refreshed", "v2", b"user-4", at(T0 + 45_000).ttl(secs(1)))
                .unwrap();
            t.set_with("perm", "v2", b"user-4", at(T0 + 45_000)).unwrap();
            t.set_with("late", "l", b"user-4", at(T0 + 10_000).ttl(secs(1)))
                .unwrap();
        }
        4 => t.set_with("tick", &1, b"sys", at(T0 + 70_000)).unwrap(),
        5 => t.set_with("tick", &2, b"sys", at(T0 + 70_001)).unwrap(),
        6 => t.set_with("tick", &3, b"sys", at(T0 + 70_002)).unwrap(),
        7 => t.set_with("tick", &4, b"sys", at(T0 + 70_003)).unwrap(),
        _ => unreachable!("the fixture has eight checkpoints"),
    }
}

/// quixstreams' script does some reads before its writes and some after;
/// the fixture lists them in order. How many come first, per checkpoint.
const READS_BEFORE_WRITES: [usize; 8] = [0, 0, 15, 15, 15, 1, 0, 0];

fn run_ttl_fixture(name: &str, checkpoint: &dyn Fn(usize, &mut PartitionTransaction), reads_before: &[usize]) {
    let fx = fixture(name);
    let options = ttl_options(&fx);
    let mut dir = Dir::new();
    let mut state = Arc::new(TtlState::load(&*dir.p(), options.clone()).unwrap());
    for (n, ck) in fx["checkpoints"].as_array().unwrap().iter().enumerate() {
        if ck["reopened_before"].as_bool().unwrap_or(false) {
            dir.reopen();
            state = Arc::new(TtlState::load(&*dir.p(), options.clone()).unwrap());
        }
        if let Some(before) = ck.get("partition_before") {
            assert_eq!(
                state.is_enabled(),
                before["uses_ttl_stamps"].as_bool().unwrap(),
                "{name} {n}: mode"
            );
            assert_eq!(
                state.high_water().map(|h| h as i64),
                before["high_water_ms"].as_i64(),
                "{name} {n}: hw"
            );
        }
        let mut t = PartitionTransaction::with_ttl_state(dir.p(), Codec::Json, dir.sink(), state.clone());
        let reads = ck.get("reads").cloned().unwrap_or(json!([]));
        let all = reads.as_array().unwrap();
        let split = reads_before[n].min(all.len());
        check_reads(&t, &state, &Value::Array(all[..split].to_vec()), &format!("{name} {n}"));
        checkpoint(n, &mut t);
        check_reads(&t, &state, &Value::Array(all[split..].to_vec()), &format!("{name} {n}"));
        t.prepare(Some(&offsets(&ck["processed_offsets"]))).unwrap();
        t.flush(last_offset(&fx, n)).unwrap();
        assert_eq!(
            ours(dir.sink.take()),
            theirs(&ck["changelog"]),
            "{name} checkpoint {n}: changelog"
        );
        if let Some(after) = ck.get("partition_after") {
            assert_eq!(
                state.high_water().map(|h| h as i64),
                after["high_water_ms"].as_i64(),
                "{name} {n}: hw after"
            );
        }
    }
    dir.reopen();
    assert_eq!(dump(&*dir.p()), fx["column_families"], "{name}: every column family");
}

#[test]
fn ttl_switch_of_a_populated_store_matches_quixstreams() {
    run_ttl_fixture("ttl_populated_flip", &populated_flip_checkpoint, &READS_BEFORE_WRITES);
}

#[test]
fn ttl_switch_of_an_empty_store_matches_quixstreams() {
    run_ttl_fixture(
        "ttl_empty_flip",
        &|n, t| match n {
            0 => {
                t.set_with("k1", "v", b"p", SetOptions::at(T0).ttl(secs(10))).unwrap();
                t.set_with("k2", &json!([1, 2]), b"p", SetOptions::at(T0)).unwrap();
                t.set_with("k3", "x", b"", SetOptions::at(T0).ttl(Duration::from_millis(1500)))
                    .unwrap();
            }
            _ => t
                .set_with("k4", &true, b"p", SetOptions::at(T0 + 1_500).ttl(secs(1)))
                .unwrap(),
        },
        &[0, 4],
    );
}

/// Replays `records` as recovery does (processed-offset filter, then
/// [`ReplayCheck`]), one batch per record, into a fresh partition.
fn replay(records: &Value, committed: &Value, dir: &Dir, state: Arc<TtlState>) {
    let committed: BTreeMap<String, i64> = committed
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
        .collect();
    let p = dir.p();
    let mut check = ReplayCheck::new(Codec::Json, Some(state));
    for r in records.as_array().unwrap() {
        let key = unhex(r["key_hex"].as_str().unwrap());
        let value = r["value_hex"].as_str().map(unhex);
        let header = |name: &str| {
            r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h[0] == name)
                .and_then(|h| h[1].as_str().map(unhex))
        };
        let stamped = header("__ttl_stamped__").is_some_and(|v| !v.is_empty());
        let codec = header("__value_codec__");
        let record = ReplayedRecord {
            offset: r["offset"].as_i64().unwrap(),
            cf: r["cf"].as_str().unwrap(),
            key: &key,
            value: value.as_deref(),
            ttl_stamped: stamped,
            value_codec: codec.as_deref(),
        };
        check.check(&record).unwrap();
        let apply = match header("__processed_tp_offsets__") {
            None => true,
            Some(h) => ProcessedOffsets::from_header(&h)
                .unwrap()
                .is_none_or(|o| o.is_committed(&committed)),
        };
        let mut batch = WriteBatch::new();
        if apply {
            check.stage(&record, &mut batch);
        }
        batch.set_changelog_offset(record.offset as u64);
        p.write(&batch).unwrap();
    }
    check.complete(&*p).unwrap();
}

fn replay_and_read(fx: &Value, records: &Value, committed: &Value, reads: &Value, at: &str) -> Value {
    let mut dir = Dir::new();
    let options = ttl_options(fx);
    replay(
        records,
        committed,
        &dir,
        Arc::new(TtlState::load(&*dir.p(), options.clone()).unwrap()),
    );
    let after = dump(&*dir.p());
    dir.reopen();
    let state = Arc::new(TtlState::load(&*dir.p(), options).unwrap());
    assert!(state.is_enabled(), "{at}: in TTL mode after the replay");
    assert_eq!(state.high_water(), None, "{at}: replay does not move the high-water");
    let t = PartitionTransaction::with_ttl_state(dir.p(), Codec::Json, None, state.clone());
    check_reads(&t, &state, reads, at);
    after
}

/// Acceptance: replaying the changelog quixstreams emitted for the TTL run
/// gives the reads quixstreams gives at the same timestamps (expired keys
/// absent), with all checkpoints committed and with only the first three.
#[test]
fn replaying_quixstreams_ttl_changelog_gives_its_reads() {
    let fx = fixture("ttl_populated_flip");
    for r in fx["replays"].as_array().unwrap() {
        let label = r["label"].as_str().unwrap();
        let after = replay_and_read(&fx, &fx["changelog_all"], &r["committed_offsets"], &r["reads"], label);
        assert_eq!(
            after, r["column_families_after_recovery"],
            "{label}: bytes after recovery"
        );
    }
    let fx = fixture("ttl_empty_flip");
    let r = &fx["replay"];
    let after = replay_and_read(
        &fx,
        &fx["changelog_all"],
        &r["committed_offsets"],
        &r["reads"],
        "ttl_empty_flip",
    );
    assert_eq!(
        after, r["column_families_after_recovery"],
        "ttl_empty_flip: bytes after recovery"
    );
}

// ---- the min-eligible timestamp -----------------------------------------------

/// quixstreams reads the minimum eligible timestamp from `default`, where
/// nothing writes it, so every transaction starts from 0; we read it from
/// `__min-eligible-timestamps__` (docs/formats.md). Same bytes and reads
/// while timestamps do not go back; from the second checkpoint on the
/// documented divergence shows.
#[test]
fn min_eligible_timestamp_divergence_is_the_documented_one() {
    let fx = fixture("timestamped_min_eligible");
    let dir = Dir::new();
    let cfg = TimestampedConfig {
        grace_ms: 10,
        keep_duplicates: false,
    };
    let cks = fx["checkpoints"].as_array().unwrap();
    let mut t = TimestampedTransaction::new(dir.p(), Codec::Json, dir.sink(), cfg);
    t.set_for_timestamp(100, "a", b"k").unwrap();
    t.prepare(Some(&offsets(&json!({"input": 0})))).unwrap();
    t.flush(last_offset(&fx, 0)).unwrap();
    assert_eq!(
        ours(dir.sink.take()),
        theirs(&cks[0]["changelog"]),
        "checkpoint 0: identical"
    );
    let mut t = TimestampedTransaction::new(dir.p(), Codec::Json, dir.sink(), cfg);
    let results = cks[1]["results"].as_array().unwrap();
    assert_eq!(json!(t.get_latest::<String>(95, b"k").unwrap()), results[0]["result"]);
    t.set_for_timestamp(50, "old", b"k").unwrap();
    assert_eq!(
        json!(t.get_interval::<String>(0, 200, b"k").unwrap()),
        results[3]["result"]
    );
    assert_eq!(
        json!(t.get_interval_limited::<String>(0, 200, b"k", 1).unwrap()),
        results[4]["result"],
        "get_interval's limit"
    );
    // quixstreams: 'old' (its lower bound is 0); ours: below the minimum 90.
    assert_eq!(results[2]["result"], json!("old"));
    assert_eq!(t.get_latest::<String>(60, b"k").unwrap(), None);
    t.prepare(None).unwrap();
    t.flush(None).unwrap();
    let stored = dir
        .p()
        .get("__min-eligible-timestamps__", b"k|__min_eligible_timestamps__")
        .unwrap();
    assert_eq!(
        cks[1]["stored_min_eligible_hex"],
        json!("0000000000000028"),
        "quixstreams regresses to 40"
    );
    assert_eq!(stored, Some(90u64.to_be_bytes().to_vec()), "we keep 90");
}

#[test]
fn quixstreams_ttl_state_directory_opens_with_ttl_support_only() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/quixstreams/ttl-state-dir");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("0");
    copy_dir(&src, &path);
    let p = RocksDbPartition::open(&path, &RocksDbOptions::default()).unwrap();
    let plain = state_core::StoreFormat::key_value(Codec::Json);
    let err = state_core::check_store_format(&p, &plain, &path).unwrap_err();
    assert!(matches!(err, state_core::Error::TtlModeMismatch { .. }), "{err}");
    let with_ttl = plain.with_ttl(TtlOptions::default());
    let format = state_core::check_store_format(&p, &with_ttl, &path).unwrap();
    let state = format.ttl.unwrap();
    assert!(state.is_enabled());
    assert_eq!(state.high_water(), Some(T0 as u64));
    let p: Arc<dyn StorePartition> = Arc::new(p);
    let t = PartitionTransaction::with_ttl_state(p, Codec::Json, None, state);
    assert_eq!(t.get::<_, Value>("k2", b"p").unwrap(), Some(json!([1, 2])));
    assert_eq!(t.get_bytes(b"raw", b"p").unwrap().as_deref(), Some(&b"\x01\x02"[..]));
    assert_eq!(
        t.get_with::<_, String>("k1", b"p", GetOptions::at(T0 + 10_000))
            .unwrap(),
        None
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}
