//! Partition contents as plain values, to compare two partitions or a
//! partition before and after: `state_core::testkit`'s, under the names
//! the workspace's tests use.

/// Every key and value of every non-empty column family of a partition,
/// metadata included, by column family name. Panics on a read error.
pub use state_core::testkit::all_contents as snapshot;

/// [`snapshot`] without `__metadata__`: the data alone, to compare
/// partitions that reached the same data by different paths (their stored
/// offsets or store kinds may differ).
pub use state_core::testkit::contents as data;
