//! `statectl` end to end: the binary against real RocksDB and fjall
//! partitions, and restore/verify against changelogs on the in-process mock
//! cluster.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use state_changelog::ChangelogProducer;
use state_core::{Codec, ProcessedOffsets, StoreFormat, StoreLocation, StorePartition};
use state_fjall::{FjallBackend, FjallOptions};
use state_rocksdb::{RocksDbOptions, RocksDbPartition};
use state_txn::{PartitionTransaction, WindowedTransaction};
use test_support::kafka::{client, mock_cluster, Cluster};

const TOPIC: &str = "changelog__app--clicks--counts";

fn statectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_statectl"))
        .args(args)
        .output()
        .expect("statectl runs")
}

/// `statectl COMMAND DIR --brokers B --topic T --partition P EXTRA...`
/// (restore and verify).
fn on_changelog(command: &str, dir: &Path, brokers: &str, topic: &str, partition: u32, extra: &[&str]) -> Output {
    let dir = dir.display().to_string();
    let partition = partition.to_string();
    let mut args = vec![
        command,
        dir.as_str(),
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--partition",
        partition.as_str(),
    ];
    args.extend_from_slice(extra);
    statectl(&args)
}

fn stdout_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A partition with key-value data in `default`, a windowed aggregate, and
/// changelog offset 41.
fn write_partition(dir: &Path) {
    let p = Arc::new(RocksDbPartition::open(dir, &RocksDbOptions::default()).unwrap());
    let mut t = PartitionTransaction::new(p.clone(), Codec::MsgPack, None);
    t.set("count", &7u64, b"user-1").unwrap();
    t.set("name", "Ada", b"user-2").unwrap();
    t.prepare(None).unwrap();
    t.flush(Some(40)).unwrap();
    let mut w = WindowedTransaction::new(p, Codec::MsgPack, None);
    w.update_window(0, 10, &3u64, 5, b"page").unwrap();
    w.prepare(None).unwrap();
    w.flush(Some(41)).unwrap();
}

#[test]
fn inspect_reports_column_families_keys_size_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let out = statectl(&["inspect", dir.path().to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = &stdout_lines(&out)[0];
    assert_eq!(v["changelog_offset"], 41);
    assert_eq!(v["checksums"], "verified");
    assert_eq!(v["keys_verified"], 5, "every key of every column family read");
    assert!(v["size_bytes"].as_u64().unwrap() > 0);
    let cfs = v["column_families"].as_array().unwrap();
    let default = cfs.iter().find(|c| c["name"] == "default").unwrap();
    assert_eq!(default["approximate_keys"], 3, "two key-value keys and one window");
    let names: Vec<&str> = cfs.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.contains(&"__metadata__"));

    let text = statectl(&["inspect", dir.path().to_str().unwrap()]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("changelog offset  41"), "{text}");
}

#[test]
fn dump_prints_sorted_decoded_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let out = statectl(&["dump", dir.path().to_str().unwrap(), "--cf", "default"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 3);
    let keys: Vec<&str> = lines.iter().map(|l| l["key_hex"].as_str().unwrap()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "sorted by key");
    let count = lines.iter().find(|l| l["value"] == 7).expect("user-1's count decoded");
    assert_eq!(count["cf"], "default");
    assert_eq!(count["value_hex"], "07");
    // "user-1|" then the MessagePack-encoded key: not UTF-8, so no text form.
    assert!(count["key_hex"].as_str().unwrap().starts_with("757365722d317c"));
    assert!(count["key"].is_null());
    assert!(lines.iter().any(|l| l["value"] == "Ada"));
    // The window key holds big-endian timestamps: not printable, so null.
    assert!(lines.iter().any(|l| l["key"].is_null() && l["value"] == 3));

    let all = stdout_lines(&statectl(&["dump", dir.path().to_str().unwrap()]));
    let meta = all.iter().find(|l| l["cf"] == "__metadata__").unwrap();
    assert_eq!(meta["value"], 41, "the stored offset is shown as a number");
    let cfs: Vec<&str> = all.iter().map(|l| l["cf"].as_str().unwrap()).collect();
    let mut sorted = cfs.clone();
    sorted.sort();
    assert_eq!(cfs, sorted, "sorted by column family");
}

#[test]
fn reading_commands_work_while_the_application_holds_the_partition() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let _held = RocksDbPartition::open(dir.path(), &RocksDbOptions::default()).unwrap();
    let out = statectl(&["dump", dir.path().to_str().unwrap(), "--cf", "default"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_lines(&out).len(), 3);
}

