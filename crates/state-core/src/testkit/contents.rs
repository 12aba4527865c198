//! What a partition holds, as comparable values: for tests that require
//! two partitions (a source and its replay, a load and a bulk write) to
//! hold the same data.

use std::collections::BTreeMap;

use crate::cf;
use crate::partition::{Direction, KeyValue, StorePartition};

/// Every column family of `p` that holds something, `__metadata__`
/// included, with its keys and values in key order.
pub fn all_contents(p: &dyn StorePartition) -> BTreeMap<String, Vec<KeyValue>> {
    contents_where(p, |_| true)
}

/// Every column family of `p` but `__metadata__` that holds something,
/// with its keys and values in key order. The metadata is left out: it
/// records offsets and formats, which differ between partitions holding
/// the same data.
pub fn contents(p: &dyn StorePartition) -> BTreeMap<String, Vec<KeyValue>> {
    contents_where(p, |name| name != cf::METADATA)
}

/// [`contents`] of the column families the changelog carries (none of
/// [`cf::LOCAL_ONLY`]): what replaying the partition's changelog into an
/// empty partition must rebuild.
pub fn replicated_contents(p: &dyn StorePartition) -> BTreeMap<String, Vec<KeyValue>> {
    contents_where(p, |name| !cf::is_local_only(name))
}

fn contents_where(p: &dyn StorePartition, keep: impl Fn(&str) -> bool) -> BTreeMap<String, Vec<KeyValue>> {
    let mut out = BTreeMap::new();
    for name in p.column_families().expect("column_families must succeed") {
        if !keep(&name) {
            continue;
        }
        let kvs: Vec<KeyValue> = p
            .iter_range(&name, b"", None, Direction::Forward)
            .expect("iter_range must succeed")
            .collect::<Result<_, _>>()
            .expect("iteration items must be Ok");
        if !kvs.is_empty() {
            out.insert(name, kvs);
        }
    }
    out
}
