//! Partition snapshots on local disk: what a backend hands to
//! `state-snapshot` ([`LocalSnapshot`]), and putting a snapshot back in
//! place of a partition's directory ([`install_snapshot_dir`]).
//!
//! Taking a snapshot is a capability a backend may decline
//! ([`StorePartition::snapshot`](crate::StorePartition::snapshot) returns
//! `Ok(None)` by default); restoring one is
//! [`Backend::restore_snapshot`](crate::Backend::restore_snapshot).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A consistent copy of one partition in a local directory, taken by
/// [`StorePartition::snapshot`](crate::StorePartition::snapshot).
///
/// # Guarantees
/// * The files under [`dir`](Self::dir) hold the partition's data exactly
///   as of one moment: every batch written before that moment, nothing of
///   a batch written after it, and no part of any batch.
/// * [`changelog_offset`](Self::changelog_offset) is the changelog offset
///   stored with that data (read back from the copy, not from the live
///   partition), so replaying the changelog from the next offset on yields
///   the partition's state, as a full replay would.
/// * The files are the snapshot's own: later writes to the partition never
///   change them (RocksDB hard-links its immutable SST files; a hard link
///   shares the bytes, and RocksDB never rewrites a file in place).
/// * [`Backend::restore_snapshot`](crate::Backend::restore_snapshot) of the
///   backend named by [`backend`](Self::backend) opens these files (moved
///   or downloaded anywhere) as a partition again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalSnapshot {
    dir: PathBuf,
    backend: &'static str,
    layout: &'static str,
    changelog_offset: Option<u64>,
}

impl LocalSnapshot {
    /// A snapshot in `dir`, taken by `backend` (its
    /// [`BackendInfo::name`](crate::BackendInfo::name)) with the file
    /// layout `layout` (e.g. `rocksdb-checkpoint`), whose data includes the
    /// changelog up to `changelog_offset`.
    pub fn new(
        dir: impl Into<PathBuf>,
        backend: &'static str,
        layout: &'static str,
        changelog_offset: Option<u64>,
    ) -> Self {
        LocalSnapshot {
            dir: dir.into(),
            backend,
            layout,
            changelog_offset,
        }
    }

    /// The directory holding the snapshot's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Name of the backend that took it (and opens it).
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// How the files are laid out (`rocksdb-checkpoint`, `fjall-export`,
    /// `memory-dump`): recorded in manifests, checked on restore.
    pub fn layout(&self) -> &'static str {
        self.layout
    }

    /// The changelog offset stored with the data: the offset of the last
    /// changelog record it includes; `None` if the partition never stored
    /// one.
    pub fn changelog_offset(&self) -> Option<u64> {
        self.changelog_offset
    }
}

/// Puts the snapshot directory `snapshot_dir` in place of the partition
/// directory `partition_dir` and opens it with `open`, for durable
/// backends whose snapshot is a partition directory
/// ([`Backend::restore_snapshot`](crate::Backend::restore_snapshot)).
///
/// The partition must not be open. Its previous directory, if any, is moved
/// aside first and deleted only once `open` succeeded; if `open` fails the
/// snapshot's files are deleted and the previous directory is put back, so
/// a bad snapshot never costs the local state. A snapshot on another
/// filesystem is copied rather than moved, into a staging directory beside
/// the partition's that is renamed into place once complete and synced, so
/// a crash part-way never leaves a partial partition directory to open.
pub fn install_snapshot_dir<T>(
    snapshot_dir: &Path,
    partition_dir: &Path,
    open: impl FnOnce(&Path) -> Result<T>,
) -> Result<T> {
    if let Some(parent) = partition_dir.parent() {
        crate::create_private_dir(parent)?;
    }
    let aside = sibling(partition_dir, "replaced");
    let had_previous = match std::fs::symlink_metadata(partition_dir) {
        Ok(_) => {
            crate::backend::remove_store_dir(&aside)?;
            std::fs::rename(partition_dir, &aside).map_err(io(partition_dir))?;
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io(partition_dir)(e)),
    };
    let put_back = || {
        if had_previous {
            let _ = crate::backend::remove_store_dir(partition_dir);
            if let Err(e) = std::fs::rename(&aside, partition_dir) {
                tracing::error!(
                    path = %aside.display(),
                    "cannot put the partition's previous directory back after a failed snapshot restore: {e}"
                );
            }
        }
    };
    if let Err(e) = move_dir(snapshot_dir, partition_dir) {
        put_back();
        return Err(e);
    }
    match open(partition_dir) {
        Ok(opened) => {
            if had_previous {
                if let Err(e) = crate::backend::remove_store_dir(&aside) {
                    tracing::warn!(path = %aside.display(), "cannot delete a partition's replaced directory: {e}");
                }
            }
            Ok(opened)
        }
        Err(e) => {
            put_back();
            Err(e)
        }
    }
}

/// Turns an I/O failure on `path` into [`Error::Io`] (for `map_err`).
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { path, source }
}

/// `<dir>.<what>` beside `dir`.
fn sibling(dir: &Path, what: &str) -> PathBuf {
    let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{what}"));
    dir.with_file_name(name)
}