#[test]
fn bad_paths_and_arguments_get_clear_errors() {
    let missing = statectl(&["inspect", "/nonexistent/state/0"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("no store partition at /nonexistent/state/0"),
        "{}",
        stderr(&missing)
    );

    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let cf = statectl(&["dump", dir.path().to_str().unwrap(), "--cf", "nope"]);
    assert_eq!(cf.status.code(), Some(2));
    assert!(stderr(&cf).contains("no column family \"nope\""), "{}", stderr(&cf));

    let corrupt = tempfile::tempdir().unwrap();
    std::fs::write(corrupt.path().join("CURRENT"), b"MANIFEST-999999\n").unwrap();
    let out = statectl(&["inspect", corrupt.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));

    let help = statectl(&["restore", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in ["--brokers", "--topic", "--partition", "--committed", "TOPIC=OFFSET"] {
        assert!(help.contains(needle), "restore --help mentions {needle}:\n{help}");
    }
}

/// quixstreams (3.28.1, JSON serializer) wrote this directory; the expected
/// lines are what quixstreams itself reads from it (generate.py).
#[test]
fn dumps_a_quixstreams_state_directory() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/quixstreams");
    // Copy: opening replays the WAL, which must not touch the checked-in files.
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root.join("kv-state-dir")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let out = statectl(&["dump", dir.path().to_str().unwrap(), "--codec", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected: Vec<Value> = std::fs::read_to_string(root.join("kv-state-dir.expected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<Value> = stdout_lines(&out)
        .into_iter()
        .filter(|l| l["cf"] != "__metadata__")
        .map(|l| serde_json::json!({"cf": l["cf"], "key_hex": l["key_hex"], "value": l["value"]}))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
}

fn copy_fixture_dir(name: &str) -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/quixstreams");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root.join(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

const T0: u64 = 1_700_000_000_000;

/// quixstreams wrote this directory in per-write TTL mode: dump shows the
/// payloads without their stamps, and each value's expiry.
#[test]
fn dumps_a_quixstreams_ttl_state_directory_without_stamps() {
    let dir = copy_fixture_dir("ttl-state-dir");
    let out = statectl(&[
        "dump",
        dir.path().to_str().unwrap(),
        "--codec",
        "json",
        "--cf",
        "default",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Vec<Value> = stdout_lines(&out)
        .into_iter()
        .map(|l| serde_json::json!([l["key"], l["value"], l["value_hex"], l["expires_at"], l["expired"]]))
        .collect();
    assert_eq!(
        got,
        vec![
            serde_json::json!(["p|\"k1\"", "v", "227622", T0 + 10_000, false]),
            serde_json::json!(["p|\"k2\"", [1, 2], "5b312c325d", "never", false]),
            serde_json::json!(["p|raw", null, "0102", T0 + 5_000, false]),
        ]
    );
    // The rest of the directory: metadata numbers, the marker, the index.
    let all = stdout_lines(&statectl(&["dump", dir.path().to_str().unwrap(), "--codec", "json"]));
    let meta = |key: &str| {
        all.iter()
            .find(|l| l["cf"] == "__metadata__" && l["key"] == key)
            .map(|l| l["value"].clone())
    };
    assert_eq!(meta("__ttl_high_water_ms__"), Some(serde_json::json!(T0)));
    assert_eq!(meta("__ttl_format_version__"), Some(serde_json::json!(2)));
    assert!(all.iter().any(|l| l["cf"] == "__ttl_system__" && l["value"] == 2));
}

#[test]
fn inspect_shows_the_recorded_codec_and_detects_ttl_mode() {
    let dir = copy_fixture_dir("ttl-state-dir");
    let out = statectl(&["inspect", dir.path().to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let i = &stdout_lines(&out)[0];
    assert!(i["codec"].is_null(), "quixstreams records no codec");
    assert_eq!(i["ttl"]["enabled"], true);
    assert_eq!(i["ttl"]["format_version"], 2);
    assert_eq!(i["ttl"]["high_water_ms"], T0);
    assert_eq!(i["ttl"]["migration_done"], true);
    assert_eq!(i["ttl"]["stamped_values_sampled"], 3);
    assert_eq!(i["ttl"]["values_sampled"], 3);
    assert!(i["ttl"]["refused"].is_null());
    assert_eq!(i["ttl"]["replay_pending_keys"], 0);
    let text = statectl(&["inspect", dir.path().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("per-write TTL     on"), "{text}");
    assert!(text.contains("none recorded"), "{text}");

    // A partition whose codec was recorded on open: shown, and dump uses it.
    let dir = tempfile::tempdir().unwrap();
    {
        let p = Arc::new(RocksDbPartition::open(dir.path(), &RocksDbOptions::default()).unwrap());
        state_core::check_store_format(&*p, &state_core::StoreFormat::key_value(Codec::Json), dir.path()).unwrap();
        let mut t = PartitionTransaction::new(p, Codec::Json, None);
        t.set("count", &7, b"u").unwrap();
        t.commit().unwrap();
    }
    let i = &stdout_lines(&statectl(&["inspect", dir.path().to_str().unwrap(), "--json"]))[0];
    assert_eq!(i["codec"], "json");
    assert_eq!(i["store_kind"], "key-value");
    assert_eq!(i["ttl"]["enabled"], false);
    let lines = stdout_lines(&statectl(&["dump", dir.path().to_str().unwrap(), "--cf", "default"]));
    assert_eq!(
        lines[0]["value"], 7,
        "decoded with the recorded codec, not MessagePack (which reads 55)"
    );
}

/// Issue 25: `--codec` is checked against the codec the partition records,
/// and a partition that records none is read with the codec its values are
/// in, or refused when they do not tell; never misread.
#[test]
fn dump_never_misreads_values_with_another_codec() {
    // Recorded JSON, asked for MessagePack: refused, nothing printed.
    let dir = tempfile::tempdir().unwrap();
    {
        let p = Arc::new(RocksDbPartition::open(dir.path(), &RocksDbOptions::default()).unwrap());
        state_core::check_store_format(&*p, &StoreFormat::key_value(Codec::Json), dir.path()).unwrap();
        let mut t = PartitionTransaction::new(p, Codec::Json, None);
        t.set("count", &7, b"u").unwrap();
        t.commit().unwrap();
    }
    let path = dir.path().to_str().unwrap();
    let out = statectl(&["dump", path, "--codec", "msgpack"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stdout.is_empty(), "nothing printed before the refusal");
    assert!(stderr(&out).contains("records value codec json"), "{}", stderr(&out));
    assert!(statectl(&["dump", path, "--codec", "json"]).status.success());
    let raw = statectl(&["dump", path, "--codec", "raw", "--cf", "default"]);
    assert!(raw.status.success(), "raw shows the bytes: {}", stderr(&raw));
    assert_eq!(stdout_lines(&raw)[0]["value"], "7");

    // quixstreams records no codec: its JSON values decide, as quixstreams reads them.
    let quix = copy_fixture_dir("kv-state-dir");
    let quix_path = quix.path().to_str().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/quixstreams");
    let expected: Vec<Value> = std::fs::read_to_string(root.join("kv-state-dir.expected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let out = statectl(&["dump", quix_path, "--cf", "default"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Vec<Value> = stdout_lines(&out)
        .into_iter()
        .map(|l| serde_json::json!({"cf": l["cf"], "key_hex": l["key_hex"], "value": l["value"]}))
        .collect();
    assert_eq!(got, expected, "read as JSON without --codec");
    let out = statectl(&["dump", quix_path, "--codec", "msgpack"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("pass --codec json"), "{}", stderr(&out));

    // Values that read both ways (single digits): the operator must say.
    let digits = tempfile::tempdir().unwrap();
    {
        let p = RocksDbPartition::open(digits.path(), &RocksDbOptions::default()).unwrap();
        p.put("default", b"a", b"7").unwrap();
        p.put("default", b"b", b"2").unwrap();
    }
    let digits_path = digits.path().to_str().unwrap();
    let out = statectl(&["dump", digits_path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--codec json (quixstreams' default) or --codec msgpack"),
        "{}",
        stderr(&out)
    );
    let out = statectl(&["dump", digits_path, "--codec", "json", "--cf", "default"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_lines(&out)[0]["value"], 7);
}

/// 2,000 keys of 100 incompressible bytes each in `partition`, flushed.
fn write_many(partition: &dyn StorePartition) {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut batch = state_core::WriteBatch::new();
    for i in 0..2000u32 {
        let value: Vec<u8> = (0..100)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (seed >> 56) as u8
            })
            .collect();
        batch.put("default", format!("key-{i:05}").as_bytes(), &value);
    }
    partition.write_bulk(&batch).unwrap();
    partition.persist().unwrap();
}

/// The largest file under `dir` whose name `matches`.
fn largest_file(dir: &Path, matches: &dyn Fn(&Path) -> bool) -> Option<(PathBuf, u64)> {
    listing(dir)
        .into_iter()
        .filter(|(p, _, _)| matches(p))
        .map(|(p, len, _)| (p, len))
        .max_by_key(|(_, len)| *len)
}

/// Flips 16 bytes at `offset` of `file`.
fn flip_bytes(file: &Path, offset: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    for b in &mut bytes[offset..offset + 16] {
        *b ^= 0xff;
    }
    std::fs::write(file, bytes).unwrap();
}

/// A damaged block is found by the commands that claim a partition is
/// healthy, and reported as a corrupt partition wherever it is reached.
/// `beyond_the_sample`: the damage is past the values inspect samples, so
/// inspect without the full read does not see it.
fn check_corruption_is_reported(dir: &Path, backend: &str, beyond_the_sample: bool) {
    let path = dir.to_str().unwrap();
    let out = statectl(&["inspect", path]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "inspect: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let corrupt = format!("partition at {path} is corrupt or not a {backend} database");
    assert!(stderr(&out).contains(&corrupt), "{}", stderr(&out));
    let out = statectl(&["dump", path, "--codec", "raw"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&corrupt), "dump: {}", stderr(&out));
    if !beyond_the_sample {
        return;
    }
    // Without the full read, inspect says it did not verify.
    let out = statectl(&["inspect", path, "--skip-checksums"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("checksums         not verified"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Issue 25: a corrupt SST data block made inspect answer 0 and dump end
/// with a generic backend error.
#[test]
fn a_damaged_rocksdb_block_is_a_corrupt_partition() {
    let dir = tempfile::tempdir().unwrap();
    write_many(&RocksDbPartition::open(dir.path(), &RocksDbOptions::default()).unwrap());
    let healthy = statectl(&["inspect", dir.path().to_str().unwrap()]);
    assert!(healthy.status.success(), "{}", stderr(&healthy));
    let (sst, len) = largest_file(dir.path(), &|p| p.extension().is_some_and(|e| e == "sst")).expect("an SST file");
    assert!(len > 100_000, "{sst:?} holds many data blocks");
    // Data blocks come first in an SST file, the index and filter last;
    // half-way is a data block past the first keys.
    flip_bytes(&sst, len as usize / 2);
    check_corruption_is_reported(dir.path(), "rocksdb", true);

    // restore (continuing the partition) and verify read it whole first.
    let c = changelog();
    {
        let p = RocksDbPartition::open(dir.path(), &RocksDbOptions::default()).unwrap();
        p.write_changelog_offset(1).unwrap();
    }
    for command in ["restore", "verify"] {
        let out = on_changelog(command, dir.path(), &c.brokers, TOPIC, 1, &["--committed", "clicks=31"]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert!(
            stderr(&out).contains("is corrupt or not a rocksdb database"),
            "{command}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_damaged_fjall_block_is_a_corrupt_partition() {
    let dir = tempfile::tempdir().unwrap();
    let options = FjallOptions {
        max_memtable_size: 32 << 10,
        ..FjallOptions::default()
    };
    {
        let p = state_fjall::FjallPartition::open(dir.path(), &options).unwrap();
        write_many(&p);
        // Flushed to tables in the background: wait for them.
        let started = std::time::Instant::now();
        let table = |p: &Path| p.parent().is_some_and(|d| d.ends_with("tables"));
        while largest_file(dir.path(), &table).is_none_or(|(_, len)| len < 10_000) {
            assert!(started.elapsed() < Duration::from_secs(60), "no table written");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let (table, len) =
        largest_file(dir.path(), &|p| p.parent().is_some_and(|d| d.ends_with("tables"))).expect("a table");
    assert!(len > 10_000, "{table:?}");
    flip_bytes(&table, 1000);
    check_corruption_is_reported(dir.path(), "fjall", false);
}

/// Issue 25: colour codes reached stderr when it was not a terminal, and
/// `--log 'nonsense['` fell back to `warn` silently.
#[test]
fn logs_are_plain_when_not_on_a_terminal_and_bad_filters_are_refused() {
    // A fjall partition in a directory others can read: opening it warns.
    let dir = tempfile::tempdir().unwrap();
    drop(state_fjall::FjallPartition::open(dir.path(), &FjallOptions::default()).unwrap());
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_statectl"))
        .args(["inspect", dir.path().to_str().unwrap()])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("WARN"), "a warning was logged: {}", stderr(&out));
    assert!(
        !stderr(&out).contains('\u{1b}'),
        "no escape codes on a pipe: {:?}",
        stderr(&out)
    );

    for bad in ["nonsense[", "info,x=notalevel"] {
        let out = statectl(&["--log", bad, "inspect", dir.path().to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "--log {bad}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--log") && stderr(&out).contains("not a log filter"),
            "{}",
            stderr(&out)
        );
    }
    let out = statectl(&[
        "--log",
        "state_core=debug,warn",
        "inspect",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "directives are filters too: {}", stderr(&out));
}

/// Issue 25: numeric arguments are checked against their bounds.
#[test]
fn numeric_arguments_out_of_bounds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0");
    let path = path.to_str().unwrap();
    for (args, says) in [
        (&["--partition", "3000000000"][..], "not in 0..=2147483647"),
        (&["--partition", "0", "--timeout", "0"], "not in 1..=3600"),
        (
            &["--partition", "0", "--timeout", "18446744073709551615"],
            "not in 1..=3600",
        ),
    ] {
        let mut all = vec!["restore", path, "--brokers", "127.0.0.1:1", "--topic", TOPIC];
        all.extend_from_slice(args);
        let out = statectl(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

// ---- restore and verify on the mock cluster ---------------------------------

struct Changelog {
    cluster: Cluster,
    brokers: String,
    _source: tempfile::TempDir,
    /// The source partition's directory.
    dir: PathBuf,
}

/// Writes three checkpoints of a key-value store to `p` through a
/// changelog on partition 1 of `TOPIC`; `p` holds all three (changelog
/// offsets 0..=5).
fn write_checkpoints(brokers: &str, p: Arc<dyn StorePartition>) {
    let producer = Arc::new(ChangelogProducer::new(&client(brokers)).unwrap());
    for (i, processed) in [10i64, 20, 30].into_iter().enumerate() {
        let mut t = PartitionTransaction::new(p.clone(), Codec::MsgPack, Some(producer.sink(TOPIC, 1)));
        t.set("count", &(i as u64 + 1), b"a").unwrap();
        t.set(&format!("k{i}"), "v", b"b").unwrap();
        t.prepare(Some(&ProcessedOffsets::new().with("clicks", processed)))
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
        let offset = producer.last_offset(TOPIC, 1).map(|o| o as u64);
        t.flush(offset).unwrap();
    }
}

fn cluster() -> (Cluster, String) {
    let cluster = mock_cluster(&[(TOPIC, 2)]).unwrap();
    let brokers = cluster.bootstrap_servers();
    (cluster, brokers)
}

/// The checkpoints of [`write_checkpoints`] in a RocksDB partition that
/// records no store kind or codec (replayed as it is).
fn changelog() -> Changelog {
    let (cluster, brokers) = cluster();
    let source = tempfile::tempdir().unwrap();
    let p = Arc::new(RocksDbPartition::open(source.path(), &RocksDbOptions::default()).unwrap());
    write_checkpoints(&brokers, p);
    Changelog {
        cluster,
        brokers,
        dir: source.path().to_owned(),
        _source: source,
    }
}

/// The checkpoints of [`write_checkpoints`] in partition 1 of a store
/// opened through the fjall backend, which records its kind (key-value)
/// and codec (MessagePack) as the manager does on assignment. Closed on
/// return.
fn fjall_changelog() -> Changelog {
    let (cluster, brokers) = cluster();
    let source = tempfile::tempdir().unwrap();
    let store = StoreLocation::new("counts", source.path());
    let p = FjallBackend::new(FjallOptions::default()).open(&store, 1).unwrap();
    state_core::check_store_format(&p, &StoreFormat::key_value(Codec::MsgPack), p.path()).unwrap();
    write_checkpoints(&brokers, Arc::new(p));
    Changelog {
        cluster,
        brokers,
        dir: store.partition_dir(1),
        _source: source,
    }
}

fn dump_default(dir: &Path) -> Vec<Value> {
    stdout_lines(&statectl(&["dump", dir.to_str().unwrap(), "--cf", "default"]))
}

#[test]
fn restore_rebuilds_the_partition_from_its_changelog() {
    let c = changelog();
    let target = tempfile::tempdir().unwrap();
    let dest = target.path().join("1");
    let out = on_changelog("restore", &dest, &c.brokers, TOPIC, 1, &["--committed", "clicks=31"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = &stdout_lines(&out)[0];
    assert_eq!(summary["applied"], 6);
    assert_eq!(summary["skipped"], 0);
    assert_eq!(summary["changelog_offset"], 5);
    assert_eq!(dump_default(&dest), dump_default(&c.dir));

    // Only the first two checkpoints committed: the third is skipped.
    let partial = target.path().join("partial");
    let out = on_changelog("restore", &partial, &c.brokers, TOPIC, 1, &["--committed", "clicks=21"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_lines(&out)[0]["skipped"], 2);
    let p = Arc::new(RocksDbPartition::open_read_only(&partial, &RocksDbOptions::default()).unwrap());
    let t = PartitionTransaction::new(p, Codec::MsgPack, None);
    assert_eq!(t.get::<_, u64>("count", b"a").unwrap(), Some(2));

    // A partition held by another process is refused, not waited on forever.
    let _held = RocksDbPartition::open(&dest, &RocksDbOptions::default()).unwrap();
    let out = on_changelog("restore", &dest, &c.brokers, TOPIC, 1, &["--committed", "clicks=31"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("locked"), "{}", stderr(&out));
}

/// `statectl COMMAND DIR` on `c`'s changelog (committed `clicks=31`),
/// with its scratch files under `tmp`, interrupted by SIGINT 1 s after it
/// starts: the broker answers every request 3 s late meanwhile, so the
/// signal lands before the replay ends.
fn interrupted(command: &str, dir: &Path, c: &Changelog, tmp: &Path) -> Output {
    c.cluster.broker_round_trip_time(1, Duration::from_secs(3)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_statectl"))
        .args([
            command,
            dir.to_str().unwrap(),
            "--brokers",
            &c.brokers,
            "--topic",
            TOPIC,
        ])
        .args(["--partition", "1", "--committed", "clicks=31", "--timeout", "60"])
        .env("TMPDIR", tmp)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("statectl runs");
    std::thread::sleep(Duration::from_secs(1));
    // `sh`'s own `kill`: no procps needed.
    let sent = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    c.cluster.broker_round_trip_time(1, Duration::ZERO).unwrap();
    out
}

#[test]
fn ctrl_c_stops_a_restore_consistent_and_the_same_command_continues_it() {
    let c = changelog();
    let target = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dest = target.path().join("1");
    let out = interrupted("restore", &dest, &c, tmp.path());
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted: the restore of"), "{}", stderr(&out));
    assert!(stderr(&out).contains("run the same command again"), "{}", stderr(&out));
    let out = on_changelog("restore", &dest, &c.brokers, TOPIC, 1, &["--committed", "clicks=31"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_lines(&out)[0]["changelog_offset"], 5);
    assert_eq!(dump_default(&dest), dump_default(&c.dir));
}

#[test]
fn ctrl_c_stops_a_verify_and_removes_its_scratch_copy() {
    let c = changelog();
    let tmp = tempfile::tempdir().unwrap();
    let out = interrupted("verify", &c.dir, &c, tmp.path());
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted: the verify of"), "{}", stderr(&out));
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "scratch files left behind: {left:?}");
}

#[test]
fn verify_passes_on_a_faithful_partition_and_lists_differences() {
    let c = changelog();
    let run = |dir: &Path| on_changelog("verify", dir, &c.brokers, TOPIC, 1, &["--committed", "clicks=31"]);
    let out = run(&c.dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["differences"], 0);
    assert_eq!(lines[0]["compared_keys"], 4);

    // Tamper: one changed value, one extra key.
    {
        let p = RocksDbPartition::open(&c.dir, &RocksDbOptions::default()).unwrap();
        let t = PartitionTransaction::new(Arc::new(p), Codec::MsgPack, None);
        let key = t.encode_key("count", b"a").unwrap();
        let extra = t.encode_key("extra", b"a").unwrap();
        let p = t.partition();
        p.put("default", &key, &Codec::MsgPack.encode(&99u64).unwrap()).unwrap();
        p.put("default", &extra, b"\x01").unwrap();
    }
    let out = run(&c.dir);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines = stdout_lines(&out);
    let kinds: Vec<&str> = lines.iter().filter_map(|l| l["difference"].as_str()).collect();
    assert_eq!(kinds.len(), 2, "{lines:?}");
    assert!(kinds.contains(&"value-differs") && kinds.contains(&"only-in-dir"));
    assert_eq!(lines.last().unwrap()["differences"], 2);
}

#[test]
fn unknown_topics_and_unreachable_brokers_are_reported() {
    let c = changelog();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("0");
    let out = on_changelog(
        "restore",
        &dest,
        &c.brokers,
        "changelog__app--nope--counts",
        0,
        &["--committed", "nope=1"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    let out = on_changelog("restore", &dest, &c.brokers, TOPIC, 7, &["--committed", "clicks=1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("there is no partition 7"), "{}", stderr(&out));

    let started = std::time::Instant::now();
    let out = on_changelog("restore", &dest, "127.0.0.1:1", TOPIC, 0, &["--timeout", "2"]);
    assert_eq!(out.status.code(), Some(2));
    // The error line names the broker and the cause, not only the log lines before it.
    let error = stderr(&out)
        .lines()
        .find(|l| l.starts_with("statectl: error:"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(error.contains("cannot reach the Kafka brokers"), "{}", stderr(&out));
    assert!(
        error.contains("127.0.0.1:1/bootstrap") && error.contains("Connection refused"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!dest.exists(), "nothing is created when the broker is unreachable");
}

/// Name, size and modification time of every file in `dir` and below.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            out.extend(listing(&entry.path()));
        } else {
            out.push((entry.path(), meta.len(), meta.modified().unwrap()));
        }
    }
    out.sort();
    out
}

/// Issue 25: restore writes only into a new or empty directory or an
/// existing partition, never beside another engine's (or anything else's)
/// files.
#[test]
fn restore_refuses_a_directory_that_holds_no_partition() {
    let c = changelog();
    let root = tempfile::tempdir().unwrap();
    // Something else's files.
    let other = root.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"not a partition").unwrap();
    // A fjall partition whose version file is gone: not recognisable.
    let fjall = root.path().join("fjall");
    {
        let p = state_fjall::FjallPartition::open(&fjall, &FjallOptions::default()).unwrap();
        p.put("default", b"k", b"v").unwrap();
    }
    std::fs::remove_file(fjall.join("version")).unwrap();
    // A store directory (partitions below it), not a partition.
    let store = root.path().join("store");
    write_partition(&store.join("0"));
    for dir in [&other, &fjall, &store] {
        let before = listing(dir);
        let out = on_changelog("restore", dir, &c.brokers, TOPIC, 1, &["--committed", "clicks=31"]);
        assert_eq!(out.status.code(), Some(2), "{}: {}", dir.display(), stderr(&out));
        assert!(
            stderr(&out).contains("is not empty and holds no rocksdb or fjall partition"),
            "{}",
            stderr(&out)
        );
        assert_eq!(listing(dir), before, "{}: nothing written", dir.display());
    }
    // A directory left with only RocksDB's empty LOCK file counts as empty.
    let lock_only = root.path().join("lock-only");
    std::fs::create_dir(&lock_only).unwrap();
    std::fs::write(lock_only.join("LOCK"), b"").unwrap();
    let out = on_changelog(
        "restore",
        &lock_only,
        &c.brokers,
        TOPIC,
        1,
        &["--committed", "clicks=31"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Issue 25: a restore refused because a running process holds the
/// partition leaves every file as it was (RocksDB rotates the holder's LOG
/// when it opens before taking its lock).
#[test]
fn a_restore_refused_by_the_lock_touches_nothing() {
    let c = changelog();
    let target = tempfile::tempdir().unwrap();
    let dest = target.path().join("1");
    let out = on_changelog("restore", &dest, &c.brokers, TOPIC, 1, &["--committed", "clicks=31"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let held = RocksDbPartition::open(&dest, &RocksDbOptions::default()).unwrap();
    let before = listing(&dest);
    assert!(before.iter().any(|(p, _, _)| p.ends_with("LOG")), "{before:?}");
    let out = on_changelog("restore", &dest, &c.brokers, TOPIC, 1, &["--committed", "clicks=31"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("locked"), "{}", stderr(&out));
    assert_eq!(listing(&dest), before, "nothing touched, the LOG not rotated");
    // Reading commands open read-only, next to the holder, and touch nothing either.
    for command in ["inspect", "dump"] {
        let out = statectl(&[command, dest.to_str().unwrap()]);
        assert!(out.status.success(), "{command}: {}", stderr(&out));
    }
    assert_eq!(listing(&dest), before, "read-only opens touch nothing");
    drop(held);
}

// ---- fjall partitions and recorded store formats ------------------------------

fn on_fjall_partition(c: &Changelog, args: &[&str]) -> Output {
    let dir = c.dir.display().to_string();
    let mut all = vec![args[0], dir.as_str()];
    all.extend_from_slice(&args[1..]);
    statectl(&all)
}

#[test]
fn dump_and_inspect_read_a_fjall_partition() {
    let c = fjall_changelog();
    let lines = dump_default(&c.dir);
    assert_eq!(lines.len(), 4, "{lines:?}");
    let count = lines
        .iter()
        .find(|l| l["value"] == 3)
        .expect("the last count, decoded with the recorded codec");
    assert_eq!(count["cf"], "default");
    let all = stdout_lines(&on_fjall_partition(&c, &["dump"]));
    let meta = |key: &str| {
        all.iter()
            .find(|l| l["cf"] == "__metadata__" && l["key"] == key)
            .map(|l| l["value"].clone())
    };
    assert_eq!(meta("__changelog_offset__"), Some(serde_json::json!(5)));

    let out = on_fjall_partition(&c, &["inspect", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let i = &stdout_lines(&out)[0];
    assert_eq!(i["backend"], "fjall");
    assert_eq!(i["changelog_offset"], 5);
    assert_eq!(i["store_kind"], "key-value");
    assert_eq!(i["codec"], "msgpack");
    assert!(i["size_bytes"].as_u64().unwrap() > 0);
    let cfs = i["column_families"].as_array().unwrap();
    assert!(cfs.iter().any(|c| c["name"] == "default"));
    assert!(
        cfs.iter().all(|c| c["approximate_keys"].is_null()),
        "key estimates are RocksDB's: {cfs:?}"
    );
    let text = on_fjall_partition(&c, &["inspect"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("backend           fjall"), "{text}");
    assert!(text.contains("key estimates are RocksDB's; fjall keeps none"), "{text}");

    // --backend names the engine; the wrong one is refused with the right one named.
    let out = on_fjall_partition(&c, &["dump", "--backend", "fjall", "--cf", "default"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = on_fjall_partition(&c, &["dump", "--backend", "rocksdb"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is a fjall partition, not rocksdb"),
        "{}",
        stderr(&out)
    );

    // fjall has no read-only mode: a partition held elsewhere is refused at once.
    let store = StoreLocation::new("counts", c.dir.parent().unwrap());
    let _held = FjallBackend::new(FjallOptions::default()).open(&store, 1).unwrap();
    let out = on_fjall_partition(&c, &["dump"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("locked"), "{}", stderr(&out));
}

#[test]
fn verify_checks_a_fjall_partition_with_its_recorded_format() {
    let c = fjall_changelog();
    let run = || on_changelog("verify", &c.dir, &c.brokers, TOPIC, 1, &["--committed", "clicks=31"]);
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let summary = &lines[0];
    assert_eq!(summary["differences"], 0);
    assert_eq!(summary["compared_keys"], 4);
    assert_eq!(summary["replayed_records"], 6);
    assert_eq!(summary["backend"], "fjall");
    assert_eq!(summary["store_kind"], "key-value");
    assert_eq!(summary["codec"], "msgpack");

    // Tamper through the fjall backend: one changed value.
    {
        let store = StoreLocation::new("counts", c.dir.parent().unwrap());
        let p = Arc::new(FjallBackend::new(FjallOptions::default()).open(&store, 1).unwrap());
        let t = PartitionTransaction::new(p.clone(), Codec::MsgPack, None);
        let key = t.encode_key("count", b"a").unwrap();
        p.put("default", &key, &Codec::MsgPack.encode(&99u64).unwrap()).unwrap();
    }
    let out = run();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines[0]["difference"], "value-differs");
    assert_eq!(lines.last().unwrap()["differences"], 1);
}

#[test]
fn restore_writes_a_fjall_partition() {
    let c = changelog();
    let target = tempfile::tempdir().unwrap();
    let dest = target.path().join("1");
    let restore = || {
        on_changelog(
            "restore",
            &dest,
            &c.brokers,
            TOPIC,
            1,
            &["--committed", "clicks=31", "--backend", "fjall"],
        )
    };
    let out = restore();
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = &stdout_lines(&out)[0];
    assert_eq!(summary["backend"], "fjall");
    assert_eq!(summary["applied"], 6);
    assert_eq!(summary["changelog_offset"], 5);
    assert!(summary["store_kind"].is_null(), "nothing recorded: replayed as it is");
    assert!(dest.join("version").is_file(), "fjall's files");
    assert_eq!(dump_default(&dest), dump_default(&c.dir));

    // Again: it continues from the stored offset (the engine found from the files).
    let out = on_changelog("restore", &dest, &c.brokers, TOPIC, 1, &["--committed", "clicks=31"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = &stdout_lines(&out)[0];
    assert_eq!(
        (summary["applied"].as_u64(), summary["backend"].as_str()),
        (Some(0), Some("fjall"))
    );

    let out = on_changelog("verify", &dest, &c.brokers, TOPIC, 1, &["--committed", "clicks=31"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_lines(&out)[0]["differences"], 0);

    // Into a RocksDB partition with --backend fjall: refused before anything is read.
    let out = on_changelog(
        "restore",
        &c.dir,
        &c.brokers,
        TOPIC,
        1,
        &["--committed", "clicks=31", "--backend", "fjall"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is a rocksdb partition, not fjall"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn restore_follows_the_codec_the_partition_records() {
    let c = changelog();
    // A partition whose store records JSON, as the manager records it: the
    // MessagePack changelog is refused, as the manager's restore refuses it.
    let target = tempfile::tempdir().unwrap();
    let json = target.path().join("json");
    {
        let p = RocksDbPartition::open(&json, &RocksDbOptions::default()).unwrap();
        state_core::check_store_format(&p, &StoreFormat::key_value(Codec::Json), &json).unwrap();
    }
    let out = on_changelog("restore", &json, &c.brokers, TOPIC, 1, &["--committed", "clicks=31"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("was written with the msgpack codec, but the partition records json"),
        "{}",
        stderr(&out)
    );
    let p = RocksDbPartition::open_read_only(&json, &RocksDbOptions::default()).unwrap();
    assert_eq!(p.changelog_offset().unwrap(), None, "nothing applied");

    // Recording MessagePack: replayed with the store's rules, and reported.
    let msgpack = target.path().join("msgpack");
    {
        let p = RocksDbPartition::open(&msgpack, &RocksDbOptions::default()).unwrap();
        state_core::check_store_format(&p, &StoreFormat::key_value(Codec::MsgPack), &msgpack).unwrap();
    }
    let out = on_changelog("restore", &msgpack, &c.brokers, TOPIC, 1, &["--committed", "clicks=31"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = &stdout_lines(&out)[0];
    assert_eq!(summary["applied"], 6);
    assert_eq!(summary["store_kind"], "key-value");
    assert_eq!(summary["codec"], "msgpack");
    assert_eq!(dump_default(&msgpack), dump_default(&c.dir));
}
