//! Downloading a snapshot with every file's checksum checked, restoring
//! it as a partition, and verifying one in place.

use std::io::{Read, Write};
use std::path::Path as FsPath;
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::{GetResultPayload, ObjectStoreExt};
use state_core::{Backend, StoreLocation, StorePartition};

use crate::checksum::{Checksum, Hasher};
use crate::error::{Result, SnapshotError};
use crate::manifest::{Manifest, ManifestFile};
use crate::progress::{CancelOnly, Progress};
use crate::scope::SnapshotScope;
use crate::store::SnapshotStore;

/// Bytes read at a time from a file of a local-filesystem store.
const LOCAL_READ_CHUNK: usize = 1 << 20;

/// What [`SnapshotStore::verify`] found.
#[derive(Debug)]
pub struct Verified {
    /// The snapshot's manifest.
    pub manifest: Manifest,
    /// Every damaged or missing file ([`SnapshotError::Corrupt`]), or the
    /// store's failure to read it; empty: the snapshot is intact.
    pub problems: Vec<SnapshotError>,
}

/// True for the files a restore may share with a local store by a hard
/// link instead of a copy: those the backend never changes in place.
/// RocksDB writes an SST or blob file once and then only reads or deletes
/// it (a new MANIFEST, OPTIONS and CURRENT are written at open; a WAL may
/// be appended to), so its SST and blob files qualify. fjall's journal is
/// appended to, and another backend's files are not known: they are copied.
fn linkable(manifest: &Manifest, file: &ManifestFile) -> bool {
    manifest.backend == "rocksdb" && (file.path.ends_with(".sst") || file.path.ends_with(".blob"))
}

