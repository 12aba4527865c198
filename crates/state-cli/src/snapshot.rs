//! `statectl snapshot`: partition snapshots in an object store — take one
//! from a local partition, download one into a directory, verify
//! checksums. Listing is [`SnapshotStore::list`] itself.

use std::path::Path;

use state_snapshot::{Manifest, Progress, Pruned, SnapshotScope, SnapshotStore, Uploaded, Verified};

use crate::error::{CliError, Result};
use crate::partition_dir::PartitionDir;

/// Where snapshots go: a connected store and the partition's scope in it.
#[derive(Debug)]
pub struct SnapshotTarget {
    /// The store.
    pub store: SnapshotStore,
    /// The store name and partition the snapshots are kept under.
    pub scope: SnapshotScope,
}

/// Takes a snapshot of the existing partition at `dir` (opened for
/// writing: RocksDB checkpoints need a writable database, so the
/// application must not hold it), uploads it, then applies the store's
/// retention. The local copy is made beside `dir` and deleted.
pub fn snapshot_create(
    dir: &PartitionDir,
    target: &SnapshotTarget,
    progress: &dyn Progress,
) -> Result<(Uploaded, Pruned)> {
    let engine = dir.existing_engine()?;
    let opened = dir.open_for_writing()?;
    let scratch = match dir.path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let uploaded = target.store.create(
        &*opened.partition,
        engine.name(),
        &target.scope,
        None,
        &scratch,
        progress,
    )?;
    drop(opened);
    let pruned = target.store.prune(&target.scope)?;
    Ok((uploaded, pruned))
}

/// The id of the newest snapshot whose manifest is readable (older ones
/// are tried when the newest is damaged; each skipped one is logged).
pub fn newest_snapshot(target: &SnapshotTarget) -> Result<String> {
    let ids = target.store.snapshot_ids(&target.scope)?;
    for id in ids.iter().rev() {
        match target.store.manifest(&target.scope, id) {
            Ok(_) => return Ok(id.clone()),
            Err(e) => tracing::warn!("skipping snapshot {id}: {e}"),
        }
    }
    Err(CliError::NoSnapshot {
        store: target.store.url().to_owned(),
        scope: format!("{} partition {}", target.scope.store(), target.scope.partition()),
    })
}

/// Downloads snapshot `id` into `into` (missing or empty), checking every
/// file's checksum; a RocksDB or fjall snapshot is then opened to check
/// that it holds the changelog offset its manifest records (a failed
/// check deletes `into`). The directory is then a partition directory
/// the snapshot's backend opens.
pub fn snapshot_restore(target: &SnapshotTarget, id: &str, into: &Path, progress: &dyn Progress) -> Result<Manifest> {
    let manifest = target.store.download(&target.scope, id, into, progress)?;
    let checked = check_offset(&manifest, into);
    if checked.is_err() {
        let _ = state_core::remove_store_dir(into);
    }
    checked.map(|()| manifest)
}

fn check_offset(manifest: &Manifest, dir: &Path) -> Result<()> {
    let engine = match manifest.backend.as_str() {
        "rocksdb" => crate::Engine::RocksDb,
        "fjall" => crate::Engine::Fjall,
        _ => return Ok(()),
    };
    let opened = PartitionDir::new(dir).with_engine(Some(engine)).open_for_reading()?;
    let found = opened.partition().changelog_offset()?;
    if found != manifest.changelog_offset {
        return Err(state_snapshot::SnapshotError::OffsetMismatch {
            snapshot: manifest.id.clone(),
            recorded: manifest.changelog_offset,
            found,
        }
        .into());
    }
    Ok(())
}

