//! [`InFlight`]: a pipelined checkpoint whose local writes have not landed.
//! At-least-once: its changelog records are prepared and its local writes
//! set aside, waiting for the broker's acknowledgements before its source
//! offsets commit and its local writes land. Exactly-once: its transaction
//! committed and its local writes run behind the poll loop (see `staged`
//! and `writer`).

use std::sync::Arc;

use state_core::{StorePartition, TopicPartition};

use super::offsets::SourceOffsets;
use super::staged::PendingWrite;
use super::writer::{BackgroundWrite, Outcome};

/// One store partition's local write of the checkpoint in flight.
pub(super) struct StagedWrite {
    /// (store id, partition).
    pub(super) key: (usize, u32),
    /// The source partition whose records made it.
    pub(super) source: TopicPartition,
    /// Where it goes once the checkpoint's offsets are committed.
    pub(super) target: Arc<dyn StorePartition>,
    pub(super) pending: Arc<PendingWrite>,
    /// Once the write behind the poll loop ended: how it went (`None`
    /// there: not attempted, an earlier write failed).
    pub(super) landed: Option<Outcome>,
}

/// See the [module docs](self).
pub(super) struct InFlight {
    /// The source offsets processed in the checkpoint.
    pub(super) offsets: SourceOffsets,
    /// Its local writes, by (store id, partition).
    pub(super) writes: Vec<StagedWrite>,
    /// The writes running behind the poll loop, until
    /// [`wait`](Self::wait) takes their outcomes: exactly-once, from its
    /// commit until the next one; at-least-once, only while the next
    /// checkpoint prepares.
    pub(super) writer: Option<BackgroundWrite>,
}

impl InFlight {
    /// The write set aside for (store id, partition), if any: what the next
    /// checkpoint's transactions on it read through.
    pub(super) fn pending_for(&self, key: (usize, u32)) -> Option<Arc<PendingWrite>> {
        self.writes.iter().find(|w| w.key == key).map(|w| w.pending.clone())
    }

    /// Waits for the writes behind the poll loop, if any, and notes
    /// each one's outcome in [`StagedWrite::landed`].
    pub(super) fn wait(&mut self) {
        let Some(mut writer) = self.writer.take() else {
            return;
        };
        let mut outcomes = writer.wait().into_iter();
        for w in &mut self.writes {
            w.landed = outcomes.next();
        }
    }

    /// True if the checkpoint set a local write aside for `source`.
    pub(super) fn writes_to(&self, source: &TopicPartition) -> bool {
        self.writes.iter().any(|w| &w.source == source)
    }

    /// Forgets revoked source partition `source`. At-least-once: its
    /// offsets are not committed and its writes not made here (whoever
    /// takes it over processes its records again). Exactly-once: its
    /// offsets are committed already, and the writes behind the poll loop
    /// end first (the partition is about to close); whoever takes it over
    /// restores what its local state lacks from the changelog.
    pub(super) fn forget(&mut self, source: &TopicPartition) {
        self.wait();
        self.offsets.forget(source);
        self.writes.retain(|w| &w.source != source);
    }
}
