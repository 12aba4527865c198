//! The write-behind cache's cases: coalescing, elision, loading, merged
//! ranges, the bounds, failures and the backend; and the crash model.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use state_core::testkit::{FailingWrites, TestPartition};
use state_core::{
    cf, keys, Backend, Direction, Error, KeyValue, MemoryPartition, Result, StoreLocation, StorePartition, WriteBatch,
};

use super::{WriteBehindBackend, WriteBehindConfig, WriteBehindPartition, ENTRY_OVERHEAD};

mod budget;
mod crash_model;

/// A memory partition counting reads and keeping the batches it writes.
type Below = TestPartition<MemoryPartition>;

fn recording() -> Arc<Below> {
    Arc::new(TestPartition::watching(MemoryPartition::new()))
}

/// The batches written below: size and changelog offset.
fn batches(below: &Below) -> Vec<(usize, Option<u64>)> {
    below
        .written()
        .iter()
        .map(|b| (b.ops.len(), b.changelog_offset))
        .collect()
}

/// True if any batch written below touched `key`.
fn touched(below: &Below, key: &[u8]) -> bool {
    below.written().iter().flat_map(|b| &b.ops).any(|op| op.key == key)
}

pub(super) fn config(max_bytes: usize) -> WriteBehindConfig {
    WriteBehindConfig {
        max_bytes,
        max_dirty_bytes: max_bytes,
        max_dirty_age: Duration::from_secs(3600),
        ..WriteBehindConfig::default()
    }
}

pub(super) fn batch(ops: &[(&[u8], Option<&[u8]>)], offset: Option<u64>) -> WriteBatch {
    let mut b = WriteBatch::new();
    for (k, v) in ops {
        b.push(cf::DEFAULT, k, *v);
    }
    if let Some(o) = offset {
        b.set_changelog_offset(o);
    }
    b
}

pub(super) fn all(p: &dyn StorePartition, cf_name: &str, d: Direction) -> Vec<KeyValue> {
    p.iter_range(cf_name, b"", None, d)
        .unwrap()
        .collect::<Result<Vec<_>>>()
        .unwrap()
}

#[test]
fn checkpoints_coalesce_into_one_flush_with_the_newest_offset() {
    let below = recording();
    let wb = WriteBehindPartition::new(below.clone(), config(1 << 20)).unwrap();
    wb.write(&batch(&[(b"a", Some(b"1")), (b"b", Some(b"1"))], Some(10)))
        .unwrap();
    wb.write(&batch(&[(b"a", Some(b"2")), (b"c", Some(b"1"))], Some(11)))
        .unwrap();
    wb.write(&batch(&[(b"b", None)], Some(12))).unwrap();
    assert!(batches(&below).is_empty(), "nothing reaches the partition below");
    assert_eq!(
        wb.get(cf::DEFAULT, b"a").unwrap(),
        Some(b"2".to_vec()),
        "reads see the cache"
    );
    assert_eq!(wb.get(cf::DEFAULT, b"b").unwrap(), None);
    assert_eq!(wb.changelog_offset().unwrap(), Some(12));
    assert_eq!(below.changelog_offset().unwrap(), None);
    assert!(wb.is_dirty());
    wb.flush().unwrap();
    // b's put and delete coalesce into its delete (without a read or a
    // hint the cache cannot know that nothing is below).
    assert_eq!(batches(&below), vec![(3, Some(12))], "one batch, the newest offset");
    assert_eq!(below.get(cf::DEFAULT, b"a").unwrap(), Some(b"2".to_vec()));
    assert_eq!(below.changelog_offset().unwrap(), Some(12));
    wb.flush().unwrap();
    assert_eq!(batches(&below).len(), 1, "a clean cache writes nothing");
    assert!(!wb.is_dirty());
    let s = wb.cache_stats();
    assert_eq!((s.flushes, s.dirty_bytes, s.flushed_offset), (1, 0, Some(12)));
}

