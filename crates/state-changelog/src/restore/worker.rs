//! [`Restorer`]: the restore engine on a thread of its own, beside the
//! application's poll loop: active restores, and standby replicas that tail
//! the changelogs of partitions this instance does not own.
//!
//! Kafka Streams does the same on its state-updater thread (KIP-869): the
//! consumer keeps polling (and heart-beating) while large state restores, so
//! restore time never counts against `max.poll.interval.ms`, and partitions
//! already restored keep processing.
//!
//! Every change goes through a [`crate::ChangelogApplier`], so restoring
//! and tailing keep recovery's guarantees: batches are atomic with the
//! changelog offset they include, records of uncommitted checkpoints are
//! skipped (active restore) or held back until they commit (standby),
//! malformed records are typed errors and nothing of their batch is
//! written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use state_core::TopicPartition;

use crate::error::{ChangelogError, Result};
use crate::kafka::consumer::{create_consumer, ConsumerSettings};
use crate::restore::config::RecoveryConfig;
use crate::restore::events::{RestoreEvent, StandbyStatus};
use crate::restore::reader::{ChangelogReader, TaskKind, TaskSpec};
use crate::restore::requests::{RestoreRequest, StandbyRequest};

type StandbyTable = Arc<Mutex<BTreeMap<TopicPartition, StandbyStatus>>>;

enum Command {
    Restore(RestoreRequest),
    Standby(StandbyRequest),
    Promote {
        changelog: TopicPartition,
        committed_offsets: BTreeMap<String, i64>,
    },
    Release {
        changelogs: Vec<TopicPartition>,
        done: Sender<Vec<(TopicPartition, Result<()>)>>,
    },
}

/// The restorer thread, as its owner sees it. Dropping it stops the thread
/// (pending batches of every task are written first).
pub struct Restorer {
    commands: Option<Sender<Command>>,
    events: Receiver<RestoreEvent>,
    standbys: StandbyTable,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Restorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restorer").finish_non_exhaustive()
    }
}