impl SnapshotStore {
    /// Downloads snapshot `id` of `scope` into `dir` (which must not
    /// exist, or be an empty directory), checking every file's size and
    /// checksum against the manifest (from a `file://` store on the same
    /// filesystem, RocksDB's SST and blob files are hard-linked, after the
    /// same check, instead of copied: see `linkable`). On success `dir`
    /// holds the files the
    /// backend named in the manifest opens; on an error `dir` is deleted
    /// (it is never left half-written for someone to open). Cancelled
    /// through `progress` ([`Progress::cancelled`], asked before each file
    /// and between chunks): [`SnapshotError::Cancelled`], `dir` deleted.
    pub fn download(&self, scope: &SnapshotScope, id: &str, dir: &FsPath, progress: &dyn Progress) -> Result<Manifest> {
        let manifest = self.manifest(scope, id)?;
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(SnapshotError::Target(format!(
                        "cannot download snapshot {id} into {}: the directory is not empty",
                        dir.display()
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => state_core::create_private_dir(dir)?,
            Err(e) => return Err(SnapshotError::io(dir)(e)),
        }
        let result = self.download_files(scope, &manifest, dir, progress);
        if result.is_err() {
            if let Err(e) = state_core::remove_store_dir(dir) {
                tracing::warn!(path = %dir.display(), "cannot delete a failed snapshot download: {e}");
            }
        }
        result.map(|()| manifest)
    }

    fn download_files(
        &self,
        scope: &SnapshotScope,
        manifest: &Manifest,
        dir: &FsPath,
        progress: &dyn Progress,
    ) -> Result<()> {
        progress.begin("downloading", manifest.total_bytes());
        for file in &manifest.files {
            if progress.cancelled() {
                return Err(cancelled(manifest));
            }
            let target = dir.join(&file.path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(SnapshotError::io(parent))?;
            }
            let fetched = self.fetch_file(scope, manifest, file, &target, progress);
            if let Err(e @ SnapshotError::Corrupt { .. }) = &fetched {
                self.discard_damaged(scope, manifest, file, e);
            }
            fetched?;
            crate::crash_point::reached(crate::crash_point::DOWNLOAD_FILE);
        }
        progress.finish();
        Ok(())
    }

    /// Puts `file` of `manifest` at `target`: hard-linked where
    /// [`link_verified`](Self::link_verified) can, else copied; its size
    /// and checksum checked either way.
    fn fetch_file(
        &self,
        scope: &SnapshotScope,
        manifest: &Manifest,
        file: &ManifestFile,
        target: &FsPath,
        progress: &dyn Progress,
    ) -> Result<()> {
        if self.conn.local && linkable(manifest, file) && self.link_verified(scope, manifest, file, target, progress)? {
            progress.advance(file.size);
            return Ok(());
        }
        let mut out = std::fs::File::create(target).map_err(SnapshotError::io(target))?;
        self.stream_file(scope, manifest, file, progress, |bytes| {
            out.write_all(bytes).map_err(SnapshotError::io(target))
        })?;
        out.sync_all().map_err(SnapshotError::io(target))
    }

    /// Deletes the object of `file` after a download found its bytes
    /// wrong (`found`), so that the next snapshot holding the same file
    /// uploads it again: objects are named by their checksum, so an upload
    /// reuses one by its name, and a damaged object would otherwise spoil
    /// every later snapshot that shares it. The snapshots naming it lose
    /// nothing they had (each was unusable already, and is skipped as one
    /// with a missing file). Best effort: a failure is logged. `verify`
    /// never deletes (it only reports).
    fn discard_damaged(&self, scope: &SnapshotScope, manifest: &Manifest, file: &ManifestFile, found: &SnapshotError) {
        let Some(sum) = file.checksum() else { return };
        let object = scope.file(&self.conn.prefix, &sum);
        match self.block_on(self.conn.store.delete(&object)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => tracing::warn!(
                snapshot = %manifest.id,
                object = %object,
                "deleted a damaged snapshot object ({found}); the next snapshot uploads it again"
            ),
            Err(e) => tracing::warn!(
                snapshot = %manifest.id,
                "cannot delete a damaged snapshot object: {}",
                self.failed("deleting", &object, e)
            ),
        }
    }

    /// On a local store: checks `file`'s size and checksum where the store
    /// keeps it, then hard-links it to `target` instead of copying it.
    /// False (nothing written) where a link cannot be made (another
    /// filesystem, say): the caller copies.
    fn link_verified(
        &self,
        scope: &SnapshotScope,
        manifest: &Manifest,
        file: &ManifestFile,
        target: &FsPath,
        progress: &dyn Progress,
    ) -> Result<bool> {
        let mut source = None;
        self.read_file(scope, manifest, file, &CancelOnly(progress), |_| Ok(()), &mut source)?;
        let Some(source) = source else { return Ok(false) };
        match std::fs::hard_link(&source, target) {
            Ok(()) => Ok(true),
            Err(e) => {
                tracing::debug!(
                    from = %source.display(),
                    to = %target.display(),
                    "cannot hard-link a snapshot file, copying it: {e}"
                );
                Ok(false)
            }
        }
    }

    /// Reads `file` of `manifest` from the store, handing its bytes to
    /// `sink`, and checks its size and checksum.
    fn stream_file(
        &self,
        scope: &SnapshotScope,
        manifest: &Manifest,
        file: &ManifestFile,
        progress: &dyn Progress,
        sink: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        self.read_file(scope, manifest, file, progress, sink, &mut None)
    }

    /// [`stream_file`](Self::stream_file), also saying where a local store
    /// keeps the file (`local_path`).
    fn read_file(
        &self,
        scope: &SnapshotScope,
        manifest: &Manifest,
        file: &ManifestFile,
        progress: &dyn Progress,
        mut sink: impl FnMut(&[u8]) -> Result<()>,
        local_path: &mut Option<std::path::PathBuf>,
    ) -> Result<()> {
        let corrupt = |reason: String| SnapshotError::Corrupt {
            snapshot: manifest.id.clone(),
            file: file.path.clone(),
            reason,
        };
        // Manifest::parse checked every checksum.
        let expected = file
            .checksum()
            .ok_or_else(|| corrupt("the manifest holds no valid checksum".into()))?;
        let object = scope.file(&self.conn.prefix, &expected);
        let found = self.block_on(async {
            let got = match self.conn.store.get(&object).await {
                Ok(got) => got,
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(corrupt(format!("object {object} is missing from the store")))
                }
                Err(e) => return Err(self.failed("reading", &object, e)),
            };
            let mut hasher = Hasher::new();
            let mut take = |chunk: &[u8]| -> Result<()> {
                if progress.cancelled() {
                    return Err(cancelled(manifest));
                }
                hasher.update(chunk);
                if hasher.finish().size > expected.size {
                    return Err(corrupt(format!("longer than the {} bytes recorded", expected.size)));
                }
                sink(chunk)?;
                progress.advance(chunk.len() as u64);
                Ok(())
            };
            match got.payload {
                // The local filesystem hands over the open file: read it in
                // large chunks (object_store's stream reads 8 KiB per
                // blocking task).
                GetResultPayload::File(mut file, path) => {
                    *local_path = Some(path.clone());
                    let mut buf = vec![0u8; LOCAL_READ_CHUNK];
                    loop {
                        let n = file.read(&mut buf).map_err(SnapshotError::io(&path))?;
                        if n == 0 {
                            break;
                        }
                        take(&buf[..n])?;
                    }
                }
                GetResultPayload::Stream(mut stream) => {
                    while let Some(chunk) = stream.next().await {
                        take(&chunk.map_err(|e| self.failed("reading", &object, e))?)?;
                    }
                }
            }
            Ok(hasher.finish())
        })?;
        check(&expected, &found).map_err(corrupt)
    }

    /// Downloads snapshot `id` of `scope` into `scratch` (see
    /// [`download`](Self::download)) and opens it with `backend` as
    /// partition `scope.partition()` of `location`, in place of that partition's
    /// data ([`Backend::restore_snapshot`]; the partition must not be
    /// open). Refused if the snapshot is another backend's (nothing
    /// touched), if a file is damaged or missing (the partition's previous
    /// data untouched), or if the opened data does not hold the changelog
    /// offset the manifest records ([`SnapshotError::OffsetMismatch`]: the
    /// partition's directory then holds the refused snapshot, and the
    /// caller destroys it or replays the changelog over it from its stored
    /// offset, as after any restore). Cancelled through `progress` during
    /// the download or before the install ([`SnapshotError::Cancelled`]):
    /// `scratch` is deleted and the partition's data untouched; the
    /// install itself (a rename of the complete download, then the open)
    /// is not interrupted.
    pub fn restore(
        &self,
        scope: &SnapshotScope,
        id: &str,
        backend: &dyn Backend,
        location: &StoreLocation,
        scratch: &FsPath,
        progress: &dyn Progress,
    ) -> Result<(Manifest, Arc<dyn StorePartition>)> {
        let name = backend.info().name;
        let manifest = self.manifest(scope, id)?;
        if manifest.backend != name {
            return Err(SnapshotError::Target(format!(
                "snapshot {id} was taken by the {} backend; the {name} backend cannot open it",
                manifest.backend
            )));
        }
        let manifest = self.download(scope, id, scratch, progress)?;
        if progress.cancelled() {
            let _ = state_core::remove_store_dir(scratch);
            return Err(cancelled(&manifest));
        }
        let opened = match backend.restore_snapshot(scratch, location, scope.partition()) {
            Ok(Some(opened)) => opened,
            Ok(None) => {
                let _ = state_core::remove_store_dir(scratch);
                return Err(SnapshotError::NotSupported { backend: name });
            }
            Err(e) => {
                let _ = state_core::remove_store_dir(scratch);
                return Err(e.into());
            }
        };
        let found = opened.changelog_offset()?;
        if found != manifest.changelog_offset {
            return Err(SnapshotError::OffsetMismatch {
                snapshot: id.to_owned(),
                recorded: manifest.changelog_offset,
                found,
            });
        }
        Ok((manifest, opened))
    }

    /// Reads every file of snapshot `id` and checks its size and checksum,
    /// writing nothing locally. An unreadable manifest is an `Err`; damaged
    /// or missing files are listed in [`Verified::problems`]; cancelled
    /// through `progress`: [`SnapshotError::Cancelled`].
    pub fn verify(&self, scope: &SnapshotScope, id: &str, progress: &dyn Progress) -> Result<Verified> {
        let manifest = self.manifest(scope, id)?;
        let mut problems = Vec::new();
        progress.begin("verifying", manifest.total_bytes());
        for file in &manifest.files {
            if progress.cancelled() {
                return Err(cancelled(&manifest));
            }
            match self.stream_file(scope, &manifest, file, progress, |_| Ok(())) {
                Ok(()) => {}
                Err(e) if e.is_cancelled() => return Err(e),
                Err(e) => problems.push(e),
            }
        }
        progress.finish();
        Ok(Verified { manifest, problems })
    }
}

/// The error of a download or verification of `manifest`'s snapshot
/// that its caller cancelled.
fn cancelled(manifest: &Manifest) -> SnapshotError {
    SnapshotError::Cancelled {
        snapshot: manifest.id.clone(),
    }
}

/// `Err` with what differs if `found` is not `expected`.
fn check(expected: &Checksum, found: &Checksum) -> std::result::Result<(), String> {
    if found.size != expected.size {
        return Err(format!("{} bytes, the manifest records {}", found.size, expected.size));
    }
    if found.xxh3_128 != expected.xxh3_128 {
        return Err(format!(
            "checksum {}, the manifest records {}",
            found.hex(),
            expected.hex()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! A damaged snapshot is never restored: a corrupt file, a missing
    //! file, an unreadable manifest are each detected by download and
    //! verify.

    use std::path::{Path, PathBuf};

    use state_core::MemoryBackend;

    use super::*;
    use crate::testing::{fill, local_store, open};
    use crate::{NoProgress, Retention, Uploaded};

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
        assert!(!file.exists(), "the download deleted the damaged object");
        // Cut short (put back as such: the store may have removed its
        // emptied directory too).
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &bytes[..mid]).unwrap();
        let err = store
            .download(&scope, &up.manifest.id, &target, &NoProgress)
            .unwrap_err();
        assert!(err.to_string().contains("bytes"), "{err}");
    }

    #[test]
    fn a_damaged_object_is_dropped_by_a_download_and_uploaded_again_by_the_next_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = local_store(dir.path(), Retention::default());
        let scope = SnapshotScope::new("counts", 0).unwrap();
        let backend = MemoryBackend::shared();
        let (_, p) = open(&backend, dir.path());
        fill(&*p, 0, 500, 1, 9);
        let first = store
            .create(&*p, "memory", &scope, None, dir.path(), &NoProgress)
            .unwrap();
        let files = dir.path().join("store/counts/0/files");
        let object = std::fs::read_dir(&files).unwrap().next().unwrap().unwrap().path();
        let mut bytes = std::fs::read(&object).unwrap();
        bytes[0] ^= 0xff;
        std::fs::write(&object, &bytes).unwrap();
        let target = dir.path().join("download");
        let err = store
            .download(&scope, &first.manifest.id, &target, &NoProgress)
            .unwrap_err();
        assert!(matches!(err, SnapshotError::Corrupt { .. }), "{err}");
        assert!(!object.exists(), "the damaged object is deleted");
        // The same data again: its file is uploaded, not reused by name.
        let second = store
            .create(&*p, "memory", &scope, None, dir.path(), &NoProgress)
            .unwrap();
        assert_eq!(second.files_reused, 0, "{second:?}");
        assert!(second.files_uploaded >= 1, "{second:?}");
        store
            .download(&scope, &second.manifest.id, &target, &NoProgress)
            .unwrap();
        // Verify only reports: it deletes nothing.
        let again = std::fs::read_dir(&files).unwrap().next().unwrap().unwrap().path();
        let mut bytes = std::fs::read(&again).unwrap();
        bytes[0] ^= 0xff;
        std::fs::write(&again, &bytes).unwrap();
        let verified = store.verify(&scope, &second.manifest.id, &NoProgress).unwrap();
        assert_eq!(verified.problems.len(), 1);
        assert!(again.exists(), "verify deletes nothing");
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

    /// Cancels once `after` bytes were downloaded.
    struct CancelAfter {
        after: u64,
        done: std::cell::Cell<u64>,
    }

    impl Progress for CancelAfter {
        fn advance(&self, bytes: u64) {
            self.done.set(self.done.get() + bytes);
        }

        fn cancelled(&self) -> bool {
            self.done.get() >= self.after
        }
    }

    /// A restore cancelled half-way through its download (mid-file: a
    /// fjall export holds a 64 MiB journal, read in 1 MiB chunks) stops
    /// there, deletes its scratch directory and installs nothing; a restore
    /// afterwards gets the whole snapshot.
    #[test]
    fn a_cancelled_restore_installs_nothing_and_the_next_one_restores() {
        use state_fjall::{FjallBackend, FjallOptions};

        let dir = tempfile::tempdir().unwrap();
        let store = local_store(dir.path(), Retention::default());
        let scope = SnapshotScope::new("counts", 0).unwrap();
        let backend = FjallBackend::shared(FjallOptions::default());
        let source = StoreLocation::new("counts", dir.path().join("source"));
        let p = backend.open_partition(&source, 0).unwrap();
        fill(&*p, 0, 500, 1, 9);
        let up = store
            .create(&*p, "fjall", &scope, None, dir.path(), &NoProgress)
            .unwrap();
        drop(p);
        let total = up.manifest.total_bytes();
        assert!(total > 4 * LOCAL_READ_CHUNK as u64, "several chunks: {total} bytes");

        let target = StoreLocation::new("counts", dir.path().join("target"));
        let scratch = dir.path().join("scratch");
        let progress = CancelAfter {
            after: total / 2,
            done: std::cell::Cell::new(0),
        };
        let err = match store.restore(&scope, &up.manifest.id, &*backend, &target, &scratch, &progress) {
            Ok(_) => panic!("a cancelled restore succeeded"),
            Err(e) => e,
        };
        assert!(err.is_cancelled(), "{err}");
        assert!(err.to_string().contains("nothing was installed"), "{err}");
        assert!(
            progress.done.get() < progress.after + LOCAL_READ_CHUNK as u64,
            "stopped within a chunk of the cancellation, not at the end of a file or the download: \
             {} of {total} bytes, cancelled at {}",
            progress.done.get(),
            progress.after
        );
        assert!(!scratch.exists(), "the partial download is deleted");
        assert!(!target.partition_dir(0).exists(), "nothing installed");

        let (manifest, opened) = store
            .restore(&scope, &up.manifest.id, &*backend, &target, &scratch, &NoProgress)
            .unwrap();
        assert_eq!(manifest.changelog_offset, Some(9));
        assert_eq!(opened.changelog_offset().unwrap(), Some(9));
        for i in [0, 250, 499] {
            assert_eq!(
                opened.get(state_core::cf::DEFAULT, &crate::testing::key(i)).unwrap(),
                Some(crate::testing::value(i, 1))
            );
        }
        assert!(!scratch.exists());
    }

    /// A verification cancelled before its first file stops with
    /// [`SnapshotError::Cancelled`] (not a list of unread files).
    #[test]
    fn a_cancelled_verification_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (store, scope, up, _) = snapshot(dir.path());
        let progress = CancelAfter {
            after: 0,
            done: std::cell::Cell::new(0),
        };
        let err = store.verify(&scope, &up.manifest.id, &progress).unwrap_err();
        assert!(err.is_cancelled(), "{err}");
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
}
