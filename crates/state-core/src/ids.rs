//! Typed identities shared by every layer: what kind a store is, and which
//! Kafka partition a source or changelog record belongs to.
//!
//! Strings and tuples (`"windowed"`, `(String, i32)`) were easy to mix up
//! across crates; these types make the compiler check them.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The kind of a store: which layouts its column families hold.
///
/// [`as_str`](Self::as_str) is the value recorded on disk under
/// [`crate::cf::STORE_KIND_KEY`]; it never changes for an existing kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StoreKind {
    /// Plain key-value state (quixstreams' `RocksDBStore`).
    KeyValue,
    /// Time windows per key (quixstreams' `WindowedRocksDBStore`).
    Windowed,
    /// Values by event time per key (quixstreams' `TimestampedStore`).
    Timestamped,
}

impl StoreKind {
    /// Every kind, in a fixed order.
    pub const ALL: [StoreKind; 3] = [StoreKind::KeyValue, StoreKind::Windowed, StoreKind::Timestamped];

    /// The on-disk name: `key-value`, `windowed` or `timestamped`.
    pub const fn as_str(self) -> &'static str {
        match self {
            StoreKind::KeyValue => "key-value",
            StoreKind::Windowed => "windowed",
            StoreKind::Timestamped => "timestamped",
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`StoreKind::ALL`]'s on-disk names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown store kind {0:?}: expected key-value, windowed or timestamped")]
pub struct UnknownStoreKind(pub String);

impl FromStr for StoreKind {
    type Err = UnknownStoreKind;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        StoreKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownStoreKind(s.to_owned()))
    }
}

/// A partition of a Kafka topic: the identity of source and changelog
/// partitions in every API of the manager and the restorer.
///
/// The partition number is Kafka's (`i32`, never negative for a real
/// partition); [`store_partition`](Self::store_partition) is the same number
/// as the store partition index (`u32`) that backends take. Cloning is cheap
/// (the topic is shared).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    topic: Arc<str>,
    partition: i32,
}

impl TopicPartition {
    /// Partition `partition` of `topic`.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The store partition index `partition` of `topic` (store partition
    /// *n* follows source partition *n*).
    pub fn of_store(topic: impl Into<Arc<str>>, partition: u32) -> Self {
        TopicPartition::new(topic, Self::kafka_partition(partition))
    }

    /// Kafka's number for store partition index `partition`, as
    /// [`of_store`](Self::of_store) numbers it: the same number, and
    /// `i32::MAX` for an index beyond `i32` (Kafka partition numbers are
    /// below 2^31, so no consumer assignment has one; saturating keeps it
    /// distinct and never wraps to a negative number).
    pub fn kafka_partition(partition: u32) -> i32 {
        i32::try_from(partition).unwrap_or(i32::MAX)
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The topic, shared.
    pub fn topic_arc(&self) -> &Arc<str> {
        &self.topic
    }

    /// Kafka's partition number.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The partition as a store partition index (negative numbers, which no
    /// assigned partition has, map to 0).
    pub fn store_partition(&self) -> u32 {
        u32::try_from(self.partition).unwrap_or(0)
    }
}

impl fmt::Debug for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_kinds_round_trip_through_their_on_disk_names() {
        for kind in StoreKind::ALL {
            assert_eq!(kind.as_str().parse::<StoreKind>(), Ok(kind));
        }
        assert_eq!(StoreKind::KeyValue.as_str(), "key-value");
        assert_eq!(
            "key_value".parse::<StoreKind>(),
            Err(UnknownStoreKind("key_value".into()))
        );
    }

    #[test]
    fn topic_partitions_order_by_topic_then_partition_and_display_as_kafka_does() {
        let a = TopicPartition::new("a", 2);
        let b = TopicPartition::of_store("b", 0);
        assert!(a < b);
        assert!(TopicPartition::new("a", 1) < a);
        assert_eq!(a.to_string(), "a[2]");
        assert_eq!(b.store_partition(), 0);
        assert_eq!(TopicPartition::of_store("t", u32::MAX).partition(), i32::MAX);
    }
}
