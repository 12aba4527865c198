//! [`ChangelogReader`]: the restore engine. One read-committed consumer
//! reads the changelog partitions of every [`ChangelogTask`] and hands each
//! record to its task; the fetch-and-apply loop is written here once, for
//! the restorer thread ([`crate::Restorer`]: restores beside the poll loop,
//! standbys) and for blocking recovery ([`crate::RecoveryManager`]).
//!
//! * Every task's changelog partition is assigned at the task's `next`
//!   offset. Tasks that come or go are added to or removed from the
//!   assignment incrementally: a full assignment would make librdkafka
//!   drop what it prefetched for every other partition and fetch it again,
//!   after the fetch in flight returns (up to `fetch.wait.max.ms`), for
//!   every restore that starts or ends. Only recovering from a failed
//!   change assigns everything again.
//! * A restore is done when its `next` reaches the end taken when it
//!   started — through its records or through the consumer's position,
//!   which moves past transaction markers and compacted gaps — not when a
//!   record at `end - 1` is seen. Positions are read at the end of every
//!   fetch, and with the clock while a restore got no record since the
//!   last read (its changelog may end with a transaction marker, which no
//!   record reports), so such a restore is done while other partitions
//!   still stream; while restores run, a poll waits at most
//!   [`RESTORE_POLL_TIMEOUT`] for a record, so the last one is done soon
//!   after its marker too. (Reading positions asks librdkafka's main thread
//!   for the assignment: a round trip between threads, too dear for every
//!   few hundred records of a restore that is being fed.)
//! * A standby that holds a record stays assigned but paused; when its
//!   owner's commits move on, its partition is sought back to the held
//!   record and resumed. Other partitions keep fetching throughout.
//! * Failures of one task (a malformed record, a failed write) drop that
//!   task only and are reported as [`RestoreEvent::Failed`]; the driver
//!   decides what that means (blocking recovery gives up).
//! * The hot path takes queued records many at a time (see
//!   [`fetched`](crate::restore::fetched)), reads the clock every
//!   [`CLOCK_EVERY`] records, finds a record's task without allocating,
//!   and parses its headers once.
//!
//! [`CLOCK_EVERY`]: crate::restore::clock::CLOCK_EVERY

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::Offset;
use state_core::{ReplayCheck, StorePartition, TopicPartition};

use crate::error::BrokerFailure;
use crate::error::{ChangelogError, Result};
use crate::kafka::client::KafkaClientContext;
use crate::restore::apply::{ApplierConfig, ChangelogApplier};
use crate::restore::clock::CoarseClock;
use crate::restore::config::RecoveryConfig;
use crate::restore::consumer::{Placement, RestoreConsumer};
use crate::restore::events::{RestoreEvent, StandbyStatus};
use crate::restore::fetched::Fetched;
use crate::restore::finish::{Finished, Finishers};
use crate::restore::progress::ProgressMeter;
use crate::restore::table::{TaskId, TaskTable};
use crate::restore::task::{ChangelogTask, Step, TaskState};

/// The longest a poll waits for a record while a restore runs: a
/// changelog that ends with a transaction marker delivers no record at its
/// end, and the restore is done only when a position shows it (standbys
/// alone wait [`RecoveryConfig::poll_timeout`]).
pub(crate) const RESTORE_POLL_TIMEOUT: Duration = Duration::from_millis(10);

/// The longest a poll waits for a record while a restore finishes on its
/// own thread: its end is seen (and reported) at the next poll, and a
/// restore alone would otherwise be reported up to a
/// [`RESTORE_POLL_TIMEOUT`] late (measurable in w4: a few percent of a
/// 200,000-record restore).
pub(crate) const FINISHING_POLL_TIMEOUT: Duration = Duration::from_millis(1);

/// Where the engine's events go.
pub(crate) type Events<'a> = dyn FnMut(RestoreEvent) + 'a;

/// A task to start.
pub(crate) struct TaskSpec {
    /// The changelog partition to read.
    pub(crate) changelog: TopicPartition,
    /// The store partition to write into.
    pub(crate) partition: Arc<dyn StorePartition>,
    /// Where the partition lives (for messages).
    pub(crate) location: String,
    /// Checks every record against the partition's format.
    pub(crate) replay_check: Option<ReplayCheck>,
    /// Restore or tail.
    pub(crate) kind: TaskKind,
}

