//! [`Unflushed`]: the source partitions of a checkpoint whose offsets and
//! changelog records were committed but whose local write failed (the
//! local flush is the last step), with the offset each was committed at.

use std::collections::BTreeMap;

use state_core::TopicPartition;

use super::offsets::SourceOffsets;

/// See the [module docs](self).
#[derive(Default)]
pub(super) struct Unflushed {
    /// Source partition -> the offset committed for it (the next record to
    /// process), `None` if the checkpoint processed none of its records.
    partitions: BTreeMap<TopicPartition, Option<i64>>,
}

impl Unflushed {
    /// Adds `source`, committed at the offset after its last record in
    /// `offsets`.
    pub(super) fn add(&mut self, source: TopicPartition, offsets: &SourceOffsets) {
        let committed = offsets.last_of(&source).map(|last| last + 1);
        self.partitions.insert(source, committed);
    }

    /// Adds `source`, committed at `committed`.
    pub(super) fn add_at(&mut self, source: TopicPartition, committed: Option<i64>) {
        self.partitions.insert(source, committed);
    }

    /// True if `source` is among them.
    pub(super) fn contains(&self, source: &TopicPartition) -> bool {
        self.partitions.contains_key(source)
    }

    /// The partitions, ascending.
    pub(super) fn into_vec(self) -> Vec<(TopicPartition, Option<i64>)> {
        self.partitions.into_iter().collect()
    }
}
