//! [`Bootstraps`]: restoring partitions without local state from
//! snapshots on a thread of their own, so neither the rebalance callback
//! nor the poll loop waits for a download. The poll loop collects what
//! finished ([`Bootstraps::finished`]) and hands those partitions to the
//! restorer, which replays the changelog after the snapshot.
//!
//! Stopping ([`Bootstraps::stop`]: the manager closed or dropped) cancels
//! the running download between two chunks ([`Progress::cancelled`]) and
//! drops the jobs not started, so it waits for one chunk, not a whole
//! snapshot; a cancelled job installs nothing. A revoked partition's job
//! is not cancelled: its download goes on, and is used if the partition
//! comes back here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use state_changelog::{ConsumerSettings, RecoveryConfig};
use state_core::StorePartition;
use state_snapshot::Progress;

use super::restore::{restore_newest, BootstrapJob, BootstrapReport, Bootstrapped};
use super::settings::SnapshotSettings;
use crate::registry::RegisteredStore;

/// A store partition: (registry id, partition).
pub(crate) type StorePartitionKey = (usize, u32);

/// A finished job: its partition, store and stream (metrics), report.
type Finished = (StorePartitionKey, String, String, BootstrapReport);

/// The bootstrap thread, started with the first job.
struct Worker {
    jobs: mpsc::Sender<BootstrapJob>,
    /// Set when the manager stops: the running download is cancelled and
    /// jobs not started are dropped.
    stopping: Arc<AtomicBool>,
    done: Mutex<mpsc::Receiver<Finished>>,
    thread: Option<JoinHandle<()>>,
}

/// See the [module docs](self).
pub(crate) struct Bootstraps {
    settings: Option<SnapshotSettings>,
    /// The restore consumer's settings: the bootstrap thread asks it for
    /// the changelog's committed end (read_committed: the last stable
    /// offset).
    consumer: ClientConfig,
    timeout: Duration,
    /// Where downloads go: `<state_dir>/<group>/.snapshots/`, on the
    /// partitions' filesystem (a snapshot is moved into place).
    scratch: PathBuf,
    worker: Option<Worker>,
    /// Jobs not finished, and whether their partition is still wanted
    /// (a revoked one's result is dropped; the restored data stays as the
    /// partition's local state).
    in_flight: BTreeMap<StorePartitionKey, bool>,
}

impl Bootstraps {
    /// Bootstraps under `settings` (`None`, or restores turned off: none),
    /// reading watermarks with `kafka` and `recovery`'s consumer settings
    /// of group `group_id`.
    pub(crate) fn new(
        settings: Option<&SnapshotSettings>,
        kafka: &ClientConfig,
        recovery: &RecoveryConfig,
        group_id: &str,
        group_dir: PathBuf,
        timeout: Duration,
    ) -> Self {
        let mut client = kafka.clone();
        for (key, value) in &recovery.consumer_properties {
            client.set(key, value);
        }
        Bootstraps {
            settings: settings.filter(|s| s.restore).cloned(),
            consumer: ConsumerSettings::restore(group_id).client_config(&client),
            timeout,
            scratch: group_dir.join(super::SCRATCH_DIR),
            worker: None,
            in_flight: BTreeMap::new(),
        }
    }

    /// True if `key` is being bootstrapped: its partition must not be
    /// opened until the job finished.
    pub(crate) fn running(&self, key: StorePartitionKey) -> bool {
        self.in_flight.contains_key(&key)
    }

    /// Marks the running job of `key` as wanted again (re-assigned) or not
    /// (revoked).
    pub(crate) fn set_wanted(&mut self, key: StorePartitionKey, wanted: bool) {
        if let Some(w) = self.in_flight.get_mut(&key) {
            *w = wanted;
        }
    }

    /// The job for `opened`, partition `partition` of `store` (registry id
    /// `id`), if it should start from a snapshot: snapshots are on, the
    /// store has a changelog, and the partition holds no changelog offset
    /// (new, empty, or just moved to quarantine), or (with
    /// [`SnapshotSettings::restore_when_behind`]) any.
    pub(crate) fn job_for(
        &self,
        id: usize,
        store: &RegisteredStore,
        partition: u32,
        opened: &dyn StorePartition,
    ) -> Option<BootstrapJob> {
        let settings = self.settings.as_ref()?;
        let changelog = store.changelog_topic()?;
        let local_offset = match opened.changelog_offset() {
            Ok(offset) => offset,
            // Unreadable: the restore finds out and heals it.
            Err(_) => return None,
        };
        if local_offset.is_some() && settings.restore_when_behind.is_none() {
            return None;
        }
        let scope = match state_snapshot::SnapshotScope::new(changelog, partition) {
            Ok(scope) => scope,
            Err(e) => {
                tracing::warn!(changelog, error = %e, "no snapshots for this store");
                return None;
            }
        };
        Some(BootstrapJob {
            store_id: id,
            partition,
            store_name: store.name().to_owned(),
            stream: store.stream().to_owned(),
            changelog: state_core::TopicPartition::new(changelog, partition as i32),
            scope,
            backend: store.store().backend().clone(),
            location: store.store().location().clone(),
            kind: store.kind(),
            codec: store.codec().name().to_owned(),
            local_offset,
            min_gain: settings.restore_when_behind.unwrap_or(0),
            scratch: self
                .scratch
                .join(format!("restore-{}-{partition}", sanitize(changelog))),
        })
    }