#[test]
fn a_key_created_and_deleted_between_flushes_never_reaches_the_partition_below() {
    let below = recording();
    below.inner().put(cf::DEFAULT, b"old", b"x").unwrap();
    let wb = WriteBehindPartition::new(below.clone(), config(1 << 20)).unwrap();
    // The hint: the writer knows the key is new.
    let mut b = WriteBatch::new();
    b.put_new(cf::DEFAULT, b"w1", b"1");
    wb.write(&b).unwrap();
    wb.write(&batch(&[(b"w1", Some(b"2"))], None)).unwrap();
    wb.write(&batch(&[(b"w1", None)], Some(1))).unwrap();
    // Read as absent, then created and deleted: the cache knows.
    assert_eq!(wb.get(cf::DEFAULT, b"w2").unwrap(), None);
    wb.write(&batch(&[(b"w2", Some(b"1"))], None)).unwrap();
    wb.write(&batch(&[(b"w2", None)], None)).unwrap();
    // A hint on a key that is below is not trusted: the cache has it.
    assert_eq!(wb.get(cf::DEFAULT, b"old").unwrap(), Some(b"x".to_vec()));
    let mut b = WriteBatch::new();
    b.put_new(cf::DEFAULT, b"old", b"y");
    wb.write(&b).unwrap();
    wb.write(&batch(&[(b"old", None)], None)).unwrap();
    // A key flushed first is deleted below.
    wb.write(&batch(&[(b"kept", Some(b"1"))], None)).unwrap();
    wb.flush().unwrap();
    wb.write(&batch(&[(b"kept", None)], Some(2))).unwrap();
    wb.flush().unwrap();
    assert!(!touched(&below, b"w1") && !touched(&below, b"w2"));
    assert_eq!(
        below.get(cf::DEFAULT, b"old").unwrap(),
        None,
        "the delete reached below"
    );
    assert_eq!(below.get(cf::DEFAULT, b"kept").unwrap(), None);
    assert_eq!(wb.cache_stats().elided, 2);
    assert_eq!(below.changelog_offset().unwrap(), Some(2));
}

#[test]
fn a_column_family_that_fits_is_loaded_once_and_misses_read_nothing() {
    let below = recording();
    below.inner().put(cf::DEFAULT, b"a", b"1").unwrap();
    let gets = || below.gets();
    let wb = WriteBehindPartition::new(below.clone(), config(1 << 20)).unwrap();
    let opened = gets(); // the stored offset
    assert_eq!(wb.get(cf::DEFAULT, b"a").unwrap(), Some(b"1".to_vec()));
    for k in 0u32..100 {
        assert_eq!(wb.get(cf::DEFAULT, &k.to_be_bytes()).unwrap(), None);
    }
    assert_eq!(gets(), opened, "the column family was loaded by one scan");
    // A key created in a complete column family is new: deleting it
    // before a flush leaves nothing below.
    wb.write(&batch(&[(b"n", Some(b"1"))], None)).unwrap();
    wb.write(&batch(&[(b"n", None), (b"never", None)], Some(1))).unwrap();
    assert_eq!(wb.cache_stats().elided, 1);
    // Bulk writes below make it incomplete until loaded again.
    wb.write_bulk(&batch(&[(b"b", Some(b"2"))], Some(2))).unwrap();
    assert_eq!(wb.get(cf::DEFAULT, b"b").unwrap(), Some(b"2".to_vec()));
    assert_eq!(gets(), opened, "loaded again after the bulk write");
    // An eviction makes it incomplete for good: misses read below.
    let tiny = WriteBehindPartition::new(below.clone(), config(3 * (ENTRY_OVERHEAD + 8))).unwrap();
    assert_eq!(tiny.get(cf::DEFAULT, b"a").unwrap(), Some(b"1".to_vec()));
    for k in 0u8..6 {
        tiny.write(&batch(&[(&[b'x', k], Some(b"v"))], None)).unwrap();
    }
    let before = gets();
    assert_eq!(tiny.get(cf::DEFAULT, b"zz").unwrap(), None);
    assert_eq!(gets(), before + 1, "incomplete after evictions: misses read below");
}

