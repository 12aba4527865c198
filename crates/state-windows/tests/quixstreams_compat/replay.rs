//! Replays one `fixtures/quixstreams/windows/<scenario>.json` through a
//! window operator the way `generate.py` ran quixstreams (see the
//! fixtures' README): one transaction per checkpoint (each with a fresh
//! window index when indexed, as after a reopen), the same records,
//! prepare with the same processed offsets, flush with the same changelog
//! offsets, on an in-memory partition (every backend stores the bytes it
//! is given: `backend-tests` runs the window kit on the persistent ones). It records what the operator emitted per record, the late
//! reports, the changelog records per checkpoint and the final column
//! families, for the tests to compare.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use state_core::{ChangelogSink, Codec, Direction, MemoryPartition, ProcessedOffsets, RecordingSink, StorePartition};
use state_txn::{WindowIndex, WindowedTransaction};
use state_windows::kinds::Kind;
use state_windows::{Aggregation, Emit, WindowOperator, WindowResult};

pub fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/quixstreams/windows")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A record key as the fixtures write it: `{"hex": ..}` (bytes, its own
/// prefix) or a string (JSON-encoded as its prefix).
fn prefix_of(key: &Value) -> Vec<u8> {
    match key {
        Value::Object(o) => unhex(o["hex"].as_str().expect("hex key")),
        Value::String(s) => Codec::Json.encode(s).expect("encode key"),
        other => panic!("unexpected key {other}"),
    }
}

/// A prefix labelled the way quixstreams' `key_from_prefix` labels it for
/// a message whose key looks like `current`.
fn label(prefix: &[u8], current: &Value) -> Value {
    match current {
        Value::Object(_) => json!({ "hex": hex(prefix) }),
        _ => Value::String(Codec::Json.decode(prefix).expect("a JSON string key")),
    }
}

/// A checkpoint's changelog records, sorted: `(processed offsets header,
/// cf, key hex, value hex)`.
pub type Changelog = Vec<(String, String, String, Option<String>)>;

/// What the operator did with one record.
#[derive(Debug)]
pub struct Got {
    pub offset: i64,
    /// The emitted windows as the fixture writes them, or the error.
    pub emitted: Result<Vec<Value>, String>,
    /// The late reports, as `[start, end, late_by]`.
    pub late: Vec<Value>,
}

/// One replay's observations.
pub struct Replay {
    pub fixture: Value,
    pub records: Vec<Got>,
    /// Changelog records per completed checkpoint.
    pub changelog: Vec<Changelog>,
    /// The final column families, as the fixture writes them.
    pub column_families: Value,
}

/// How a scenario's operator is made for a grace (a checkpoint's
/// `window_config` may change it) and how its results become the
/// fixture's `window` objects (without `start` and `end`).
pub struct Scenario<'a, V, K, G: Aggregation<V>> {
    pub name: &'a str,
    pub make: &'a dyn Fn(i64) -> WindowOperator<V, K, G>,
    pub window: &'a dyn Fn(G::Output) -> Value,
}

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

