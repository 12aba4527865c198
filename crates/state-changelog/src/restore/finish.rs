//! [`Finishers`]: restores that reached their end finish on a thread of
//! their own — the last batch written, the end of the replay settled, the
//! partition made durable — while the engine goes on reading the other
//! partitions.
//!
//! Making a bulk-loaded RocksDB partition durable flushes its memtables:
//! 12-100 ms per partition in the demo, and the eight restores of a
//! takeover finished one after another on the engine's thread, which read
//! nothing meanwhile (about half of the demo's recovery time).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use state_core::TopicPartition;

use crate::error::Result;
use crate::restore::apply::ApplyStats;
use crate::restore::task::ChangelogTask;

/// A restore that finished: the task, what finishing it gave, when it was
/// done and how long finishing took.
pub(crate) struct Finished {
    pub(crate) task: ChangelogTask,
    pub(crate) result: Result<ApplyStats>,
    pub(crate) at: Instant,
    pub(crate) took: Duration,
}

fn finish(mut task: ChangelogTask) -> Finished {
    let started = Instant::now();
    let result = task.applier.finish();
    let at = Instant::now();
    Finished {
        task,
        result,
        at,
        took: at.saturating_duration_since(started),
    }
}

enum Finishing {
    /// On its thread (`None` from it: the task was not there, which
    /// cannot happen).
    Thread(JoinHandle<Option<Finished>>),
    /// Finished on the caller's thread: no thread could be started.
    Done(Box<Finished>),
    /// The task is gone (no thread, and not in its slot either).
    Lost,
}

/// The restores being finished, by changelog partition.
#[derive(Default)]
pub(crate) struct Finishers {
    running: Vec<(TopicPartition, Finishing)>,
}

impl Finishers {
    /// Finishes `task` on a thread of its own (or here, if no thread can
    /// be started).
    pub(crate) fn start(&mut self, task: ChangelogTask) {
        let changelog = task.changelog.clone();
        // The task stays reachable here if the thread cannot be started.
        let slot = Arc::new(Mutex::new(Some(task)));
        let theirs = slot.clone();
        let spawned = std::thread::Builder::new()
            .name("restore-finish".into())
            .spawn(move || theirs.lock().take().map(finish));
        let finishing = match spawned {
            Ok(handle) => Finishing::Thread(handle),
            Err(e) => {
                tracing::warn!(error = %e, "could not start a thread to finish a restore; finishing it here");
                match slot.lock().take() {
                    Some(task) => Finishing::Done(Box::new(finish(task))),
                    None => Finishing::Lost,
                }
            }
        };
        self.running.push((changelog, finishing));
    }

    /// How many restores are being finished.
    pub(crate) fn len(&self) -> usize {
        self.running.len()
    }

    /// True if none is.
    pub(crate) fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// The restores finished since the last call, without waiting.
    pub(crate) fn done(&mut self) -> Vec<(TopicPartition, Option<Finished>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.running.len() {
            let ready = match &self.running[i].1 {
                Finishing::Thread(handle) => handle.is_finished(),
                Finishing::Done(_) | Finishing::Lost => true,
            };
            if ready {
                let (changelog, finishing) = self.running.swap_remove(i);
                out.push((changelog, settle(finishing)));
            } else {
                i += 1;
            }
        }
        out
    }

    /// Waits for `changelog`'s restore to finish, if it is being finished.
    pub(crate) fn wait(&mut self, changelog: &TopicPartition) -> Option<Option<Finished>> {
        let i = self.running.iter().position(|(c, _)| c == changelog)?;
        let (_, finishing) = self.running.swap_remove(i);
        Some(settle(finishing))
    }

    /// Waits for every restore being finished.
    pub(crate) fn wait_all(&mut self) -> Vec<(TopicPartition, Option<Finished>)> {
        self.running
            .drain(..)
            .map(|(changelog, finishing)| (changelog, settle(finishing)))
            .collect()
    }
}

/// What a finishing gave; `None` if its thread panicked (the task and
/// its partition's last batch are lost: reported as a failure).
fn settle(finishing: Finishing) -> Option<Finished> {
    match finishing {
        Finishing::Thread(handle) => handle.join().ok().flatten(),
        Finishing::Done(finished) => Some(*finished),
        Finishing::Lost => None,
    }
}
