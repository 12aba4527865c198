//! [`SnapshotTaker`]: snapshots of active partitions taken and uploaded
//! in the background after checkpoints.
//!
//! After a checkpoint's local flush the poll loop only compares each
//! active partition's stored changelog offset, the changelog bytes sent
//! for it from here and the time with those of its last snapshot
//! ([`SnapshotSettings::due`]) and hands a due partition
//! to the taker's thread. That thread takes the backend's snapshot
//! (RocksDB: a checkpoint of hard links; fjall: an export; memory: a dump)
//! and lets go of the partition, then uploads and applies retention. A
//! backend snapshot is consistent by itself: every write carries its
//! changelog offset in the same atomic batch, so the snapshot holds exactly
//! the state at the offset it stores, whichever checkpoint it lands after;
//! and local state only ever holds committed checkpoints (it is flushed
//! after the commit). One snapshot at a time per partition: a partition
//! whose snapshot is still running is not due.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use state_core::{StorePartition, TopicPartition};
use state_snapshot::{NoProgress, SnapshotError, SnapshotScope};

use super::bootstrap::StorePartitionKey;
use super::metrics;
use super::settings::SnapshotSettings;
use crate::registry::Registry;

/// How long a revocation waits for a snapshot being taken of the
/// partition to let go of it.
const RELEASE_WAIT: Duration = Duration::from_secs(30);

/// One snapshot to take.
struct TakeJob {
    key: StorePartitionKey,
    partition: Arc<dyn StorePartition>,
    scope: SnapshotScope,
    store_name: String,
    stream: String,
    kind: String,
    codec: String,
    backend: &'static str,
    dir: PathBuf,
}

/// Partitions with a snapshot running, and those whose snapshot still
/// holds the partition open (until the backend's snapshot is taken).
#[derive(Default)]
struct Running {
    taking: BTreeSet<StorePartitionKey>,
    holding: BTreeSet<StorePartitionKey>,
}

/// A snapshot's result, for the metrics: recorded on the poll loop's
/// thread, where the application's recorder is (a thread-local one too).
struct TakeReport {
    store: String,
    stream: String,
    result: &'static str,
    took: Duration,
    bytes: u64,
}

#[derive(Default)]
struct Shared {
    running: Mutex<Running>,
    released: Condvar,
    reports: Mutex<Vec<TakeReport>>,
}

impl Shared {
    fn let_go(&self, key: StorePartitionKey) {
        self.running.lock().holding.remove(&key);
        self.released.notify_all();
    }

    fn done(&self, key: StorePartitionKey) {
        let mut running = self.running.lock();
        running.holding.remove(&key);
        running.taking.remove(&key);
        self.released.notify_all();
    }
}

/// Where an active partition stood at its last snapshot.
#[derive(Clone, Copy, Debug)]
struct Position {
    /// Its stored changelog offset.
    offset: u64,
    /// The changelog bytes sent for it from here
    /// ([`crate::registry::RegisteredStore::changelog_bytes_sent`]).
    bytes: u64,
    at: Instant,
}

impl Position {
    /// The changelog bytes sent since this position, given the total
    /// `bytes` now. A total below the one remembered belongs to a
    /// partition closed and opened again here since (its count starts at
    /// zero): all of it is new.
    fn bytes_since(&self, bytes: u64) -> u64 {
        bytes.checked_sub(self.bytes).unwrap_or(bytes)
    }
}

/// See the [module docs](self).
pub(crate) struct SnapshotTaker {
    settings: Option<SnapshotSettings>,
    scratch: PathBuf,
    /// Each active partition's position at its last snapshot (or when
    /// first seen here).
    last: BTreeMap<StorePartitionKey, Position>,
    shared: Arc<Shared>,
    worker: Option<(mpsc::Sender<TakeJob>, JoinHandle<()>)>,
}

impl SnapshotTaker {
    /// A taker under `settings` (none: takes nothing), taking snapshots
    /// under `group_dir`.
    pub(crate) fn new(settings: Option<&SnapshotSettings>, group_dir: PathBuf) -> Self {
        SnapshotTaker {
            settings: settings.filter(|s| s.takes_snapshots()).cloned(),
            scratch: group_dir.join(super::SCRATCH_DIR),
            last: BTreeMap::new(),
            shared: Arc::default(),
            worker: None,
        }
    }

