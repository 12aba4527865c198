//! The backend conformance kit: the contract of [`StorePartition`] and
//! [`Store`] as executable checks. Every backend runs all of it:
//!
//! ```text
//! struct MyHarness { /* e.g. a temp dir */ }
//! impl state_core::testkit::Harness for MyHarness {
//!     fn backend(&self) -> Arc<dyn Backend> { /* your engine */ }
//!     fn location(&self) -> StoreLocation { /* a store under the temp dir */ }
//! }
//! state_core::conformance_tests!(MyHarness::new());
//! ```
//!
//! Each case panics with a message naming the broken rule.

use std::sync::Arc;

mod bulk_load;
mod contents;
mod test_partition;
pub use bulk_load::{
    a_load_of_only_deletes_hides_older_values, an_interrupted_load_replayed_from_its_stored_offset_converges,
    bulk_loads_leave_what_bulk_writes_leave, load_batches, load_changelog, loads_and_bulk_writes_mix_in_order,
    replay_from, LoadRecord, LOAD_CFS,
};
pub use contents::{all_contents, contents, replicated_contents};
pub use test_partition::{FailingWrites, TestPartition, WriteKind, WrittenBatch, WrittenOp};

use crate::backend::{Backend, StoreLocation};
use crate::batch::WriteBatch;
use crate::cf;
use crate::memory::MemoryBackend;
use crate::partition::{Direction, KeyValue, StorePartition};
use crate::store::Store;

/// How the kit obtains the backend under test.
pub trait Harness {
    /// The backend under test. Called once per store the kit opens; may
    /// return the same backend each time.
    fn backend(&self) -> Arc<dyn Backend>;

    /// Where the store under test lives. Every call returns the same
    /// location, so a store opened again sees the same data (for durable
    /// backends).
    fn location(&self) -> StoreLocation;

    /// Opens the store under test.
    fn open(&mut self) -> Store {
        Store::new(self.backend(), self.location())
    }

    /// True if data written through one store survives dropping it and
    /// opening again (the backend's [`crate::BackendInfo::durable`]).
    fn durable(&self) -> bool {
        self.backend().info().durable
    }
}

/// The harness of the in-memory backend (`state-core`'s own run, and
/// layers above that want a quick backend in their tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryHarness;

impl Harness for MemoryHarness {
    fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(MemoryBackend)
    }

    fn location(&self) -> StoreLocation {
        StoreLocation::new("conformance", "memory")
    }
}

fn partition(store: &mut Store, n: u32) -> Arc<dyn StorePartition> {
    store
        .assign_partition(n)
        .expect("assign_partition must succeed on a fresh store")
}

fn collect(p: &dyn StorePartition, cf: &str, lower: &[u8], upper: Option<&[u8]>, d: Direction) -> Vec<KeyValue> {
    p.iter_range(cf, lower, upper, d)
        .expect("iter_range must succeed")
        .collect::<Result<Vec<_>, _>>()
        .expect("iteration items must be Ok")
}

fn keys(items: &[KeyValue]) -> Vec<&[u8]> {
    items.iter().map(|(k, _)| k.as_slice()).collect()
}

/// get / put / delete / exists on one key.
pub fn point_operations<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = partition(&mut store, 0);
    assert_eq!(p.get(cf::DEFAULT, b"k").unwrap(), None, "a missing key reads as None");
    assert!(!p.exists(cf::DEFAULT, b"k").unwrap(), "a missing key does not exist");
    p.put(cf::DEFAULT, b"k", b"v1").unwrap();
    assert_eq!(p.get(cf::DEFAULT, b"k").unwrap().as_deref(), Some(&b"v1"[..]));
    assert!(p.exists(cf::DEFAULT, b"k").unwrap());
    p.put(cf::DEFAULT, b"k", b"v2").unwrap();
    assert_eq!(
        p.get(cf::DEFAULT, b"k").unwrap().as_deref(),
        Some(&b"v2"[..]),
        "a put overwrites"
    );
    p.delete(cf::DEFAULT, b"k").unwrap();
    assert_eq!(p.get(cf::DEFAULT, b"k").unwrap(), None, "a delete removes");
    assert!(!p.exists(cf::DEFAULT, b"k").unwrap());
    p.delete(cf::DEFAULT, b"never-written").unwrap();
}