/// Whether a task restores or tails.
pub(crate) enum TaskKind {
    /// Restore to the high watermark (or through changelog offset `until`),
    /// judging records by `committed`.
    Restore {
        committed: BTreeMap<String, i64>,
        until: Option<u64>,
    },
    /// Tail, judging records by the committed offsets of `source` in the
    /// consumer's group.
    Standby { source: TopicPartition },
}

/// The restore engine: a consumer, its tasks and the fetch-and-apply loop.
pub(crate) struct ChangelogReader {
    consumer: RestoreConsumer,
    config: RecoveryConfig,
    tasks: TaskTable,
    clock: CoarseClock,
    /// The changelog partitions assigned to the consumer now.
    assigned: BTreeSet<TopicPartition>,
    /// Tasks came or went since the assignment was last brought in line.
    assignment_dirty: bool,
    /// Assigned partitions whose task was replaced: removed and added
    /// again, at the new task's offset.
    stale: Vec<TopicPartition>,
    /// An incremental change failed (or a pause or seek did): assign
    /// everything again.
    reassign_all: bool,
    /// True if a task may be restoring (cleared when a look at the tasks
    /// finds none): polls wait at most [`RESTORE_POLL_TIMEOUT`].
    restoring: bool,
    /// When the clock was read for the record before the last one that
    /// read it: a restore whose last record is older got none since.
    last_tick: Instant,
    /// Restores that reached their end, finishing on threads of their own.
    finishers: Finishers,
    /// When a record was last applied, a restore last finished or a task
    /// last started.
    last_progress: Instant,
}

impl ChangelogReader {
    /// An engine reading with `consumer` and asking watermarks and
    /// committed offsets with `metadata` (two clients of
    /// [`ConsumerSettings::restore`](crate::ConsumerSettings::restore); see
    /// [`RestoreConsumer`]).
    pub(crate) fn new(
        consumer: BaseConsumer<KafkaClientContext>,
        metadata: BaseConsumer<KafkaClientContext>,
        config: RecoveryConfig,
    ) -> Self {
        let clock = CoarseClock::new();
        ChangelogReader {
            consumer: RestoreConsumer::new(consumer, metadata, config.metadata_timeout, config.retry_timeout),
            config,
            tasks: TaskTable::default(),
            last_progress: clock.now(),
            last_tick: clock.now(),
            clock,
            assigned: BTreeSet::new(),
            assignment_dirty: false,
            stale: Vec::new(),
            reassign_all: false,
            restoring: false,
            finishers: Finishers::default(),
        }
    }

    /// The tuning.
    pub(crate) fn config(&self) -> &RecoveryConfig {
        &self.config
    }

    /// The number of tasks, those finishing included.
    pub(crate) fn len(&self) -> usize {
        self.tasks.len() + self.finishers.len()
    }

