//! [`Restorer`]: restores store partitions from their changelogs on a
//! thread of its own, beside the application's poll loop, and keeps standby
//! replicas warm by tailing the changelogs of partitions this instance does
//! not own.
//!
//! Kafka Streams does the same on its state-updater thread (KIP-869): the
//! consumer keeps polling (and heart-beating) while large state restores, so
//! restore time never counts against `max.poll.interval.ms`, and partitions
//! already restored keep processing.
//!
//! Every change goes through a [`ChangelogApplier`], so restoring and
//! tailing keep recovery's guarantees: batches are atomic with the changelog
//! offset they include, records of uncommitted checkpoints are skipped
//! (active restore) or held back until they commit (standby), malformed
//! records are typed errors and nothing of their batch is written.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use state_core::{ReplayCheck, StorePartition};

use crate::error::{ChangelogError, Result};
use crate::kafka::client::KafkaClientContext;
use crate::kafka::consumer::serve_events;
use crate::kafka::consumer::{create_consumer, ConsumerSettings};
use crate::restore::apply::{ApplierConfig, ApplyStats, ChangelogApplier, IncomingRecord};
use crate::restore::blocking::{RecoveryConfig, RecoveryProgress};

/// A changelog partition: (topic, partition).
pub type ChangelogPartition = (String, i32);

/// A partition to restore to the end of its changelog (an active task).
pub struct RestoreRequest {
    /// The store partition to write into.
    pub partition: Arc<dyn StorePartition>,
    /// Its changelog partition.
    pub changelog: ChangelogPartition,
    /// Committed source offsets (`topic -> next offset to consume`);
    /// records of checkpoints at or beyond them are skipped.
    pub committed_offsets: BTreeMap<String, i64>,
    /// Where the partition lives (for messages).
    pub location: String,
    /// Checks every record against the partition's codec and TTL mode
    /// (see [`ReplayCheck`]); `None`: no check.
    pub replay_check: Option<ReplayCheck>,
}

/// A partition to keep warm as a standby replica.
pub struct StandbyRequest {
    /// The store partition to write into.
    pub partition: Arc<dyn StorePartition>,
    /// Its changelog partition.
    pub changelog: ChangelogPartition,
    /// The source partition whose committed offset decides which records
    /// are committed: (topic, partition).
    pub source: (String, i32),
    /// Where the partition lives (for messages).
    pub location: String,
    /// As [`RestoreRequest::replay_check`].
    pub replay_check: Option<ReplayCheck>,
}

/// What the restorer reports. Drain them with [`Restorer::events`].
#[derive(Debug)]
pub enum RestoreEvent {
    /// Progress of an active restore (also logged).
    Progress(RecoveryProgress),
    /// An active restore reached the high watermark taken when it started
    /// (or when its standby was promoted): the partition is ready.
    Restored {
        /// The changelog partition.
        changelog: ChangelogPartition,
        /// What was applied.
        stats: ApplyStats,
        /// The stored changelog offset afterwards.
        offset: Option<u64>,
        /// How long the restore took.
        elapsed: Duration,
        /// The committed source offsets its records were judged by: the
        /// partition holds exactly the checkpoints committed before them,
        /// so its source partition resumes there.
        committed_offsets: BTreeMap<String, i64>,
    },
    /// A restore or standby failed; the task is dropped. The partition keeps
    /// the batches written before the failure (data and offset agree).
    Failed {
        /// The changelog partition.
        changelog: ChangelogPartition,
        /// True if it was a standby.
        standby: bool,
        /// Why.
        error: ChangelogError,
    },
}

/// What a standby replica has, as last reported by the restorer thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StandbyStatus {
    /// The changelog partition.
    pub changelog: ChangelogPartition,
    /// The last changelog offset applied (stored in the partition).
    pub applied_offset: Option<u64>,
    /// The changelog's high watermark at the last check.
    pub high_watermark: i64,
    /// Records between what is applied and the high watermark.
    pub lag: u64,
    /// True while the next record belongs to a checkpoint not yet committed.
    pub waiting_for_commit: bool,
}

