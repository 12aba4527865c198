//! `cargo xtask fixtures`: writes the format fixtures in `fixtures/format/`
//! from scripted sessions run by the code. The test below regenerates them
//! in memory and fails if the checked-in files differ, so any change to a
//! byte layout shows up as a fixture diff in review.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};
use state_core::{
    keys, ChangelogSink, Codec, Direction, MemoryPartition, ProcessedOffsets, RecordingSink, StorePartition,
};
use state_txn::{
    CollectedValues, ExpireOptions, ExpiredWindow, PartitionTransaction, TimestampedConfig, TimestampedTransaction,
    WindowedTransaction,
};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn fixtures_dir() -> PathBuf {
    // Where `cargo run` says this crate is now (a shared target directory
    // can hold a binary built in another checkout), else where it was built.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../../fixtures/format")
}

struct Session {
    partition: Arc<MemoryPartition>,
    sink: Arc<RecordingSink>,
}

impl Session {
    fn new() -> Self {
        Session {
            partition: Arc::new(MemoryPartition::new()),
            sink: Arc::new(RecordingSink::new()),
        }
    }

    fn sink(&self) -> Option<Arc<dyn ChangelogSink>> {
        Some(self.sink.clone() as Arc<dyn ChangelogSink>)
    }

    fn finish(self, scenario: &str, codec: Codec) -> Value {
        let changelog: Vec<Value> = self
            .sink
            .records()
            .iter()
            .map(|r| {
                json!({
                    "cf": r.cf,
                    "key_hex": hex(&r.key),
                    "value_hex": r.value.as_deref().map(hex),
                    "processed_offsets": r.processed_offsets.as_deref().map(String::from_utf8_lossy),
                })
            })
            .collect();
        let mut cfs = serde_json::Map::new();
        for name in self.partition.column_families().unwrap_or_default() {
            let items: Vec<Value> = self
                .partition
                .iter_range(&name, b"", None, Direction::Forward)
                .map(|it| {
                    it.filter_map(Result::ok)
                        .map(|(k, v)| json!([hex(&k), hex(&v)]))
                        .collect()
                })
                .unwrap_or_default();
            if !items.is_empty() {
                cfs.insert(name, Value::Array(items));
            }
        }
        json!({
            "scenario": scenario,
            "codec": codec.name(),
            "generator": "cargo xtask fixtures",
            "changelog": changelog,
            "column_families": cfs,
        })
    }
}

fn offsets(n: i64) -> ProcessedOffsets {
    ProcessedOffsets::new().with("input", n)
}

fn kv(codec: Codec) -> Result<Value, String> {
    let s = Session::new();
    let e = |e: state_txn::TxnError| e.to_string();
    let mut t = PartitionTransaction::new(s.partition.clone(), codec, s.sink());
    t.set("count", &1u64, b"user-1").map_err(e)?;
    t.set("name", "Ada", b"user-1").map_err(e)?;
    t.set_bytes(b"raw-key", b"\x00\x01", b"user-2").map_err(e)?;
    t.delete("gone", b"user-2").map_err(e)?;
    t.prepare(Some(&offsets(5))).map_err(e)?;
    t.flush(Some(3)).map_err(e)?;
    let mut t = PartitionTransaction::new(s.partition.clone(), codec, s.sink());
    t.set("count", &2u64, b"user-1").map_err(e)?;
    t.delete("name", b"user-1").map_err(e)?;
    t.prepare(Some(&offsets(6))).map_err(e)?;
    t.flush(Some(5)).map_err(e)?;
    Ok(s.finish("kv", codec))
}