    /// True if there is no task, none finishing either.
    pub(crate) fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.finishers.is_empty()
    }

    /// The time as of the last read of the engine's clock.
    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }

    /// How long no task made progress (applied a record, finished, started).
    pub(crate) fn idle_for(&self) -> Duration {
        self.clock.now().saturating_duration_since(self.last_progress)
    }

    /// The last broker connection failure the consumer reported.
    pub(crate) fn last_broker_failure(&self) -> Option<BrokerFailure> {
        self.consumer.last_broker_failure()
    }

    /// Starts a task from its partition's stored offset + 1 (or the log
    /// start). A restore with nothing to read is done at once (reported by
    /// the next [`poll`](Self::poll), once it finished). A stored
    /// offset at or beyond the high watermark is
    /// [`ChangelogError::InvalidStoredOffset`] (the changelog was recreated
    /// or belongs to another store), before anything is applied.
    pub(crate) fn register(&mut self, spec: TaskSpec) -> Result<()> {
        let changelog = spec.changelog;
        // A restore of the same partition still finishing was given up by
        // the owner (a release waits for it); its writes end first.
        if let Some(finished) = self.finishers.wait(&changelog) {
            tracing::debug!(
                topic = changelog.topic(),
                partition = changelog.partition(),
                ok = finished.is_some_and(|f| f.result.is_ok()),
                "an earlier restore of the partition finished"
            );
        }
        let (low, high) = self.consumer.watermarks(&changelog)?;
        let stored = spec.partition.changelog_offset()?;
        if let Some(stored) = stored {
            // Past `i64::MAX` (a corrupt offset) is past any high watermark.
            if i64::try_from(stored).map_or(true, |s| s >= high) {
                return Err(ChangelogError::InvalidStoredOffset {
                    topic: changelog.topic().to_owned(),
                    partition: changelog.partition(),
                    stored,
                    high_watermark: high,
                    path: spec.location,
                });
            }
        }
        let start = stored.map_or(low, |s| (s as i64 + 1).max(low));
        let now = self.clock.read();
        let (state, committed) = match spec.kind {
            TaskKind::Restore { committed, until } => {
                let end = until.map_or(high, |u| high.min(u as i64 + 1));
                tracing::info!(
                    topic = changelog.topic(),
                    partition = changelog.partition(),
                    start,
                    end,
                    "restoring {} changelog offsets",
                    (end - start).max(0)
                );
                (TaskState::Restoring(ProgressMeter::new(start, end, now)), committed)
            }
            TaskKind::Standby { source } => {
                let committed = self.consumer.committed_of(&source).unwrap_or_default();
                tracing::info!(
                    topic = changelog.topic(),
                    partition = changelog.partition(),
                    start,
                    high,
                    "standby replica tailing its changelog"
                );
                (TaskState::Standby { source }, committed)
            }
        };
        let mut applier = ChangelogApplier::new(
            spec.partition.clone(),
            changelog.topic(),
            changelog.partition(),
            committed,
            ApplierConfig {
                max_batch_records: self.config.batch_records,
            },
        );
        if let Some(check) = spec.replay_check {
            applier = applier.with_replay_check(check);
        }
        let restoring = matches!(state, TaskState::Restoring(_));
        if restoring && stored.is_none() {
            applier = applier.loading_into_empty();
        }
        // A partition still assigned (its task replaced, or gone but not yet
        // removed from the assignment) is fetched from wherever it was:
        // remove it and add it again at this task's offset.
        if self.assigned.contains(&changelog) {
            self.stale.push(changelog.clone());
        }
        let (id, _replaced) = self.tasks.insert(ChangelogTask {
            changelog,
            partition: spec.partition,
            applier,
            state,
            next: start,
            high_watermark: high,
            location: spec.location,
            last_activity: now,
        });
        self.assignment_dirty = true;
        self.restoring |= restoring;
        self.last_progress = now;
        self.complete_if_done(id);
        Ok(())
    }

    /// One turn of the loop: brings the assignment in line if tasks came or
    /// went, then polls once. A record goes to its task; an empty poll ends
    /// a fetch (staged batches go to the writers). Positions are followed
    /// whenever the clock is read. True if the clock was read, i.e. it is
    /// time for the driver's periodic work. An error is the consumer's
    /// (assigning, reading positions); tasks' own failures are events.
    pub(crate) fn poll(&mut self, events: &mut Events<'_>) -> Result<bool> {
        if !self.finishers.is_empty() {
            for (changelog, finished) in self.finishers.done() {
                self.report_finished(changelog, finished, events);
            }
        }
        if self.assignment_dirty {
            self.sync_assignment()?;
        }
        let timeout = if !self.finishers.is_empty() {
            self.config.poll_timeout.min(FINISHING_POLL_TIMEOUT)
        } else if self.restoring {
            self.config.poll_timeout.min(RESTORE_POLL_TIMEOUT)
        } else {
            self.config.poll_timeout
        };
        let polled = match self.consumer.poll(timeout) {
            Some(Ok(msg)) => {
                let clock_read = self.clock.tick();
                Polled::Record(clock_read, offer(&mut self.tasks, &msg, self.clock.now()))
            }
            Some(Err(e)) => Polled::Error(e),
            None => Polled::EndOfFetch,
        };
        match polled {
            Polled::Record(clock_read, step) => {
                if let Some((id, step)) = step {
                    self.after(id, step, events);
                }
                if clock_read {
                    self.consumer.serve_metadata();
                    let since = std::mem::replace(&mut self.last_tick, self.clock.now());
                    let starved = self
                        .tasks
                        .iter()
                        .any(|(_, t)| t.is_restoring() && t.last_activity < since);
                    if starved {
                        self.follow_positions()?;
                    }
                }
                Ok(clock_read)
            }
            Polled::Error(e) => {
                tracing::warn!(error = %e, "restore consumer error; retrying");
                self.clock.read();
                Ok(true)
            }
            Polled::EndOfFetch => {
                self.end_of_fetch(events)?;
                Ok(true)
            }
        }
    }

    /// What follows a record offered to task `id`.
    #[inline]
    fn after(&mut self, id: TaskId, step: Step, events: &mut Events<'_>) {
        match step {
            Step::Applied => {
                let now = self.clock.now();
                self.last_progress = now;
                let interval = self.config.progress_interval;
                let Some(task) = self.tasks.get_mut(id) else { return };
                if let Some(p) = task.progress_due(now, interval) {
                    events(RestoreEvent::Progress(p));
                }
                if task.reached_end() {
                    self.complete(id);
                }
            }
            Step::Held => self.pause(id),
            Step::Failed(error) => self.fail(id, error, events),
        }
    }

    /// The end of a fetch: hand staged batches to the writers, and follow
    /// positions.
    fn end_of_fetch(&mut self, events: &mut Events<'_>) -> Result<()> {
        self.clock.read();
        self.consumer.serve_metadata();
        for id in self.tasks.ids() {
            let Some(task) = self.tasks.get_mut(id) else { continue };
            if let Err(e) = task.applier.submit() {
                self.fail(id, e, events);
            }
        }
        self.follow_positions()
    }

    /// Follows the consumer's positions, which move past transaction
    /// markers and compacted gaps that no record reports: restores that
    /// reached their end through them are done. Notes whether any restore
    /// is left.
    fn follow_positions(&mut self) -> Result<()> {
        self.restoring = self.tasks.iter().any(|(_, t)| t.is_restoring());
        // Positions are past the records taken but not yet offered (see
        // `fetched`): followed now, they would skip them. The buffer is
        // empty at the end of every fetch.
        if !self.restoring || self.consumer.holds_records() {
            return Ok(());
        }
        let positions = self.consumer.positions()?;
        for el in positions.elements() {
            let Offset::Offset(position) = el.offset() else {
                continue;
            };
            let Some(id) = self.tasks.find(el.topic(), el.partition()) else {
                continue;
            };
            if let Some(task) = self.tasks.get_mut(id) {
                task.follow_position(position);
            }
            self.complete_if_done(id);
        }
        Ok(())
    }

    fn complete_if_done(&mut self, id: TaskId) {
        if self.tasks.get(id).is_some_and(ChangelogTask::reached_end) {
            self.complete(id);
        }
    }

    /// A restore reached its end: it leaves the consumer's assignment and
    /// finishes on a thread of its own (see [`Finishers`]); it is reported
    /// restored once its batches are written and made durable.
    fn complete(&mut self, id: TaskId) {
        let Some(task) = self.tasks.remove(id) else { return };
        // Its partition leaves the assignment at the next poll; records
        // fetched for it meanwhile find no task.
        self.assignment_dirty = true;
        self.last_progress = self.clock.read();
        if task.is_restoring() {
            self.finishers.start(task);
        }
    }

    /// Reports a restore that finished (see [`complete`](Self::complete)).
    fn report_finished(&mut self, changelog: TopicPartition, finished: Option<Finished>, events: &mut Events<'_>) {
        self.last_progress = self.clock.read();
        let Some(Finished { task, result, at, took }) = finished else {
            tracing::error!(
                topic = changelog.topic(),
                partition = changelog.partition(),
                "finishing a restore panicked"
            );
            events(RestoreEvent::Failed {
                changelog,
                standby: false,
                error: ChangelogError::Thread("finishing a restore panicked".into()),
            });
            return;
        };
        let TaskState::Restoring(meter) = &task.state else {
            return;
        };
        let elapsed = at.saturating_duration_since(meter.started());
        match result {
            Err(error) => {
                tracing::error!(topic = changelog.topic(), partition = changelog.partition(),
                    error = %error, "restore failed");
                events(RestoreEvent::Failed {
                    changelog,
                    standby: false,
                    error,
                });
            }
            Ok(stats) => {
                let offset = task.partition.changelog_offset().ok().flatten();
                tracing::info!(
                    topic = changelog.topic(),
                    partition = changelog.partition(),
                    applied = stats.applied,
                    skipped = stats.skipped,
                    batches = stats.batches,
                    ?elapsed,
                    finishing = ?took,
                    location = task.location,
                    "changelog partition restored"
                );
                events(RestoreEvent::Progress(meter.finished(&changelog, elapsed)));
                events(RestoreEvent::Restored {
                    committed_offsets: task.applier.committed().clone(),
                    changelog,
                    stats,
                    offset,
                    elapsed,
                });
            }
        }
    }

    /// Drops task `id` after `error`: what was staged before the failing
    /// record is settled (the partition keeps the batches written before;
    /// data and offset agree), and the failure is reported.
    pub(crate) fn fail(&mut self, id: TaskId, error: ChangelogError, events: &mut Events<'_>) {
        let Some(mut task) = self.tasks.remove(id) else { return };
        // Settle what is in flight; the error reported is the first one.
        let _ = task.applier.flush();
        let standby = task.is_standby();
        tracing::error!(topic = task.changelog.topic(), partition = task.changelog.partition(), standby,
            error = %error, "restore failed");
        self.assignment_dirty = true;
        events(RestoreEvent::Failed {
            changelog: task.changelog,
            standby,
            error,
        });
    }

    /// Fails every restore that applied nothing for
    /// [`RecoveryConfig::stall_timeout`].
    pub(crate) fn fail_stalled(&mut self, events: &mut Events<'_>) {
        let now = self.clock.now();
        let timeout = self.config.stall_timeout;
        for id in self.tasks.ids() {
            let stalled = self
                .tasks
                .get(id)
                .is_some_and(|t| t.is_restoring() && now.saturating_duration_since(t.last_activity) > timeout);
            if stalled {
                let error = ChangelogError::Stalled {
                    remaining: 1,
                    timeout_ms: timeout.as_millis(),
                    last_broker_failure: self.last_broker_failure().map(Box::new),
                };
                self.fail(id, error, events);
            }
        }
    }

    /// Stops fetching task `id`'s partition (a held standby). It stays
    /// assigned, so the other partitions' fetches go on undisturbed.
    fn pause(&mut self, id: TaskId) {
        let Some(task) = self.tasks.get(id) else { return };
        if let Err(e) = self.consumer.pause(&task.changelog) {
            // Records delivered meanwhile are not wanted by a held task;
            // the new assignment pauses it.
            tracing::warn!(topic = task.changelog.topic(), partition = task.changelog.partition(), error = %e,
                "pausing a held standby's changelog partition failed; reassigning");
            self.reassign_all = true;
            self.assignment_dirty = true;
        }
    }

    /// Fetches task `id`'s partition again from its `next` offset (a hold
    /// was lifted).
    fn resume_at_next(&mut self, id: TaskId) {
        let Some(task) = self.tasks.get(id) else { return };
        if let Err(e) = self.consumer.resume_at(&task.changelog, task.next) {
            // E.g. the partition is still starting after a new assignment:
            // the next assignment positions it at `next` as well.
            tracing::debug!(topic = task.changelog.topic(), partition = task.changelog.partition(), error = %e,
                "repositioning a changelog partition failed; reassigning");
            self.reassign_all = true;
            self.assignment_dirty = true;
        }
    }

    /// Brings the consumer's assignment in line with the tasks: removes the
    /// partitions of tasks that left (or were replaced), adds those of new
    /// tasks at their `next` offset (held standbys paused); the others keep
    /// fetching undisturbed. After a failure, assigns everything again.
    fn sync_assignment(&mut self) -> Result<()> {
        if self.reassign_all {
            return self.reassign();
        }
        let mut gone = Vec::new();
        for changelog in &self.assigned {
            if self.stale.contains(changelog) || self.tasks.find(changelog.topic(), changelog.partition()).is_none() {
                gone.push(changelog.clone());
            }
        }
        if let Err(e) = self.consumer.remove(&gone) {
            self.reassign_all = true;
            return Err(e);
        }
        for changelog in &gone {
            self.assigned.remove(changelog);
        }
        self.stale.clear();
        let assigned = &self.assigned;
        let new: Vec<Placement<'_>> = self
            .tasks
            .iter()
            .filter(|(_, t)| !assigned.contains(&t.changelog))
            .map(|(_, t)| Placement {
                changelog: &t.changelog,
                next: t.next,
                paused: t.is_held(),
            })
            .collect();
        let added: Vec<TopicPartition> = new.iter().map(|p| p.changelog.clone()).collect();
        if let Err(e) = self.consumer.add(new) {
            self.reassign_all = true;
            return Err(e);
        }
        self.assigned.extend(added);
        self.assignment_dirty = false;
        Ok(())
    }

    /// Assigns every task's partition at its `next` offset, held standbys
    /// paused, the others fetching; every partition starts over.
    fn reassign(&mut self) -> Result<()> {
        self.consumer.assign(self.tasks.iter().map(|(_, t)| Placement {
            changelog: &t.changelog,
            next: t.next,
            paused: t.is_held(),
        }))?;
        self.assigned = self.tasks.iter().map(|(_, t)| t.changelog.clone()).collect();
        self.stale.clear();
        self.reassign_all = false;
        self.assignment_dirty = false;
        Ok(())
    }

    /// Turns the standby of `changelog` into a restore to the current end
    /// of its changelog (see [`ChangelogTask::promote`]): only what the
    /// standby has not applied is read. Reported as failed if there is no
    /// such standby.
    pub(crate) fn promote(
        &mut self,
        changelog: &TopicPartition,
        committed: BTreeMap<String, i64>,
        events: &mut Events<'_>,
    ) {
        let Some(id) = self.tasks.find_key(changelog) else {
            events(RestoreEvent::Failed {
                changelog: changelog.clone(),
                standby: false,
                error: ChangelogError::Stopped,
            });
            return;
        };
        let high = match self.consumer.watermarks(changelog) {
            Ok((_, high)) => high,
            Err(error) => return self.fail(id, error, events),
        };
        let now = self.clock.read();
        let Some(task) = self.tasks.get_mut(id) else { return };
        let was_held = task.promote(committed, high, now);
        self.restoring = true;
        tracing::info!(
            topic = changelog.topic(),
            partition = changelog.partition(),
            start = task.next,
            high,
            "standby promoted: replaying {} changelog offsets",
            (high - task.next).max(0)
        );
        if was_held {
            self.resume_at_next(id);
        }
        self.last_progress = now;
        self.complete_if_done(id);
    }

    /// Stops restoring or tailing `changelogs`: the batch being filled is
    /// written whole (with its offset) and nothing after it, so each
    /// partition's data and stored offset agree; their partitions are
    /// unassigned before this returns. Unknown partitions are ignored.
    pub(crate) fn release(&mut self, changelogs: Vec<TopicPartition>) -> Vec<(TopicPartition, Result<()>)> {
        let mut out = Vec::new();
        for changelog in changelogs {
            // A restore that reached its end is let go once it finished
            // (no longer reported: its owner gave it up).
            if let Some(finished) = self.finishers.wait(&changelog) {
                let res = match finished {
                    Some(f) => f.result.map(drop),
                    None => Err(ChangelogError::Thread("finishing a restore panicked".into())),
                };
                out.push((changelog, res));
                continue;
            }
            let Some(mut task) = self.tasks.find_key(&changelog).and_then(|id| self.tasks.remove(id)) else {
                continue;
            };
            // The staged records are whole records: writing them keeps
            // data and offset in step.
            let res = task.applier.flush().and_then(|()| Ok(task.partition.persist()?));
            tracing::info!(
                topic = changelog.topic(),
                partition = changelog.partition(),
                "restore task released"
            );
            self.assignment_dirty = true;
            out.push((changelog, res));
        }
        if self.assignment_dirty {
            if let Err(e) = self.sync_assignment() {
                tracing::error!(error = %e, "unassigning released changelog partitions failed; retrying");
            }
        }
        out
    }

    /// Standbys: writes what they staged, so their stored offsets follow
    /// their changelogs.
    pub(crate) fn flush_standbys(&mut self, events: &mut Events<'_>) {
        for id in self.tasks.ids() {
            let Some(task) = self.tasks.get_mut(id).filter(|t| t.is_standby()) else {
                continue;
            };
            if let Err(e) = task.applier.flush() {
                self.fail(id, e, events);
            }
        }
    }

    /// Standbys: refreshes the committed offsets they judge records by
    /// (a held record is offered again once they moved) and their high
    /// watermarks. Returns every standby's status.
    pub(crate) fn refresh_standbys(&mut self) -> Vec<StandbyStatus> {
        let mut out = Vec::new();
        for id in self.tasks.ids() {
            let Some(source) = self.tasks.get(id).and_then(|t| t.standby_source().cloned()) else {
                continue;
            };
            let committed = self.consumer.committed_of(&source);
            let Some(task) = self.tasks.get_mut(id) else { continue };
            let changelog = task.changelog.clone();
            if committed.is_some_and(|c| task.refresh_committed(c)) {
                self.resume_at_next(id);
            }
            match self.consumer.watermarks(&changelog) {
                Ok((_, high)) => {
                    if let Some(task) = self.tasks.get_mut(id) {
                        task.high_watermark = high;
                    }
                }
                Err(e) => tracing::debug!(topic = changelog.topic(), partition = changelog.partition(), error = %e,
                    "reading a standby's high watermark failed; retrying later"),
            }
            out.extend(self.standby_status(id));
        }
        out
    }

    /// What the standby `changelog` has.
    pub(crate) fn standby_status_of(&mut self, changelog: &TopicPartition) -> Option<StandbyStatus> {
        let id = self.tasks.find_key(changelog)?;
        self.standby_status(id)
    }

    fn standby_status(&self, id: TaskId) -> Option<StandbyStatus> {
        let task = self.tasks.get(id).filter(|t| t.is_standby())?;
        let applied = task.partition.changelog_offset().ok().flatten();
        let lag = (task.high_watermark - applied.map_or(0, |a| a as i64 + 1)).max(0) as u64;
        Some(StandbyStatus {
            changelog: task.changelog.clone(),
            applied_offset: applied,
            high_watermark: task.high_watermark,
            lag,
            waiting_for_commit: task.is_held(),
        })
    }

    /// Writes what every task staged and makes it durable, and drops every
    /// task. Every task is finished; the first failure is returned (all
    /// are logged).
    pub(crate) fn finish_all(&mut self) -> Result<()> {
        let mut first = None;
        for (changelog, finished) in self.finishers.wait_all() {
            match finished.map(|f| f.result) {
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    first.get_or_insert(e);
                }
                None => {
                    tracing::warn!(
                        topic = changelog.topic(),
                        partition = changelog.partition(),
                        "finishing a restore panicked"
                    );
                }
            }
        }
        for mut task in self.tasks.drain() {
            if let Err(e) = task.applier.finish() {
                tracing::warn!(topic = task.changelog.topic(), partition = task.changelog.partition(),
                    error = %e, "writing the last restore batch failed");
                first.get_or_insert(e);
            }
        }
        self.assignment_dirty = true;
        first.map_or(Ok(()), Err)
    }

    /// Drops every task without writing what they staged (their partitions
    /// keep the batches written so far: data and offset agree).
    pub(crate) fn clear(&mut self) {
        // Restores finishing end their writes first (what they wrote is
        // whole batches with their offsets).
        self.finishers.wait_all();
        self.tasks.drain().for_each(drop);
        self.assignment_dirty = true;
    }

    /// Leaves nothing assigned (call with no task left).
    pub(crate) fn unassign(&mut self) {
        self.consumer.unassign();
        self.assigned.clear();
        self.stale.clear();
        self.reassign_all = false;
        self.assignment_dirty = !self.tasks.is_empty();
    }
}

/// Hands the fetched record to its task, if the task wants it: the hot
/// path.
#[inline]
fn offer(tasks: &mut TaskTable, fetched: &Fetched<'_>, now: Instant) -> Option<(TaskId, Step)> {
    let (topic, partition, record) = fetched.record()?;
    let id = tasks.find(topic, partition)?;
    let task = tasks.get_mut(id)?;
    if !task.wants(record.offset) {
        // Fetched before a repositioning, past a restore's end, or behind a
        // held record: offered again later, or not needed.
        return None;
    }
    Some((id, task.offer(record, now)))
}

/// What one poll of the consumer brought.
enum Polled {
    /// A record: whether the clock was read, and what its task did with it.
    Record(bool, Option<(TaskId, Step)>),
    /// A consumer error (logged; librdkafka retries).
    Error(KafkaError),
    /// Nothing within the poll timeout: the end of a fetch.
    EndOfFetch,
}
