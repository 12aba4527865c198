//! Listing a partition's snapshots and reading one manifest.

use crate::error::{Result, SnapshotError};
use crate::manifest::Manifest;
use crate::scope::{id_of_manifest, SnapshotScope};
use crate::store::{object_name, SnapshotStore};

/// One snapshot found in the store: its id and its manifest, or why the
/// manifest cannot be used.
#[derive(Debug)]
pub struct Listed {
    /// The snapshot's id.
    pub id: String,
    /// The manifest, or [`SnapshotError::BadManifest`] /
    /// [`SnapshotError::Store`].
    pub manifest: Result<Manifest>,
}

impl SnapshotStore {
    /// The ids of `scope`'s complete snapshots, oldest first (ids sort by
    /// changelog offset, then time). One listing request per 1000
    /// snapshots on S3; retention keeps the list short.
    pub fn snapshot_ids(&self, scope: &SnapshotScope) -> Result<Vec<String>> {
        let mut ids: Vec<String> = self
            .list_objects(&scope.manifests(&self.conn.prefix))?
            .iter()
            .filter_map(|meta| id_of_manifest(&object_name(&meta.location)).map(str::to_owned))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// `scope`'s snapshots with their manifests, oldest first; unreadable
    /// manifests are listed with their error (restores skip them).
    pub fn list(&self, scope: &SnapshotScope) -> Result<Vec<Listed>> {
        Ok(self
            .snapshot_ids(scope)?
            .into_iter()
            .map(|id| {
                let manifest = self.manifest(scope, &id);
                Listed { id, manifest }
            })
            .collect())
    }

    /// The manifest of snapshot `id`, checked ([`Manifest::parse`]).
    pub fn manifest(&self, scope: &SnapshotScope, id: &str) -> Result<Manifest> {
        let object = scope.manifest(&self.conn.prefix, id);
        let bytes = self.get_bytes(&object).map_err(|e| {
            if e.is_not_found() {
                SnapshotError::NoSuchSnapshot {
                    snapshot: id.to_owned(),
                    scope: format!("{} partition {}", scope.store(), scope.partition()),
                    store: self.url().to_owned(),
                }
            } else {
                e
            }
        })?;
        let manifest = Manifest::parse(&bytes, id).map_err(|reason| SnapshotError::BadManifest {
            object: object.to_string(),
            reason,
        })?;
        if manifest.store != scope.store() || manifest.partition != scope.partition() {
            return Err(SnapshotError::BadManifest {
                object: object.to_string(),
                reason: format!(
                    "it describes store {:?} partition {}",
                    manifest.store, manifest.partition
                ),
            });
        }
        Ok(manifest)
    }
}
