//! `load_bulk` (sorted table files ingested) against `write_bulk` (the
//! memtable path): the same changelog, written in batches either way, must
//! leave the same keys and values in every column family, with overwrites
//! and deletes, and also when a load is interrupted after some of its
//! files went in and is replayed from the stored offset.

use std::collections::BTreeMap;

use state_core::{Direction, KeyValue, StorePartition, WriteBatch};
use state_rocksdb::{RocksDbOptions, RocksDbPartition};
use test_support::store::data;

const CFS: [&str; 3] = ["default", "counts", "windows"];

/// One changelog record: column family, key, value (`None`: a delete).
type Record = (&'static str, Vec<u8>, Option<Vec<u8>>);

/// A changelog of `n` records over a few hundred keys per column family:
/// most keys are written many times, about one write in five is a delete
/// (some of keys never written, some of keys written again after).
fn changelog(n: usize) -> Vec<Record> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            let r = next();
            let cf = CFS[(r % 3) as usize];
            let key = format!("key-{:05}", (r >> 8) % 700).into_bytes();
            let value = !(r >> 40).is_multiple_of(5);
            (cf, key, value.then(|| format!("v{i}").into_bytes()))
        })
        .collect()
}

fn batches(records: &[Record], from: usize, size: usize) -> Vec<WriteBatch> {
    records[from..]
        .chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let mut b = WriteBatch::new();
            for (cf, key, value) in chunk {
                b.push(cf, key, value.as_deref());
            }
            b.set_changelog_offset((from + (i + 1) * size).min(records.len()) as u64 - 1);
            b
        })
        .collect()
}

fn open(dir: &std::path::Path) -> RocksDbPartition {
    RocksDbPartition::open(dir, &RocksDbOptions::default()).expect("open")
}

/// The reference: every batch through the memtable.
fn written(records: &[Record], size: usize) -> BTreeMap<String, Vec<KeyValue>> {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    for b in batches(records, 0, size) {
        p.write_bulk(&b).unwrap();
    }
    p.persist().unwrap();
    assert_eq!(p.changelog_offset().unwrap(), Some(records.len() as u64 - 1));
    data(&p)
}

#[test]
fn a_sorted_load_leaves_what_bulk_writes_leave() {
    let records = changelog(20_000);
    let expected = written(&records, 3_000);
    assert!(
        expected.values().map(Vec::len).sum::<usize>() > 1_000,
        "the changelog leaves keys in every column family"
    );

    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    for b in batches(&records, 0, 3_000) {
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
    assert_eq!(p.changelog_offset().unwrap(), Some(records.len() as u64 - 1));
    assert_eq!(data(&p), expected);
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
fn small_batches_and_memtable_writes_mix_with_sorted_loads_in_order() {
    // Batches below the sorted-load size go through the memtable; a
    // sorted load after them must still win over them, and a memtable
    // write after a load over it.
    let records = changelog(12_000);
    let expected = written(&records, 500);
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    // Below the sorted-load size: these go through the memtable.
    for b in batches(&records, 0, 500) {
        p.load_bulk(&b).unwrap();
    }
    let mut merged = WriteBatch::new();
    for (cf, key, value) in &records {
        merged.push(cf, key, value.as_deref());
    }
    // The whole changelog again as one sorted load: nothing changes.
    p.load_bulk(&merged).unwrap();
    p.persist().unwrap();
    assert_eq!(data(&p), expected);

    let dir2 = tempfile::tempdir().unwrap();
    let q = open(dir2.path());
    for (i, b) in batches(&records, 0, 2_000).into_iter().enumerate() {
        if i % 2 == 0 {
            q.load_bulk(&b).unwrap();
        } else {
            q.write_bulk(&b).unwrap();
        }
    }
    q.persist().unwrap();
    assert_eq!(data(&q), expected);
}

#[test]
fn an_interrupted_load_replayed_from_its_stored_offset_converges() {
    let records = changelog(20_000);
    let expected = written(&records, 2_500);
    for replay_with_loads in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path());
        // Five of eight batches went in; the offset that reached disk is
        // the second's (a crash lost the stored offsets after it, not the
        // ingested files).
        for b in batches(&records, 0, 2_500).into_iter().take(5) {
            p.load_bulk(&b).unwrap();
        }
        p.write_changelog_offset(4_999).unwrap();
        p.persist().unwrap();
        drop(p);

        let p = open(dir.path());
        let resume = p.changelog_offset().unwrap().unwrap() as usize + 1;
        assert_eq!(resume, 5_000);
        for b in batches(&records, resume, 2_500) {
            if replay_with_loads {
                p.load_bulk(&b).unwrap();
            } else {
                p.write_bulk(&b).unwrap();
            }
        }
        p.persist().unwrap();
        assert_eq!(data(&p), expected, "replayed with loads: {replay_with_loads}");
        assert_eq!(p.changelog_offset().unwrap(), Some(records.len() as u64 - 1));
    }
}

#[test]
fn a_load_of_only_deletes_hides_older_values() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    let mut puts = WriteBatch::new();
    let mut deletes = WriteBatch::new();
    for i in 0..3_000u32 {
        puts.put("default", &i.to_be_bytes(), b"v");
        if i % 2 == 0 {
            deletes.delete("default", &i.to_be_bytes());
        }
    }
    p.load_bulk(&puts).unwrap();
    p.load_bulk(&deletes).unwrap();
    p.persist().unwrap();
    let left: Vec<_> = p
        .iter_range("default", b"", None, Direction::Forward)
        .unwrap()
        .map(|kv| kv.unwrap().0)
        .collect();
    assert_eq!(left.len(), 1_500);
    assert!(left
        .iter()
        .all(|k| u32::from_be_bytes(k[..4].try_into().unwrap()) % 2 == 1));
}
