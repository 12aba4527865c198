//! Which partition a keyed record (and so its state) is in, the way the
//! producers that wrote it routed it.
//!
//! * [`Partitioner`] — librdkafka's key-routing partitioners by their
//!   `partitioner` setting, with the partition each puts a key in.
//! * [`murmur2_partition`] — the Java client's default (librdkafka's
//!   `murmur2_random`), the manager's default.
//! * `hashes` — murmur2, CRC-32 and FNV-1a as librdkafka computes them.

mod hashes;
mod routing;

#[allow(deprecated)]
pub use routing::partition_for_key;
pub use routing::{murmur2_partition, Partitioner, UnsupportedPartitioner, PARTITIONER_SETTING};
