//! restore-big (docs/performance.md, "Restore big state"): one partition of
//! KEYS keys (10M by default, about 1 GiB of RocksDB files) brought back on
//! a fresh directory
//!
//! * (a) by replaying its whole changelog from a real broker (tansu), and
//! * (b) from a snapshot in the local-filesystem object store plus the
//!   changelog's tail (TAIL records written after the snapshot, 1% of the
//!   keys by default),
//!
//! both through the restorer thread the manager uses ([`Restorer`]). It
//! reports both times, (b)'s download-and-open phase next to `cp -r` of the
//! same files, the bytes moved, and what an incremental snapshot uploads
//! after the tail changed 1% of the keys. (a) and (b) must end with the
//! same data: every key is compared.
//!
//! Environment: `RB_KEYS` (10,000,000), `RB_TAIL` (KEYS / 100),
//! `RB_VALUE_BYTES` (90), `RB_DIR` (a directory on the disk to measure;
//! default: the system temp dir). The broker is `--brokers HOST:PORT`, else
//! a tansu started here (`TANSU_BIN` or `cargo xtask test`'s install) on
//! its memory engine (`RB_TANSU_STORAGE=sqlite` for its sqlite one).

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_changelog::{
    changelog_topic_name, ChangelogProducer, RecoveryConfig, RestoreEvent, RestoreRequest, Restorer,
};
use state_core::{
    cf, check_store_format, Backend, Codec, Direction, StoreFormat, StoreKind, StoreLocation, StorePartition,
};
use state_core::{ChangelogRecord, TopicPartition};
use state_rocksdb::{RocksDbBackend, RocksDbOptions};
use state_snapshot::{NoProgress, Retention, SnapshotScope, SnapshotStore, StoreOptions};

use super::{err, kafka_client};
use crate::params::env_u64;
use crate::rng::Rng;

const GROUP: &str = "bench-restore-big";
const STORE: &str = "big";

/// The sizes of one run.
struct Sizes {
    keys: u64,
    tail: u64,
    value_bytes: usize,
}

impl Sizes {
    /// The keys the tail changes: every (KEYS / TAIL)th, TAIL of them.
    fn tail_keys(&self) -> impl Iterator<Item = u64> {
        let (keys, tail) = (self.keys, self.tail);
        let every = (keys / tail).max(1);
        (0..tail).map(move |j| (j * every) % keys)
    }
}

/// The local-filesystem snapshot store of a run, under `root/store`.
struct Snapshots {
    store: SnapshotStore,
    scope: SnapshotScope,
    upload: PathBuf,
}

impl Snapshots {
    fn new(root: &Path) -> Result<Self, String> {
        let upload = root.join("upload");
        std::fs::create_dir_all(&upload).map_err(err)?;
        Ok(Snapshots {
            store: SnapshotStore::open(&format!("file://{}/store", root.display()), &StoreOptions::new())
                .map_err(err)?
                .with_retention(Retention::default()),
            scope: SnapshotScope::new(STORE, 0).map_err(err)?,
            upload,
        })
    }

    /// Takes and uploads a snapshot of `source`; with the seconds it took.
    fn take(&self, source: &dyn StorePartition) -> Result<(state_snapshot::Uploaded, f64), String> {
        let started = Instant::now();
        let up = self
            .store
            .create(
                source,
                "rocksdb",
                &self.scope,
                Some(StoreKind::KeyValue),
                &self.upload,
                &NoProgress,
            )
            .map_err(err)?;
        Ok((up, started.elapsed().as_secs_f64()))
    }

    /// Restores snapshot `id` into `root/fresh`: the partition, its
    /// location, the snapshot's bytes and the seconds download, verify
    /// and open took.
    fn restore(
        &self,
        id: &str,
        backend: &dyn Backend,
        root: &Path,
    ) -> Result<(Arc<dyn StorePartition>, StoreLocation, u64, f64), String> {
        let location = StoreLocation::new(STORE, root.join("fresh").join(STORE));
        let started = Instant::now();
        let (manifest, restored) = self
            .store
            .restore(&self.scope, id, backend, &location, &root.join("download"), &NoProgress)
            .map_err(err)?;
        let seconds = started.elapsed().as_secs_f64();
        Ok((restored, location, manifest.files.iter().map(|f| f.size).sum(), seconds))
    }
}