fn windowed(codec: Codec) -> Result<Value, String> {
    let s = Session::new();
    let e = |e: state_txn::TxnError| e.to_string();
    let mut t = WindowedTransaction::new(s.partition.clone(), codec, s.sink());
    t.update_window(0, 1000, &1u64, 10, b"page").map_err(e)?;
    t.update_window(1000, 2000, &2u64, 1500, b"page").map_err(e)?;
    t.add_to_collection(Some(1000), "click", b"page").map_err(e)?;
    let _: Vec<ExpiredWindow<u64, ()>> = t.expire_windows(0, b"page", ExpireOptions::delete()).map_err(e)?;
    t.prepare(Some(&offsets(1))).map_err(e)?;
    t.flush(Some(1)).map_err(e)?;
    let mut t = WindowedTransaction::new(s.partition.clone(), codec, s.sink());
    t.delete_windows(1000, CollectedValues::Delete, b"page").map_err(e)?;
    let _: Vec<ExpiredWindow<u64, ()>> = t.expire_all_windows(5000, 1000, ExpireOptions::delete()).map_err(e)?;
    t.prepare(Some(&offsets(2))).map_err(e)?;
    t.flush(Some(2)).map_err(e)?;
    Ok(s.finish("windowed", codec))
}

fn timestamped(codec: Codec) -> Result<Value, String> {
    let s = Session::new();
    let e = |e: state_txn::TxnError| e.to_string();
    let cfg = TimestampedConfig {
        grace_ms: 100,
        keep_duplicates: true,
    };
    let mut t = TimestampedTransaction::new(s.partition.clone(), codec, s.sink(), cfg);
    t.set_for_timestamp(10, "a", b"sensor").map_err(e)?;
    t.set_for_timestamp(10, "b", b"sensor").map_err(e)?;
    t.set_for_timestamp(250, "c", b"sensor").map_err(e)?;
    t.prepare(Some(&offsets(7))).map_err(e)?;
    t.flush(Some(3)).map_err(e)?;
    Ok(s.finish("timestamped", codec))
}

fn key_layouts() -> Value {
    json!({
        "prefixed key (prefix 'user', key \"count\" as JSON)": hex(&keys::prefixed_key(b"user", b"\"count\"")),
        "prefixed key (empty prefix)": hex(&keys::prefixed_key(b"", b"\"count\"")),
        "window key (prefix 'k', 1000..2000)": hex(&keys::window_key(b"k", 1000, 2000)),
        "timestamped key (prefix 'k', ts 1000, counter 2)": hex(&keys::timestamped_key(b"k", 1000, 2)),
        "u64 1": hex(&keys::encode_u64(1)),
        "changelog offset value 42": hex(&keys::encode_u64(42)),
    })
}

/// Every fixture file name and its content, as the code produces them now.
pub fn generate() -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for codec in [Codec::MsgPack, Codec::Json] {
        for (name, v) in [
            ("kv", kv(codec)?),
            ("windowed", windowed(codec)?),
            ("timestamped", timestamped(codec)?),
        ] {
            out.push((format!("{name}-{}.json", codec.name()), pretty(&v)?));
        }
    }
    out.push(("key-layouts.json".to_string(), pretty(&key_layouts())?));
    Ok(out)
}

fn pretty(v: &Value) -> Result<String, String> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|e| e.to_string())
}

pub fn run() -> Result<(), String> {
    let dir = fixtures_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, content) in generate()? {
        let path = dir.join(&name);
        let old = std::fs::read_to_string(&path).ok();
        std::fs::write(&path, &content).map_err(|e| format!("{}: {e}", path.display()))?;
        let status = match old {
            None => "created",
            Some(o) if o == content => "unchanged",
            Some(_) => "CHANGED",
        };
        eprintln!("{status:>9} {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn checked_in_fixtures_match_the_code() {
        let dir = super::fixtures_dir();
        for (name, content) in super::generate().unwrap() {
            let path = dir.join(&name);
            let on_disk = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask fixtures`", path.display()));
            assert_eq!(
                on_disk, content,
                "{name} differs from what the code writes: a format changed. If intended, run \
                 `cargo xtask fixtures` and review the diff"
            );
        }
    }
}