/// An empty value is a value, not a missing key.
pub fn empty_values_are_values<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = partition(&mut store, 0);
    p.put(cf::DEFAULT, b"empty", b"").unwrap();
    assert_eq!(p.get(cf::DEFAULT, b"empty").unwrap(), Some(Vec::new()));
    assert!(p.exists(cf::DEFAULT, b"empty").unwrap());
    p.put(cf::DEFAULT, b"", b"empty key").unwrap();
    assert_eq!(p.get(cf::DEFAULT, b"").unwrap().as_deref(), Some(&b"empty key"[..]));
}

/// The same key in two column families holds two values; column families
/// are created on first write; a never-written one reads as empty.
pub fn column_families_are_isolated<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = partition(&mut store, 0);
    assert_eq!(p.get("__never__", b"k").unwrap(), None);
    assert!(collect(&*p, "__never__", b"", None, Direction::Forward).is_empty());
    p.put(cf::DEFAULT, b"k", b"default").unwrap();
    p.put(cf::VALUES, b"k", b"values").unwrap();
    assert_eq!(p.get(cf::DEFAULT, b"k").unwrap().as_deref(), Some(&b"default"[..]));
    assert_eq!(p.get(cf::VALUES, b"k").unwrap().as_deref(), Some(&b"values"[..]));
    p.delete(cf::VALUES, b"k").unwrap();
    assert_eq!(p.get(cf::DEFAULT, b"k").unwrap().as_deref(), Some(&b"default"[..]));
    let names = p.column_families().unwrap();
    for expected in [cf::DEFAULT, cf::METADATA, cf::VALUES] {
        assert!(
            names.iter().any(|n| n == expected),
            "column_families() lists {expected}: {names:?}"
        );
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "column_families() is sorted");
}

/// A batch applies its operations in order; the last one on a key wins.
pub fn batches_apply_in_order<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = partition(&mut store, 0);
    p.put(cf::DEFAULT, b"old", b"x").unwrap();
    let mut b = WriteBatch::new();
    b.put(cf::DEFAULT, b"a", b"1");
    b.delete(cf::DEFAULT, b"a");
    b.put(cf::DEFAULT, b"b", b"1");
    b.put(cf::DEFAULT, b"b", b"2");
    b.delete(cf::DEFAULT, b"old");
    b.put(cf::LATEST_TIMESTAMPS, b"c", b"3");
    p.write(&b).unwrap();
    assert_eq!(
        p.get(cf::DEFAULT, b"a").unwrap(),
        None,
        "put then delete in one batch deletes"
    );
    assert_eq!(
        p.get(cf::DEFAULT, b"b").unwrap().as_deref(),
        Some(&b"2"[..]),
        "the later put wins"
    );
    assert_eq!(p.get(cf::DEFAULT, b"old").unwrap(), None);
    assert_eq!(p.get(cf::LATEST_TIMESTAMPS, b"c").unwrap().as_deref(), Some(&b"3"[..]));
    p.write(&WriteBatch::new()).unwrap();
    assert_eq!(p.changelog_offset().unwrap(), None, "an empty batch stores no offset");
}

/// The changelog offset is stored with the batch, as u64 BE in the
/// metadata column family, and read back.
pub fn changelog_offset_is_stored_with_the_batch<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = partition(&mut store, 0);
    assert_eq!(p.changelog_offset().unwrap(), None, "a new partition has no offset");
    let mut b = WriteBatch::new();
    b.put(cf::DEFAULT, b"k", b"v");
    b.set_changelog_offset(41);
    p.write(&b).unwrap();
    assert_eq!(p.changelog_offset().unwrap(), Some(41));
    assert_eq!(
        p.get(cf::METADATA, cf::CHANGELOG_OFFSET_KEY).unwrap(),
        Some(41u64.to_be_bytes().to_vec()),
        "the offset is u64 BE under __changelog_offset__ in __metadata__"
    );
    p.write_changelog_offset(42).unwrap();
    assert_eq!(p.changelog_offset().unwrap(), Some(42));
    assert_eq!(
        p.get(cf::DEFAULT, b"k").unwrap().as_deref(),
        Some(&b"v"[..]),
        "offset-only write keeps data"
    );
    p.write_bulk(&{
        let mut b = WriteBatch::new();
        b.put(cf::DEFAULT, b"bulk", b"1");
        b.set_changelog_offset(43);
        b
    })
    .unwrap();
    p.persist().unwrap();
    assert_eq!(p.changelog_offset().unwrap(), Some(43));
    assert_eq!(
        p.get(cf::DEFAULT, b"bulk").unwrap().as_deref(),
        Some(&b"1"[..]),
        "bulk writes are readable"
    );
}

