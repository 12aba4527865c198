//! The bulk-load cases of the conformance kit: [`StorePartition::load_bulk`]
//! (which a backend may turn into sorted table files) must leave what
//! [`StorePartition::write_bulk`] leaves for the same changelog, with
//! overwrites, deletes and several column families, mixed with bulk
//! writes, and after an interrupted load replayed from its stored offset.

use std::collections::BTreeMap;

use super::{contents, partition, Harness};
use crate::batch::WriteBatch;
use crate::cf;
use crate::partition::{Direction, KeyValue, StorePartition};

/// The column families the changelog writes to.
pub const LOAD_CFS: [&str; 3] = [cf::DEFAULT, "counts", "windows"];

/// One changelog record: column family, key, value (`None`: a delete).
pub type LoadRecord = (&'static str, Vec<u8>, Option<Vec<u8>>);

/// A changelog of `n` records over 700 keys per column family: most keys
/// are written many times, about one write in five is a delete (some of
/// keys never written, some of keys written again after). Deterministic.
pub fn load_changelog(n: usize) -> Vec<LoadRecord> {
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
            let cf = LOAD_CFS[(r % 3) as usize];
            let key = format!("key-{:05}", (r >> 8) % 700).into_bytes();
            let value = !(r >> 40).is_multiple_of(5);
            (cf, key, value.then(|| format!("v{i}").into_bytes()))
        })
        .collect()
}

/// `records[from..]` in batches of `size`, each carrying the changelog
/// offset (the record's index) of its last record.
pub fn load_batches(records: &[LoadRecord], from: usize, size: usize) -> Vec<WriteBatch> {
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

/// Replays `records[from..]` into `p` in batches of `size`, by loads if
/// `with_loads`, else by bulk writes (what a restore resumed at `from`
/// does).
pub fn replay_from(p: &dyn StorePartition, records: &[LoadRecord], from: usize, size: usize, with_loads: bool) {
    for b in load_batches(records, from, size) {
        if with_loads {
            p.load_bulk(&b).unwrap();
        } else {
            p.write_bulk(&b).unwrap();
        }
    }
}

/// What the changelog leaves when every batch of `size` goes through
/// `write_bulk`, in partition `n` of a fresh store.
fn written<H: Harness>(h: &mut H, n: u32, records: &[LoadRecord], size: usize) -> BTreeMap<String, Vec<KeyValue>> {
    let mut store = h.open();
    let p = partition(&mut store, n);
    replay_from(&*p, records, 0, size, false);
    p.persist().unwrap();
    assert_eq!(p.changelog_offset().unwrap(), Some(records.len() as u64 - 1));
    contents(&*p)
}

/// Loaded batches leave what bulk-written ones leave, offset included,
/// also after the partition is revoked and assigned again (durable
/// backends).
pub fn bulk_loads_leave_what_bulk_writes_leave<H: Harness>(h: &mut H) {
    let records = load_changelog(20_000);
    let expected = written(h, 0, &records, 3_000);
    assert!(
        expected.len() == LOAD_CFS.len() && expected.values().map(Vec::len).sum::<usize>() > 1_000,
        "the changelog leaves keys in every column family"
    );
    let mut store = h.open();
    let p = partition(&mut store, 1);
    for b in load_batches(&records, 0, 3_000) {
        p.load_bulk(&b).unwrap();
    }
    p.persist().unwrap();
    assert_eq!(contents(&*p), expected, "a load leaves what a bulk write leaves");
    assert_eq!(p.changelog_offset().unwrap(), Some(records.len() as u64 - 1));
    if h.durable() {
        drop(p);
        store.revoke_partition(1).unwrap();
        let p = partition(&mut store, 1);
        assert_eq!(contents(&*p), expected, "loaded data survives revoke + assign");
        assert_eq!(p.changelog_offset().unwrap(), Some(records.len() as u64 - 1));
    }
}

/// Loads below and above a backend's table-file size and bulk writes mix
/// in order: a later load wins over earlier writes, a later write over an
/// earlier load.
pub fn loads_and_bulk_writes_mix_in_order<H: Harness>(h: &mut H) {
    let records = load_changelog(12_000);
    let expected = written(h, 0, &records, 500);
    let mut store = h.open();
    let p = partition(&mut store, 1);
    for b in load_batches(&records, 0, 500) {
        p.load_bulk(&b).unwrap();
    }
    // The whole changelog again as one load: nothing changes.
    let mut whole = WriteBatch::new();
    for (cf, key, value) in &records {
        whole.push(cf, key, value.as_deref());
    }
    p.load_bulk(&whole).unwrap();
    p.persist().unwrap();
    assert_eq!(contents(&*p), expected, "small loads, then one large");

    let q = partition(&mut store, 2);
    for (i, b) in load_batches(&records, 0, 2_000).into_iter().enumerate() {
        if i % 2 == 0 {
            q.load_bulk(&b).unwrap();
        } else {
            q.write_bulk(&b).unwrap();
        }
    }
    q.persist().unwrap();
    assert_eq!(contents(&*q), expected, "loads and bulk writes alternating");
}

/// A load interrupted with data past its stored offset (what a crash may
/// leave, see `load_bulk`) converges when replayed from that offset, by
/// loads or by bulk writes.
pub fn an_interrupted_load_replayed_from_its_stored_offset_converges<H: Harness>(h: &mut H) {
    let records = load_changelog(20_000);
    let expected = written(h, 0, &records, 2_500);
    for (n, replay_with_loads) in [(1, true), (2, false)] {
        let mut store = h.open();
        let p = partition(&mut store, n);
        // Five of eight batches went in, but the stored offset is the
        // second's.
        for b in load_batches(&records, 0, 2_500).into_iter().take(5) {
            p.load_bulk(&b).unwrap();
        }
        p.write_changelog_offset(4_999).unwrap();
        p.persist().unwrap();
        let resume = p.changelog_offset().unwrap().map_or(0, |o| o as usize + 1);
        assert_eq!(resume, 5_000);
        replay_from(&*p, &records, resume, 2_500, replay_with_loads);
        p.persist().unwrap();
        assert_eq!(contents(&*p), expected, "replayed with loads: {replay_with_loads}");
        assert_eq!(p.changelog_offset().unwrap(), Some(records.len() as u64 - 1));
    }
}

/// A load of nothing but deletes hides the values an earlier load wrote.
pub fn a_load_of_only_deletes_hides_older_values<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = partition(&mut store, 0);
    let mut puts = WriteBatch::new();
    let mut deletes = WriteBatch::new();
    for i in 0..3_000u32 {
        puts.put(cf::DEFAULT, &i.to_be_bytes(), b"v");
        if i % 2 == 0 {
            deletes.delete(cf::DEFAULT, &i.to_be_bytes());
        }
    }
    p.load_bulk(&puts).unwrap();
    p.load_bulk(&deletes).unwrap();
    p.persist().unwrap();
    let left: Vec<Vec<u8>> = p
        .iter_range(cf::DEFAULT, b"", None, Direction::Forward)
        .unwrap()
        .map(|kv| kv.unwrap().0)
        .collect();
    assert_eq!(left.len(), 1_500, "every other key deleted");
    assert!(
        left.iter().all(|k| k.get(..4).is_some_and(|b| b[3] % 2 == 1)),
        "only the odd keys are left"
    );
}
