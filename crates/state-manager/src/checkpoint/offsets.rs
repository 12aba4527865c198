//! The source offsets of the current checkpoint: per source partition, the
//! first and the last record processed.

use state_core::TopicPartition;

/// One source partition's range of processed offsets.
struct Range {
    source: TopicPartition,
    /// Offset of the first record processed in this checkpoint: where to
    /// rewind if it cannot be kept locally.
    first: i64,
    /// Offset of the last processed record: what the checkpoint commits.
    last: i64,
}

/// See the [module docs](self).
///
/// A short list sorted by source partition rather than a map: it is
/// updated once per processed record, by the topic name and partition as
/// the poll loop has them, and an instance has few source partitions. A
/// lookup compares names without building a [`TopicPartition`], so only
/// the first record of a partition in a checkpoint allocates.
#[derive(Default)]
pub(super) struct SourceOffsets {
    ranges: Vec<Range>,
}

impl SourceOffsets {
    /// Records that the record at `offset` of `topic[partition]` was
    /// processed; `source` makes its [`TopicPartition`] when the partition
    /// is new to this checkpoint.
    pub(super) fn record_at(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        source: impl FnOnce() -> TopicPartition,
    ) {
        if let Some(r) = self
            .ranges
            .iter_mut()
            .find(|r| r.source.partition() == partition && r.source.topic() == topic)
        {
            r.first = r.first.min(offset);
            r.last = r.last.max(offset);
            return;
        }
        let source = source();
        let at = self.ranges.partition_point(|r| r.source < source);
        self.ranges.insert(
            at,
            Range {
                source,
                first: offset,
                last: offset,
            },
        );
    }

    /// Forgets `source` (revoked: its records are not committed here).
    pub(super) fn forget(&mut self, source: &TopicPartition) {
        self.ranges.retain(|r| &r.source != source);
    }

    /// True if nothing was processed.
    pub(super) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The offset of the last record processed of `source`.
    pub(super) fn last_of(&self, source: &TopicPartition) -> Option<i64> {
        self.ranges.iter().find(|r| &r.source == source).map(|r| r.last)
    }

    /// The offset of the first record of `source` processed, if any.
    pub(super) fn first_of(&self, source: &TopicPartition) -> Option<i64> {
        self.ranges.iter().find(|r| &r.source == source).map(|r| r.first)
    }

    /// Every partition with the offset of its last processed record, in
    /// partition order.
    pub(super) fn last(&self) -> impl Iterator<Item = (&TopicPartition, i64)> {
        self.ranges.iter().map(|r| (&r.source, r.last))
    }

    /// Every partition with the offset of its first processed record, in
    /// partition order.
    pub(super) fn first(&self) -> impl Iterator<Item = (&TopicPartition, i64)> {
        self.ranges.iter().map(|r| (&r.source, r.first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_first_and_last_per_partition_in_order() {
        let mut o = SourceOffsets::default();
        o.record_at("b", 0, 5, || TopicPartition::new("b", 0));
        o.record_at("a", 1, 9, || TopicPartition::new("a", 1));
        o.record_at("b", 0, 3, || unreachable!("b[0] is known"));
        o.record_at("b", 0, 7, || unreachable!("b[0] is known"));
        o.record_at("a", 0, 2, || TopicPartition::new("a", 0));
        let last: Vec<(String, i32, i64)> = o
            .last()
            .map(|(tp, off)| (tp.topic().to_owned(), tp.partition(), off))
            .collect();
        assert_eq!(last, vec![("a".into(), 0, 2), ("a".into(), 1, 9), ("b".into(), 0, 7)]);
        assert_eq!(o.first().map(|(_, f)| f).collect::<Vec<_>>(), vec![2, 9, 3]);
        assert_eq!(o.last_of(&TopicPartition::new("b", 0)), Some(7));
        o.forget(&TopicPartition::new("a", 1));
        assert_eq!(o.last().count(), 2);
        assert!(!o.is_empty());
    }
}
