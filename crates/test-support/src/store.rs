//! Partition contents as plain values, to compare two partitions or a
//! partition before and after.

use std::collections::BTreeMap;

use state_core::{Direction, KeyValue, StorePartition};

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