/// Renames `from` to `to`; across filesystems, copies (see
/// [`copy_then_rename`]) then deletes `from`.
fn move_dir(from: &Path, to: &Path) -> Result<()> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            copy_then_rename(from, to)?;
            crate::backend::remove_store_dir(from)
        }
        Err(e) => Err(io(from)(e)),
    }
}

/// Copies the tree `from` to `to` (which must not exist) through a staging
/// directory beside `to`, synced, then renamed into place: a crash or a
/// failure part-way never leaves a partial copy at `to`, which the backend
/// would open as its partition (a partial RocksDB directory can open as an
/// empty or inconsistent database). What a crash leaves in the staging
/// directory is removed by the next copy.
fn copy_then_rename(from: &Path, to: &Path) -> Result<()> {
    let staging = sibling(to, "incoming");
    crate::backend::remove_store_dir(&staging)?;
    if let Err(e) = copy_dir(from, &staging) {
        if let Err(cleanup) = crate::backend::remove_store_dir(&staging) {
            tracing::warn!(path = %staging.display(), "cannot delete a partial snapshot copy: {cleanup}");
        }
        return Err(e);
    }
    std::fs::rename(&staging, to).map_err(io(&staging))
}

/// Copies the directory tree `from` to `to` (which must not exist), each
/// file and directory synced to disk.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    crate::create_private_dir(to)?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(io(&src))?;
            std::fs::File::open(&dst).and_then(|f| f.sync_all()).map_err(io(&dst))?;
        }
    }
    std::fs::File::open(to).and_then(|d| d.sync_all()).map_err(io(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_open_puts_the_previous_directory_back() {
        let root = tempfile::tempdir().unwrap();
        let partition = root.path().join("store").join("0");
        std::fs::create_dir_all(&partition).unwrap();
        std::fs::write(partition.join("old"), b"old").unwrap();
        let snap = root.path().join("snap");
        std::fs::create_dir(&snap).unwrap();
        std::fs::write(snap.join("new"), b"new").unwrap();

        let err = install_snapshot_dir(&snap, &partition, |_| -> Result<()> { Err(Error::ReadOnly) }).unwrap_err();
        assert!(matches!(err, Error::ReadOnly));
        assert!(partition.join("old").is_file(), "previous state back");
        assert!(!partition.join("new").exists());

        std::fs::create_dir(&snap).unwrap_or_default();
        std::fs::write(snap.join("new"), b"new").unwrap();
        let opened = install_snapshot_dir(&snap, &partition, |dir| Ok(dir.to_owned())).unwrap();
        assert_eq!(opened, partition);
        assert!(partition.join("new").is_file());
        assert!(!partition.join("old").exists());
        assert!(
            !sibling(&partition, "replaced").exists(),
            "the replaced directory is gone"
        );
        assert!(!snap.exists(), "moved, not copied");
    }

    #[test]
    fn a_missing_partition_directory_is_created() {
        let root = tempfile::tempdir().unwrap();
        let snap = root.path().join("snap");
        std::fs::create_dir(&snap).unwrap();
        std::fs::write(snap.join("f"), b"x").unwrap();
        let partition = root.path().join("a").join("b").join("3");
        install_snapshot_dir(&snap, &partition, |_| Ok(())).unwrap();
        assert!(partition.join("f").is_file());
    }

    #[test]
    fn a_copy_across_filesystems_lands_whole_and_keeps_the_source() {
        let root = tempfile::tempdir().unwrap();
        let from = root.path().join("snap");
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::write(from.join("CURRENT"), b"MANIFEST-1").unwrap();
        std::fs::write(from.join("sub").join("000001.sst"), b"sst").unwrap();
        let to = root.path().join("store").join("0");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        // A crash's leftover staging directory does not get in the way.
        std::fs::create_dir_all(sibling(&to, "incoming").join("stale")).unwrap();

        copy_then_rename(&from, &to).unwrap();

        assert_eq!(std::fs::read(to.join("CURRENT")).unwrap(), b"MANIFEST-1");
        assert_eq!(std::fs::read(to.join("sub").join("000001.sst")).unwrap(), b"sst");
        assert!(!to.join("stale").exists(), "the leftover was removed, not merged");
        assert!(!sibling(&to, "incoming").exists());
        assert!(from.join("CURRENT").is_file(), "the caller deletes the source");
    }

    #[test]
    fn a_copy_that_fails_part_way_leaves_no_partition_directory() {
        let root = tempfile::tempdir().unwrap();
        let from = root.path().join("snap");
        std::fs::create_dir(&from).unwrap();
        std::fs::write(from.join("000001.sst"), b"sst").unwrap();
        // A file that cannot be read: the copy fails on it.
        std::os::unix::fs::symlink(root.path().join("gone"), from.join("MANIFEST-1")).unwrap();
        let to = root.path().join("store").join("0");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();

        let err = copy_then_rename(&from, &to).unwrap_err();

        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(!to.exists(), "no partial copy where the backend would open it");
        assert!(!sibling(&to, "incoming").exists(), "the partial copy is removed");
        assert!(from.join("000001.sst").is_file(), "the snapshot is kept");
    }
}
