//! `cargo xtask crash`: kill a stateful processor at random moments and
//! prove that nothing is lost or applied twice.
//!
//! A mock Kafka cluster runs in its own process (`mock-broker`), so it
//! outlives the processor (`crash-counter`, a keyed count with a changelog
//! that emits `key -> count` per record). Input arrives in chunks; each run
//! of the child is ended either by SIGKILL after a random number of records
//! or by the child aborting itself at a chosen point (`CRASH_AT`: mid
//! interval, after the checkpoint's records are produced, after the Kafka
//! commit and before the local flush, after the flush, or during recovery).
//! Sometimes the local state is deleted as well. A last run finishes the
//! input, and the state and output are compared with a model.
//!
//! With `--corrupt`, before every restart one partition of the killed
//! member's state is damaged on disk (see `damage`): the member must heal
//! it (quarantine, rebuild from the changelog) and the counts stay exact.
//!
//! With `--snapshots`, the members keep partition snapshots in a local
//! snapshot store they share (taken every `--snapshot-every` changelog
//! records), and restore partitions without local state from them. Half
//! the runs then end at one of state-snapshot's crash points
//! (`state_snapshot::crash_point`: during an upload, between the files
//! and the manifest, during a restore's download, during the changelog
//! tail after a snapshot; local state is wiped before a run aimed at the
//! last two, so that it restores), and before some restarts the newest
//! snapshot of a partition is damaged (see `snapshot_damage`) so that the
//! restore must fall back. Only kills that really happened at a point are
//! counted (the child aborted with SIGABRT after saying which point).
//!
//! Seeded: `--seed` replays the same kills.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use state_snapshot::crash_point;

use crate::rng::Rng;

mod damage;
mod snapshot_damage;

const INPUT: &str = "crash-input";
const OUTPUT: &str = "crash-output";
const CHANGELOG: &str = "changelog__crash-group--crash-input--counts";
/// The children's consumer group (and state directory inside the state dir).
const GROUP: &str = "crash-group";

