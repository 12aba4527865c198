//! Retention: keep the newest N snapshots of a partition, delete the
//! files no manifest references, never a file a manifest being written
//! may reference.
//!
//! A file is deleted only if (a) no kept manifest lists it, (b) no pending
//! manifest younger than the grace period lists it, and (c) it is itself
//! older than the grace period (an upload writes its pending manifest
//! before its files, but a file listed before the pending manifest was
//! read may be brand new). Uploads that outlive 90% of the grace period
//! are abandoned before their manifest, so (b) and (c) cover every upload
//! still able to write one; an upload re-lists its files just before its
//! manifest and puts back any that vanished.

use std::collections::HashSet;

use crate::error::Result;
use crate::manifest::Manifest;
use crate::scope::{file_object_name, id_of_manifest, SnapshotScope};
use crate::store::{age, object_name, SnapshotStore};

/// What retention deleted and kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Ids of the snapshots kept, oldest first.
    pub kept: Vec<String>,
    /// Ids of the snapshots whose manifests were deleted (old ones, and
    /// unreadable ones older than the grace period).
    pub deleted: Vec<String>,
    /// Files deleted (no manifest referenced them).
    pub files_deleted: usize,
    /// Their bytes.
    pub bytes_deleted: u64,
    /// Pending manifests deleted (uploads that died or were abandoned).
    pub pending_deleted: usize,
}

impl SnapshotStore {
    /// Applies the store's [`Retention`](crate::Retention) to `scope`'s
    /// snapshots. Run it from one process per partition at a time (the
    /// one that takes the snapshots).
    pub fn prune(&self, scope: &SnapshotScope) -> Result<Pruned> {
        let prefix = &self.conn.prefix;
        let grace = self.retention.grace;
        // Files first: anything uploaded after this listing is safe.
        let files = self.list_objects(&scope.files(prefix))?;
        let mut pruned = Pruned::default();

        let mut readable: Vec<Manifest> = Vec::new();
        let manifests = self.list_objects(&scope.manifests(prefix))?;
        let mut ids: Vec<(String, std::time::Duration)> = manifests
            .iter()
            .filter_map(|m| id_of_manifest(&object_name(&m.location)).map(|id| (id.to_owned(), age(m))))
            .collect();
        ids.sort();
        for (id, manifest_age) in ids {
            match self.manifest(scope, &id) {
                Ok(m) => readable.push(m),
                Err(e) if e.is_not_found() || matches!(e, crate::SnapshotError::NoSuchSnapshot { .. }) => {}
                Err(e @ crate::SnapshotError::BadManifest { .. }) => {
                    if manifest_age > grace {
                        tracing::warn!("deleting an unreadable snapshot manifest: {e}");
                        self.delete(&scope.manifest(prefix, &id))?;
                        pruned.deleted.push(id);
                    } else {
                        tracing::warn!(
                            "keeping an unreadable snapshot manifest until it is older than the grace period: {e}"
                        );
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let cut = readable.len().saturating_sub(self.retention.keep_newest);
        let kept = readable.split_off(cut);
        for old in readable {
            self.delete(&scope.manifest(prefix, &old.id))?;
            pruned.deleted.push(old.id);
        }

        let mut referenced: HashSet<String> = HashSet::new();
        let mut reference = |m: &Manifest| {
            for f in &m.files {
                if let Some(sum) = f.checksum() {
                    referenced.insert(file_object_name(&sum));
                }
            }
        };
        kept.iter().for_each(&mut reference);
        for meta in self.list_objects(&scope.pending(prefix))? {
            let name = object_name(&meta.location);
            if age(&meta) > grace {
                self.delete(&meta.location)?;
                pruned.pending_deleted += 1;
                continue;
            }
            let Some(id) = id_of_manifest(&name) else { continue };
            match self.get_bytes(&meta.location).map(|b| Manifest::parse(&b, id)) {
                Ok(Ok(m)) => reference(&m),
                Ok(Err(reason)) => {
                    // Its files cannot be known: delete no file this time.
                    tracing::warn!(object = %meta.location, "an unreadable pending manifest ({reason}); no file is deleted");
                    pruned.kept = kept.into_iter().map(|m| m.id).collect();
                    return Ok(pruned);
                }
                Err(e) if e.is_not_found() => {} // its upload finished meanwhile
                Err(e) => return Err(e),
            }
        }
        for meta in files {
            if referenced.contains(&object_name(&meta.location)) || age(&meta) <= grace {
                continue;
            }
            self.delete(&meta.location)?;
            pruned.files_deleted += 1;
            pruned.bytes_deleted += meta.size;
        }
        pruned.kept = kept.into_iter().map(|m| m.id).collect();
        if !pruned.deleted.is_empty() || pruned.files_deleted > 0 {
            tracing::info!(
                store = scope.store(),
                partition = scope.partition(),
                snapshots_deleted = pruned.deleted.len(),
                files_deleted = pruned.files_deleted,
                bytes_deleted = pruned.bytes_deleted,
                "snapshot retention"
            );
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    //! Retention keeps the newest N snapshots and deletes files no
    //! manifest references, but never a young file or one a pending
    //! manifest lists.

    use std::time::Duration;

    use state_core::MemoryBackend;

    use super::*;
    use crate::testing::{fill, local_store, open};
    use crate::{NoProgress, Retention};

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
}
