//! Every backend's snapshot, uploaded to the local-filesystem store and
//! restored into a fresh directory, reads back every key and the
//! changelog offset; a second snapshot after a few changes uploads only
//! what changed (on RocksDB).

mod common;

use std::sync::Arc;

use common::{fill, key, local_store, open, value};
use state_core::{cf, Backend, MemoryBackend, StoreKind, StoreLocation};
use state_fjall::{FjallBackend, FjallOptions};
use state_rocksdb::{RocksDbBackend, RocksDbOptions};
use state_snapshot::{NoProgress, Retention, SnapshotScope};

const KEYS: u32 = 2000;

fn round_trip(backend: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), Retention::default());
    let scope = SnapshotScope::new("counts", 0).unwrap();
    let (_, p) = open(&backend, &dir.path().join("source"));
    fill(&*p, 0, KEYS, 1, 41);
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let name = backend.info().name;
    let up = store
        .create(&*p, name, &scope, Some(StoreKind::KeyValue), &scratch, &NoProgress)
        .unwrap();
    assert_eq!(up.manifest.changelog_offset, Some(41));
    assert_eq!(up.manifest.backend, name);
    assert_eq!(up.manifest.kind.as_deref(), Some("key-value"));
    assert!(up.files_uploaded > 0);
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "the local copy is deleted"
    );
    // Written after the snapshot: not in it.
    fill(&*p, 0, 10, 2, 50);

    let fresh = StoreLocation::new("counts", dir.path().join("fresh").join("counts"));
    let (manifest, restored) = store
        .restore(
            &scope,
            &up.manifest.id,
            &*backend,
            &fresh,
            &dir.path().join("download"),
            &NoProgress,
        )
        .unwrap();
    assert_eq!(manifest, up.manifest);
    assert_eq!(restored.changelog_offset().unwrap(), Some(41));
    for i in 0..KEYS {
        assert_eq!(
            restored.get(cf::DEFAULT, &key(i)).unwrap(),
            Some(value(i, 1)),
            "key {i}"
        );
    }
    assert_eq!(restored.get(cf::VALUES, b"side").unwrap(), Some(vec![1]));
    let listed = store.list(&scope).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].manifest.as_ref().unwrap().id, up.manifest.id);
}

#[test]
fn memory_snapshots_restore_every_key() {
    round_trip(MemoryBackend::shared());
}

#[test]
fn rocksdb_snapshots_restore_every_key() {
    round_trip(RocksDbBackend::shared(RocksDbOptions::default()));
}

#[test]
fn fjall_snapshots_restore_every_key() {
    round_trip(FjallBackend::shared(FjallOptions::default()));
}

#[test]
fn a_downloaded_rocksdb_snapshot_opens_as_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), Retention::default());
    let scope = SnapshotScope::new("counts", 0).unwrap();
    let backend = RocksDbBackend::shared(RocksDbOptions::default());
    let (_, p) = open(&backend, &dir.path().join("source"));
    fill(&*p, 0, 100, 1, 7);
    let up = store
        .create(&*p, "rocksdb", &scope, None, dir.path(), &NoProgress)
        .unwrap();
    let target = dir.path().join("restored");
    store.download(&scope, &up.manifest.id, &target, &NoProgress).unwrap();
    let db = state_rocksdb::RocksDbPartition::open(&target, &RocksDbOptions::default()).unwrap();
    use state_core::StorePartition;
    assert_eq!(db.changelog_offset().unwrap(), Some(7));
    assert_eq!(db.get(cf::DEFAULT, &key(99)).unwrap(), Some(value(99, 1)));
}

#[test]
fn a_rocksdb_snapshot_after_few_changes_uploads_only_new_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), Retention::default());
    let scope = SnapshotScope::new("counts", 0).unwrap();
    let backend = RocksDbBackend::shared(RocksDbOptions::default());
    let (_, p) = open(&backend, &dir.path().join("source"));
    fill(&*p, 0, 20_000, 1, 100);
    let first = store
        .create(&*p, "rocksdb", &scope, None, dir.path(), &NoProgress)
        .unwrap();
    fill(&*p, 0, 200, 2, 200);
    let second = store
        .create(&*p, "rocksdb", &scope, None, dir.path(), &NoProgress)
        .unwrap();
    assert!(second.files_reused > 0, "{second:?}");
    assert!(
        second.bytes_uploaded * 4 < first.bytes_uploaded,
        "incremental: {} bytes after {} for the first",
        second.bytes_uploaded,
        first.bytes_uploaded
    );
    assert!(first.manifest.id < second.manifest.id, "ids sort by offset");
}

#[test]
fn a_snapshot_of_another_backend_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), Retention::default());
    let scope = SnapshotScope::new("counts", 0).unwrap();
    let backend = MemoryBackend::shared();
    let (_, p) = open(&backend, dir.path());
    fill(&*p, 0, 3, 1, 1);
    let up = store
        .create(&*p, "memory", &scope, None, dir.path(), &NoProgress)
        .unwrap();
    let rocks = RocksDbBackend::new(RocksDbOptions::default());
    let fresh = StoreLocation::new("counts", dir.path().join("fresh"));
    let Err(err) = store.restore(
        &scope,
        &up.manifest.id,
        &rocks,
        &fresh,
        &dir.path().join("dl"),
        &NoProgress,
    ) else {
        panic!("a memory snapshot opened on RocksDB");
    };
    assert!(err.to_string().contains("memory backend"), "{err}");
}

/// A RocksDB snapshot restored from a local store shares its SST files
/// with the store (hard links: RocksDB never changes an SST in place), and
/// the restored partition's writes leave the store's objects as they were.
#[test]
fn a_local_rocksdb_restore_links_its_sst_files_and_never_changes_them() {
    use std::os::unix::fs::MetadataExt;
    let backend = RocksDbBackend::shared(RocksDbOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), Retention::default());
    let scope = SnapshotScope::new("counts", 0).unwrap();
    let (_, p) = open(&backend, &dir.path().join("source"));
    fill(&*p, 0, KEYS, 1, 41);
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let up = store
        .create(&*p, "rocksdb", &scope, Some(StoreKind::KeyValue), &scratch, &NoProgress)
        .unwrap();
    let fresh = StoreLocation::new("counts", dir.path().join("fresh").join("counts"));
    let (_, restored) = store
        .restore(
            &scope,
            &up.manifest.id,
            &*backend,
            &fresh,
            &dir.path().join("download"),
            &NoProgress,
        )
        .unwrap();
    let ssts: Vec<_> = walk(fresh.dir())
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "sst"))
        .collect();
    assert!(!ssts.is_empty());
    for sst in &ssts {
        assert!(
            std::fs::metadata(sst).unwrap().nlink() >= 2,
            "{} is a copy",
            sst.display()
        );
    }
    // The restored partition moves on (writes, a flush, a compaction).
    fill(&*restored, 0, KEYS, 2, 60);
    drop(restored);
    let verified = store.verify(&scope, &up.manifest.id, &NoProgress).unwrap();
    assert!(verified.problems.is_empty(), "{:?}", verified.problems);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
