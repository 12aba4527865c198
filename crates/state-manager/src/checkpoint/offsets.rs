//! The source offsets of the current checkpoint: per source partition, the
//! first and the last record processed.

use std::collections::BTreeMap;

use state_core::TopicPartition;

/// See the [module docs](self).
#[derive(Default)]
pub(super) struct SourceOffsets {
    /// Offset of the last processed record: what the checkpoint commits.
    last: BTreeMap<TopicPartition, i64>,
    /// Offset of the first record processed in this checkpoint: where to
    /// rewind if it cannot be kept locally.
    first: BTreeMap<TopicPartition, i64>,
}

impl SourceOffsets {
    /// Records that the record at `offset` of `source` was processed.
    pub(super) fn record(&mut self, source: TopicPartition, offset: i64) {
        let first = self.first.entry(source.clone()).or_insert(offset);
        *first = (*first).min(offset);
        let last = self.last.entry(source).or_insert(offset);
        *last = (*last).max(offset);
    }

    /// Forgets `source` (revoked: its records are not committed here).
    pub(super) fn forget(&mut self, source: &TopicPartition) {
        self.last.remove(source);
        self.first.remove(source);
    }

    /// True if nothing was processed.
    pub(super) fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// The offset of the last record processed of `source`.
    pub(super) fn last_of(&self, source: &TopicPartition) -> Option<i64> {
        self.last.get(source).copied()
    }

    /// Every partition with the offset of its last processed record.
    pub(super) fn last(&self) -> impl Iterator<Item = (&TopicPartition, i64)> {
        self.last.iter().map(|(k, o)| (k, *o))
    }

    /// Every partition with the offset of its first processed record.
    pub(super) fn first(&self) -> impl Iterator<Item = (&TopicPartition, i64)> {
        self.first.iter().map(|(k, o)| (k, *o))
    }
}