    /// After a checkpoint's local flush: starts a snapshot of every active
    /// partition (`active` says which source partitions are) that is due
    /// and has none running.
    pub(crate) fn after_flush(&mut self, registry: &Registry, active: impl Fn(&TopicPartition) -> bool) {
        self.count_reports();
        let Some(settings) = &self.settings else { return };
        let now = Instant::now();
        let mut due = Vec::new();
        for (id, store) in registry.iter() {
            let Some(changelog) = store.changelog_topic() else {
                continue;
            };
            for p in store.store().assigned_partitions() {
                if !active(&TopicPartition::of_store(store.stream(), p)) {
                    continue;
                }
                let Some(partition) = store.partition(p) else { continue };
                let Ok(Some(offset)) = partition.changelog_offset() else {
                    continue;
                };
                let key = (id, p);
                let here = Position {
                    offset,
                    bytes: store.changelog_bytes_sent(p),
                    at: now,
                };
                let last = *self.last.entry(key).or_insert(here);
                if !settings.due(
                    offset.saturating_sub(last.offset),
                    last.bytes_since(here.bytes),
                    now.duration_since(last.at),
                ) {
                    continue;
                }
                if self.shared.running.lock().taking.contains(&key) {
                    continue;
                }
                let Ok(scope) = SnapshotScope::new(changelog, p) else {
                    continue;
                };
                self.last.insert(key, here);
                due.push(TakeJob {
                    key,
                    partition,
                    scope,
                    store_name: store.name().to_owned(),
                    stream: store.stream().to_owned(),
                    kind: store.kind().as_str().to_owned(),
                    codec: store.codec().name().to_owned(),
                    backend: store.store().backend().info().name,
                    dir: self.scratch.join(format!(
                        "take-{}-{p}-{}",
                        changelog.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
                        offset
                    )),
                });
            }
        }
        for job in due {
            self.send(job);
        }
    }

    fn send(&mut self, job: TakeJob) {
        if self.worker.is_none() {
            let Some(settings) = self.settings.clone() else { return };
            match spawn(settings, self.shared.clone(), self.scratch.clone()) {
                Ok(worker) => self.worker = Some(worker),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the snapshot thread; no snapshots taken");
                    return;
                }
            }
        }
        let Some((jobs, _)) = &self.worker else { return };
        let key = job.key;
        {
            let mut running = self.shared.running.lock();
            running.taking.insert(key);
            running.holding.insert(key);
        }
        if jobs.send(job).is_err() {
            self.shared.done(key);
        }
    }

    /// Waits (up to 30 s) until no snapshot being taken holds partition
    /// `key` open, and forgets its last snapshot: call before closing the
    /// partition (revoked).
    pub(crate) fn release(&mut self, key: StorePartitionKey) {
        self.last.remove(&key);
        let deadline = Instant::now() + RELEASE_WAIT;
        let mut running = self.shared.running.lock();
        while running.holding.contains(&key) {
            if self.shared.released.wait_until(&mut running, deadline).timed_out() {
                tracing::warn!(
                    store_id = key.0,
                    partition = key.1,
                    "a snapshot still holds a revoked partition open"
                );
                break;
            }
        }
    }

    /// Records the metrics of the snapshots finished since the last call.
    pub(crate) fn count_reports(&self) {
        // Only the worker thread reports: without one (no snapshot taken
        // yet, or none configured) the poll loop's per-turn call takes no
        // lock.
        if self.worker.is_some() {
            self.drain_reports();
        }
    }

    /// Records every report the worker left.
    fn drain_reports(&self) {
        let reports = std::mem::take(&mut *self.shared.reports.lock());
        for r in reports {
            metrics::taken(&r.store, &r.stream, r.result, r.took, r.bytes);
        }
    }

    /// Waits for the running snapshots to finish and stops the thread.
    pub(crate) fn stop(&mut self) {
        if let Some((jobs, thread)) = self.worker.take() {
            drop(jobs);
            let _ = thread.join();
        }
        self.drain_reports();
    }
}