impl Restorer {
    /// Starts the thread. Its consumer uses `client` (bootstrap servers,
    /// security) and [`RecoveryConfig::consumer_properties`] with
    /// [`ConsumerSettings::restore`]; `group_id` is the
    /// application's group, used only to read its committed offsets for
    /// standbys (the restorer never joins the group nor commits).
    pub fn start(client: &ClientConfig, group_id: &str, config: RecoveryConfig) -> Result<Self> {
        let settings = ConsumerSettings::restore(group_id);
        let kafka = config.consumer_client(client);
        let consumer = create_consumer(&kafka, &settings, "creating the restore consumer")?;
        let metadata = create_consumer(&kafka, &settings, "creating the restore consumer's metadata client")?;
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (event_tx, events) = crossbeam_channel::unbounded();
        let standbys = StandbyTable::default();
        let now = Instant::now();
        let worker = Worker {
            reader: ChangelogReader::new(consumer, metadata, config),
            commands: command_rx,
            events: event_tx,
            standbys: standbys.clone(),
            last_refresh: now,
            last_flush: now,
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
            .ok_or(ChangelogError::Stopped)?
            .send(c)
            .map_err(|_| ChangelogError::Stopped)
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
    /// current end of its changelog: only the delta since the standby's
    /// last applied offset is replayed. Records are judged by the newer of
    /// `committed_offsets` (the new owner's committed source offsets, read
    /// on assignment) and what the standby judged by; the
    /// [`RestoreEvent::Restored`] reports which.
    pub fn promote(&self, changelog: TopicPartition, committed_offsets: BTreeMap<String, i64>) -> Result<()> {
        self.send(Command::Promote {
            changelog,
            committed_offsets,
        })
    }

    /// Stops restoring or tailing `changelogs` and waits until the thread
    /// let go of them: the batch being filled is written whole (with its
    /// offset) and nothing after it, so the partition's data and stored
    /// offset agree. Unknown partitions are ignored.
    pub fn release(&self, changelogs: Vec<TopicPartition>) -> Result<Vec<(TopicPartition, Result<()>)>> {
        if changelogs.is_empty() {
            return Ok(Vec::new());
        }
        let (done, wait) = crossbeam_channel::bounded(1);
        self.send(Command::Release { changelogs, done })?;
        wait.recv().map_err(|_| ChangelogError::Stopped)
    }

    /// Events reported since the last call.
    pub fn events(&self) -> Vec<RestoreEvent> {
        // Called on every turn of a poll loop: an empty channel answers
        // from two atomic loads, without starting a receive.
        if self.events.is_empty() {
            return Vec::new();
        }
        self.events.try_iter().collect()
    }

    /// The next event, waiting at most `timeout` for one (`None`: none
    /// came, or the thread stopped). For drivers that have nothing else to
    /// do meanwhile (tools, benchmarks); a poll loop calls
    /// [`events`](Self::events) instead.
    pub fn next_event(&self, timeout: Duration) -> Option<RestoreEvent> {
        self.events.recv_timeout(timeout).ok()
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

/// The thread: commands from the owner, then one turn of the engine.
struct Worker {
    reader: ChangelogReader,
    commands: Receiver<Command>,
    events: Sender<RestoreEvent>,
    standbys: StandbyTable,
    last_refresh: Instant,
    last_flush: Instant,
}

impl Worker {
    fn run(mut self) {
        let mut wait_after_error = false;
        // Commands are looked at whenever the engine reads its clock
        // (every few hundred records, and at the end of every fetch), not
        // per record: they are rare, and a channel look per record was
        // measurable.
        let mut look_for_commands = true;
        loop {
            // Commands first; block for one when idle, and wait for one a
            // poll timeout long after a consumer error.
            let next = if self.reader.is_empty() {
                self.commands.recv().map(Some).map_err(drop)
            } else if std::mem::take(&mut wait_after_error) {
                match self.commands.recv_timeout(self.reader.config().poll_timeout) {
                    Ok(c) => Ok(Some(c)),
                    Err(RecvTimeoutError::Timeout) => Ok(None),
                    Err(RecvTimeoutError::Disconnected) => Err(()),
                }
            } else if look_for_commands {
                match self.commands.try_recv() {
                    Ok(c) => Ok(Some(c)),
                    Err(TryRecvError::Empty) => Ok(None),
                    Err(TryRecvError::Disconnected) => Err(()),
                }
            } else {
                Ok(None)
            };
            let Ok(next) = next else { break };
            if let Some(c) = next {
                self.command(c);
                look_for_commands = true;
                continue;
            }
            let (events, standbys) = (&self.events, &self.standbys);
            look_for_commands = match self.reader.poll(&mut |e| emit(events, standbys, e)) {
                Ok(true) => {
                    self.housekeeping();
                    true
                }
                Ok(false) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "the restore consumer failed; retrying");
                    wait_after_error = true;
                    true
                }
            };
        }
        // Shutting down: write what every task has staged (failures are
        // logged).
        let _ = self.reader.finish_all();
        self.reader.unassign();
    }

    fn command(&mut self, c: Command) {
        let (events, standbys) = (&self.events, &self.standbys);
        let mut sink = |e| emit(events, standbys, e);
        match c {
            Command::Restore(r) => {
                let changelog = r.changelog.clone();
                let spec = TaskSpec {
                    changelog: r.changelog,
                    partition: r.partition,
                    location: r.location,
                    replay_check: r.replay_check,
                    kind: TaskKind::Restore {
                        committed: r.committed_offsets,
                        until: None,
                    },
                };
                if let Err(error) = self.reader.register(spec) {
                    failed_to_start(changelog, false, error, &mut sink);
                }
            }
            Command::Standby(r) => {
                let changelog = r.changelog.clone();
                let spec = TaskSpec {
                    changelog: r.changelog,
                    partition: r.partition,
                    location: r.location,
                    replay_check: r.replay_check,
                    kind: TaskKind::Standby { source: r.source },
                };
                match self.reader.register(spec) {
                    Err(error) => failed_to_start(changelog, true, error, &mut sink),
                    Ok(()) => {
                        if let Some(status) = self.reader.standby_status_of(&changelog) {
                            standbys.lock().insert(changelog, status);
                        }
                    }
                }
            }
            Command::Promote {
                changelog,
                committed_offsets,
            } => {
                standbys.lock().remove(&changelog);
                self.reader.promote(&changelog, committed_offsets, &mut sink);
            }
            Command::Release { changelogs, done } => {
                {
                    let mut table = standbys.lock();
                    for changelog in &changelogs {
                        table.remove(changelog);
                    }
                }
                let _ = done.send(self.reader.release(changelogs));
            }
        }
    }

    /// Periodic work, whenever the engine read its clock: stalled restores
    /// fail; standbys write what they staged and refresh the committed
    /// offsets they judge records by, and their status.
    fn housekeeping(&mut self) {
        let (events, standbys) = (&self.events, &self.standbys);
        let mut sink = |e| emit(events, standbys, e);
        self.reader.fail_stalled(&mut sink);
        let now = self.reader.now();
        let config = self.reader.config();
        let (flush_every, refresh_every) = (config.standby_flush_interval, config.standby_refresh_interval);
        if now.saturating_duration_since(self.last_flush) >= flush_every {
            self.last_flush = now;
            self.reader.flush_standbys(&mut sink);
        }
        if now.saturating_duration_since(self.last_refresh) >= refresh_every {
            self.last_refresh = now;
            let statuses = self.reader.refresh_standbys();
            let mut table = standbys.lock();
            for status in statuses {
                table.insert(status.changelog.clone(), status);
            }
        }
    }
}

/// Reports `e` to the owner; a failed task has no standby status any more.
fn emit(events: &Sender<RestoreEvent>, standbys: &StandbyTable, e: RestoreEvent) {
    if let RestoreEvent::Failed { changelog, .. } = &e {
        standbys.lock().remove(changelog);
    }
    let _ = events.send(e);
}

fn failed_to_start(
    changelog: TopicPartition,
    standby: bool,
    error: ChangelogError,
    sink: &mut dyn FnMut(RestoreEvent),
) {
    tracing::error!(topic = changelog.topic(), partition = changelog.partition(), standby, error = %error,
        "restore task could not start");
    sink(RestoreEvent::Failed {
        changelog,
        standby,
        error,
    });
}
