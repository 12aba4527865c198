//! A damaged snapshot is never restored: a corrupt file, a missing file,
//! an unreadable manifest are each detected by download and verify.

mod common;

use std::path::{Path, PathBuf};

use common::{fill, local_store, open};
use state_core::MemoryBackend;
use state_snapshot::{NoProgress, Retention, SnapshotError, SnapshotScope, SnapshotStore, Uploaded};

fn snapshot(dir: &Path) -> (SnapshotStore, SnapshotScope, Uploaded, PathBuf) {
    let store = local_store(dir, Retention::default());
    let scope = SnapshotScope::new("counts", 0).unwrap();
    let backend = MemoryBackend::shared();
    let (_, p) = open(&backend, dir);
    fill(&*p, 0, 500, 1, 9);
    let up = store.create(&*p, "memory", &scope, None, dir, &NoProgress).unwrap();
    let files = dir.join("store/counts/0/files");
    let file = std::fs::read_dir(&files).unwrap().next().unwrap().unwrap().path();
    (store, scope, up, file)
}

#[test]
fn an_intact_snapshot_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (store, scope, up, _) = snapshot(dir.path());
    let verified = store.verify(&scope, &up.manifest.id, &NoProgress).unwrap();
    assert!(verified.problems.is_empty(), "{:?}", verified.problems);
}

#[test]
fn a_corrupt_file_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (store, scope, up, file) = snapshot(dir.path());
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let verified = store.verify(&scope, &up.manifest.id, &NoProgress).unwrap();
    assert_eq!(verified.problems.len(), 1);
    assert!(matches!(&verified.problems[0], SnapshotError::Corrupt { reason, .. } if reason.contains("checksum")));
    let target = dir.path().join("download");
    let err = store
        .download(&scope, &up.manifest.id, &target, &NoProgress)
        .unwrap_err();
    assert!(matches!(err, SnapshotError::Corrupt { .. }), "{err}");
    assert!(!target.exists(), "a failed download leaves nothing to open");
    // Cut short.
    std::fs::write(&file, &bytes[..mid]).unwrap();
    let err = store
        .download(&scope, &up.manifest.id, &target, &NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("bytes"), "{err}");
}

#[test]
fn a_missing_file_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (store, scope, up, file) = snapshot(dir.path());
    std::fs::remove_file(&file).unwrap();
    let verified = store.verify(&scope, &up.manifest.id, &NoProgress).unwrap();
    assert!(matches!(&verified.problems[0], SnapshotError::Corrupt { reason, .. } if reason.contains("missing")));
    let err = store
        .download(&scope, &up.manifest.id, &dir.path().join("dl"), &NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn an_unreadable_manifest_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (store, scope, up, _) = snapshot(dir.path());
    let manifest = dir
        .path()
        .join(format!("store/counts/0/manifests/{}.json", up.manifest.id));
    let text = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, &text[..text.len() / 2]).unwrap();
    for err in [
        store.verify(&scope, &up.manifest.id, &NoProgress).unwrap_err(),
        store
            .download(&scope, &up.manifest.id, &dir.path().join("dl"), &NoProgress)
            .unwrap_err(),
    ] {
        assert!(matches!(err, SnapshotError::BadManifest { .. }), "{err}");
    }
    let listed = store.list(&scope).unwrap();
    assert!(listed[0].manifest.is_err());
    let err = store
        .manifest(&scope, "00000000000000000001-0000000000001")
        .unwrap_err();
    assert!(matches!(err, SnapshotError::NoSuchSnapshot { .. }), "{err}");
}

#[test]
fn a_download_never_writes_into_a_directory_with_files() {
    let dir = tempfile::tempdir().unwrap();
    let (store, scope, up, _) = snapshot(dir.path());
    let target = dir.path().join("busy");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"x").unwrap();
    let err = store
        .download(&scope, &up.manifest.id, &target, &NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    assert!(target.join("keep").exists());
}
