//! [`SnapshotScope`]: which partition's snapshots, and where their
//! objects live in the store.
//!
//! Under the store's prefix, per store and partition:
//! `<store>/<partition>/manifests/<id>.json` (one per complete snapshot),
//! `<store>/<partition>/pending/<id>.json` (a manifest being written: its
//! files are referenced while the upload runs), and
//! `<store>/<partition>/files/<xxh3-128 hex>-<size>` (content-addressed,
//! shared by every snapshot of the partition that holds the same bytes).
//! Keeping each partition's objects apart keeps listing cheap: retention
//! and restores list one partition's objects, never the whole store.

use object_store::path::Path;

use crate::checksum::Checksum;
use crate::error::{Result, SnapshotError};

/// One store partition whose snapshots are kept together.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotScope {
    store: String,
    partition: u32,
}

impl SnapshotScope {
    /// Snapshots of partition `partition` of the store named `store`
    /// (non-empty, no `/`; two applications sharing a store URL must give
    /// their stores distinct names, e.g. the changelog topic's).
    pub fn new(store: impl Into<String>, partition: u32) -> Result<Self> {
        let store = store.into();
        if store.is_empty() || store.contains('/') || store == "." || store == ".." {
            return Err(SnapshotError::Target(format!(
                "snapshot scope: store name {store:?} must be non-empty and hold no '/'"
            )));
        }
        Ok(SnapshotScope { store, partition })
    }

    /// The store's name.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    fn root(&self, prefix: &Path) -> Path {
        prefix
            .clone()
            .join(self.store.as_str())
            .join(self.partition.to_string())
    }

    pub(crate) fn manifests(&self, prefix: &Path) -> Path {
        self.root(prefix).join("manifests")
    }

    pub(crate) fn pending(&self, prefix: &Path) -> Path {
        self.root(prefix).join("pending")
    }

    pub(crate) fn files(&self, prefix: &Path) -> Path {
        self.root(prefix).join("files")
    }

    pub(crate) fn manifest(&self, prefix: &Path, id: &str) -> Path {
        self.manifests(prefix).join(format!("{id}.json"))
    }

    pub(crate) fn pending_manifest(&self, prefix: &Path, id: &str) -> Path {
        self.pending(prefix).join(format!("{id}.json"))
    }

    pub(crate) fn file(&self, prefix: &Path, sum: &Checksum) -> Path {
        self.files(prefix).join(file_object_name(sum))
    }
}

/// `<xxh3-128 hex>-<size>`: a file's object name.
pub(crate) fn file_object_name(sum: &Checksum) -> String {
    format!("{}-{}", sum.hex(), sum.size)
}

/// The id in a manifest's object name (`<id>.json`), if it is one.
pub(crate) fn id_of_manifest(name: &str) -> Option<&str> {
    name.strip_suffix(".json").filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_laid_out_per_partition() {
        let scope = SnapshotScope::new("counts", 3).unwrap();
        let prefix = Path::from("snap");
        let sum = Checksum { xxh3_128: 255, size: 9 };
        assert_eq!(
            scope.file(&prefix, &sum).as_ref(),
            "snap/counts/3/files/000000000000000000000000000000ff-9"
        );
        assert_eq!(scope.manifest(&prefix, "x").as_ref(), "snap/counts/3/manifests/x.json");
        assert_eq!(
            scope.pending_manifest(&prefix, "x").as_ref(),
            "snap/counts/3/pending/x.json"
        );
        assert_eq!(id_of_manifest("x.json"), Some("x"));
        assert_eq!(id_of_manifest("x.tmp"), None);
        assert!(SnapshotScope::new("a/b", 0).is_err());
        assert!(SnapshotScope::new("", 0).is_err());
    }
}