impl Drop for SnapshotTaker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(
    settings: SnapshotSettings,
    shared: Arc<Shared>,
    scratch: PathBuf,
) -> std::io::Result<(mpsc::Sender<TakeJob>, JoinHandle<()>)> {
    let (jobs, rx) = mpsc::channel::<TakeJob>();
    let thread = std::thread::Builder::new()
        .name("kafka-state-snapshot-take".into())
        .spawn(move || {
            remove_stale(&scratch);
            // The offset of each partition's last snapshot uploaded here: a
            // job that waited behind others may find the partition where
            // the previous one left it, and a second copy saves nothing.
            let mut uploaded = BTreeMap::new();
            for job in rx {
                let key = job.key;
                let before = uploaded.get(&key).copied();
                if let Some(offset) = take(&settings, job, before, &shared) {
                    uploaded.insert(key, offset);
                }
                shared.done(key);
            }
        })?;
    Ok((jobs, thread))
}

/// Local snapshots older than this in the scratch directory were left by
/// a process that died while uploading them (or another manager's that
/// is still uploading, for at most this long): deleted.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Deletes stale local snapshots (hard links that would keep old table
/// files on disk) from `scratch`.
fn remove_stale(scratch: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(scratch) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry.file_name().to_string_lossy().starts_with("take-")
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_AFTER));
        if stale {
            if let Err(e) = state_core::remove_store_dir(&entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot delete a stale local snapshot");
            }
        }
    }
}

/// Takes, uploads and prunes one snapshot, unless it would be at
/// `previous`, the offset of the partition's last snapshot; the offset
/// uploaded. Failures are logged and counted (the partition is due again
/// after another interval).
fn take(settings: &SnapshotSettings, job: TakeJob, previous: Option<u64>, shared: &Shared) -> Option<u64> {
    let started = Instant::now();
    let TakeJob {
        key,
        partition,
        scope,
        store_name,
        stream,
        kind,
        codec,
        backend,
        dir,
    } = job;
    let taken = match dir.parent().map(std::fs::create_dir_all) {
        Some(Err(e)) => Err(SnapshotError::Io {
            path: dir.clone(),
            source: e,
        }),
        _ => partition.snapshot(&dir).map_err(SnapshotError::from),
    };
    // The backend's snapshot is the partition's own from here on.
    drop(partition);
    shared.let_go(key);
    let result = taken.and_then(|local| {
        let local = local.ok_or(SnapshotError::NotSupported { backend })?;
        if previous.is_some() && local.changelog_offset() == previous {
            return Ok(None);
        }
        settings
            .store
            .upload(&local, &scope, Some(codec), Some(kind), &NoProgress)
            .map(Some)
    });
    if let Err(e) = state_core::remove_store_dir(&dir) {
        tracing::warn!(path = %dir.display(), error = %e, "cannot delete a local snapshot after its upload");
    }
    match result {
        Ok(None) => previous,
        Ok(Some(up)) => {
            shared.reports.lock().push(TakeReport {
                store: store_name.clone(),
                stream: stream.clone(),
                result: "ok",
                took: started.elapsed(),
                bytes: up.bytes_uploaded,
            });
            tracing::info!(
                store = store_name.as_str(),
                stream = stream.as_str(),
                partition = key.1,
                snapshot = up.manifest.id.as_str(),
                offset = ?up.manifest.changelog_offset,
                uploaded = up.bytes_uploaded,
                reused = up.bytes_reused,
                took = ?started.elapsed(),
                "snapshot taken"
            );
            if let Err(e) = settings.store.prune(&scope) {
                tracing::warn!(store = store_name.as_str(), partition = key.1, error = %e, "applying snapshot retention failed; retried after the next snapshot");
            }
            up.manifest.changelog_offset
        }
        Err(e) => {
            shared.reports.lock().push(TakeReport {
                store: store_name.clone(),
                stream: stream.clone(),
                result: "failed",
                took: started.elapsed(),
                bytes: 0,
            });
            tracing::warn!(
                store = store_name.as_str(),
                stream = stream.as_str(),
                partition = key.1,
                error = %e,
                "taking a snapshot failed; the next one is tried after another interval"
            );
            previous
        }
    }
}