/// The storage engine of the tansu a run starts: `RB_TANSU_STORAGE=sqlite`
/// for the sqlite one, else the memory one (the sqlite one, the test
/// suites', fetches at ~600 records/s and left fetches unanswered for a
/// minute, which makes a 10M-record replay hours long:
/// docs/performance.md).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Storage {
    Memory,
    Sqlite,
}

impl Storage {
    fn from_env() -> Self {
        match std::env::var("RB_TANSU_STORAGE") {
            Ok(v) if v == "sqlite" => Storage::Sqlite,
            _ => Storage::Memory,
        }
    }

    /// tansu's `--storage-engine` for it.
    fn url(self) -> &'static str {
        match self {
            Storage::Memory => "memory://tansu/",
            Storage::Sqlite => "sqlite://tansu.db",
        }
    }

    /// tansu 0.6's memory engine reports a partition's high watermark at
    /// the first offset of its last batch instead of after it: every
    /// produce phase then ends with an [`end_marker`].
    fn watermark_lags_last_batch(self) -> bool {
        self == Storage::Memory
    }

    /// tansu 0.6's sqlite engine stalls on big fetches.
    fn small_fetches(self) -> bool {
        self == Storage::Sqlite
    }
}

/// A tansu broker this run started; killed on drop.
struct Tansu {
    child: Child,
    dir: PathBuf,
    address: String,
    storage: Storage,
}