/// Replays `scenario` (with the partition's window index when `indexed`).
pub fn replay<V, K, G>(s: &Scenario<'_, V, K, G>, indexed: bool) -> Replay
where
    V: DeserializeOwned + Serialize + 'static,
    K: Kind<V, G>,
    G: Aggregation<V>,
{
    let fx = fixture(s.name);
    let def = &fx["definition"];
    let partition = Arc::new(MemoryPartition::new());
    let sink = Arc::new(RecordingSink::new());
    let mut grace = def["grace_ms"].as_i64().unwrap_or(0);
    let mut records = Vec::new();
    let mut changelog = Vec::new();
    let mut stopped = false;
    for cp in fx["checkpoints"].as_array().unwrap() {
        if stopped {
            break;
        }
        if let Some(g) = cp["window_config"].get("_grace_ms") {
            grace = g.as_i64().unwrap();
        }
        let late = Arc::new(Mutex::new(Vec::new()));
        let seen = late.clone();
        let op = (s.make)(grace).on_late(move |l| {
            seen.lock().unwrap().push(json!([l.start, l.end, l.late_by]));
        });
        assert_eq!(op.store_name(), def["store_name"], "{}: store name", s.name);
        let p: Arc<dyn StorePartition> = partition.clone();
        let changelog_sink: Arc<dyn ChangelogSink> = sink.clone();
        let mut txn = if indexed {
            WindowedTransaction::with_index(p, Codec::Json, Some(changelog_sink), Arc::new(WindowIndex::new(1000)))
        } else {
            WindowedTransaction::new(p, Codec::Json, Some(changelog_sink))
        };
        for r in cp["records"].as_array().unwrap() {
            let key = &r["key"];
            let value: V = serde_json::from_value(r["value"].clone()).expect("record value");
            let ts = r["timestamp_ms"].as_i64().unwrap();
            let emitted = op
                .process(&mut txn, &prefix_of(key), ts, &value)
                .map(|ws| ws.into_iter().map(|w| result_json(s, w, key)).collect())
                .map_err(|e| e.to_string());
            let failed = emitted.is_err();
            records.push(Got {
                offset: r["offset"].as_i64().unwrap(),
                emitted,
                late: std::mem::take(&mut *late.lock().unwrap()),
            });
            if failed {
                stopped = true;
                break;
            }
        }
        if stopped {
            break;
        }
        let before = sink.records().len();
        // quixstreams abandoned this checkpoint (a record raised there);
        // we commit what that record would have.
        let processed = match cp["processed_offsets"]["input"].as_i64() {
            Some(p) => p,
            None => cp["records"].as_array().unwrap().last().unwrap()["offset"]
                .as_i64()
                .unwrap(),
        };
        txn.prepare(Some(&ProcessedOffsets::new().with("input", processed)))
            .unwrap();
        let changelog_offset = match cp["changelog_offset"].as_u64() {
            Some(o) => Some(o),
            None => (sink.records().len() as u64).checked_sub(1),
        };
        txn.flush(changelog_offset).unwrap();
        let mut produced: Vec<_> = sink.records()[before..]
            .iter()
            .map(|r| {
                (
                    String::from_utf8(r.processed_offsets.clone().unwrap()).unwrap(),
                    r.cf.clone(),
                    hex(&r.key),
                    r.value.as_deref().map(hex),
                )
            })
            .collect();
        produced.sort();
        changelog.push(produced);
    }
    Replay {
        column_families: dump(&*partition),
        fixture: fx,
        records,
        changelog,
    }
}

fn result_json<V, K, G: Aggregation<V>>(
    s: &Scenario<'_, V, K, G>,
    w: WindowResult<G::Output>,
    current: &Value,
) -> Value {
    let mut window = (s.window)(w.value);
    window["start"] = json!(w.start);
    window["end"] = json!(w.end);
    json!({ "key": label(&w.key, current), "window": window })
}

/// The fixture's records in order.
pub fn expected_records(fx: &Value) -> Vec<&Value> {
    fx["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["records"].as_array().unwrap())
        .collect()
}

/// The fixture's changelog per checkpoint, sorted as [`Replay::changelog`].
pub fn expected_changelog(fx: &Value) -> Vec<Changelog> {
    fx["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["aborted"].as_bool().unwrap())
        .map(|c| {
            let mut v: Vec<_> = c["changelog"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["processed_offsets"].as_str().unwrap().to_owned(),
                        r["cf"].as_str().unwrap().to_owned(),
                        r["key_hex"].as_str().unwrap().to_owned(),
                        r["value_hex"].as_str().map(str::to_owned),
                    )
                })
                .collect();
            v.sort();
            v
        })
        .collect()
}

/// The fixture's emitted list of record `r` for the scenario's emit mode.
pub fn expected_emitted(fx: &Value, r: &Value) -> Vec<Value> {
    let list = if fx["definition"]["emit"] == "current" {
        "updated"
    } else {
        "expired"
    };
    r[list].as_array().cloned().unwrap_or_default()
}

/// The fixture's late reports of record `r`, as `[start, end, late_by]`.
pub fn expected_late(r: &Value) -> Vec<Value> {
    r["on_late"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| json!([l["start"], l["end"], l["late_by_ms"]]))
        .collect()
}

/// The emit mode a fixture stands for.
pub fn emit_of(fx: &Value) -> Emit {
    if fx["definition"]["emit"] == "current" {
        Emit::OnUpdate
    } else {
        Emit::OnClose
    }
}

/// Sorts emitted windows by key, then window (partition closing emits
/// in quixstreams' `keys()` order, B17).
pub fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|w| w.to_string());
    v
}

/// Column families with `__values__` values decoded (B13: quixstreams
/// stores several collected columns in Python set order).
pub fn values_decoded(cfs: &Value) -> Value {
    let mut out = cfs.clone();
    if let Some(items) = out.get_mut("__values__").and_then(Value::as_array_mut) {
        for item in items {
            let v: Value = serde_json::from_slice(&unhex(item[1].as_str().unwrap())).unwrap();
            item[1] = v;
        }
    }
    out
}