enum Command {
    Restore(RestoreRequest),
    Standby(StandbyRequest),
    Promote {
        changelog: ChangelogPartition,
        committed_offsets: BTreeMap<String, i64>,
    },
    Release {
        changelogs: Vec<ChangelogPartition>,
        done: Sender<Vec<(ChangelogPartition, Result<()>)>>,
    },
}

/// The restorer thread, as its owner sees it. Dropping it stops the thread
/// (pending batches of every task are written first).
pub struct Restorer {
    commands: Option<Sender<Command>>,
    events: Receiver<RestoreEvent>,
    standbys: Arc<Mutex<BTreeMap<ChangelogPartition, StandbyStatus>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Restorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restorer").finish_non_exhaustive()
    }
}

fn stopped() -> ChangelogError {
    ChangelogError::Stopped
}

impl Restorer {
    /// Starts the thread. Its consumer uses `client` (bootstrap servers,
    /// security) and reads `read_committed`; `group_id` is the
    /// application's group, used only to read its committed offsets for
    /// standbys (the restorer never joins the group nor commits).
    pub fn start(client: &ClientConfig, group_id: &str, config: RecoveryConfig) -> Result<Self> {
        let consumer = create_consumer(
            client,
            &ConsumerSettings::restore(group_id),
            "creating the restore consumer",
        )?;
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (event_tx, events) = crossbeam_channel::unbounded();
        let standbys = Arc::new(Mutex::new(BTreeMap::new()));
        let worker = Worker {
            consumer,
            config,
            commands: command_rx,
            events: event_tx,
            standbys: standbys.clone(),
            tasks: HashMap::new(),
            last_key: None,
            now: Instant::now(),
            since_clock: 0,
            assignment_dirty: false,
            last_refresh: Instant::now(),
            last_flush: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("state-restorer".into())
            .spawn(move || worker.run())
            .map_err(|e| ChangelogError::Thread(e.to_string()))?;
        Ok(Restorer {
            commands: Some(commands),
            events,
            standbys,
            thread: Some(thread),
        })
    }

    fn send(&self, c: Command) -> Result<()> {
        self.commands
            .as_ref()
            .ok_or_else(stopped)?
            .send(c)
            .map_err(|_| stopped())
    }

    /// Restores `request`'s partition to the end of its changelog; a
    /// [`RestoreEvent::Restored`] tells when it is done.
    pub fn restore(&self, request: RestoreRequest) -> Result<()> {
        self.send(Command::Restore(request))
    }

    /// Keeps `request`'s partition warm: applies committed changelog records
    /// as they arrive, until released or promoted.
    pub fn standby(&self, request: StandbyRequest) -> Result<()> {
        self.send(Command::Standby(request))
    }

    /// Turns the standby of `changelog` into an active restore to the
    /// current end of its changelog, judging records by `committed_offsets`
    /// (the new owner's committed source offsets): only the delta since the
    /// standby's last applied offset is replayed.
    pub fn promote(&self, changelog: ChangelogPartition, committed_offsets: BTreeMap<String, i64>) -> Result<()> {
        self.send(Command::Promote {
            changelog,
            committed_offsets,
        })
    }

    /// Stops restoring or tailing `changelogs` and waits until the thread
    /// let go of them: the batch being filled is written whole (with its
    /// offset) and nothing after it, so the partition's data and stored
    /// offset agree. Unknown partitions are ignored.
    pub fn release(&self, changelogs: Vec<ChangelogPartition>) -> Result<Vec<(ChangelogPartition, Result<()>)>> {
        if changelogs.is_empty() {
            return Ok(Vec::new());
        }
        let (done, wait) = crossbeam_channel::bounded(1);
        self.send(Command::Release { changelogs, done })?;
        wait.recv().map_err(|_| stopped())
    }

    /// Events reported since the last call.
    pub fn events(&self) -> Vec<RestoreEvent> {
        self.events.try_iter().collect()
    }

    /// What every standby has, as last reported.
    pub fn standby_status(&self) -> Vec<StandbyStatus> {
        self.standbys.lock().values().cloned().collect()
    }
}

impl Drop for Restorer {
    fn drop(&mut self) {
        self.commands = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Role {
    Active {
        started: Instant,
        start: i64,
        high: i64,
        /// The last progress report (`None`: none yet, so the first record
        /// applied reports at once).
        last_report: Option<Instant>,
        last_log: Instant,
    },
    Standby {
        source: (String, i32),
        held: bool,
    },
}

/// A task to start: where, and whether it restores or tails.
struct NewTask {
    changelog: ChangelogPartition,
    partition: Arc<dyn StorePartition>,
    location: String,
    replay_check: Option<ReplayCheck>,
    kind: NewKind,
}

enum NewKind {
    /// Restore to the end, judging records by these committed offsets.
    Active(BTreeMap<String, i64>),
    /// Tail, judging records by the committed offsets of this source partition.
    Standby((String, i32)),
}

struct Task {
    applier: ChangelogApplier,
    partition: Arc<dyn StorePartition>,
    role: Role,
    /// The offset to fetch from when (re)assigned: one past the last record
    /// staged, or the held record.
    next: i64,
    location: String,
    /// When the task last applied a record or started.
    last_activity: Instant,
}

struct Worker {
    consumer: BaseConsumer<KafkaClientContext>,
    config: RecoveryConfig,
    commands: Receiver<Command>,
    events: Sender<RestoreEvent>,
    standbys: Arc<Mutex<BTreeMap<ChangelogPartition, StandbyStatus>>>,
    tasks: HashMap<ChangelogPartition, Task>,
    /// The key of the last record's partition, reused for the next record.
    last_key: Option<ChangelogPartition>,
    /// The clock as of the last read: read every
    /// [`CLOCK_EVERY`](crate::restore::blocking::CLOCK_EVERY) records and at the end
    /// of each fetch (reading it per record cost as much as applying).
    now: Instant,
    since_clock: u32,
    assignment_dirty: bool,
    last_refresh: Instant,
    last_flush: Instant,
}

impl Worker {
    fn run(mut self) {
        loop {
            // Commands first; block for one when idle.
            let next = if self.tasks.is_empty() {
                match self.commands.recv() {
                    Ok(c) => Some(c),
                    Err(_) => break,
                }
            } else {
                match self.commands.try_recv() {
                    Ok(c) => Some(c),
                    Err(crossbeam_channel::TryRecvError::Empty) => None,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => break,
                }
            };
            if let Some(c) = next {
                self.command(c);
                continue;
            }
            if self.assignment_dirty {
                self.reassign();
            }
            self.poll_once();
            self.housekeeping();
        }
        // Shutting down: write what every task has staged.
        for (key, mut t) in self.tasks.drain() {
            if let Err(e) = t.applier.finish() {
                tracing::warn!(topic = key.0, partition = key.1, error = %e, "writing the last restore batch on shutdown failed");
            }
        }
        let _ = self.consumer.unassign();
    }

    fn emit(&self, e: RestoreEvent) {
        let _ = self.events.send(e);
    }

    fn fail(&mut self, key: &ChangelogPartition, error: ChangelogError) {
        if let Some(mut t) = self.tasks.remove(key) {
            // Settle what is in flight; the error reported is the first one.
            let _ = t.applier.flush();
            let standby = matches!(t.role, Role::Standby { .. });
            tracing::error!(topic = key.0, partition = key.1, standby, error = %error, "restore failed");
            self.standbys.lock().remove(key);
            self.assignment_dirty = true;
            self.emit(RestoreEvent::Failed {
                changelog: key.clone(),
                standby,
                error,
            });
        }
    }

    fn watermarks(&self, key: &ChangelogPartition) -> Result<(i64, i64)> {
        self.consumer
            .fetch_watermarks(&key.0, key.1, self.config.metadata_timeout)
            .map_err(|source| {
                serve_events(&self.consumer);
                ChangelogError::from_kafka(
                    "fetching changelog watermarks",
                    source,
                    None,
                    Some(self.consumer.context()),
                )
            })
    }

    /// Where a task starts: one past the stored offset, or the log start.
    fn start_offset(
        &self,
        key: &ChangelogPartition,
        partition: &dyn StorePartition,
        location: &str,
    ) -> Result<(i64, i64)> {
        let (low, high) = self.watermarks(key)?;
        let stored = partition.changelog_offset()?;
        if let Some(stored) = stored {
            if stored as i64 >= high {
                return Err(ChangelogError::InvalidStoredOffset {
                    topic: key.0.clone(),
                    partition: key.1,
                    stored,
                    high_watermark: high,
                    path: location.to_owned(),
                });
            }
        }
        Ok((stored.map_or(low, |s| (s as i64 + 1).max(low)), high))
    }

    fn applier(
        &self,
        partition: &Arc<dyn StorePartition>,
        key: &ChangelogPartition,
        committed: BTreeMap<String, i64>,
        check: Option<ReplayCheck>,
    ) -> ChangelogApplier {
        let applier = ChangelogApplier::new(
            partition.clone(),
            key.0.clone(),
            key.1,
            committed,
            ApplierConfig {
                max_batch_records: self.config.batch_records,
            },
        );
        match check {
            Some(c) => applier.with_replay_check(c),
            None => applier,
        }
    }

    /// The role of an active restore from `start` to `high`.
    fn active(&self, start: i64, high: i64) -> Role {
        Role::Active {
            started: Instant::now(),
            start,
            high,
            last_report: None,
            last_log: Instant::now(),
        }
    }

    /// Starts restoring (`committed` given) or tailing (`source` given) a
    /// partition from its stored offset.
    fn start_task(&mut self, t: NewTask) {
        let key = t.changelog;
        let standby = matches!(t.kind, NewKind::Standby(_));
        let (start, high) = match self.start_offset(&key, t.partition.as_ref(), &t.location) {
            Ok(bounds) => bounds,
            Err(error) => {
                self.emit(RestoreEvent::Failed {
                    changelog: key,
                    standby,
                    error,
                });
                return;
            }
        };
        let (role, committed) = match t.kind {
            NewKind::Active(committed) => (self.active(start, high), committed),
            NewKind::Standby(source) => {
                let committed = self.committed_of(&source).unwrap_or_default();
                (Role::Standby { source, held: false }, committed)
            }
        };
        let task = Task {
            applier: self.applier(&t.partition, &key, committed, t.replay_check),
            partition: t.partition,
            role,
            next: start,
            location: t.location,
            last_activity: Instant::now(),
        };
        if standby {
            tracing::info!(
                topic = key.0,
                partition = key.1,
                start,
                high,
                "standby replica tailing its changelog"
            );
        } else {
            tracing::info!(
                topic = key.0,
                partition = key.1,
                start,
                high,
                "restoring {} changelog offsets",
                (high - start).max(0)
            );
        }
        self.tasks.insert(key.clone(), task);
        self.assignment_dirty = true;
        if standby {
            self.update_standby_status(&key, high);
        } else {
            self.maybe_finished(&key);
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Restore(r) => self.start_task(NewTask {
                changelog: r.changelog,
                partition: r.partition,
                location: r.location,
                replay_check: r.replay_check,
                kind: NewKind::Active(r.committed_offsets),
            }),
            Command::Standby(r) => self.start_task(NewTask {
                changelog: r.changelog,
                partition: r.partition,
                location: r.location,
                replay_check: r.replay_check,
                kind: NewKind::Standby(r.source),
            }),
            Command::Promote {
                changelog,
                committed_offsets,
            } => {
                let key = changelog;
                let Some(t) = self.tasks.get_mut(&key) else {
                    self.emit(RestoreEvent::Failed {
                        changelog: key,
                        standby: false,
                        error: ChangelogError::Stopped,
                    });
                    return;
                };
                // The standby applied what was committed when it last
                // looked; the offsets read on assignment can be older (a
                // previous owner's commit landed in between). Judge by the
                // newer, or records it already applied would be processed
                // again.
                let mut judged = t.applier.committed().clone();
                for (topic, offset) in committed_offsets {
                    let e = judged.entry(topic).or_insert(offset);
                    *e = (*e).max(offset);
                }
                t.applier.set_committed(judged);
                let (_, high) = match self
                    .consumer
                    .fetch_watermarks(&key.0, key.1, self.config.metadata_timeout)
                {
                    Ok(w) => w,
                    Err(source) => {
                        serve_events(&self.consumer);
                        let error = ChangelogError::from_kafka(
                            "fetching changelog watermarks",
                            source,
                            None,
                            Some(self.consumer.context()),
                        );
                        self.fail(&key, error);
                        return;
                    }
                };
                let role = self.active(0, high);
                if let Some(t) = self.tasks.get_mut(&key) {
                    let start = t.next;
                    t.last_activity = Instant::now();
                    t.role = role;
                    if let Role::Active { start: s, .. } = &mut t.role {
                        *s = start;
                    }
                    tracing::info!(
                        topic = key.0,
                        partition = key.1,
                        start,
                        high,
                        "standby promoted: replaying {} changelog offsets",
                        (high - start).max(0)
                    );
                }
                self.standbys.lock().remove(&key);
                self.assignment_dirty = true;
                self.maybe_finished(&key);
            }
            Command::Release { changelogs, done } => {
                let mut out = Vec::new();
                for key in changelogs {
                    if let Some(mut t) = self.tasks.remove(&key) {
                        // The staged records are whole records: writing them
                        // keeps data and offset in step.
                        let res = t.applier.flush().and_then(|()| Ok(t.partition.persist()?));
                        self.standbys.lock().remove(&key);
                        self.assignment_dirty = true;
                        tracing::info!(topic = key.0, partition = key.1, "restore task released");
                        out.push((key, res));
                    }
                }
                if self.assignment_dirty {
                    // Stop fetching released partitions before answering.
                    self.reassign();
                }
                let _ = done.send(out);
            }
        }
    }

    /// The committed offsets of `source` in the application's group.
    fn committed_of(&self, source: &(String, i32)) -> Option<BTreeMap<String, i64>> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&source.0, source.1);
        match self.consumer.committed_offsets(tpl, self.config.metadata_timeout) {
            Ok(c) => {
                let mut out = BTreeMap::new();
                for e in c.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        out.insert(e.topic().to_owned(), o);
                    }
                }
                Some(out)
            }
            Err(e) => {
                tracing::warn!(topic = source.0, partition = source.1, error = %e, "reading committed offsets for a standby failed; retrying later");
                None
            }
        }
    }

    fn reassign(&mut self) {
        self.assignment_dirty = false;
        let mut tpl = TopicPartitionList::new();
        for (key, t) in &self.tasks {
            if matches!(t.role, Role::Standby { held: true, .. }) {
                continue;
            }
            if let Err(e) = tpl.add_partition_offset(&key.0, key.1, Offset::Offset(t.next)) {
                tracing::error!(error = %e, "building the restore assignment failed");
            }
        }
        if let Err(e) = self.consumer.assign(&tpl) {
            tracing::error!(error = %e, "assigning changelog partitions to the restore consumer failed; retrying");
            self.assignment_dirty = true;
        }
    }

    fn poll_once(&mut self) {
        match self.consumer.poll(self.config.poll_timeout) {
            Some(Ok(msg)) => {
                self.since_clock += 1;
                if self.since_clock >= crate::restore::blocking::CLOCK_EVERY {
                    self.since_clock = 0;
                    self.now = Instant::now();
                }
                // The last record's key, reused while records come from the
                // same partition: no allocation per record.
                let key = match self.last_key.take() {
                    Some(k) if k.1 == msg.partition() && k.0 == msg.topic() => k,
                    _ => (msg.topic().to_owned(), msg.partition()),
                };
                'record: {
                    let Some(t) = self.tasks.get_mut(&key) else {
                        break 'record;
                    };
                    if msg.offset() < t.next || matches!(t.role, Role::Standby { held: true, .. }) {
                        // Fetched before a reassignment moved the position, or behind a
                        // held record: offered again later.
                        break 'record;
                    }
                    t.last_activity = self.now;
                    let headers = msg
                        .headers()
                        .into_iter()
                        .flat_map(|h| h.iter().map(|h| (h.key, h.value)));
                    let record = IncomingRecord::from_headers(msg.offset(), msg.key(), msg.payload(), headers);
                    let res = match &mut t.role {
                        Role::Active { high, .. } => {
                            if msg.offset() >= *high {
                                break 'record;
                            }
                            t.applier.apply(record).map(|()| true)
                        }
                        Role::Standby { .. } => t.applier.apply_committed(record),
                    };
                    match res {
                        Ok(true) => {
                            t.next = msg.offset() + 1;
                            self.report_progress(&key);
                            self.maybe_finished(&key);
                        }
                        Ok(false) => {
                            // A standby reached a checkpoint not committed yet: write
                            // what is staged, stop fetching, and offer the record again
                            // when the owner's commits move on.
                            let res = t.applier.flush();
                            if let Role::Standby { held, .. } = &mut t.role {
                                *held = true;
                            }
                            self.assignment_dirty = true;
                            if let Err(e) = res {
                                self.fail(&key, e);
                            }
                        }
                        Err(e) => self.fail(&key, e),
                    }
                }
                self.last_key = Some(key);
            }
            Some(Err(e)) => tracing::warn!(error = %e, "restore consumer error; retrying"),
            None => {
                self.now = Instant::now();
                self.end_of_fetch();
            }
        }
    }

    /// The end of a fetch: hand staged batches to the writers and check
    /// positions, which move past transaction markers and compacted gaps.
    fn end_of_fetch(&mut self) {
        let keys: Vec<_> = self.tasks.keys().cloned().collect();
        for key in &keys {
            if let Some(t) = self.tasks.get_mut(key) {
                if let Err(e) = t.applier.submit() {
                    self.fail(key, e);
                }
            }
        }
        if let Ok(positions) = self.consumer.position() {
            for el in positions.elements() {
                let key = (el.topic().to_owned(), el.partition());
                if let (Some(t), Offset::Offset(pos)) = (self.tasks.get_mut(&key), el.offset()) {
                    // A held standby's position is past the record it holds
                    // (the consumer delivered it; the standby did not apply
                    // it): moving `next` there would skip that record for
                    // good, and a promotion would then lose its change.
                    let held = matches!(t.role, Role::Standby { held: true, .. });
                    if pos > t.next && !held {
                        t.next = pos;
                    }
                }
                self.maybe_finished(&key);
            }
        }
    }

    /// Finishes an active task whose position reached its high watermark.
    fn maybe_finished(&mut self, key: &ChangelogPartition) {
        let Some(t) = self.tasks.get(key) else { return };
        let Role::Active { high, started, .. } = t.role else {
            return;
        };
        if t.next < high {
            return;
        }
        let Some(mut t) = self.tasks.remove(key) else { return };
        self.assignment_dirty = true;
        match t.applier.finish() {
            Err(e) => {
                tracing::error!(topic = key.0, partition = key.1, error = %e, "restore failed");
                self.emit(RestoreEvent::Failed {
                    changelog: key.clone(),
                    standby: false,
                    error: e,
                });
            }
            Ok(stats) => {
                let offset = t.partition.changelog_offset().ok().flatten();
                let elapsed = started.elapsed();
                tracing::info!(
                    topic = key.0,
                    partition = key.1,
                    applied = stats.applied,
                    skipped = stats.skipped,
                    batches = stats.batches,
                    ?elapsed,
                    location = t.location,
                    "changelog partition restored"
                );
                if let Role::Active { start, .. } = t.role {
                    let total = (high - start).max(0) as u64;
                    self.emit(RestoreEvent::Progress(progress(key, total, total, elapsed, true)));
                }
                self.emit(RestoreEvent::Restored {
                    changelog: key.clone(),
                    stats,
                    offset,
                    elapsed,
                    committed_offsets: t.applier.committed().clone(),
                });
            }
        }
    }

    fn report_progress(&mut self, key: &ChangelogPartition) {
        let interval = self.config.progress_interval;
        let now = self.now;
        let Some(t) = self.tasks.get_mut(key) else { return };
        let next = t.next;
        let Role::Active {
            started,
            start,
            high,
            last_report,
            last_log,
        } = &mut t.role
        else {
            return;
        };
        if last_report.is_some_and(|at| now.saturating_duration_since(at) < interval) {
            return;
        }
        *last_report = Some(now);
        let done = (next - *start).max(0) as u64;
        let total = (*high - *start).max(0) as u64;
        let p = progress(key, done, total, started.elapsed(), false);
        if last_log.elapsed() >= Duration::from_secs(5) {
            *last_log = Instant::now();
            tracing::info!(
                topic = key.0,
                partition = key.1,
                done,
                total,
                rate = p.rate as u64,
                eta = ?p.eta,
                "restoring"
            );
        }
        self.emit(RestoreEvent::Progress(p));
    }

    fn update_standby_status(&self, key: &ChangelogPartition, high: i64) {
        let Some(t) = self.tasks.get(key) else { return };
        let Role::Standby { held, .. } = t.role else { return };
        let applied = t.partition.changelog_offset().ok().flatten();
        let lag = (high - applied.map_or(0, |a| a as i64 + 1)).max(0) as u64;
        self.standbys.lock().insert(
            key.clone(),
            StandbyStatus {
                changelog: key.clone(),
                applied_offset: applied,
                high_watermark: high,
                lag,
                waiting_for_commit: held,
            },
        );
    }

    /// Standbys: write staged batches now and then, refresh the committed
    /// offsets they judge records by and their status. Active tasks:
    /// nothing here (they finish on their own).
    fn housekeeping(&mut self) {
        let stalled: Vec<_> = self
            .tasks
            .iter()
            .filter(|(_, t)| {
                matches!(t.role, Role::Active { .. }) && t.last_activity.elapsed() > self.config.stall_timeout
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in stalled {
            let timeout_ms = self.config.stall_timeout.as_millis();
            self.fail(
                &key,
                ChangelogError::Stalled {
                    remaining: 1,
                    timeout_ms,
                    last_broker_failure: self.consumer.context().last_failure().map(Box::new),
                },
            );
        }
        if self.last_flush.elapsed() >= self.config.standby_flush_interval {
            self.last_flush = Instant::now();
            let keys: Vec<_> = self
                .tasks
                .iter()
                .filter(|(_, t)| matches!(t.role, Role::Standby { .. }))
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                if let Some(t) = self.tasks.get_mut(&key) {
                    if let Err(e) = t.applier.flush() {
                        self.fail(&key, e);
                    }
                }
            }
        }
        if self.last_refresh.elapsed() < self.config.standby_refresh_interval {
            return;
        }
        self.last_refresh = Instant::now();
        let standbys: Vec<(ChangelogPartition, (String, i32))> = self
            .tasks
            .iter()
            .filter_map(|(k, t)| match &t.role {
                Role::Standby { source, .. } => Some((k.clone(), source.clone())),
                Role::Active { .. } => None,
            })
            .collect();
        for (key, source) in standbys {
            if let Some(committed) = self.committed_of(&source) {
                if let Some(t) = self.tasks.get_mut(&key) {
                    t.applier.set_committed(committed);
                    if let Role::Standby { held, .. } = &mut t.role {
                        if *held {
                            // Offer the held record again.
                            *held = false;
                            self.assignment_dirty = true;
                        }
                    }
                }
            }
            if let Ok((_, high)) = self.watermarks(&key) {
                self.update_standby_status(&key, high);
            }
        }
    }
}

fn progress(key: &ChangelogPartition, done: u64, total: u64, elapsed: Duration, finished: bool) -> RecoveryProgress {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let eta = (rate > 0.0 && !finished).then(|| Duration::from_secs_f64((total.saturating_sub(done)) as f64 / rate));
    RecoveryProgress {
        topic: key.0.clone(),
        partition: key.1,
        done,
        total,
        rate,
        eta,
        finished,
    }
}