impl Tansu {
    fn start(root: &Path) -> Result<Tansu, String> {
        let bin = std::env::var_os("TANSU_BIN").map(PathBuf::from).unwrap_or_else(|| {
            let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
            home.join(".cache/kafka-state/tansu/bin/tansu")
        });
        if !bin.is_file() {
            return Err(format!(
                "restore-big needs a real broker: give --brokers HOST:PORT, or install tansu \
                 (`cargo xtask test` does, into {})",
                bin.display()
            ));
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?
            .port();
        let dir = root.join("tansu");
        std::fs::create_dir_all(&dir).map_err(err)?;
        let url = format!("tcp://127.0.0.1:{port}");
        let storage = Storage::from_env();
        let engine = storage.url();
        let child = Command::new(&bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", engine])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let tansu = Tansu {
            child,
            dir,
            address: format!("127.0.0.1:{port}"),
            storage,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&tansu.address).is_err() {
            if Instant::now() > deadline {
                return Err(format!("tansu did not listen on {} within 30 s", tansu.address));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "  tansu broker on {} ({engine}, in {})",
            tansu.address,
            tansu.dir.display()
        );
        Ok(tansu)
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Key `i`: fixed width, so RocksDB's files hold them in produce order.
fn key(i: u64) -> Vec<u8> {
    format!("key-{i:012}").into_bytes()
}

/// A value of `len` bytes that does not compress (round `round` of key
/// `i`): the files are as big as the data.
fn value(i: u64, round: u64, len: usize, out: &mut Vec<u8>) {
    out.clear();
    let mut rng = Rng(i.wrapping_mul(0x9E37_79B9).wrapping_add(round));
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
}

/// librdkafka settings from the environment: `RB_PRODUCER_LINGER_MS=5`
/// is `linger.ms=5`.
fn prefixed_env(prefix: &str) -> Vec<(String, String)> {
    std::env::vars()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_lowercase().replace('_', "."), v)))
        .collect()
}

/// A changelog record of the workload's store: default column family, no
/// processed offsets (`None`: a tombstone).
fn record<'a>(key: &'a [u8], value: Option<&'a [u8]>) -> ChangelogRecord<'a> {
    ChangelogRecord {
        cf: cf::DEFAULT,
        key,
        value,
        processed_offsets: None,
        ttl_stamped: false,
        value_codec: None,
    }
}

/// Produces keys `keys` (round `round`) to the changelog; returns records/s.
fn produce(
    bootstrap: &str,
    topic: &str,
    keys: impl Iterator<Item = u64>,
    round: u64,
    len: usize,
) -> Result<f64, String> {
    let mut config = kafka_client(bootstrap);
    let compression = std::env::var("RB_COMPRESSION").unwrap_or_else(|_| "none".into());
    config.set("compression.type", &compression);
    // The changelog producer's own batching. (tansu 0.6 answers a fetch
    // with one batch after fetch.wait.max.ms, and with batches of a few
    // thousand records its fetches stalled here: see docs/performance.md.)
    config.set("linger.ms", "20");
    for (k, v) in prefixed_env("RB_PRODUCER_") {
        config.set(&k, &v);
    }
    let producer = ChangelogProducer::new(&config).map_err(err)?;
    let started = Instant::now();
    let mut v = Vec::with_capacity(len);
    let mut n = 0u64;
    for i in keys {
        value(i, round, len, &mut v);
        let k = key(i);
        producer.produce(topic, 0, record(&k, Some(&v))).map_err(err)?;
        n += 1;
        if n.is_multiple_of(1_000_000) {
            eprintln!("    {n} records produced");
        }
    }
    producer.flush(Duration::from_secs(1800)).map_err(err)?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Produces a tombstone of a key no phase writes (`~end-N`), alone in its
/// batch, after everything produced before it was acknowledged. On a
/// broker whose high watermark stops at its last batch's first offset the
/// restores then read every record before the marker; the marker itself
/// deletes nothing, so the state is the same with or without it.
fn end_marker(bootstrap: &str, topic: &str, n: u64) -> Result<(), String> {
    let producer = ChangelogProducer::new(&kafka_client(bootstrap)).map_err(err)?;
    let k = format!("~end-{n}").into_bytes();
    producer.produce(topic, 0, record(&k, None)).map_err(err)?;
    producer.flush(Duration::from_secs(60)).map_err(err)
}

/// Restores the changelog into `partition` (from its stored offset on)
/// on the restorer thread the manager uses; returns the seconds from the
/// request to `Restored`.
fn restore(
    bootstrap: &str,
    topic: &str,
    partition: Arc<dyn StorePartition>,
    dir: &Path,
    small_fetches: bool,
) -> Result<f64, String> {
    let check = check_store_format(&*partition, &StoreFormat::key_value(Codec::Json), dir)
        .map_err(err)?
        .replay_check();
    let config = RecoveryConfig {
        batch_records: 10_000,
        ..RecoveryConfig::default()
    };
    let mut client = kafka_client(bootstrap);
    if small_fetches {
        // tansu 0.6 (sqlite) left a fetch of the default 50 MB unanswered
        // for a minute on a topic of 30,000 records; 1 MB fetches it
        // answers.
        client.set("fetch.max.bytes", "1048576");
        client.set("max.partition.fetch.bytes", "262144");
    } else {
        // One partition: let a fetch bring more than librdkafka's default
        // 1 MiB of it (the memory engine replays ~2.5x faster so).
        client.set("max.partition.fetch.bytes", "8388608");
    }
    if let Ok(debug) = std::env::var("RB_RDKAFKA_DEBUG") {
        // librdkafka's debug contexts, logged through tracing to stderr.
        client.set("debug", &debug);
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::DEBUG)
            .try_init();
    }
    for (k, v) in std::env::vars()
        .filter_map(|(k, v)| Some((k.strip_prefix("RB_CONSUMER_")?.to_lowercase().replace('_', "."), v)))
    {
        client.set(&k, &v);
    }
    let restorer = Restorer::start(&client, GROUP, config).map_err(err)?;
    let started = Instant::now();
    restorer
        .restore(RestoreRequest {
            partition,
            changelog: TopicPartition::new(topic.to_owned(), 0),
            committed_offsets: BTreeMap::new(),
            location: dir.display().to_string(),
            replay_check: Some(check),
        })
        .map_err(err)?;
    loop {
        match restorer.next_event(Duration::from_secs(600)) {
            Some(RestoreEvent::Restored { .. }) => break,
            Some(RestoreEvent::Failed { error, .. }) => return Err(error.to_string()),
            Some(RestoreEvent::Progress(_)) => {}
            None => return Err("the restorer reported nothing for 10 minutes".into()),
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// Every key and value of `a` and `b` equal (default column family);
/// returns the number of keys.
fn same_data(a: &dyn StorePartition, b: &dyn StorePartition) -> Result<u64, String> {
    let mut left = a.iter_range(cf::DEFAULT, b"", None, Direction::Forward).map_err(err)?;
    let mut right = b.iter_range(cf::DEFAULT, b"", None, Direction::Forward).map_err(err)?;
    let mut n = 0u64;
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ok(n),
            (Some(l), Some(r)) => {
                let (l, r) = (l.map_err(err)?, r.map_err(err)?);
                if l != r {
                    return Err(format!(
                        "full replay and snapshot + tail differ at key {:?}",
                        String::from_utf8_lossy(&l.0)
                    ));
                }
            }
            (l, _) => {
                return Err(format!(
                    "full replay and snapshot + tail differ in length after {n} keys ({} has more)",
                    if l.is_some() {
                        "the full replay"
                    } else {
                        "snapshot + tail"
                    }
                ))
            }
        }
        n += 1;
    }
}

fn open(backend: &Arc<dyn Backend>, dir: &Path) -> Result<(StoreLocation, Arc<dyn StorePartition>), String> {
    let location = StoreLocation::new(STORE, dir.join(STORE));
    let p = backend.open_partition(&location, 0).map_err(err)?;
    Ok((location, p))
}

/// Fills `p` with keys `keys` (round `round`) by direct writes, the
/// changelog offset `offset` with the last batch; made durable.
fn fill(
    p: &dyn StorePartition,
    keys: impl Iterator<Item = u64>,
    round: u64,
    len: usize,
    offset: u64,
) -> Result<(), String> {
    let mut batch = state_core::WriteBatch::new();
    let mut v = Vec::with_capacity(len);
    for i in keys {
        value(i, round, len, &mut v);
        batch.put(cf::DEFAULT, &key(i), &v);
        if batch.len() >= 100_000 {
            p.write_bulk(&batch).map_err(err)?;
            batch = state_core::WriteBatch::new();
        }
    }
    batch.set_changelog_offset(offset);
    p.write_bulk(&batch).map_err(err)?;
    p.persist().map_err(err)
}

/// `RB_LOCAL_ONLY=1`: the phases that need no broker, at full size — a
/// partition of KEYS keys written directly, its snapshot, the timed
/// download-verify-open against `cp -r`, and the incremental snapshot
/// after 1% of the keys changed.
fn local_only(sizes: &Sizes, root: &Path) -> Result<(), String> {
    let backend: Arc<dyn Backend> = RocksDbBackend::shared(RocksDbOptions::default());
    let (_, source) = open(&backend, &root.join("source"))?;
    let started = Instant::now();
    fill(&*source, 0..sizes.keys, 1, sizes.value_bytes, sizes.keys - 1)?;
    eprintln!(
        "  {} keys written in {:.1} s",
        sizes.keys,
        started.elapsed().as_secs_f64()
    );
    let snapshots = Snapshots::new(root)?;
    let (full, upload_seconds) = snapshots.take(&*source)?;
    fill(
        &*source,
        sizes.tail_keys(),
        2,
        sizes.value_bytes,
        sizes.keys + sizes.tail - 1,
    )?;
    let (incremental, _) = snapshots.take(&*source)?;
    drop(source);
    let (restored, location, bytes, download_seconds) = snapshots.restore(&full.manifest.id, &*backend, root)?;
    let probe = restored.get(cf::DEFAULT, &key(sizes.keys - 1)).map_err(err)?;
    if probe.is_none() {
        return Err("the restored snapshot lacks its last key".into());
    }
    drop(restored);
    let (cp_seconds, cp_bytes) = copy_timed(location.dir(), root)?;
    let full_bytes = full.bytes_uploaded + full.bytes_reused;
    let share = incremental.bytes_uploaded as f64 / full_bytes as f64;
    let (dl, cp) = (bytes as f64 / download_seconds, cp_bytes as f64 / cp_seconds);
    println!(
        "{}",
        serde_json::json!({
            "workload": "restore-big-local",
            "keys": sizes.keys,
            "snapshot_bytes": bytes,
            "full_upload_s": upload_seconds,
            "download_open_s": download_seconds,
            "cp_r_s": cp_seconds,
            "download_vs_cp": dl / cp,
            "incremental_upload_bytes": incremental.bytes_uploaded,
            "incremental_share": share,
        })
    );
    eprintln!(
        "  snapshot of {:.0} MiB ({} files) uploaded in {upload_seconds:.1} s",
        bytes as f64 / 1048576.0,
        full.manifest.files.len()
    );
    eprintln!(
        "  download+verify+open {download_seconds:.2} s ({:.0} MiB/s) vs cp -r {cp_seconds:.2} s ({:.0} MiB/s): {:.2}x (target >= 0.3x)",
        dl / 1048576.0,
        cp / 1048576.0,
        dl / cp
    );
    eprintln!(
        "  incremental snapshot after 1% changed: {:.1} MiB = {:.2}% of the full one (target < 5%)",
        incremental.bytes_uploaded as f64 / 1048576.0,
        share * 100.0
    );
    Ok(())
}

/// Times `cp -r` of `dir` on the same disk (after one untimed copy, so
/// both read from the page cache as the download's files were just
/// written); returns seconds and bytes.
fn copy_timed(dir: &Path, root: &Path) -> Result<(f64, u64), String> {
    let copy_from = root.join("copy-source");
    let copy_to = root.join("copy-target");
    let _ = Command::new("cp").arg("-r").arg(dir).arg(&copy_from).status();
    let started = Instant::now();
    let status = Command::new("cp")
        .arg("-r")
        .arg(&copy_from)
        .arg(&copy_to)
        .status()
        .map_err(|e| format!("running cp -r: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("cp -r failed ({status})"));
    }
    Ok((seconds, dir_bytes(&copy_to)))
}

/// Runs the workload (only when asked: it takes minutes and several GiB).
pub(crate) fn run(brokers: Option<&str>) -> Result<(), String> {
    let keys = env_u64("RB_KEYS", 10_000_000)?.max(100);
    let sizes = Sizes {
        keys,
        tail: env_u64("RB_TAIL", keys / 100)?.max(1),
        value_bytes: env_u64("RB_VALUE_BYTES", 90)? as usize,
    };
    let parent = std::env::var_os("RB_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let scratch = tempfile::Builder::new()
        .prefix("restore-big-")
        .tempdir_in(&parent)
        .map_err(|e| format!("making a scratch directory in {}: {e}", parent.display()))?;
    let root = scratch.path();
    if std::env::var("RB_LOCAL_ONLY").is_ok_and(|v| v == "1") {
        eprintln!(
            "restore-big (local phases only): {} keys of {} bytes in {}",
            sizes.keys,
            sizes.value_bytes,
            root.display()
        );
        return local_only(&sizes, root);
    }
    // Kept to the end of the run: dropping it stops the broker.
    let (bootstrap, tansu) = match brokers {
        Some(b) => (b.to_owned(), None),
        None => {
            let t = Tansu::start(root)?;
            (t.address.clone(), Some(t))
        }
    };
    let storage = tansu.as_ref().map(|t| t.storage);
    let markers = storage.is_some_and(Storage::watermark_lags_last_batch);
    let small = storage.is_some_and(Storage::small_fetches);
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let topic = changelog_topic_name(GROUP, &format!("input-{suffix}"), STORE);
    state_changelog::create_topic(&kafka_client(&bootstrap), &topic, 1, 1, &[], Duration::from_secs(30))
        .map_err(err)?;
    eprintln!(
        "restore-big: {} keys of {} bytes, tail {} records, in {}",
        sizes.keys,
        sizes.value_bytes,
        sizes.tail,
        root.display()
    );
    let backend: Arc<dyn Backend> = RocksDbBackend::shared(RocksDbOptions::default());
    // Setup: the changelog up to the snapshot, a partition restored from
    // it, its snapshot (a full upload).
    let rate = produce(&bootstrap, &topic, 0..sizes.keys, 1, sizes.value_bytes)?;
    eprintln!("  produced {} records ({rate:.0}/s)", sizes.keys);
    if markers {
        end_marker(&bootstrap, &topic, 1)?;
    }
    let (_, source) = open(&backend, &root.join("source"))?;
    let seconds = restore(&bootstrap, &topic, source.clone(), &root.join("source"), small)?;
    eprintln!(
        "  source partition restored in {seconds:.1} s ({:.0} records/s)",
        sizes.keys as f64 / seconds
    );
    let snapshots = Snapshots::new(root)?;
    let (full, full_seconds) = snapshots.take(&*source)?;
    let full_bytes = full.bytes_uploaded + full.bytes_reused;
    eprintln!(
        "  full snapshot: {} files, {:.1} MiB uploaded in {full_seconds:.1} s",
        full.files_uploaded,
        full.bytes_uploaded as f64 / 1048576.0
    );

    // The tail: 1% of the keys change after the snapshot.
    produce(&bootstrap, &topic, sizes.tail_keys(), 2, sizes.value_bytes)?;
    if markers {
        end_marker(&bootstrap, &topic, 2)?;
    }
    let total = sizes.keys + sizes.tail + u64::from(markers);

    // (a) the whole changelog on a fresh directory.
    let (_, replayed) = open(&backend, &root.join("full"))?;
    let a_seconds = restore(&bootstrap, &topic, replayed.clone(), &root.join("full"), small)?;
    eprintln!("  (a) full replay: {total} records in {a_seconds:.2} s");

    // (b) the snapshot, then the tail, on a fresh directory.
    let (from_snapshot, location, snapshot_bytes, download_seconds) =
        snapshots.restore(&full.manifest.id, &*backend, root)?;
    let tail_seconds = restore(&bootstrap, &topic, from_snapshot.clone(), &root.join("fresh"), small)?;
    let b_seconds = download_seconds + tail_seconds;
    eprintln!(
        "  (b) snapshot + tail: download, verify and open {:.1} MiB in {download_seconds:.2} s, \
         tail of {} records in {tail_seconds:.2} s",
        snapshot_bytes as f64 / 1048576.0,
        sizes.tail
    );

    // cp -r of the same files on the same disk, for the download's speed.
    let (cp_seconds, cp_bytes) = copy_timed(location.dir(), root)?;

    // Both ways hold the same data.
    let checked = same_data(&*replayed, &*from_snapshot)?;

    // An incremental snapshot after the tail changed 1% of the keys.
    restore(&bootstrap, &topic, source.clone(), &root.join("source"), small)?;
    let (incremental, _) = snapshots.take(&*source)?;

    let speedup = a_seconds / b_seconds;
    let download_rate = snapshot_bytes as f64 / download_seconds;
    let cp_rate = cp_bytes as f64 / cp_seconds;
    let incremental_share = incremental.bytes_uploaded as f64 / full_bytes as f64;
    println!(
        "{}",
        serde_json::json!({
            "workload": "restore-big",
            "keys": sizes.keys,
            "tail": sizes.tail,
            "value_bytes": sizes.value_bytes,
            "checked_keys": checked,
            "full_replay_s": a_seconds,
            "full_replay_records_per_s": total as f64 / a_seconds,
            "snapshot_tail_s": b_seconds,
            "download_open_s": download_seconds,
            "tail_s": tail_seconds,
            "speedup": speedup,
            "snapshot_bytes": snapshot_bytes,
            "download_mib_per_s": download_rate / 1048576.0,
            "cp_r_s": cp_seconds,
            "cp_r_mib_per_s": cp_rate / 1048576.0,
            "download_vs_cp": download_rate / cp_rate,
            "full_upload_bytes": full.bytes_uploaded,
            "incremental_upload_bytes": incremental.bytes_uploaded,
            "incremental_share": incremental_share,
        })
    );
    eprintln!(
        "  (a) full replay          {a_seconds:>8.2} s  ({:.0} records/s)",
        total as f64 / a_seconds
    );
    eprintln!("  (b) snapshot + tail      {b_seconds:>8.2} s  -> {speedup:.1}x faster (target >= 20x)");
    eprintln!(
        "  download+open {:.0} MiB/s vs cp -r {:.0} MiB/s: {:.2}x (target >= 0.3x)",
        download_rate / 1048576.0,
        cp_rate / 1048576.0,
        download_rate / cp_rate
    );
    eprintln!(
        "  incremental snapshot after 1% changed: {:.1} MiB of a {:.1} MiB snapshot = {:.1}% (target < 5%)",
        incremental.bytes_uploaded as f64 / 1048576.0,
        full_bytes as f64 / 1048576.0,
        incremental_share * 100.0
    );
    eprintln!("  every one of {checked} keys is the same both ways");
    Ok(())
}
