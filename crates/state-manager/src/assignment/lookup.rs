//! Looking up a source partition by topic name and number without building
//! a [`TopicPartition`]: `is_ready` and `is_assigned` run once per record
//! (or per partition per record in an event-time aligner), and building
//! the key allocated and freed its topic name each time.

use std::borrow::Borrow;
use std::cmp::Ordering;

use state_core::TopicPartition;

/// A source partition as a map key: owned ([`TopicPartition`]) or
/// borrowed (`(&str, i32)`), ordered alike so a `BTreeMap` keyed by
/// `TopicPartition` can be searched with either.
pub(crate) trait PartitionKey {
    /// Topic and partition number, in the order `TopicPartition` sorts by.
    fn key(&self) -> (&str, i32);
}

impl PartitionKey for TopicPartition {
    fn key(&self) -> (&str, i32) {
        (self.topic(), self.partition())
    }
}

impl PartitionKey for (&str, i32) {
    fn key(&self) -> (&str, i32) {
        (self.0, self.1)
    }
}

impl<'a> Borrow<dyn PartitionKey + 'a> for TopicPartition {
    fn borrow(&self) -> &(dyn PartitionKey + 'a) {
        self
    }
}

// `Borrow` requires these to agree with `TopicPartition`'s derived order:
// topic first (an `Arc<str>` compares as its `str`), then partition.
impl PartialEq for dyn PartitionKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn PartitionKey + '_ {}

impl PartialOrd for dyn PartitionKey + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn PartitionKey + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// The borrowed key of partition `partition` of `topic`, as the poll loop
/// names it, numbered as [`TopicPartition::of_store`] numbers it (an index
/// beyond `i32` finds nothing rather than another partition).
pub(crate) fn store_key(topic: &str, partition: u32) -> (&str, i32) {
    (topic, TopicPartition::kafka_partition(partition))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_borrowed_key_sorts_as_the_owned_one() {
        let owned = [
            TopicPartition::new("a", 2),
            TopicPartition::new("a", 10),
            TopicPartition::new("ab", -1),
            TopicPartition::new("b", 0),
        ];
        for x in &owned {
            for y in &owned {
                let (bx, by): (&dyn PartitionKey, &dyn PartitionKey) = (&x.key(), &y.key());
                assert_eq!(bx.cmp(by), x.cmp(y), "{x} vs {y}");
            }
        }
    }

    #[test]
    fn a_map_keyed_by_topic_partition_finds_a_borrowed_key() {
        let map: BTreeMap<TopicPartition, u8> = [(TopicPartition::new("in", 0), 1), (TopicPartition::new("in", 3), 2)]
            .into_iter()
            .collect();
        assert_eq!(map.get(&store_key("in", 3) as &dyn PartitionKey), Some(&2));
        assert_eq!(map.get(&store_key("in", 1) as &dyn PartitionKey), None);
        assert_eq!(map.get(&store_key("out", 0) as &dyn PartitionKey), None);
        assert_eq!(map.get(&store_key("in", u32::MAX) as &dyn PartitionKey), None);
    }
}
