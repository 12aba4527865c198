//! The source offsets of the current checkpoint: per source partition, the
//! first and the last record processed.

use std::collections::BTreeMap;

/// A source partition: (topic, partition).
type SourcePartition = (String, u32);

/// See the [module docs](self).
#[derive(Default)]
pub(super) struct SourceOffsets {
    /// Offset of the last processed record: what the checkpoint commits.
    last: BTreeMap<SourcePartition, i64>,
    /// Offset of the first record processed in this checkpoint: where to
    /// rewind if it cannot be kept locally.
    first: BTreeMap<SourcePartition, i64>,
}

impl SourceOffsets {
    /// Records that the record at `offset` of `topic[partition]` was
    /// processed.
    pub(super) fn record(&mut self, topic: &str, partition: u32, offset: i64) {
        let last = self.last.entry((topic.to_owned(), partition)).or_insert(offset);
        *last = (*last).max(offset);
        let first = self.first.entry((topic.to_owned(), partition)).or_insert(offset);
        *first = (*first).min(offset);
    }

    /// Forgets `partition` (revoked: its records are not committed here).
    pub(super) fn forget(&mut self, partition: &SourcePartition) {
        self.last.remove(partition);
        self.first.remove(partition);
    }

    /// True if nothing was processed.
    pub(super) fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// The offset of the last record processed of `topic[partition]`.
    pub(super) fn last_of(&self, topic: &str, partition: u32) -> Option<i64> {
        self.last.get(&(topic.to_owned(), partition)).copied()
    }

    /// Every partition with the offset of its last processed record.
    pub(super) fn last(&self) -> impl Iterator<Item = (&SourcePartition, i64)> {
        self.last.iter().map(|(k, o)| (k, *o))
    }

    /// Every partition with the offset of its first processed record.
    pub(super) fn first(&self) -> impl Iterator<Item = (&SourcePartition, i64)> {
        self.first.iter().map(|(k, o)| (k, *o))
    }
}