/// Harness settings.
struct Settings {
    kills: u32,
    seed: u64,
    chunk: u32,
    keys: u32,
    partitions: u32,
    guarantee: &'static str,
    backend: String,
    /// Run a second member beside the killed one, both with standby
    /// replicas of every partition they do not own.
    standbys: bool,
    /// Put the child's stores behind write-behind caches.
    write_behind: bool,
    /// Pipelined checkpoints in the children.
    pipelined: bool,
    /// Also kill the child as soon as it says a restore started.
    kill_in_restore: bool,
    /// Damage one partition of the killed member's state before each
    /// restart.
    corrupt: bool,
    /// Only this kind of damage (`--corrupt-only KIND`, implies
    /// `--corrupt`), to look at one kind.
    corrupt_only: Option<damage::DamageKind>,
    /// Members keep partition snapshots in a shared local store and
    /// restore from them; snapshot crash points and snapshot damage.
    snapshots: bool,
    /// Changelog records between a partition's snapshots.
    snapshot_every: u64,
    /// Where the children write their tracing logs (`run-NNN.log` per run
    /// of the killed child, `peer-NN.log` per start of the peer), filtered
    /// by `CRASH_LOG` (default: debug for the state crates).
    log_dir: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Settings, String> {
    let mut s = Settings {
        kills: 50,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1),
        chunk: 60,
        keys: 20,
        partitions: 3,
        guarantee: "eos",
        backend: "rocksdb".into(),
        standbys: false,
        write_behind: false,
        pipelined: false,
        kill_in_restore: false,
        corrupt: false,
        corrupt_only: None,
        snapshots: false,
        snapshot_every: 6,
        log_dir: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--kills" => s.kills = num("--kills")? as u32,
            "--seed" => s.seed = num("--seed")?,
            "--chunk" => s.chunk = num("--chunk")?.max(1) as u32,
            "--keys" => s.keys = num("--keys")?.max(1) as u32,
            "--partitions" => s.partitions = num("--partitions")?.max(1) as u32,
            "--standbys" => s.standbys = true,
            "--write-behind" => s.write_behind = true,
            "--pipelined" => s.pipelined = true,
            "--kill-in-restore" => s.kill_in_restore = true,
            "--corrupt" => s.corrupt = true,
            "--snapshots" => s.snapshots = true,
            "--snapshot-every" => {
                s.snapshot_every = num("--snapshot-every")?.max(1);
                s.snapshots = true;
            }
            "--corrupt-only" => {
                let kind = it.next().ok_or("--corrupt-only needs a damage kind")?;
                s.corrupt_only = Some(damage::DamageKind::parse(kind)?);
                s.corrupt = true;
            }
            "--log-dir" => s.log_dir = Some(it.next().ok_or("--log-dir needs a directory")?.into()),
            "--backend" => {
                s.backend = match it.next().map(String::as_str) {
                    Some(b @ ("rocksdb" | "fjall" | "memory")) => b.to_owned(),
                    other => return Err(format!("unknown backend {other:?} (rocksdb, fjall, memory)")),
                }
            }
            "--guarantee" => {
                s.guarantee = match it.next().map(String::as_str) {
                    Some("exactly-once" | "eos") => "eos",
                    Some("at-least-once" | "alos") => "alos",
                    other => return Err(format!("unknown guarantee {other:?}")),
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if s.corrupt && s.backend == "memory" {
        return Err("--corrupt needs a backend with files (rocksdb, fjall)".into());
    }
    if s.snapshots && s.backend == "memory" {
        return Err("--snapshots needs a backend that keeps its state (rocksdb, fjall)".into());
    }
    Ok(s)
}

/// The helper binaries live next to this one; build them if they are not there.
pub(crate) fn helper(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no executable directory")?;
    let path = dir.join(name);
    if !path.exists() {
        let release = dir.ends_with("release");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "devtools", "--bins"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().map_err(|e| format!("building {name}: {e}"))?;
        if !status.success() || !path.exists() {
            return Err(format!("could not build {name} next to {}", exe.display()));
        }
    }
    Ok(path)
}

/// `mock-broker` (librdkafka's mock cluster) in its own process; it stops
/// when its stdin closes, and is killed when dropped. The crash harness and
/// the e2e bench both run their broker so.
pub(crate) struct Broker {
    child: Child,
    /// Its `bootstrap.servers`.
    pub(crate) bootstrap: String,
}

impl Broker {
    /// The harness's broker: its three topics with `partitions` each.
    fn start(partitions: u32) -> Result<Broker, String> {
        Self::with_topics(&[INPUT, OUTPUT, CHANGELOG], partitions)
    }

    /// A broker holding `topics`, `partitions` each.
    pub(crate) fn with_topics<T: AsRef<str>>(topics: &[T], partitions: u32) -> Result<Broker, String> {
        let mut child = Command::new(helper("mock-broker")?)
            .args(topics.iter().map(|t| format!("{}:{partitions}", t.as_ref())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting mock-broker: {e}"))?;
        let stdout = child.stdout.take().ok_or("mock-broker has no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("reading mock-broker: {e}"))?;
        let bootstrap = line
            .trim()
            .strip_prefix("bootstrap ")
            .ok_or_else(|| format!("mock-broker said {line:?}"))?
            .to_owned();
        Ok(Broker { child, bootstrap })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How one run of the child is ended.
#[derive(Clone, Debug)]
enum Crash {
    /// SIGKILL after this many processed records.
    KillAfter(u64),
    /// SIGKILL as soon as the child says a restore started (restores of
    /// this small state are short, and with standbys shorter still: random
    /// kills alone rarely land inside one).
    KillWhenRestoring,
    /// The child aborts itself at `CRASH_AT=stage:n`.
    At(&'static str, u64),
    /// The child aborts itself the n-th time it reaches snapshot crash
    /// point `.0` (`KAFKA_STATE_CRASH_POINT`).
    Point(&'static str, u64),
    /// No crash: run to the end.
    None,
}

fn pick_crash(rng: &mut Rng, chunk: u32, kill_in_restore: bool) -> Crash {
    // One in eight runs ends in a restore with --kill-in-restore; without
    // it the draws are those of earlier versions, so seeds replay them.
    if kill_in_restore && rng.below(8) == 7 {
        return Crash::KillWhenRestoring;
    }
    match rng.below(7) {
        0 | 1 => Crash::KillAfter(1 + rng.below(chunk as u64)),
        2 => Crash::At("process", 1 + rng.below(chunk as u64)),
        3 => Crash::At("produced", 1 + rng.below(4)),
        4 => Crash::At("committed", 1 + rng.below(4)),
        5 => Crash::At("flushed", 1 + rng.below(3)),
        // In the middle of a restore (a progress report of one still running).
        _ => Crash::At("recovery", 1 + rng.below(3)),
    }
}

/// A snapshot crash point for one run (with `--snapshots`, half the runs):
/// the point and on which hit, or `None` for the usual kinds of crash.
/// The runs aimed at a restore path need their local state wiped.
fn pick_snapshot_point(rng: &mut Rng) -> Option<Crash> {
    if rng.below(2) == 0 {
        return None;
    }
    // The restore points are drawn twice as often: they are reached only
    // if a usable snapshot exists (download) and the changelog moved past
    // it (tail), while every run that processes takes snapshots.
    const DRAWN: [&str; 6] = [
        crash_point::UPLOAD_FILE,
        crash_point::UPLOAD_BEFORE_MANIFEST,
        crash_point::DOWNLOAD_FILE,
        crash_point::DOWNLOAD_FILE,
        crash_point::TAIL_REPLAY,
        crash_point::TAIL_REPLAY,
    ];
    let point = DRAWN[rng.index(DRAWN.len())];
    // A run takes a few snapshots per partition, each uploading a few
    // files; a restore downloads every partition's newest (a RocksDB
    // checkpoint: some 5-8 files each) then replays its tail (a few
    // records: snapshots are frequent).
    let hits = match point {
        crash_point::UPLOAD_FILE => 6,
        crash_point::DOWNLOAD_FILE => 10,
        crash_point::TAIL_REPLAY => 2,
        _ => 3,
    };
    Some(Crash::Point(point, 1 + rng.below(hits)))
}

/// True if `crash` is reached only by a run that restores from a snapshot.
fn needs_restore(crash: &Crash) -> bool {
    matches!(crash, Crash::Point(p, _) if *p == crash_point::DOWNLOAD_FILE || *p == crash_point::TAIL_REPLAY)
}

enum RunEnd {
    /// Killed or aborted as planned. `during_restore`: it was restoring
    /// then. `lagging`: the child's last report said some partition's
    /// committed changelog offset was not yet in its local state (the kill
    /// fell between a changelog commit and the deferred local flush).
    /// `point`: the snapshot crash point it aborted at.
    Crashed {
        during_restore: bool,
        lagging: bool,
        point: Option<&'static str>,
    },
    /// Finished its input before the crash point came.
    Finished(BTreeMap<String, u64>),
}

/// The command of a child (or the peer) with the run's settings, logging
/// to `log_name` in the log directory if there is one.
fn child_command(bootstrap: &str, state: &Path, s: &Settings, log_name: &str) -> Result<Command, String> {
    let mut cmd = Command::new(helper("crash-counter")?);
    cmd.args([
        bootstrap,
        &state.display().to_string(),
        s.guarantee,
        &s.partitions.to_string(),
    ])
    // The mock broker keeps no offsets sent in a transaction.
    .env("MIRROR_OFFSETS", "1")
    .env("STATE_BACKEND", &s.backend);
    if s.standbys {
        cmd.env("STANDBYS", "1");
    }
    if s.write_behind {
        cmd.env("STATE_WRITE_BEHIND", "1");
    }
    if s.pipelined {
        cmd.env("PIPELINED", "1");
    }
    if let Some(dir) = snapshot_store(state, s) {
        cmd.env("SNAPSHOT_DIR", dir)
            .env("SNAPSHOT_EVERY", s.snapshot_every.to_string());
    }
    if let Some(dir) = &s.log_dir {
        let filter = std::env::var("CRASH_LOG")
            .unwrap_or_else(|_| "info,state_changelog=debug,state_manager=debug,crash_counter=debug".into());
        cmd.env("CRASH_LOG", filter).env("CRASH_LOG_FILE", dir.join(log_name));
    }
    Ok(cmd)
}

/// The snapshot store of `--snapshots` runs, shared by the members: a
/// directory beside the state directory `state` of either.
fn snapshot_store(state: &Path, s: &Settings) -> Option<PathBuf> {
    s.snapshots.then(|| state.with_file_name("snapshots"))
}

/// What the children said over a run of the harness.
#[derive(Default)]
struct ChildCounts {
    /// Damage found by a read while processing (`--corrupt`).
    damage_found: u32,
    /// Snapshots taken and uploaded.
    snapshots_taken: u32,
    /// Partitions bootstrapped from a snapshot.
    restored: u32,
    /// Partitions without local state that found no usable snapshot
    /// (full replay).
    no_snapshot: u32,
    /// Snapshots a restore could not use, by reason.
    skipped: BTreeMap<String, u32>,
    /// Changelog records replayed after the snapshots restored.
    tail_records: u64,
}

impl ChildCounts {
    /// Takes in one line of a child's output; false if it is not one of
    /// these counts.
    fn note(&mut self, line: &str) -> bool {
        if line == "damage found" {
            self.damage_found += 1;
        } else if line == "snapshot taken" {
            self.snapshots_taken += 1;
        } else if line == "snapshot restore restored" {
            self.restored += 1;
        } else if line == "snapshot restore none" {
            self.no_snapshot += 1;
        } else if let Some(reason) = line.strip_prefix("snapshot skipped ") {
            *self.skipped.entry(reason.to_owned()).or_default() += 1;
        } else if let Some(n) = line.strip_prefix("snapshot tail ") {
            self.tail_records += n.parse::<u64>().unwrap_or(0);
        } else {
            return false;
        }
        true
    }
}

/// True if `status` says the process was ended by SIGABRT (what
/// `std::process::abort` raises).
fn aborted(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    const SIGABRT: i32 = 6;
    status.signal() == Some(SIGABRT)
}

/// The second member of `--standbys` runs: started once, restarted if it
/// ever exits, killed at the end.
struct Peer {
    child: Option<Child>,
    state: PathBuf,
    restarts: u32,
}

impl Peer {
    fn start(bootstrap: &str, state: PathBuf, s: &Settings) -> Result<Peer, String> {
        let mut peer = Peer {
            child: None,
            state,
            restarts: 0,
        };
        peer.ensure(bootstrap, s)?;
        peer.restarts = 0;
        Ok(peer)
    }

    /// Restarts the peer if it is not running.
    fn ensure(&mut self, bootstrap: &str, s: &Settings) -> Result<(), String> {
        if let Some(c) = &mut self.child {
            match c.try_wait() {
                Ok(None) => return Ok(()),
                Ok(Some(status)) => eprintln!("\npeer exited ({status}); restarting it"),
                Err(e) => return Err(format!("checking the peer: {e}")),
            }
        }
        let mut cmd = child_command(bootstrap, &self.state, s, &format!("peer-{:02}.log", self.restarts))?;
        cmd.env("PEER", "1").stdout(Stdio::null()).stderr(Stdio::null());
        self.child = Some(cmd.spawn().map_err(|e| format!("starting the peer: {e}"))?);
        self.restarts += 1;
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn run_child(
    bootstrap: &str,
    state: &Path,
    s: &Settings,
    crash: &Crash,
    last: bool,
    run: u32,
    said: &mut ChildCounts,
) -> Result<RunEnd, String> {
    let mut cmd = child_command(bootstrap, state, s, &format!("run-{run:03}.log"))?;
    if last {
        cmd.env("FINISH_ALL", "1");
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Crash::At(stage, n) = crash {
        cmd.env("CRASH_AT", format!("{stage}:{n}"));
    }
    if let Crash::Point(point, n) = crash {
        cmd.env(crash_point::ENV_VAR, format!("{point}:{n}"));
    }
    let mut child = cmd.spawn().map_err(|e| format!("starting crash-counter: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            s.push_str(&line);
            s.push('\n');
        }
        s
    });
    let mut counts = None;
    let mut killed = false;
    let mut restoring = false;
    let mut killed_restoring = false;
    let mut lag = 0u64;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line == "restoring" {
            restoring = true;
            if matches!(crash, Crash::KillWhenRestoring) && !killed {
                let _ = child.kill();
                killed = true;
                killed_restoring = true;
            }
        } else if line == "ready" {
            restoring = false;
        } else if said.note(&line) {
            // Counted.
        } else if let Some(n) = line.strip_prefix("lag ") {
            if !killed {
                lag = n.parse().unwrap_or(0);
            }
        } else if let Some(n) = line.strip_prefix("processed ") {
            let n: u64 = n.parse().unwrap_or(0);
            if matches!(crash, Crash::KillAfter(k) if n >= *k) && !killed {
                let _ = child.kill();
                killed = true;
                killed_restoring = restoring;
            }
        } else if let Some(json) = line.strip_prefix("counts ") {
            counts = Some(serde_json::from_str(json).map_err(|e| format!("bad counts line: {e}"))?);
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let stderr = errors.join().unwrap_or_default();
    let lagging = lag > 0;
    if killed {
        return Ok(RunEnd::Crashed {
            during_restore: killed_restoring,
            lagging,
            point: None,
        });
    }
    if let Crash::Point(point, _) = crash {
        // Counted only if it really aborted there.
        if aborted(&status) && stderr.contains(&format!("crash point {point} reached")) {
            return Ok(RunEnd::Crashed {
                during_restore: restoring || needs_restore(crash),
                lagging,
                point: Some(point),
            });
        }
    }
    if matches!(crash, Crash::At(..)) && stderr.contains("crash point") {
        // Aborted by itself: where it was when the last line came out.
        return Ok(RunEnd::Crashed {
            during_restore: restoring || matches!(crash, Crash::At("recovery", _)),
            lagging,
            point: None,
        });
    }
    match (status.success(), counts) {
        (true, Some(c)) => Ok(RunEnd::Finished(c)),
        _ => Err(format!("crash-counter failed ({status}):\n{stderr}")),
    }
}

fn produce_chunk(
    producer: &BaseProducer,
    rng: &mut Rng,
    s: &Settings,
    model: &mut BTreeMap<String, u64>,
) -> Result<(), String> {
    for _ in 0..s.chunk {
        let k = rng.below(s.keys as u64);
        let key = format!("k{k:03}");
        producer
            .send(
                BaseRecord::<str, str>::to(INPUT)
                    .key(&key)
                    .payload("x")
                    .partition((k % s.partitions as u64) as i32),
            )
            .map_err(|(e, _)| e.to_string())?;
        *model.entry(key).or_default() += 1;
    }
    producer.flush(Duration::from_secs(10)).map_err(|e| e.to_string())
}

/// Every output record (read_committed): key → values in order.
fn read_output(bootstrap: &str, partitions: u32) -> Result<BTreeMap<String, Vec<u64>>, String> {
    let consumer: BaseConsumer = state_changelog::ConsumerSettings::new("crash-verifier")
        .apply_to(ClientConfig::new().set("bootstrap.servers", bootstrap))
        .create()
        .map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    let mut highs = BTreeMap::new();
    for p in 0..partitions as i32 {
        let (_, high) = consumer
            .fetch_watermarks(OUTPUT, p, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        highs.insert(p, high);
        tpl.add_partition_offset(OUTPUT, p, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                let v = std::str::from_utf8(m.payload().unwrap_or_default())
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or("output value is not a count")?;
                out.entry(key).or_default().push(v);
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => {
                let pos = consumer.position().map_err(|e| e.to_string())?;
                if pos.elements().iter().all(|e| {
                    let high = highs.get(&e.partition()).copied().unwrap_or(0);
                    high == 0 || matches!(e.offset(), Offset::Offset(o) if o >= high)
                }) {
                    return Ok(out);
                }
                if Instant::now() > deadline {
                    return Err("reading the output took over 60 s".into());
                }
            }
        }
    }
}

/// Compares the final counts and the output with the model; returns the
/// mismatches (empty if none) and the number of duplicate output records.
fn check(
    model: &BTreeMap<String, u64>,
    counts: &BTreeMap<String, u64>,
    output: &BTreeMap<String, Vec<u64>>,
) -> (Vec<String>, u64) {
    let mut mismatches = Vec::new();
    let mut duplicates = 0;
    for (key, want) in model {
        let have = counts.get(key).copied().unwrap_or(0);
        if have != *want {
            mismatches.push(format!("state {key}: {have}, model {want}"));
        }
        let values = output.get(key).cloned().unwrap_or_default();
        let distinct: BTreeSet<u64> = values.iter().copied().collect();
        duplicates += (values.len() - distinct.len()) as u64;
        let expected: BTreeSet<u64> = (1..=*want).collect();
        if distinct != expected {
            let missing: Vec<_> = expected.difference(&distinct).take(5).collect();
            let extra: Vec<_> = distinct.difference(&expected).take(5).collect();
            mismatches.push(format!("output {key}: missing {missing:?}, unexpected {extra:?}"));
        }
    }
    for key in counts.keys().chain(output.keys()) {
        if !model.contains_key(key) {
            mismatches.push(format!("{key} is not in the input"));
        }
    }
    (mismatches, duplicates)
}

/// The `--snapshots` part of the report.
fn print_snapshot_report(
    s: &Settings,
    said: &ChildCounts,
    point_kills: &BTreeMap<&'static str, u32>,
    damages: &snapshot_damage::SnapshotDamageCounts,
    wiped_for_restore: u32,
) {
    println!(
        "snapshots: every {} changelog records, one local store shared by the members",
        s.snapshot_every
    );
    println!("snapshots taken: {}", said.snapshots_taken);
    println!(
        "partitions restored from a snapshot: {} (then {} changelog tail records replayed)",
        said.restored, said.tail_records
    );
    println!(
        "partitions without local state that found no usable snapshot (full replay): {}",
        said.no_snapshot
    );
    let skipped: u32 = said.skipped.values().sum();
    let reasons: Vec<String> = said.skipped.iter().map(|(r, n)| format!("{r} {n}")).collect();
    println!(
        "fallbacks (snapshots a restore skipped for an older one or a full replay): {skipped}{}",
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        }
    );
    println!("snapshot damages: {}", damages.total());
    for line in damages.lines() {
        println!("{line}");
    }
    println!("state wiped so that a run reaches a restore crash point: {wiped_for_restore}");
    println!("kills at snapshot crash points: {}", point_kills.values().sum::<u32>());
    for point in crash_point::ALL {
        println!("  {point}: {}", point_kills.get(point).copied().unwrap_or(0));
    }
}

/// Appends `line` to the log at `path`.
fn append_line(path: &Path, line: &str) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    writeln!(f, "{line}").map_err(|e| format!("writing {}: {e}", path.display()))
}

pub fn run(args: &[String]) -> Result<(), String> {
    let s = parse(args)?;
    if let Some(dir) = &s.log_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let mut rng = Rng(s.seed);
    println!("seed: {}", s.seed);
    let broker = Broker::start(s.partitions)?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .create()
        .map_err(|e| e.to_string())?;
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let state = scratch.path().join("state");
    let mut model = BTreeMap::new();
    let (mut runs, mut kills, mut deletions, mut deferred) = (0u32, 0u32, 0u32, 0u32);
    let mut during_restore = 0u32;
    let mut damages = damage::DamageCounts::default();
    let mut said = ChildCounts::default();
    let mut snapshot_damages = snapshot_damage::SnapshotDamageCounts::default();
    let mut point_kills: BTreeMap<&'static str, u32> = BTreeMap::new();
    let mut wiped_for_restore = 0u32;
    // Every quarantine entry seen after a run (a state deletion removes
    // the folder with the rest; entry names are unique).
    let mut quarantined = BTreeSet::new();
    let quarantine_dir = state.join(GROUP).join(".quarantine");
    let note_quarantined = |seen: &mut BTreeSet<std::ffi::OsString>| {
        if let Ok(read) = std::fs::read_dir(&quarantine_dir) {
            seen.extend(read.filter_map(Result::ok).map(|e| e.file_name()));
        }
    };
    let store_dir = state.join(GROUP).join("counts").join(INPUT);
    let mut corrupt = |rng: &mut Rng, runs: u32| -> Result<(), String> {
        if !s.corrupt {
            return Ok(());
        }
        let done = damage::damage_one(rng, &store_dir, &s.backend, s.corrupt_only, &mut damages)?;
        if let (Some(what), Some(dir)) = (done, &s.log_dir) {
            append_line(
                &dir.join(format!("run-{:03}.log", runs + 1)),
                &format!("harness: damage {what}"),
            )?;
        }
        Ok(())
    };
    let mut peer = match s.standbys {
        true => Some(Peer::start(&broker.bootstrap, scratch.path().join("peer-state"), &s)?),
        false => None,
    };
    // Snapshot crash points that are not reached (no snapshot to restore
    // yet, an empty tail) end in a finished run, not a kill.
    let max_runs = s.kills * if s.snapshots { 5 } else { 3 } + 10;
    let started = Instant::now();
    while kills < s.kills {
        if runs >= max_runs {
            return Err(format!("only {kills} kills landed in {runs} runs"));
        }
        produce_chunk(&producer, &mut rng, &s, &mut model)?;
        let point = match s.snapshots {
            true => pick_snapshot_point(&mut rng),
            false => None,
        };
        let crash = match point {
            Some(p) => p,
            None => pick_crash(&mut rng, s.chunk, s.kill_in_restore),
        };
        let mut wipe = rng.below(4) == 0;
        if let Some(store) = snapshot_store(&state, &s) {
            // One restart in four meets a damaged newest snapshot (its
            // restore must fall back); restore points need a restore.
            if rng.below(4) == 0 {
                if let Some(what) = snapshot_damage::damage_newest(&mut rng, &store, &mut snapshot_damages)? {
                    wipe = true;
                    if let Some(dir) = &s.log_dir {
                        append_line(
                            &dir.join(format!("run-{:03}.log", runs + 1)),
                            &format!("harness: snapshot damage {what}"),
                        )?;
                    }
                }
            }
            if needs_restore(&crash) && !wipe {
                wipe = true;
                wiped_for_restore += 1;
            }
        }
        if wipe {
            let _ = std::fs::remove_dir_all(&state);
            deletions += 1;
        }
        corrupt(&mut rng, runs)?;
        runs += 1;
        if let Some(p) = &mut peer {
            p.ensure(&broker.bootstrap, &s)?;
        }
        if let Some(dir) = &s.log_dir {
            append_line(
                &dir.join(format!("run-{runs:03}.log")),
                &format!("harness: crash {crash:?}"),
            )?;
        }
        match run_child(&broker.bootstrap, &state, &s, &crash, false, runs, &mut said)? {
            RunEnd::Crashed {
                during_restore: r,
                lagging,
                point,
            } => {
                kills += 1;
                during_restore += u32::from(r);
                deferred += u32::from(lagging);
                if let Some(p) = point {
                    *point_kills.entry(p).or_default() += 1;
                }
            }
            RunEnd::Finished(_) => {}
        }
        note_quarantined(&mut quarantined);
        eprint!("\rruns {runs}, kills {kills}/{}", s.kills);
        let _ = std::io::stderr().flush();
    }
    eprintln!();
    let peer_restarts = peer.as_ref().map_or(0, |p| p.restarts);
    // The last run owns every partition: the peer goes first.
    if let Some(mut p) = peer.take() {
        p.kill();
    }
    corrupt(&mut rng, runs)?;
    runs += 1;
    let counts = match run_child(&broker.bootstrap, &state, &s, &Crash::None, true, runs, &mut said)? {
        RunEnd::Finished(c) => c,
        RunEnd::Crashed { .. } => return Err("the final run crashed without a crash point".into()),
    };
    note_quarantined(&mut quarantined);
    let output = read_output(&broker.bootstrap, s.partitions)?;
    let (mismatches, duplicates) = check(&model, &counts, &output);
    let records: u64 = model.values().sum();
    println!(
        "guarantee: {}",
        if s.guarantee == "eos" {
            "exactly-once"
        } else {
            "at-least-once"
        }
    );
    println!(
        "backend: {}{}{}",
        s.backend,
        if s.write_behind { " (write-behind)" } else { "" },
        if s.pipelined { " (pipelined checkpoints)" } else { "" }
    );
    println!("records: {records}");
    println!("runs: {runs}");
    println!("kills: {kills}");
    println!("kills during a restore: {during_restore}");
    if s.standbys {
        println!("standbys: on (a second member ran beside, restarted {peer_restarts} times)");
    }
    println!("state deletions: {deletions}");
    if s.corrupt {
        println!("damages: {}", damages.total());
        for line in damages.lines() {
            println!("{line}");
        }
        println!("damage found by a read while processing: {}", said.damage_found);
        println!("partitions quarantined and rebuilt: {}", quarantined.len());
    }
    if s.write_behind {
        println!("kills between a changelog commit and the deferred local flush: {deferred}");
    }
    if s.snapshots {
        print_snapshot_report(&s, &said, &point_kills, &snapshot_damages, wiped_for_restore);
    }
    println!("output duplicates: {duplicates}");
    println!("elapsed: {:.1} s", started.elapsed().as_secs_f64());
    println!("mismatches: {}", mismatches.len());
    for m in mismatches.iter().take(20) {
        println!("  {m}");
    }
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} mismatches (replay with --seed {})",
            mismatches.len(),
            s.seed
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_points_are_drawn_for_half_the_runs_and_only_restore_points_need_a_restore() {
        let mut rng = Rng(5);
        let mut drawn: BTreeMap<&str, u32> = BTreeMap::new();
        let mut none = 0;
        for _ in 0..1000 {
            match pick_snapshot_point(&mut rng) {
                Some(Crash::Point(p, n)) => {
                    assert!(n >= 1);
                    *drawn.entry(p).or_default() += 1;
                }
                Some(other) => panic!("{other:?}"),
                None => none += 1,
            }
        }
        assert!((400..600).contains(&none), "{none}");
        assert_eq!(drawn.len(), crash_point::ALL.len(), "{drawn:?}");
        assert!(drawn[crash_point::TAIL_REPLAY] > drawn[crash_point::UPLOAD_FILE]);
        assert!(needs_restore(&Crash::Point(crash_point::DOWNLOAD_FILE, 1)));
        assert!(needs_restore(&Crash::Point(crash_point::TAIL_REPLAY, 1)));
        assert!(!needs_restore(&Crash::Point(crash_point::UPLOAD_FILE, 1)));
        assert!(!needs_restore(&Crash::Point(crash_point::UPLOAD_BEFORE_MANIFEST, 1)));
        assert!(!needs_restore(&Crash::At("recovery", 1)));
    }

    #[test]
    fn the_childs_snapshot_lines_are_counted() {
        let mut c = ChildCounts::default();
        for line in [
            "snapshot taken",
            "snapshot restore restored",
            "snapshot restore none",
            "snapshot skipped corrupt",
            "snapshot skipped corrupt",
            "snapshot skipped bad_manifest",
            "snapshot tail 7",
            "snapshot tail 5",
            "damage found",
        ] {
            assert!(c.note(line), "{line}");
        }
        assert!(!c.note("processed 3"));
        assert_eq!((c.snapshots_taken, c.restored, c.no_snapshot), (1, 1, 1));
        assert_eq!(c.skipped["corrupt"], 2);
        assert_eq!(c.skipped["bad_manifest"], 1);
        assert_eq!((c.tail_records, c.damage_found), (12, 1));
    }

    #[test]
    fn the_check_finds_lost_and_double_counts() {
        let model: BTreeMap<String, u64> = [("a".to_owned(), 2)].into();
        let good_out: BTreeMap<String, Vec<u64>> = [("a".to_owned(), vec![1, 2, 2])].into();
        let (m, d) = check(&model, &model, &good_out);
        assert!(m.is_empty());
        assert_eq!(d, 1);
        let over: BTreeMap<String, u64> = [("a".to_owned(), 3)].into();
        assert_eq!(check(&model, &over, &good_out).0.len(), 1);
        let lost: BTreeMap<String, Vec<u64>> = [("a".to_owned(), vec![2])].into();
        assert_eq!(check(&model, &model, &lost).0.len(), 1);
    }
}
