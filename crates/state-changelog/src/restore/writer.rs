//! [`BatchWriter`]: a thread that writes an applier's full batches while the
//! applier fills the next one.
//!
//! Recovery alternates between reading records (the consumer) and writing
//! them (RocksDB memtable inserts, about half of its time); on two cores
//! one of them sat idle. At most one batch is in flight and the next is
//! handed over only after the previous one's outcome is known, so batches
//! reach the partition in order and the partition never holds a batch whose
//! predecessor failed: its data and stored offset agree as before.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use state_core::{StorePartition, WriteBatch};

type Outcome = (WriteBatch, state_core::Result<()>);

pub(crate) struct BatchWriter {
    jobs: Option<SyncSender<WriteBatch>>,
    outcomes: Receiver<Outcome>,
    thread: Option<JoinHandle<()>>,
    in_flight: bool,
}

fn stopped() -> state_core::Error {
    state_core::Error::backend(
        "recovery",
        "writing a batch",
        "the batch writer thread stopped unexpectedly; the partition keeps the batches written before",
    )
}

impl BatchWriter {
    /// A writer thread for `partition`, writing with
    /// [`StorePartition::load_bulk`] if `load` (else `write_bulk`); `None`
    /// if no thread could be started (the caller then writes on its own
    /// thread).
    pub(crate) fn spawn<P: StorePartition + ?Sized + 'static>(partition: Arc<P>, load: bool) -> Option<Self> {
        let (jobs, job_rx) = sync_channel::<WriteBatch>(1);
        let (outcome_tx, outcomes) = sync_channel::<Outcome>(1);
        let thread = std::thread::Builder::new()
            .name("changelog-writer".into())
            .spawn(move || {
                for mut batch in job_rx {
                    let res = if load {
                        partition.load_bulk(&batch)
                    } else {
                        partition.write_bulk(&batch)
                    };
                    batch.clear();
                    if outcome_tx.send((batch, res)).is_err() {
                        return;
                    }
                }
            });
        match thread {
            Ok(thread) => Some(BatchWriter {
                jobs: Some(jobs),
                outcomes,
                thread: Some(thread),
                in_flight: false,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "could not start a batch writer thread; writing on the recovery thread");
                None
            }
        }
    }

    /// Waits for the batch in flight, if any: its outcome, and its (cleared)
    /// buffer for reuse.
    pub(crate) fn wait(&mut self) -> Option<(Option<WriteBatch>, state_core::Result<()>)> {
        if !self.in_flight {
            return None;
        }
        self.in_flight = false;
        Some(match self.outcomes.recv() {
            Ok((batch, res)) => (Some(batch), res),
            Err(_) => (None, Err(stopped())),
        })
    }

    /// Hands `batch` to the thread. Call [`wait`](Self::wait) first: one
    /// batch at a time.
    pub(crate) fn send(&mut self, batch: WriteBatch) -> state_core::Result<()> {
        debug_assert!(!self.in_flight, "one batch in flight at a time");
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(batch).map_err(|_| stopped())?;
        self.in_flight = true;
        Ok(())
    }
}

impl Drop for BatchWriter {
    fn drop(&mut self) {
        // Close the queue and let a write in progress end before the
        // partition can be closed and reopened by someone else.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