/// Range iteration: bounds (lower inclusive, upper exclusive, open upper),
/// both directions, byte order including 0x00 and 0xFF.
pub fn range_iteration<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = partition(&mut store, 0);
    let all: [&[u8]; 7] = [b"", b"\x00", b"a", b"a\x00", b"a|\xff", b"b", b"\xff\xff"];
    let mut batch = WriteBatch::new();
    for (i, k) in all.iter().enumerate().rev() {
        batch.put(cf::DEFAULT, k, &[i as u8]);
    }
    batch.put(cf::VALUES, b"a", b"other cf");
    p.write(&batch).unwrap();

    let fwd = collect(&*p, cf::DEFAULT, b"", None, Direction::Forward);
    assert_eq!(keys(&fwd), all.to_vec(), "forward iteration is in byte order");
    for (i, (_, v)) in fwd.iter().enumerate() {
        assert_eq!(v, &vec![i as u8], "values travel with their keys");
    }
    let back = collect(&*p, cf::DEFAULT, b"", None, Direction::Backward);
    let mut rev = all.to_vec();
    rev.reverse();
    assert_eq!(keys(&back), rev, "backward iteration is in reverse byte order");

    let mid = collect(&*p, cf::DEFAULT, b"a", Some(b"b"), Direction::Forward);
    assert_eq!(
        keys(&mid),
        vec![&b"a"[..], b"a\x00", b"a|\xff"],
        "lower inclusive, upper exclusive"
    );
    let mid_back = collect(&*p, cf::DEFAULT, b"a", Some(b"b"), Direction::Backward);
    assert_eq!(
        keys(&mid_back),
        vec![&b"a|\xff"[..], b"a\x00", b"a"],
        "bounds hold backwards"
    );
    let from_b = collect(&*p, cf::DEFAULT, b"a\x01", None, Direction::Forward);
    assert_eq!(
        keys(&from_b),
        vec![&b"a|\xff"[..], b"b", b"\xff\xff"],
        "a lower bound between keys"
    );
    assert!(
        collect(&*p, cf::DEFAULT, b"b", Some(b"b"), Direction::Forward).is_empty(),
        "an empty range"
    );
    assert!(
        collect(&*p, cf::DEFAULT, b"c", Some(b"a"), Direction::Backward).is_empty(),
        "an inverted range"
    );
    assert_eq!(
        collect(&*p, cf::VALUES, b"", None, Direction::Forward).len(),
        1,
        "iteration stays in its cf"
    );
}

/// An iterator reflects the state when it was created, even if the
/// partition is written while it is consumed.
pub fn iteration_sees_a_consistent_view<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = partition(&mut store, 0);
    for k in [b"k1", b"k3", b"k5"] {
        p.put(cf::DEFAULT, k, b"v").unwrap();
    }
    let mut it = p.iter_range(cf::DEFAULT, b"k", None, Direction::Forward).unwrap();
    let first = it.next().unwrap().unwrap();
    assert_eq!(first.0, b"k1");
    p.put(cf::DEFAULT, b"k4", b"new").unwrap();
    p.delete(cf::DEFAULT, b"k5").unwrap();
    let rest: Vec<_> = it.map(|r| r.unwrap().0).collect();
    assert_eq!(rest, vec![b"k3".to_vec(), b"k5".to_vec()], "iterators see a snapshot");
}

/// Values of a megabyte and thousands of keys in one batch.
pub fn large_batches_and_values<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = partition(&mut store, 0);
    let big = vec![0xABu8; 1 << 20];
    let mut b = WriteBatch::new();
    b.put(cf::DEFAULT, b"big", &big);
    for i in 0..5000u32 {
        b.put(cf::DEFAULT, format!("key{i:05}").as_bytes(), &i.to_be_bytes());
    }
    b.set_changelog_offset(5000);
    p.write(&b).unwrap();
    assert_eq!(p.get(cf::DEFAULT, b"big").unwrap().map(|v| v.len()), Some(1 << 20));
    assert_eq!(
        p.get(cf::DEFAULT, b"key04999").unwrap(),
        Some(4999u32.to_be_bytes().to_vec())
    );
    assert_eq!(
        collect(&*p, cf::DEFAULT, b"key", Some(b"kez"), Direction::Forward).len(),
        5000
    );
}