/// Verifies snapshot `id`, or every snapshot when `id` is `None`; each
/// result is the snapshot's id and what verification found (an
/// unreadable manifest is an `Err`).
pub fn snapshot_verify(
    target: &SnapshotTarget,
    id: Option<&str>,
    progress: &dyn Progress,
) -> Result<Vec<(String, state_snapshot::Result<Verified>)>> {
    let ids = match id {
        Some(id) => vec![id.to_owned()],
        None => target.store.snapshot_ids(&target.scope)?,
    };
    Ok(ids
        .into_iter()
        .map(|id| {
            let verified = target.store.verify(&target.scope, &id, progress);
            (id, verified)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use state_core::{cf, StorePartition, WriteBatch};
    use state_rocksdb::{RocksDbOptions, RocksDbPartition};
    use state_snapshot::{NoProgress, Retention, StoreOptions};

    use super::*;

    fn target(dir: &Path) -> SnapshotTarget {
        let url = format!("file://{}/snapshots", dir.display());
        SnapshotTarget {
            store: SnapshotStore::open(&url, &StoreOptions::new())
                .unwrap()
                .with_retention(Retention {
                    keep_newest: 1,
                    ..Retention::default()
                }),
            scope: SnapshotScope::new("counts", 0).unwrap(),
        }
    }

    #[test]
    fn a_partition_goes_to_the_store_and_back_into_a_directory() {
        let root = tempfile::tempdir().unwrap();
        let source = root.path().join("state").join("0");
        {
            let p = RocksDbPartition::open(&source, &RocksDbOptions::default()).unwrap();
            let mut b = WriteBatch::new();
            b.put(cf::DEFAULT, b"k", b"v");
            b.set_changelog_offset(12);
            p.write(&b).unwrap();
        }
        let target = target(root.path());
        let (up, _) = snapshot_create(&PartitionDir::new(&source), &target, &NoProgress).unwrap();
        assert_eq!(up.manifest.changelog_offset, Some(12));
        let (second, pruned) = snapshot_create(&PartitionDir::new(&source), &target, &NoProgress).unwrap();
        assert_eq!(pruned.kept, vec![second.manifest.id.clone()], "--keep 1");
        assert_eq!(newest_snapshot(&target).unwrap(), second.manifest.id);

        let into = root.path().join("restored");
        let manifest = snapshot_restore(&target, &second.manifest.id, &into, &NoProgress).unwrap();
        assert_eq!(manifest.backend, "rocksdb");
        let p = RocksDbPartition::open_read_only(&into, &RocksDbOptions::default()).unwrap();
        assert_eq!(p.get(cf::DEFAULT, b"k").unwrap(), Some(b"v".to_vec()));

        let verified = snapshot_verify(&target, None, &NoProgress).unwrap();
        assert_eq!(verified.len(), 1);
        assert!(verified[0].1.as_ref().unwrap().problems.is_empty());

        let missing = PartitionDir::new(root.path().join("none"));
        assert!(snapshot_create(&missing, &target, &NoProgress).is_err());
        assert!(!root.path().join("none").exists(), "nothing created");
    }

    #[test]
    fn a_fjall_partition_goes_to_the_store_and_back_into_a_directory() {
        let root = tempfile::tempdir().unwrap();
        let source = root.path().join("state").join("0");
        {
            let p = state_fjall::FjallPartition::open(&source, &state_fjall::FjallOptions::default()).unwrap();
            let mut b = WriteBatch::new();
            b.put(cf::DEFAULT, b"k", b"v");
            b.set_changelog_offset(5);
            p.write(&b).unwrap();
            p.persist().unwrap();
        }
        let target = target(root.path());
        let (up, _) = snapshot_create(&PartitionDir::new(&source), &target, &NoProgress).unwrap();
        assert_eq!(up.manifest.backend, "fjall");
        assert_eq!(up.manifest.changelog_offset, Some(5));
        let into = root.path().join("restored");
        snapshot_restore(&target, &up.manifest.id, &into, &NoProgress).unwrap();
        assert_eq!(crate::Engine::detect(&into), Some(crate::Engine::Fjall));
        let p = state_fjall::FjallPartition::open(&into, &state_fjall::FjallOptions::default()).unwrap();
        assert_eq!(p.get(cf::DEFAULT, b"k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(p.changelog_offset().unwrap(), Some(5));
    }
}