#[test]
fn ranges_merge_the_cache_with_the_partition_below_in_both_directions() {
    let below = recording();
    for k in [b"a", b"c", b"e", b"g"] {
        below.inner().put(cf::DEFAULT, k, b"below").unwrap();
    }
    below.inner().put(cf::METADATA, b"zzz", b"m").unwrap();
    let wb = WriteBehindPartition::new(below.clone(), config(1 << 20)).unwrap();
    wb.write(&batch(
        &[
            (b"b", Some(b"new")),
            (b"c", None),
            (b"e", Some(b"upd")),
            (b"h", Some(b"new")),
        ],
        Some(5),
    ))
    .unwrap();
    let fwd = all(&wb, cf::DEFAULT, Direction::Forward);
    let want: Vec<KeyValue> = [("a", "below"), ("b", "new"), ("e", "upd"), ("g", "below"), ("h", "new")]
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    assert_eq!(fwd, want);
    let mut back = all(&wb, cf::DEFAULT, Direction::Backward);
    back.reverse();
    assert_eq!(back, want);
    let bounded: Vec<Vec<u8>> = wb
        .iter_range(cf::DEFAULT, b"b", Some(b"g"), Direction::Forward)
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(bounded, vec![b"b".to_vec(), b"e".to_vec()]);
    // The pending offset reads as its metadata key, in order.
    let meta = all(&wb, cf::METADATA, Direction::Forward);
    assert_eq!(
        meta,
        vec![
            (cf::CHANGELOG_OFFSET_KEY.to_vec(), keys::encode_u64(5).to_vec()),
            (b"zzz".to_vec(), b"m".to_vec())
        ]
    );
    assert_eq!(
        wb.get(cf::METADATA, cf::CHANGELOG_OFFSET_KEY).unwrap(),
        Some(keys::encode_u64(5).to_vec())
    );
    // Writes after the ordered view was built reach it.
    wb.write(&batch(&[(b"d", Some(b"later")), (b"h", None)], None)).unwrap();
    let keys: Vec<Vec<u8>> = all(&wb, cf::DEFAULT, Direction::Forward)
        .into_iter()
        .map(|kv| kv.0)
        .collect();
    assert_eq!(keys, [&b"a"[..], b"b", b"d", b"e", b"g"].map(<[u8]>::to_vec));
    assert!(wb.column_families().unwrap().contains(&cf::DEFAULT.to_owned()));
}

#[test]
fn bounds_flush_and_evict_and_a_huge_batch_is_written_through() {
    let below = recording();
    let max = 10 * (ENTRY_OVERHEAD + 8);
    let wb = WriteBehindPartition::new(
        below.clone(),
        WriteBehindConfig {
            max_bytes: max,
            max_dirty_bytes: 4 * (ENTRY_OVERHEAD + 8),
            max_dirty_age: Duration::from_secs(3600),
            ..WriteBehindConfig::default()
        },
    )
    .unwrap();
    for i in 0u32..40 {
        wb.write(&batch(&[(&i.to_be_bytes(), Some(b"vvvv"))], Some(u64::from(i))))
            .unwrap();
        let s = wb.cache_stats();
        assert!(s.resident_bytes <= max, "{s:?}");
        assert!(s.dirty_bytes <= 4 * (ENTRY_OVERHEAD + 8), "{s:?}");
    }
    assert!(
        batches(&below).len() >= 9,
        "the dirty bound flushed: {:?}",
        batches(&below)
    );
    for i in 0u32..40 {
        assert_eq!(wb.get(cf::DEFAULT, &i.to_be_bytes()).unwrap(), Some(b"vvvv".to_vec()));
        assert!(wb.cache_stats().resident_bytes <= max);
    }
    let big: Vec<(Vec<u8>, Vec<u8>)> = (0u32..50).map(|i| (i.to_le_bytes().to_vec(), vec![7; 20])).collect();
    let mut b = WriteBatch::new();
    for (k, v) in &big {
        b.put(cf::DEFAULT, k, v);
    }
    b.set_changelog_offset(100);
    wb.write(&b).unwrap();
    assert_eq!(below.changelog_offset().unwrap(), Some(100), "written through");
    assert_eq!(wb.get(cf::DEFAULT, &big[3].0).unwrap(), Some(big[3].1.clone()));
    assert!(wb.cache_stats().resident_bytes <= max);
}