/// Partitions are independent; assign is idempotent; revoke of an
/// unassigned partition is an error; destroy is refused while assigned.
pub fn store_lifecycle<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p0 = partition(&mut store, 0);
    let p1 = partition(&mut store, 1);
    p0.put(cf::DEFAULT, b"k", b"p0").unwrap();
    assert_eq!(p1.get(cf::DEFAULT, b"k").unwrap(), None, "partitions do not share data");
    let again = store.assign_partition(0).unwrap();
    assert_eq!(
        again.get(cf::DEFAULT, b"k").unwrap().as_deref(),
        Some(&b"p0"[..]),
        "re-assign returns the open partition"
    );
    assert_eq!(store.assigned_partitions(), vec![0, 1]);
    assert!(store.partition(1).is_some());
    assert!(store.partition(7).is_none());
    assert!(
        store.revoke_partition(7).is_err(),
        "revoking an unassigned partition is an error"
    );
    assert!(
        store.destroy().is_err(),
        "destroy is refused while partitions are assigned"
    );
    drop((p0, p1, again));
    store.revoke_partition(0).unwrap();
    store.revoke_partition(1).unwrap();
    assert!(store.assigned_partitions().is_empty());
    assert!(store.partition(0).is_none());
    store.destroy().unwrap();
    let p0 = partition(&mut store, 0);
    assert_eq!(p0.get(cf::DEFAULT, b"k").unwrap(), None, "destroy deletes the data");
}

/// Data and offset survive revoke + reassign and a store reopen for durable
/// backends; a non-durable backend starts empty.
pub fn durability_across_reopen<H: Harness>(h: &mut H) {
    {
        let mut store = h.open();
        let p = partition(&mut store, 3);
        let mut b = WriteBatch::new();
        b.put(cf::DEFAULT, b"k", b"v");
        b.put(cf::GLOBAL_COUNTER, b"c", b"1");
        b.set_changelog_offset(9);
        p.write(&b).unwrap();
        drop(p);
        store.revoke_partition(3).unwrap();
        let p = partition(&mut store, 3);
        if h.durable() {
            assert_eq!(
                p.get(cf::DEFAULT, b"k").unwrap().as_deref(),
                Some(&b"v"[..]),
                "revoke + assign keeps data"
            );
        } else {
            assert_eq!(
                p.get(cf::DEFAULT, b"k").unwrap(),
                None,
                "a non-durable revoke drops data"
            );
        }
    }
    let mut store = h.open();
    let p = partition(&mut store, 3);
    if h.durable() {
        assert_eq!(
            p.get(cf::DEFAULT, b"k").unwrap().as_deref(),
            Some(&b"v"[..]),
            "data survives reopen"
        );
        assert_eq!(
            p.get(cf::GLOBAL_COUNTER, b"c").unwrap().as_deref(),
            Some(&b"1"[..]),
            "every cf survives reopen"
        );
        assert_eq!(p.changelog_offset().unwrap(), Some(9), "the offset survives reopen");
    } else {
        assert_eq!(p.get(cf::DEFAULT, b"k").unwrap(), None);
        assert_eq!(p.changelog_offset().unwrap(), None);
    }
}

/// Partitions can be read and written from several threads at once.
pub fn concurrent_access<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = partition(&mut store, 0);
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let p = &p;
            s.spawn(move || {
                for i in 0..200u32 {
                    let key = [t, (i >> 8) as u8, i as u8];
                    p.put(cf::DEFAULT, &key, &i.to_be_bytes()).unwrap();
                    assert_eq!(p.get(cf::DEFAULT, &key).unwrap(), Some(i.to_be_bytes().to_vec()));
                }
            });
        }
    });
    assert_eq!(collect(&*p, cf::DEFAULT, b"", None, Direction::Forward).len(), 800);
}

