//! [`BackgroundWrite`]: a checkpoint's local writes, done on a helper
//! thread. Exactly-once: while the poll loop processes the next records.
//! Pipelined at-least-once: while the poll loop prepares the next
//! checkpoint's changelog records (it waits for the write before it goes
//! back to processing).
//!
//! Why it is sound: the writes start only after the checkpoint committed
//! (its Kafka transaction, or its delivery and source offsets), so local
//! state never holds an uncommitted checkpoint; the next checkpoint's
//! transactions read through the writes (see `staged`), so they see the
//! same state as if the writes had landed; and the next checkpoint, a
//! revocation, a rebuild or a close waits for them before anything else
//! touches those partitions. A write that fails leaves its partition
//! behind its changelog, which holds the checkpoint: the partition is
//! reported unflushed, as a failed local write always is.

use std::sync::Arc;
use std::thread::JoinHandle;

use state_core::StorePartition;

use super::staged::PendingWrite;

/// What became of one write.
pub(super) type Outcome = state_core::Result<()>;

/// One store partition's local write.
pub(super) struct WriteJob {
    /// The partition written.
    pub(super) target: Arc<dyn StorePartition>,
    /// What is written.
    pub(super) pending: Arc<PendingWrite>,
    /// The changelog offset the write includes, when it is known only now
    /// (pipelined at-least-once: the last record of the partition's
    /// changelog known delivered); `None` keeps the batch's own.
    pub(super) changelog_offset: Option<u64>,
}

impl WriteJob {
    /// `pending` into `target`, with the batch's own changelog offset.
    pub(super) fn new(target: Arc<dyn StorePartition>, pending: Arc<PendingWrite>) -> Self {
        WriteJob {
            target,
            pending,
            changelog_offset: None,
        }
    }

    fn run(&self) -> Outcome {
        match self.changelog_offset {
            // The copy is made here, off the poll loop's thread.
            Some(offset) => self.target.write(&self.pending.batch_at(Some(offset))),
            None => self.target.write(self.pending.batch()),
        }
    }
}

/// See the [module docs](self).
pub(super) struct BackgroundWrite {
    running: Option<JoinHandle<Vec<Outcome>>>,
    outcomes: Vec<Outcome>,
}

impl BackgroundWrite {
    /// Starts writing each of `writes` into its partition, in order,
    /// stopping at the first failure. If no thread can be started, writes
    /// them here.
    pub(super) fn start(writes: Vec<WriteJob>) -> Self {
        let writes = Arc::new(writes);
        let job = {
            let writes = writes.clone();
            move || write_all(&writes)
        };
        match std::thread::Builder::new().name("kafka-state-flush".into()).spawn(job) {
            Ok(handle) => BackgroundWrite {
                running: Some(handle),
                outcomes: Vec::new(),
            },
            Err(e) => {
                tracing::warn!(error = %e, "could not start a thread for the local write; writing on this one");
                BackgroundWrite {
                    running: None,
                    outcomes: write_all(&writes),
                }
            }
        }
    }

    /// Waits for the writes and returns their outcomes, in the order given
    /// to [`start`](Self::start); the writes after a failure were not
    /// attempted and have none. A second call returns nothing.
    pub(super) fn wait(&mut self) -> Vec<Outcome> {
        if let Some(handle) = self.running.take() {
            self.outcomes = match handle.join() {
                Ok(outcomes) => outcomes,
                Err(_) => vec![Err(panicked())],
            };
        }
        std::mem::take(&mut self.outcomes)
    }
}

impl Drop for BackgroundWrite {
    /// Nothing may write to a partition after its owner let it go (a
    /// reopened RocksDB directory would find its lock held).
    fn drop(&mut self) {
        self.wait();
    }
}

fn write_all(writes: &[WriteJob]) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(writes.len());
    for job in writes {
        let res = job.run();
        let failed = res.is_err();
        outcomes.push(res);
        if failed {
            break;
        }
    }
    outcomes
}