#[test]
fn the_time_bound_flushes_on_the_next_write_and_on_flush_if_due() {
    let below = recording();
    let wb = WriteBehindPartition::new(
        below.clone(),
        WriteBehindConfig {
            max_dirty_age: Duration::ZERO,
            ..config(1 << 20)
        },
    )
    .unwrap();
    assert!(!wb.flush_if_due().unwrap(), "nothing dirty, nothing due");
    wb.write(&batch(&[(b"a", Some(b"1"))], Some(1))).unwrap();
    assert!(batches(&below).is_empty());
    wb.write(&batch(&[(b"b", Some(b"1"))], Some(2))).unwrap();
    assert_eq!(batches(&below), vec![(1, Some(1))], "the older write was due");
    assert!(wb.flush_if_due().unwrap());
    assert_eq!(below.changelog_offset().unwrap(), Some(2));

    let lazy = WriteBehindPartition::new(below.clone(), config(1 << 20)).unwrap();
    lazy.write(&batch(&[(b"c", Some(b"1"))], Some(3))).unwrap();
    assert!(!lazy.flush_if_due().unwrap(), "an hour has not passed");
    lazy.persist().unwrap();
    assert_eq!(below.changelog_offset().unwrap(), Some(3), "persist flushes");
}

#[test]
fn bulk_writes_go_below_and_replace_cached_keys() {
    let below = recording();
    let wb = WriteBehindPartition::new(below.clone(), config(1 << 20)).unwrap();
    wb.write(&batch(&[(b"a", Some(b"cached")), (b"b", Some(b"cached"))], Some(1)))
        .unwrap();
    assert_eq!(wb.get(cf::DEFAULT, b"z").unwrap(), None);
    wb.write_bulk(&batch(&[(b"a", Some(b"bulk")), (b"z", Some(b"bulk"))], Some(2)))
        .unwrap();
    assert_eq!(
        below.get(cf::DEFAULT, b"b").unwrap(),
        Some(b"cached".to_vec()),
        "older data first"
    );
    assert_eq!(wb.get(cf::DEFAULT, b"a").unwrap(), Some(b"bulk".to_vec()));
    assert_eq!(
        wb.get(cf::DEFAULT, b"z").unwrap(),
        Some(b"bulk".to_vec()),
        "no stale absent entry"
    );
    assert_eq!(wb.changelog_offset().unwrap(), Some(2));
    assert_eq!(below.changelog_offset().unwrap(), Some(2));
}

/// A memory partition whose writes fail ("disk full") while the flag is set.
fn failing_below() -> (Arc<AtomicBool>, Arc<FailingWrites<MemoryPartition>>) {
    let fail = Arc::new(AtomicBool::new(false));
    let f = fail.clone();
    let below = Arc::new(FailingWrites::new(MemoryPartition::new(), move |_| {
        f.load(Ordering::SeqCst)
            .then(|| Error::backend("test", "writing", "disk full"))
    }));
    (fail, below)
}