/// A read view sees one moment: a batch written (on another thread) while
/// the view is alive is invisible through it, in point reads and ranges,
/// and visible to the partition afterwards. The writer may be held back
/// until the view is dropped (the in-memory backend) or not (snapshots).
pub fn read_views_are_consistent_snapshots<H: Harness>(h: &mut H) {
    let mut store = h.open();
    let p = partition(&mut store, 0);
    let batch = |n: u8| {
        let mut b = WriteBatch::new();
        b.put(cf::DEFAULT, b"a", &[n]);
        b.put(cf::VALUES, b"b", &[n]);
        b.put(cf::DEFAULT, &[b'k', n], &[n]);
        b.set_changelog_offset(u64::from(n));
        b
    };
    p.write(&batch(1)).unwrap();
    let view = p.read_view().expect("read_view must succeed");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let writer = p.clone();
        s.spawn(move || {
            writer.write(&batch(2)).expect("write while a view is alive");
            let _ = tx.send(());
        });
        // Give the writer time to land (snapshot backends) or block (locks).
        let _ = rx.recv_timeout(std::time::Duration::from_millis(300));
        assert_eq!(
            view.get(cf::DEFAULT, b"a").unwrap(),
            Some(vec![1]),
            "the view keeps its moment"
        );
        assert_eq!(
            view.get(cf::VALUES, b"b").unwrap(),
            Some(vec![1]),
            "in every column family"
        );
        assert_eq!(
            view.get(cf::METADATA, cf::CHANGELOG_OFFSET_KEY).unwrap(),
            Some(1u64.to_be_bytes().to_vec()),
            "and its offset"
        );
        let keys: Vec<Vec<u8>> = view
            .iter_range(cf::DEFAULT, b"k", Some(b"l"), Direction::Forward)
            .unwrap()
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(keys, vec![b"k\x01".to_vec()], "ranges see the same moment");
        drop(view);
    });
    assert_eq!(
        p.get(cf::DEFAULT, b"a").unwrap(),
        Some(vec![2]),
        "the partition sees the later batch"
    );
    assert_eq!(
        p.read_view().unwrap().get(cf::VALUES, b"b").unwrap(),
        Some(vec![2]),
        "and so does a new view"
    );
}

