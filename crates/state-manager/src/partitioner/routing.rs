//! [`Partitioner`]: which librdkafka partitioner placed a keyed record, so
//! a reader looks for the key (and its state) in the partition the
//! producer chose.

use std::fmt;

use rdkafka::config::ClientConfig;

use super::hashes::{crc32, fnv1a, murmur2};

/// The librdkafka producer setting that chooses the partitioner.
pub const PARTITIONER_SETTING: &str = "partitioner";

/// How a producer maps a record's key to a partition: librdkafka's
/// `partitioner` setting, for the values that route by key.
///
/// State follows the partition of the records it is built from, so a
/// reader (interactive queries, [`crate::StateReader::partition_of`]) must
/// route a key exactly as the producers of the source topic did. The
/// defaults differ between clients:
///
/// | client | default | here |
/// |---|---|---|
/// | Java client, Kafka Streams, quixstreams | murmur2 | [`Partitioner::Murmur2Random`] |
/// | librdkafka (rdkafka, confluent-kafka-go/python) | `consistent_random` (CRC-32) | [`Partitioner::ConsistentRandom`] |
///
/// [`ManagerConfig::partitioner`](crate::ManagerConfig::partitioner)
/// defaults to [`Partitioner::Murmur2Random`], and the manager sets it on
/// its own producer and on the producer settings it hands out
/// ([`ManagerConfig::producer_config`](crate::ManagerConfig::producer_config)).
/// `random` (no key routing) is not a variant: no reader can find a key
/// it placed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Partitioner {
    /// `murmur2_random`: murmur2 of the key, as the Java client's default
    /// partitioner; records without a key go to a random partition.
    #[default]
    Murmur2Random,
    /// `murmur2`: murmur2 of the key; records without a key go where an
    /// empty key goes.
    Murmur2,
    /// `consistent_random` (librdkafka's default): CRC-32 of the key;
    /// records with an empty or no key go to a random partition.
    ConsistentRandom,
    /// `consistent`: CRC-32 of the key, an empty key included.
    Consistent,
    /// `fnv1a_random`: FNV-1a of the key (Sarama's hash partitioner);
    /// records without a key go to a random partition.
    Fnv1aRandom,
    /// `fnv1a`: FNV-1a of the key.
    Fnv1a,
}

/// A `partitioner` setting that does not route by key (or is unknown).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "librdkafka partitioner {value:?} does not route records by key (or is unknown): a reader cannot find a \
     key's partition; use one of murmur2_random, murmur2, consistent_random, consistent, fnv1a_random, fnv1a"
)]
pub struct UnsupportedPartitioner {
    /// The setting's value.
    pub value: String,
}

impl Partitioner {
    /// Every variant, for lookups by name.
    const ALL: [Partitioner; 6] = [
        Partitioner::Murmur2Random,
        Partitioner::Murmur2,
        Partitioner::ConsistentRandom,
        Partitioner::Consistent,
        Partitioner::Fnv1aRandom,
        Partitioner::Fnv1a,
    ];

    /// The value of librdkafka's `partitioner` setting that selects it.
    pub const fn librdkafka_name(self) -> &'static str {
        match self {
            Partitioner::Murmur2Random => "murmur2_random",
            Partitioner::Murmur2 => "murmur2",
            Partitioner::ConsistentRandom => "consistent_random",
            Partitioner::Consistent => "consistent",
            Partitioner::Fnv1aRandom => "fnv1a_random",
            Partitioner::Fnv1a => "fnv1a",
        }
    }

    /// The partitioner selected by librdkafka's `partitioner` value `name`.
    pub fn from_librdkafka_name(name: &str) -> Result<Self, UnsupportedPartitioner> {
        Self::ALL
            .into_iter()
            .find(|p| p.librdkafka_name() == name)
            .ok_or_else(|| UnsupportedPartitioner { value: name.to_owned() })
    }

    /// The partitioner a librdkafka producer created from `config` uses:
    /// its `partitioner` setting, or librdkafka's default
    /// ([`Partitioner::ConsistentRandom`]) when unset.
    pub fn of_producer(config: &ClientConfig) -> Result<Self, UnsupportedPartitioner> {
        match config.get(PARTITIONER_SETTING) {
            Some(name) => Self::from_librdkafka_name(name),
            None => Ok(Partitioner::ConsistentRandom),
        }
    }

    /// The partition a producer with this partitioner puts a record with
    /// key `key` in, among `partitions` partitions; `None` if it picks one
    /// at random (an empty key under [`Partitioner::ConsistentRandom`]) or
    /// `partitions` is 0. A record sent with an explicit partition goes
    /// there instead, whatever its key.
    pub fn partition(self, key: &[u8], partitions: u32) -> Option<u32> {
        if partitions == 0 {
            return None;
        }
        Some(match self {
            Partitioner::Murmur2Random | Partitioner::Murmur2 => murmur2_partition(key, partitions),
            Partitioner::ConsistentRandom if key.is_empty() => return None,
            Partitioner::ConsistentRandom | Partitioner::Consistent => crc32(key) % partitions,
            Partitioner::Fnv1aRandom | Partitioner::Fnv1a => fnv1a(key) % partitions,
        })
    }
}

impl fmt::Display for Partitioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.librdkafka_name())
    }
}

/// The partition the Java client's default partitioner (and librdkafka's
/// `partitioner=murmur2_random` or `murmur2`) puts a record with key `key`
/// in: murmur2 of the key bytes, made positive, modulo `partitions`
/// (treated as 1 if 0).
///
/// librdkafka's *own* default is `consistent_random` (CRC-32): records a
/// default rdkafka producer wrote are elsewhere. Use
/// [`Partitioner::partition`] with the producers' setting
/// ([`Partitioner::of_producer`]) when it is not murmur2.
pub fn murmur2_partition(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// The partition of `key` under the Java client's default partitioner.
#[deprecated(
    since = "0.1.0",
    note = "the name hides which partitioner it implements (murmur2; librdkafka's default is CRC-32): use \
            murmur2_partition, or Partitioner::partition with the producers' `partitioner` setting"
)]
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    murmur2_partition(key, partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_land_where_the_java_client_puts_them() {
        // toPositive(murmur2(key)) % partitions, as Kafka's DefaultPartitioner.
        assert_eq!(
            murmur2_partition(b"foobar", 4),
            (((-790_332_482i32) as u32) & 0x7fff_ffff) % 4
        );
        for p in [1, 3, 12] {
            assert!(murmur2_partition(b"any", p) < p);
        }
    }

    #[test]
    fn names_round_trip_and_random_is_refused() {
        for p in Partitioner::ALL {
            assert_eq!(Partitioner::from_librdkafka_name(p.librdkafka_name()), Ok(p));
        }
        let err = Partitioner::from_librdkafka_name("random").unwrap_err();
        assert!(err.to_string().contains("does not route records by key"), "{err}");
    }

    #[test]
    fn an_unset_setting_is_librdkafkas_default() {
        assert_eq!(
            Partitioner::of_producer(&ClientConfig::new()),
            Ok(Partitioner::ConsistentRandom)
        );
        let mut c = ClientConfig::new();
        c.set(PARTITIONER_SETTING, "murmur2_random");
        assert_eq!(Partitioner::of_producer(&c), Ok(Partitioner::Murmur2Random));
    }

    #[test]
    fn random_placements_have_no_partition() {
        assert_eq!(Partitioner::ConsistentRandom.partition(b"", 4), None);
        assert_eq!(Partitioner::Consistent.partition(b"", 4), Some(0));
        assert_eq!(Partitioner::Murmur2Random.partition(b"k", 0), None);
    }
}
