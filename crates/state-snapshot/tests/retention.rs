//! Retention keeps the newest N snapshots and deletes files no manifest
//! references, but never a young file or one a pending manifest lists.

mod common;

use std::time::Duration;

use common::{fill, local_store, open};
use state_core::MemoryBackend;
use state_snapshot::{NoProgress, Retention, SnapshotScope};

#[test]
fn the_newest_n_are_kept_and_unreferenced_files_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), Retention::default());
    let scope = SnapshotScope::new("counts", 0).unwrap();
    let backend = MemoryBackend::shared();
    let (_, p) = open(&backend, dir.path());
    let mut ids = Vec::new();
    for round in 1..=4u8 {
        fill(&*p, 0, 100, round, u64::from(round) * 10);
        ids.push(
            store
                .create(&*p, "memory", &scope, None, dir.path(), &NoProgress)
                .unwrap()
                .manifest
                .id,
        );
    }
    let files = dir.path().join("store/counts/0/files");
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 4, "one dump per round");

    // A long grace period: the manifests go, the young files stay.
    let patient = local_store(
        dir.path(),
        Retention {
            keep_newest: 2,
            grace: Duration::from_secs(3600),
        },
    );
    let pruned = patient.prune(&scope).unwrap();
    assert_eq!(pruned.kept, ids[2..].to_vec());
    assert_eq!(pruned.deleted, ids[..2].to_vec());
    assert_eq!(pruned.files_deleted, 0, "younger than the grace period");

    std::thread::sleep(Duration::from_millis(20));
    let eager = local_store(
        dir.path(),
        Retention {
            keep_newest: 2,
            grace: Duration::from_millis(10),
        },
    );
    let pruned = eager.prune(&scope).unwrap();
    assert_eq!(pruned.kept, ids[2..].to_vec());
    assert_eq!(pruned.files_deleted, 2);
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 2);
    for id in &ids[2..] {
        assert!(store.verify(&scope, id, &NoProgress).unwrap().problems.is_empty());
    }
}

#[test]
fn a_pending_manifest_protects_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path(), Retention::default());
    let scope = SnapshotScope::new("counts", 0).unwrap();
    let backend = MemoryBackend::shared();
    let (_, p) = open(&backend, dir.path());
    fill(&*p, 0, 100, 1, 10);
    let first = store
        .create(&*p, "memory", &scope, None, dir.path(), &NoProgress)
        .unwrap();
    // Pretend an upload is writing a snapshot that reuses the first's file.
    let root = dir.path().join("store/counts/0");
    std::fs::remove_file(root.join(format!("manifests/{}.json", first.manifest.id))).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::create_dir_all(root.join("pending")).unwrap();
    std::fs::write(
        root.join(format!("pending/{}.json", first.manifest.id)),
        first.manifest.to_json(),
    )
    .unwrap();
    let store = local_store(
        dir.path(),
        Retention {
            keep_newest: 1,
            grace: Duration::from_secs(1),
        },
    );
    let pruned = store.prune(&scope).unwrap();
    assert_eq!(pruned.files_deleted, 0, "{pruned:?}");
    std::thread::sleep(Duration::from_millis(1100));
    let pruned = store.prune(&scope).unwrap();
    assert_eq!(pruned.pending_deleted, 1, "a stale pending manifest goes");
    assert_eq!(pruned.files_deleted, 1, "and its files with it");
}