fn panicked() -> state_core::Error {
    state_core::Error::Backend {
        backend: "state-manager",
        operation: "writing a checkpoint's local state behind the poll loop",
        subject: None,
        source: "the write's thread panicked; the partitions reload from their changelogs".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex};

    use state_core::testkit::TestPartition;
    use state_core::{MemoryPartition, WriteBatch};

    use super::*;
    use crate::checkpoint::staged::StagedPartition;

    /// Holds writes back until opened.
    #[derive(Default)]
    struct Gate {
        open: Mutex<bool>,
        opened: Condvar,
    }

    impl Gate {
        fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.opened.notify_all();
        }

        fn pass(&self) {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
        }
    }

    /// A memory partition whose writes wait at `gate`, and fail if `fail`.
    fn gated(gate: &Arc<Gate>, fail: bool) -> Arc<TestPartition<MemoryPartition>> {
        let gate = gate.clone();
        Arc::new(TestPartition::new(MemoryPartition::new(), move |_| {
            gate.pass();
            fail.then(|| state_core::Error::Backend {
                backend: "test",
                operation: "writing a batch",
                subject: None,
                source: "injected".into(),
            })
        }))
    }

    fn pending(pairs: &[(&str, &str)], offset: u64) -> Arc<PendingWrite> {
        let mut b = WriteBatch::new();
        for (k, v) in pairs {
            b.put("default", k.as_bytes(), v.as_bytes());
        }
        b.set_changelog_offset(offset);
        Arc::new(PendingWrite::new(b))
    }

    #[test]
    fn reads_go_through_a_write_until_it_lands_and_waiting_lands_it() {
        let gate = Arc::new(Gate::default());
        let target = gated(&gate, false);
        let write = pending(&[("a", "1"), ("b", "2")], 9);
        let mut writer = BackgroundWrite::start(vec![WriteJob::new(target.clone(), write.clone())]);
        let next = StagedPartition::new(target.clone(), Some(write));
        assert_eq!(next.get("default", b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(
            target.get("default", b"a").unwrap(),
            None,
            "not landed while the gate is shut"
        );

        gate.open();
        let outcomes = writer.wait();
        assert!(matches!(outcomes.as_slice(), [Ok(())]), "{outcomes:?}");
        assert_eq!(target.get("default", b"b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(
            target.changelog_offset().unwrap(),
            Some(9),
            "with the checkpoint's offset"
        );
        assert!(writer.wait().is_empty(), "a second wait has nothing to report");
    }

    #[test]
    fn a_changelog_offset_known_only_at_the_write_goes_into_it() {
        let target = Arc::new(MemoryPartition::new());
        let write = pending(&[("a", "1")], 3);
        let mut job = WriteJob::new(target.clone(), write.clone());
        job.changelog_offset = Some(12);
        let outcomes = BackgroundWrite::start(vec![job]).wait();
        assert!(matches!(outcomes.as_slice(), [Ok(())]), "{outcomes:?}");
        assert_eq!(target.changelog_offset().unwrap(), Some(12));
        assert_eq!(target.get("default", b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(
            write.batch().changelog_offset(),
            Some(3),
            "the write set aside, which the next checkpoint reads, is unchanged"
        );
    }

    #[test]
    fn the_writes_after_a_failed_one_are_not_attempted() {
        let gate = Arc::new(Gate::default());
        gate.open();
        let failing = gated(&gate, true);
        let after = gated(&gate, false);
        let mut writer = BackgroundWrite::start(vec![
            WriteJob::new(failing.clone(), pending(&[("a", "1")], 1)),
            WriteJob::new(after.clone(), pending(&[("b", "2")], 1)),
        ]);
        let outcomes = writer.wait();
        assert_eq!(outcomes.len(), 1, "{outcomes:?}");
        assert!(outcomes[0].is_err());
        assert_eq!(after.get("default", b"b").unwrap(), None);
    }

    #[test]
    fn dropping_the_writer_waits_for_its_writes() {
        let gate = Arc::new(Gate::default());
        let target = gated(&gate, false);
        let writer = BackgroundWrite::start(vec![WriteJob::new(target.clone(), pending(&[("a", "1")], 3))]);
        let opener = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                gate.open();
            })
        };
        drop(writer);
        assert_eq!(
            target.get("default", b"a").unwrap().as_deref(),
            Some(&b"1"[..]),
            "landed before the drop returned"
        );
        opener.join().unwrap();
    }
}