/// Changelog records with `__values__` values decoded (B13).
fn changelog_values_decoded(
    records: &[(String, String, String, Option<String>)],
) -> Vec<(String, String, String, Value)> {
    let mut out: Vec<_> = records
        .iter()
        .map(|(h, cf, k, v)| {
            let value = match v {
                Some(v) if cf == "__values__" => serde_json::from_slice(&unhex(v)).unwrap(),
                Some(v) => json!(v),
                None => Value::Null,
            };
            (h.clone(), cf.clone(), k.clone(), value)
        })
        .collect();
    out.sort_by_key(|r| format!("{r:?}"));
    out
}

/// Which records of a scenario our operators treat differently from
/// quixstreams on purpose (a bug of quixstreams 3.28.1 we fix).
pub struct Divergence {
    /// The bug's name in `docs/formats.md` (`B3`, ...).
    pub bug: &'static str,
    /// The first record (offset) where results differ; records before
    /// it must match, and so must checkpoints that end before it.
    pub from_offset: i64,
}

/// Compares a replay with its fixture: every record's emitted windows and
/// late reports, every checkpoint's changelog records and the final
/// column families; with a divergence, only what comes before it.
pub fn check(s: &str, got: &Replay, divergence: Option<&Divergence>) {
    let fx = &got.fixture;
    if let Some(d) = divergence {
        eprintln!("{s}: compared up to record @{} where {} shows", d.from_offset, d.bug);
    }
    let partition_closing = fx["definition"]["closing_strategy"] == "partition";
    let upto = divergence.map_or(i64::MAX, |d| d.from_offset);
    let want = expected_records(fx);
    for (g, w) in got.records.iter().zip(&want) {
        assert_eq!(g.offset, w["offset"].as_i64().unwrap());
        if g.offset >= upto {
            break;
        }
        match (&g.emitted, w.get("raised")) {
            (Err(e), Some(raised)) => {
                eprintln!("{s} @{}: both raise: ours {e:?}, quixstreams {raised}", g.offset);
                continue;
            }
            (Err(e), None) => panic!("{s} @{}: we failed ({e}) where quixstreams did not", g.offset),
            (Ok(_), Some(raised)) => panic!("{s} @{}: quixstreams raised {raised}, we did not", g.offset),
            (Ok(emitted), None) => {
                let (mut ours, mut theirs) = (emitted.clone(), expected_emitted(fx, w));
                if partition_closing {
                    ours = sorted(ours);
                    theirs = sorted(theirs);
                }
                assert_eq!(
                    Value::Array(ours),
                    Value::Array(theirs),
                    "{s}: emitted windows of record @{} (ts {})",
                    g.offset,
                    w["timestamp_ms"]
                );
            }
        }
        assert_eq!(g.late, expected_late(w), "{s}: late reports of record @{}", g.offset);
    }
    if divergence.is_none() {
        assert_eq!(got.records.len(), want.len(), "{s}: records replayed");
    }
    // A checkpoint is comparable if all its records come before the divergence.
    let complete: Vec<bool> = fx["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["aborted"].as_bool().unwrap())
        .map(|c| {
            c["records"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["offset"].as_i64().unwrap() < upto)
        })
        .collect();
    let b13 = fx["bugs"].as_array().unwrap().contains(&json!("B13"));
    let theirs = expected_changelog(fx);
    for (i, ours) in got.changelog.iter().enumerate() {
        if !complete.get(i).copied().unwrap_or(false) {
            break;
        }
        if b13 {
            assert_eq!(
                changelog_values_decoded(ours),
                changelog_values_decoded(&theirs[i]),
                "{s}: changelog records of checkpoint {i} (__values__ decoded, B13)"
            );
        } else {
            assert_eq!(ours, &theirs[i], "{s}: changelog records of checkpoint {i}");
        }
    }
    if divergence.is_none() {
        assert_eq!(got.changelog.len(), theirs.len(), "{s}: checkpoints");
        if b13 {
            assert_eq!(
                values_decoded(&got.column_families),
                values_decoded(&fx["column_families"]),
                "{s}: final column families (__values__ decoded, B13)"
            );
        } else {
            assert_eq!(got.column_families, fx["column_families"], "{s}: final column families");
        }
    }
}

/// Our record `offset` of a replay.
pub fn ours(got: &Replay, offset: i64) -> &Got {
    got.records
        .iter()
        .find(|g| g.offset == offset)
        .unwrap_or_else(|| panic!("record @{offset} was not replayed"))
}

/// Their record `offset` of a fixture.
pub fn theirs(fx: &Value, offset: i64) -> &Value {
    expected_records(fx)
        .into_iter()
        .find(|r| r["offset"].as_i64() == Some(offset))
        .unwrap_or_else(|| panic!("no record @{offset}"))
}
