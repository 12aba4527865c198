//! [`InFlight`]: a pipelined at-least-once checkpoint whose changelog
//! records are prepared and whose local writes are set aside, waiting for
//! the broker's acknowledgements before its source offsets commit and its
//! local writes land (see `staged`).

use std::sync::Arc;

use state_core::{StorePartition, TopicPartition};

use super::offsets::SourceOffsets;
use super::staged::PendingWrite;

/// One store partition's local write of the checkpoint in flight.
pub(super) struct StagedWrite {
    /// (store id, partition).
    pub(super) key: (usize, u32),
    /// The source partition whose records made it.
    pub(super) source: TopicPartition,
    /// Where it goes once the checkpoint's offsets are committed.
    pub(super) target: Arc<dyn StorePartition>,
    pub(super) pending: Arc<PendingWrite>,
}

/// See the [module docs](self).
pub(super) struct InFlight {
    /// The source offsets processed in the checkpoint.
    pub(super) offsets: SourceOffsets,
    /// Its local writes, by (store id, partition).
    pub(super) writes: Vec<StagedWrite>,
}

impl InFlight {
    /// The write set aside for (store id, partition), if any: what the next
    /// checkpoint's transactions on it read through.
    pub(super) fn pending_for(&self, key: (usize, u32)) -> Option<Arc<PendingWrite>> {
        self.writes.iter().find(|w| w.key == key).map(|w| w.pending.clone())
    }

    /// True if the checkpoint set a local write aside for `source`.
    pub(super) fn writes_to(&self, source: &TopicPartition) -> bool {
        self.writes.iter().any(|w| &w.source == source)
    }

    /// Forgets revoked source partition `source`: its offsets are not
    /// committed and its writes not made here (whoever takes it over
    /// processes its records again).
    pub(super) fn forget(&mut self, source: &TopicPartition) {
        self.offsets.forget(source);
        self.writes.retain(|w| &w.source != source);
    }
}