/// A snapshot ([`StorePartition::snapshot`]) holds the partition as of
/// the call — data, column families and changelog offset — unchanged by
/// later writes, and [`Backend::restore_snapshot`] opens it in place of the
/// partition's data. A backend that declines takes and restores nothing.
pub fn snapshots_restore_as_of_their_moment<H: Harness>(h: &mut H) {
    let scratch = std::env::temp_dir().join(format!(
        "state-core-snapshot-case-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("creating a scratch directory");
    let dir = scratch.join("snap");
    let mut store = h.open();
    let p = partition(&mut store, 0);
    let mut b = WriteBatch::new();
    b.put(cf::DEFAULT, b"a", b"1");
    b.put(cf::DEFAULT, b"", b"empty key");
    b.put(cf::VALUES, b"b", b"1");
    for i in 0..300u32 {
        b.put(cf::DEFAULT, format!("k{i:03}").as_bytes(), &i.to_be_bytes());
    }
    b.set_changelog_offset(7);
    p.write(&b).unwrap();
    let taken = p.snapshot(&dir).expect("snapshot must succeed or decline");
    let Some(taken) = taken else {
        assert!(!dir.exists(), "a declined snapshot leaves nothing behind");
        drop(p);
        store.revoke_partition(0).unwrap();
        let restored = store
            .backend()
            .restore_snapshot(&dir, store.location(), 0)
            .expect("a backend without snapshots declines to restore");
        assert!(restored.is_none(), "a backend that takes no snapshots restores none");
        let _ = std::fs::remove_dir_all(&scratch);
        return;
    };
    assert_eq!(taken.changelog_offset(), Some(7), "the snapshot's offset is the data's");
    assert_eq!(taken.dir(), dir.as_path());
    assert_eq!(taken.backend(), store.backend().info().name);
    let every_key = |q: &dyn StorePartition| -> Vec<KeyValue> {
        q.iter_range(cf::DEFAULT, b"", None, Direction::Forward)
            .unwrap()
            .collect::<crate::Result<Vec<KeyValue>>>()
            .unwrap()
    };
    let expected = every_key(&*p);
    assert_eq!(expected.len(), 302);

    // A second snapshot of the same moment, opened in a fresh directory
    // (another machine's state directory): every key and the offset.
    let fresh_snapshot = scratch.join("fresh-snap");
    p.snapshot(&fresh_snapshot)
        .unwrap()
        .expect("a backend that took one snapshot takes another");
    let fresh = StoreLocation::new(store.location().name(), scratch.join("fresh-store"));
    let opened = store
        .backend()
        .restore_snapshot(&fresh_snapshot, &fresh, 0)
        .expect("restoring into a fresh directory must succeed")
        .expect("a backend that takes snapshots restores them");
    assert_eq!(every_key(&*opened), expected, "every key, in a fresh directory");
    assert_eq!(opened.get(cf::VALUES, b"b").unwrap(), Some(b"1".to_vec()));
    assert_eq!(opened.changelog_offset().unwrap(), Some(7));
    drop(opened);
    let mut later = WriteBatch::new();
    later.put(cf::DEFAULT, b"a", b"2");
    later.delete(cf::DEFAULT, b"");
    later.put(cf::DEFAULT, b"c", b"later");
    later.set_changelog_offset(9);
    p.write(&later).unwrap();
    p.persist().unwrap();
    drop(p);
    store.revoke_partition(0).unwrap();
    let restored = store
        .backend()
        .restore_snapshot(&dir, store.location(), 0)
        .expect("restoring a snapshot must succeed")
        .expect("a backend that takes snapshots restores them");
    assert_eq!(
        restored.get(cf::DEFAULT, b"a").unwrap(),
        Some(b"1".to_vec()),
        "as of the snapshot"
    );
    assert_eq!(restored.get(cf::DEFAULT, b"").unwrap(), Some(b"empty key".to_vec()));
    assert_eq!(
        restored.get(cf::DEFAULT, b"c").unwrap(),
        None,
        "later writes are not in it"
    );
    assert_eq!(
        restored.get(cf::VALUES, b"b").unwrap(),
        Some(b"1".to_vec()),
        "every column family"
    );
    assert_eq!(restored.changelog_offset().unwrap(), Some(7), "with its offset");
    assert!(restored.column_families().unwrap().iter().any(|c| c == cf::VALUES));
    store
        .assign_restored(0, restored.clone())
        .expect("the restored partition joins the store");
    assert!(store.assign_restored(0, restored).is_err(), "not twice");
    let _ = std::fs::remove_dir_all(&scratch);
}

/// A named conformance case.
pub type Case<H> = (&'static str, fn(&mut H));

// Every case, by name, in the order [`run_all`] runs them.
crate::__conformance_case_list!(conformance_tests { @cases_fn });

/// Runs every case against harnesses made by `make` (a fresh one per case).
pub fn run_all<H: Harness>(mut make: impl FnMut() -> H) {
    for (name, case) in cases::<H>() {
        tracing::info!(case = name, "conformance case");
        let mut h = make();
        case(&mut h);
    }
}

/// The kit's cases, the only list of them. Passes the list to
/// `$crate::$callback!`, after `$args`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_case_list {
    ($callback:ident { $($args:tt)* }) => {
        $crate::$callback! { $($args)*;
            point_operations,
            empty_values_are_values,
            column_families_are_isolated,
            batches_apply_in_order,
            changelog_offset_is_stored_with_the_batch,
            range_iteration,
            iteration_sees_a_consistent_view,
            large_batches_and_values,
            store_lifecycle,
            durability_across_reopen,
            concurrent_access,
            read_views_are_consistent_snapshots,
            snapshots_restore_as_of_their_moment,
            bulk_loads_leave_what_bulk_writes_leave,
            loads_and_bulk_writes_mix_in_order,
            an_interrupted_load_replayed_from_its_stored_offset_converges,
            a_load_of_only_deletes_hides_older_values,
        }
    };
}

/// Expands to one `#[test]` per conformance case, each with a fresh harness
/// from `$make` (an expression evaluated once per test).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_case_list!(conformance_tests { @tests $make });
        }
    };
    (@tests $make:expr; $($case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                let mut h = $make;
                $crate::testkit::$case(&mut h);
            }
        )*
    };
    (@cases_fn; $($case:ident,)*) => {
        /// Every case, by name, in the order [`run_all`] runs them.
        pub fn cases<H: Harness>() -> Vec<Case<H>> {
            vec![$((stringify!($case), $case::<H> as fn(&mut H))),*]
        }
    };
}