#[test]
fn a_failed_flush_keeps_the_changes_and_the_next_flush_writes_them() {
    let (fail, below) = failing_below();
    let wb = WriteBehindPartition::new(below.clone(), config(1 << 20)).unwrap();
    wb.write(&batch(&[(b"a", Some(b"1"))], Some(1))).unwrap();
    fail.store(true, Ordering::SeqCst);
    assert!(wb.flush().is_err());
    assert!(wb.persist().is_err());
    assert_eq!(wb.get(cf::DEFAULT, b"a").unwrap(), Some(b"1".to_vec()));
    assert!(wb.is_dirty());
    fail.store(false, Ordering::SeqCst);
    wb.flush().unwrap();
    assert_eq!(below.get(cf::DEFAULT, b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(below.changelog_offset().unwrap(), Some(1));
}

#[test]
fn a_write_that_needs_a_failing_flush_fails_whole() {
    let (fail, below) = failing_below();
    let max = 3 * (ENTRY_OVERHEAD + 2);
    let wb = WriteBehindPartition::new(below, config(max)).unwrap();
    wb.write(&batch(&[(b"a", Some(b"1")), (b"b", Some(b"1"))], Some(1)))
        .unwrap();
    fail.store(true, Ordering::SeqCst);
    let err = wb.write(&batch(&[(b"c", Some(b"1")), (b"d", Some(b"1"))], Some(2)));
    assert!(err.is_err(), "no room without a flush, and the flush failed");
    assert_eq!(wb.get(cf::DEFAULT, b"c").unwrap(), None, "nothing of the failed batch");
    assert_eq!(wb.changelog_offset().unwrap(), Some(1));
    assert!(wb.cache_stats().resident_bytes <= max);
}

#[test]
fn the_backend_wraps_every_partition_and_flushes_them_on_demand() {
    let backend = WriteBehindBackend::new(state_core::MemoryBackend::shared(), config(1 << 20));
    let store = StoreLocation::new("s", "/nowhere");
    let p0 = backend.open_partition(&store, 0).unwrap();
    let p1 = backend.open_partition(&store, 1).unwrap();
    assert_eq!(backend.lagging_partitions(), 0);
    p0.write(&batch(&[(b"a", Some(b"1"))], Some(3))).unwrap();
    p1.write(&batch(&[(b"b", Some(b"1"))], Some(4))).unwrap();
    assert_eq!(backend.lagging_partitions(), 2);
    assert_eq!(backend.flush_due().unwrap(), 0, "nothing is an hour old");
    backend.flush_partition(&store, 1).unwrap();
    assert_eq!(backend.lagging_partitions(), 1, "only partition 1 was flushed");
    assert_eq!(
        backend.partition(&store, 1).unwrap().cache_stats().flushed_offset,
        Some(4)
    );
    assert!(backend.partition(&store, 2).is_none());
    backend.flush_all().unwrap();
    assert_eq!(backend.lagging_partitions(), 0);
    assert_eq!(backend.stats().flushes, 2);
    drop(p1);
    assert_eq!(backend.partitions().len(), 1, "dropped partitions are forgotten");
    assert_eq!(backend.info().name, "memory");
}

/// A batch of `n` puts `k{i:06}` = `{tag}{i}`, with `offset`.
fn numbered(n: u32, tag: &str, offset: u64) -> WriteBatch {
    let mut b = WriteBatch::new();
    for i in 0..n {
        b.put(
            cf::DEFAULT,
            format!("k{i:06}").as_bytes(),
            format!("{tag}{i}").as_bytes(),
        );
    }
    b.set_changelog_offset(offset);
    b
}

/// Waits until the helper thread has applied `wb`'s pending batch. Not a
/// timing assertion: the helper has all the time it needs, and a helper
/// that never applies fails here.
fn wait_for_helper(wb: &WriteBehindPartition) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while wb.has_pending() {
        assert!(
            std::time::Instant::now() < deadline,
            "the helper never applied the batch"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn behind(max_bytes: usize) -> WriteBehindConfig {
    WriteBehindConfig {
        apply_behind_ops: 1,
        ..config(max_bytes)
    }
}

#[test]
fn a_batch_applied_behind_its_write_is_seen_by_the_very_next_call() {
    let below = recording();
    let wb = WriteBehindPartition::new(below.clone(), behind(64 << 20)).unwrap();
    wb.write(&numbered(20_000, "a", 1)).unwrap();
    // No waiting: each call finishes what the helper has not done.
    assert_eq!(wb.get(cf::DEFAULT, b"k019999").unwrap(), Some(b"a19999".to_vec()));
    assert_eq!(wb.changelog_offset().unwrap(), Some(1));
    wb.write(&numbered(20_000, "b", 2)).unwrap();
    let rows = all(&wb, cf::DEFAULT, Direction::Forward);
    assert_eq!(rows.len(), 20_000);
    assert!(rows.iter().all(|(_, v)| v.starts_with(b"b")), "the later batch wins");
    // A small batch applied inside its write still lands after the big one.
    wb.write(&batch(&[(b"k000007", None)], Some(3))).unwrap();
    wb.flush().unwrap();
    assert_eq!(batches(&below), vec![(20_000, Some(3))], "one flush of the net result");
    assert_eq!(below.get(cf::DEFAULT, b"k000007").unwrap(), None);
    assert_eq!(below.get(cf::DEFAULT, b"k000008").unwrap(), Some(b"b8".to_vec()));
    let stats = wb.cache_stats();
    // How many went behind depends on whether the helper or the get
    // came first (see `behind`'s tests); the results above do not.
    assert!(stats.applied_behind >= 1);
    assert_eq!(stats.changelog_offset, Some(3));
}

#[test]
fn the_helper_thread_applies_a_batch_nobody_waits_for() {
    let wb = WriteBehindPartition::new(recording(), behind(64 << 20)).unwrap();
    wb.write(&numbered(50_000, "a", 1)).unwrap();
    wait_for_helper(&wb);
    let stats = wb.cache_stats();
    assert_eq!((stats.applied_behind, stats.finished_by_caller), (1, 0));
    assert_eq!(stats.dirty_entries, 50_000);
    assert_eq!(wb.get(cf::DEFAULT, b"k049999").unwrap(), Some(b"a49999".to_vec()));
}

#[test]
fn batches_below_the_threshold_are_applied_inside_write() {
    let wb = WriteBehindPartition::new(recording(), config(64 << 20)).unwrap();
    let small = WriteBehindConfig::default().apply_behind_ops - 1;
    wb.write(&numbered(small as u32, "a", 1)).unwrap();
    assert!(!wb.has_pending());
    wb.write(&numbered(small as u32 + 1, "b", 2)).unwrap();
    assert_eq!(wb.get(cf::DEFAULT, b"k000000").unwrap(), Some(b"b0".to_vec()));
    assert_eq!(wb.cache_stats().applied_behind, 1);
}

#[test]
fn dropping_a_cache_with_a_batch_still_pending_is_safe() {
    let below = recording();
    for _ in 0..20 {
        let wb = WriteBehindPartition::new(below.clone(), behind(64 << 20)).unwrap();
        wb.write(&numbered(10_000, "a", 1)).unwrap();
    }
    // The helper skips caches that are gone and serves the next one.
    let wb = WriteBehindPartition::new(below.clone(), behind(64 << 20)).unwrap();
    wb.write(&numbered(10, "z", 2)).unwrap();
    wb.flush().unwrap();
    assert_eq!(below.get(cf::DEFAULT, b"k000009").unwrap(), Some(b"z9".to_vec()));
    assert_eq!(below.changelog_offset().unwrap(), Some(2));
}

#[test]
fn flush_if_due_leaves_a_pending_batch_to_the_helper_unless_a_flush_is_due() {
    let below = recording();
    let wb = WriteBehindPartition::new(below.clone(), behind(64 << 20)).unwrap();
    wb.write(&numbered(20_000, "a", 1)).unwrap();
    assert!(!wb.flush_if_due().unwrap(), "an hour's age bound is not due");
    wait_for_helper(&wb);
    assert_eq!(wb.cache_stats().finished_by_caller, 0, "nobody caught up");
    assert!(batches(&below).is_empty());
    // Due at once: the pending batch is finished and flushed with the rest.
    let wb = WriteBehindPartition::new(
        below.clone(),
        WriteBehindConfig {
            max_dirty_age: Duration::ZERO,
            ..behind(64 << 20)
        },
    )
    .unwrap();
    wb.write(&numbered(20_000, "b", 2)).unwrap();
    assert!(wb.flush_if_due().unwrap());
    assert_eq!(batches(&below), vec![(20_000, Some(2))]);
    assert!(!wb.flush_if_due().unwrap(), "nothing left to flush");
}
