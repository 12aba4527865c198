//! Helpers shared by the tests: a store on a temporary directory, a
//! partition filled with keys.

use std::path::Path;
use std::sync::Arc;

use state_core::{cf, Backend, StoreLocation, StorePartition, WriteBatch};
use state_snapshot::{Retention, SnapshotStore, StoreOptions};

/// A snapshot store in `dir/store` with `retention`.
#[allow(dead_code)] // not every test file uses every helper
pub fn local_store(dir: &Path, retention: Retention) -> SnapshotStore {
    let url = format!("file://{}/store", dir.display());
    SnapshotStore::open(&url, &StoreOptions::new())
        .unwrap()
        .with_retention(retention)
}

/// Key `i` of the test data.
pub fn key(i: u32) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

/// Writes keys `from..to` (value: the key reversed, `round` appended) in
/// `default` and one in `__values__`, with changelog offset `offset`.
pub fn fill(p: &dyn StorePartition, from: u32, to: u32, round: u8, offset: u64) {
    let mut b = WriteBatch::new();
    for i in from..to {
        b.put(cf::DEFAULT, &key(i), &value(i, round));
    }
    b.put(cf::VALUES, b"side", &[round]);
    b.set_changelog_offset(offset);
    p.write(&b).unwrap();
    p.persist().unwrap();
}

pub fn value(i: u32, round: u8) -> Vec<u8> {
    let mut v: Vec<u8> = key(i).into_iter().rev().collect();
    v.push(round);
    v
}

/// Opens partition 0 of a store named `counts` in `dir` on `backend`.
pub fn open(backend: &Arc<dyn Backend>, dir: &Path) -> (StoreLocation, Arc<dyn StorePartition>) {
    let location = StoreLocation::new("counts", dir.join("counts"));
    let p = backend.open_partition(&location, 0).unwrap();
    (location, p)
}