    /// Starts `job` (its partition closed); false if it cannot (no
    /// snapshots, or the thread cannot start): the caller restores the
    /// partition from its changelog alone.
    pub(crate) fn start(&mut self, job: BootstrapJob) -> bool {
        let Some(settings) = &self.settings else {
            return false;
        };
        if self.worker.is_none() {
            match spawn(settings.clone(), self.consumer.clone(), self.timeout) {
                Ok(worker) => self.worker = Some(worker),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the snapshot bootstrap thread; replaying changelogs");
                    return false;
                }
            }
        }
        let key = (job.store_id, job.partition);
        let Some(worker) = &self.worker else { return false };
        if worker.jobs.send(job).is_err() {
            return false;
        }
        self.in_flight.insert(key, true);
        true
    }

    /// The jobs that finished and are still wanted (every finished one is
    /// counted in the metrics here, on the poll loop's thread).
    pub(crate) fn finished(&mut self) -> Vec<(StorePartitionKey, BootstrapReport)> {
        let Some(worker) = &self.worker else {
            return Vec::new();
        };
        let done: Vec<Finished> = worker.done.lock().try_iter().collect();
        let mut wanted = Vec::new();
        for (key, store, stream, report) in done {
            report.count(&store, &stream);
            if self.in_flight.remove(&key).unwrap_or(false) {
                wanted.push((key, report));
            }
        }
        wanted
    }

    /// Cancels the running job and drops those not started, waits until
    /// the thread ended (promptly: a download stops between two chunks;
    /// an install already under way, a rename and an open, completes), and
    /// forgets every job. Afterwards nothing writes into a partition's
    /// directory; a cancelled job's partition keeps its previous data (none,
    /// for a new one: the next start restores it again). The next
    /// [`start`](Self::start) starts a new thread.
    pub(crate) fn stop(&mut self) {
        if let Some(mut worker) = self.worker.take() {
            worker.stopping.store(true, Ordering::Relaxed);
            drop(worker.jobs);
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
        self.in_flight.clear();
    }
}

impl Drop for Bootstraps {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A changelog topic name as a file name.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn spawn(settings: SnapshotSettings, consumer: ClientConfig, timeout: Duration) -> std::io::Result<Worker> {
    let (jobs, job_rx) = mpsc::channel::<BootstrapJob>();
    let (done_tx, done) = mpsc::channel();
    let stopping = Arc::new(AtomicBool::new(false));
    let stop = stopping.clone();
    let thread = std::thread::Builder::new()
        .name("kafka-state-snapshot-restore".into())
        .spawn(move || {
            let mut watermarks: Option<BaseConsumer> = None;
            for job in job_rx {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let end = changelog_end(&mut watermarks, &consumer, &job, timeout);
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let report = match end {
                    Some(end) => restore_newest(&settings.store, &job, end, &StopCancels(&stop)),
                    None => BootstrapReport {
                        outcome: Bootstrapped::Nothing,
                        skipped: vec!["failed"],
                        took: Duration::ZERO,
                        bytes: 0,
                    },
                };
                let key = (job.store_id, job.partition);
                if done_tx.send((key, job.store_name, job.stream, report)).is_err() {
                    return;
                }
            }
        })?;
    Ok(Worker {
        jobs,
        stopping,
        done: Mutex::new(done),
        thread: Some(thread),
    })
}

/// Cancels a restore once the manager stops.
struct StopCancels<'a>(&'a AtomicBool);

impl Progress for StopCancels<'_> {
    fn cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The changelog's committed end (`None`, logged: unknown, no snapshot is
/// used; the restore reports the broker's failure).
fn changelog_end(
    client: &mut Option<BaseConsumer>,
    config: &ClientConfig,
    job: &BootstrapJob,
    timeout: Duration,
) -> Option<i64> {
    if client.is_none() {
        match config.create::<BaseConsumer>() {
            Ok(c) => *client = Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "cannot create a client to read changelog watermarks; not using snapshots");
                return None;
            }
        }
    }
    let c = client.as_ref()?;
    match c.fetch_watermarks(job.changelog.topic(), job.changelog.partition(), timeout) {
        Ok((_, high)) => Some(high),
        Err(e) => {
            tracing::warn!(
                topic = job.changelog.topic(),
                partition = job.changelog.partition(),
                error = %e,
                "cannot read the changelog's end; not using snapshots for this partition"
            );
            None
        }
    }
}
