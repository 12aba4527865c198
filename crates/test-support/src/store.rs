//! Partition contents as plain values, to compare two partitions or a
//! partition before and after.

use std::collections::BTreeMap;

use state_core::{cf, Direction, KeyValue, StorePartition};

/// Every key and value of every non-empty column family of `partition`,
/// metadata included, by column family name. Panics on a read error.
pub fn snapshot(partition: &dyn StorePartition) -> BTreeMap<String, Vec<KeyValue>> {
    let mut out = BTreeMap::new();
    for name in partition.column_families().expect("list column families") {
        let items: Vec<KeyValue> = partition
            .iter_range(&name, b"", None, Direction::Forward)
            .expect("iterate a column family")
            .collect::<Result<_, _>>()
            .expect("read a column family");
        if !items.is_empty() {
            out.insert(name, items);
        }
    }
    out
}

/// [`snapshot`] without `__metadata__`: the data alone, to compare
/// partitions that reached the same data by different paths (their stored
/// offsets or store kinds may differ).
pub fn data(partition: &dyn StorePartition) -> BTreeMap<String, Vec<KeyValue>> {
    let mut out = snapshot(partition);
    out.remove(cf::METADATA);
    out
}
