//! What the conformance kit's bulk-load cases (`state_core::testkit`,
//! `bulk_loads_leave_what_bulk_writes_leave` and the others, run in
//! `conformance.rs`) cannot see: that RocksDB's `load_bulk` really goes in
//! as table files, leaves none behind, and that an interrupted load
//! converges across a reopen of the database.

use std::collections::BTreeMap;

use state_core::testkit::{load_batches, load_changelog, replay_from, LoadRecord};
use state_core::{KeyValue, StorePartition};
use state_rocksdb::{RocksDbOptions, RocksDbPartition};
use test_support::store::data;

fn open(dir: &std::path::Path) -> RocksDbPartition {
    RocksDbPartition::open(dir, &RocksDbOptions::default()).expect("open")
}

/// The reference: every batch through the memtable.
fn written(records: &[LoadRecord], size: usize) -> BTreeMap<String, Vec<KeyValue>> {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    for b in load_batches(records, 0, size) {
        p.write_bulk(&b).unwrap();
    }
    p.persist().unwrap();
    data(&p)
}

#[test]
fn a_sorted_load_goes_in_as_table_files_and_leaves_none_behind() {
    let records = load_changelog(20_000);
    let expected = written(&records, 3_000);
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    for b in load_batches(&records, 0, 3_000) {
        p.load_bulk(&b).unwrap();
    }
    // The batches went in as table files (one per batch and column
    // family, some maybe compacted already), not through the memtable.
    let tables = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sst"))
        .count();
    assert!(tables >= 3, "{tables} table files before any flush");
    p.persist().unwrap();
    drop(p);

    // Durable: the same after reopening, and no table file left behind.
    let p = open(dir.path());
    assert_eq!(data(&p), expected);
    assert_eq!(p.changelog_offset().unwrap(), Some(records.len() as u64 - 1));
    let leftover = dir.path().join("sorted-load.tmp");
    assert!(
        !leftover.exists() || std::fs::read_dir(&leftover).unwrap().next().is_none(),
        "table files were moved into the database"
    );
}

#[test]
fn an_interrupted_load_replayed_after_a_reopen_converges() {
    let records = load_changelog(20_000);
    let expected = written(&records, 2_500);
    for replay_with_loads in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path());
        // Five of eight batches went in; the offset that reached disk is
        // the second's (a crash lost the stored offsets after it, not the
        // ingested files).
        for b in load_batches(&records, 0, 2_500).into_iter().take(5) {
            p.load_bulk(&b).unwrap();
        }
        p.write_changelog_offset(4_999).unwrap();
        p.persist().unwrap();
        drop(p);

        let p = open(dir.path());
        let resume = p.changelog_offset().unwrap().unwrap() as usize + 1;
        assert_eq!(resume, 5_000);
        replay_from(&p, &records, resume, 2_500, replay_with_loads);
        p.persist().unwrap();
        assert_eq!(data(&p), expected, "replayed with loads: {replay_with_loads}");
        assert_eq!(p.changelog_offset().unwrap(), Some(records.len() as u64 - 1));
    }
}
