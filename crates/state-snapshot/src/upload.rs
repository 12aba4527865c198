//! Taking a snapshot and uploading it: only the files the store does not
//! hold yet (content-addressed), then the manifest.
//!
//! Order, so that retention never deletes a file a manifest being written
//! references: (1) hash every local file; (2) write the pending manifest
//! (retention counts its files as referenced while it is younger than the
//! grace period); (3) list the partition's files once and upload the
//! missing ones; (4) list again, re-uploading anything that vanished;
//! (5) unless 90% of the grace period has passed, write the manifest;
//! (6) delete the pending manifest.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path as FsPath;
use std::time::Instant;

use object_store::path::Path;
use object_store::{ObjectStoreExt, WriteMultipart};
use state_core::{LocalSnapshot, StoreKind, StorePartition};

use crate::checksum::{Checksum, Hasher};
use crate::error::{Result, SnapshotError};
use crate::manifest::{Manifest, ManifestFile, FORMAT_VERSION};
use crate::progress::Progress;
use crate::scope::{file_object_name, SnapshotScope};
use crate::store::{now_unix_ms, object_name, SnapshotStore};

/// Files up to this size are uploaded in one request; larger ones in
/// parts of [`PART_SIZE`].
const SINGLE_PUT_MAX: u64 = 16 << 20;
const PART_SIZE: usize = 8 << 20;
/// Parts in flight at once for one file.
const PARTS_IN_FLIGHT: usize = 4;

/// What an upload did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uploaded {
    /// The snapshot's manifest, as written.
    pub manifest: Manifest,
    /// Files uploaded (the store did not hold them).
    pub files_uploaded: usize,
    /// Their bytes.
    pub bytes_uploaded: u64,
    /// Files the store already held (shared with older snapshots).
    pub files_reused: usize,
    /// Their bytes.
    pub bytes_reused: u64,
}

/// A local file of a snapshot, hashed.
struct LocalFile {
    relative: String,
    path: std::path::PathBuf,
    sum: Checksum,
}

impl SnapshotStore {
    /// Takes a snapshot of `partition` in a new directory under `scratch`
    /// (which must exist, on the partition's filesystem for RocksDB's hard
    /// links), uploads it as a snapshot of `scope`, and deletes the local
    /// copy. The codec is the one the partition records; the kind is
    /// `kind`, else the one the partition records.
    /// [`SnapshotError::NotSupported`] if the backend takes no snapshots.
    pub fn create(
        &self,
        partition: &dyn StorePartition,
        backend: &'static str,
        scope: &SnapshotScope,
        kind: Option<StoreKind>,
        scratch: &FsPath,
        progress: &dyn Progress,
    ) -> Result<Uploaded> {
        let dir = scratch.join(format!("snapshot-{}-{}", std::process::id(), now_unix_ms()));
        let codec = match state_core::recorded_codec(partition)? {
            Some(Ok(codec)) => Some(codec.name().to_owned()),
            Some(Err(unknown)) => Some(unknown),
            None => None,
        };
        let kind = match kind {
            Some(kind) => Some(kind.as_str().to_owned()),
            None => partition
                .get(state_core::cf::METADATA, state_core::cf::STORE_KIND_KEY)?
                .map(|k| String::from_utf8_lossy(&k).into_owned()),
        };
        let taken = partition.snapshot(&dir);
        let result = match taken {
            Ok(Some(local)) => self.upload(&local, scope, codec, kind, progress),
            Ok(None) => Err(SnapshotError::NotSupported { backend }),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = state_core::remove_store_dir(&dir) {
            tracing::warn!(path = %dir.display(), "cannot delete a local snapshot after its upload: {e}");
        }
        result
    }

    /// Uploads the local snapshot `local` as a snapshot of `scope`, taken
    /// from a partition with value codec `codec` and store kind `kind`
    /// (their on-disk names, recorded in the manifest): the files the
    /// store does not hold yet, then the manifest. On an error
    /// no manifest was written (the files already uploaded are kept for
    /// the next attempt, or deleted by retention).
    pub fn upload(
        &self,
        local: &LocalSnapshot,
        scope: &SnapshotScope,
        codec: Option<String>,
        kind: Option<String>,
        progress: &dyn Progress,
    ) -> Result<Uploaded> {
        let started = Instant::now();
        let prefix = &self.conn.prefix;
        let files = hash_dir(local.dir(), progress)?;
        let created_unix_ms = now_unix_ms();
        let id = Manifest::make_id(local.changelog_offset(), created_unix_ms);
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            id: id.clone(),
            store: scope.store().to_owned(),
            partition: scope.partition(),
            backend: local.backend().to_owned(),
            layout: local.layout().to_owned(),
            codec,
            kind,
            changelog_offset: local.changelog_offset(),
            created_unix_ms,
            files: files
                .iter()
                .map(|f| ManifestFile {
                    path: f.relative.clone(),
                    size: f.sum.size,
                    xxh3_128: f.sum.hex(),
                })
                .collect(),
        };
        let pending = scope.pending_manifest(prefix, &id);
        self.put_bytes(&pending, manifest.to_json())?;
        let result = self.upload_files(scope, &id, &files, started, progress);
        let result = result.and_then(|counts| {
            crate::crash_point::reached(crate::crash_point::UPLOAD_BEFORE_MANIFEST);
            self.put_bytes(&scope.manifest(prefix, &id), manifest.to_json())?;
            Ok(counts)
        });
        if let Err(e) = self.delete(&pending) {
            tracing::warn!("cannot delete the pending manifest of snapshot {id} (retention removes it): {e}");
        }
        let (files_uploaded, bytes_uploaded, files_reused, bytes_reused) = result?;
        tracing::info!(
            snapshot = %id,
            store = scope.store(),
            partition = scope.partition(),
            files_uploaded,
            bytes_uploaded,
            files_reused,
            bytes_reused,
            "snapshot uploaded"
        );
        Ok(Uploaded {
            manifest,
            files_uploaded,
            bytes_uploaded,
            files_reused,
            bytes_reused,
        })
    }

    /// Steps (3)-(5) of the module's order; returns (files uploaded, their
    /// bytes, files reused, their bytes).
    fn upload_files(
        &self,
        scope: &SnapshotScope,
        id: &str,
        files: &[LocalFile],
        started: Instant,
        progress: &dyn Progress,
    ) -> Result<(usize, u64, usize, u64)> {
        let prefix = &self.conn.prefix;
        let held = self.held_files(scope)?;
        let mut unique: HashMap<String, &LocalFile> = HashMap::new();
        for f in files {
            unique.entry(file_object_name(&f.sum)).or_insert(f);
        }
        let (missing, reused): (Vec<&LocalFile>, Vec<&LocalFile>) = unique
            .into_values()
            .partition(|f| !held.contains_key(&file_object_name(&f.sum)));
        progress.begin("uploading", missing.iter().map(|f| f.sum.size).sum());
        for f in &missing {
            self.upload_file(&f.path, &scope.file(prefix, &f.sum), f.sum, progress)?;
            crate::crash_point::reached(crate::crash_point::UPLOAD_FILE);
        }
        progress.finish();
        // A file this snapshot reuses may have been deleted by a retention
        // that ran meanwhile: put it back.
        let held = self.held_files(scope)?;
        for f in unique_files(files) {
            if !held.contains_key(&file_object_name(&f.sum)) {
                tracing::warn!(snapshot = id, file = %f.relative, "a reused file vanished from the store; uploading it again");
                self.upload_file(&f.path, &scope.file(prefix, &f.sum), f.sum, &crate::NoProgress)?;
            }
        }
        let deadline = self.retention.grace.mul_f64(0.9);
        if started.elapsed() > deadline {
            return Err(SnapshotError::UploadTooSlow {
                snapshot: id.to_owned(),
                elapsed_s: started.elapsed().as_secs(),
                deadline_s: deadline.as_secs(),
            });
        }
        Ok((
            missing.len(),
            missing.iter().map(|f| f.sum.size).sum(),
            reused.len(),
            reused.iter().map(|f| f.sum.size).sum(),
        ))
    }

    /// The partition's file objects, by name, with their sizes.
    fn held_files(&self, scope: &SnapshotScope) -> Result<HashMap<String, u64>> {
        Ok(self
            .list_objects(&scope.files(&self.conn.prefix))?
            .into_iter()
            .map(|meta| (object_name(&meta.location), meta.size))
            .collect())
    }

    /// Uploads the local file `path` as `object`, checking on the way that
    /// its bytes still hash to `sum` (a snapshot's files never change; if
    /// one did, the upload is refused rather than stored under a wrong
    /// name).
    fn upload_file(&self, path: &FsPath, object: &Path, sum: Checksum, progress: &dyn Progress) -> Result<()> {
        let mut file = std::fs::File::open(path).map_err(SnapshotError::io(path))?;
        let mut hasher = Hasher::new();
        let changed = || {
            SnapshotError::Target(format!(
                "{} changed while it was uploaded; a local snapshot must not be modified",
                path.display()
            ))
        };
        if sum.size <= SINGLE_PUT_MAX {
            let mut bytes = Vec::with_capacity(sum.size as usize);
            file.read_to_end(&mut bytes).map_err(SnapshotError::io(path))?;
            hasher.update(&bytes);
            if hasher.finish() != sum {
                return Err(changed());
            }
            let len = bytes.len() as u64;
            self.put_bytes(object, bytes)?;
            progress.advance(len);
            return Ok(());
        }
        self.block_on(async {
            let upload = self
                .conn
                .store
                .put_multipart(object)
                .await
                .map_err(|e| self.failed("starting the upload of", object, e))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let mut buf = vec![0u8; PART_SIZE];
            loop {
                let n = match file.read(&mut buf) {
                    Ok(n) => n,
                    Err(source) => {
                        let _ = writer.abort().await;
                        return Err(SnapshotError::Io {
                            path: path.to_owned(),
                            source,
                        });
                    }
                };
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| self.failed("uploading", object, e))?;
                writer.write(&buf[..n]);
                progress.advance(n as u64);
            }
            if hasher.finish() != sum {
                let _ = writer.abort().await;
                return Err(changed());
            }
            writer
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| self.failed("finishing the upload of", object, e))
        })
    }
}

/// Each distinct file once.
fn unique_files(files: &[LocalFile]) -> impl Iterator<Item = &LocalFile> {
    let mut seen = std::collections::HashSet::new();
    files.iter().filter(move |f| seen.insert(f.sum))
}

/// Every file under `dir` (recursively), hashed, in path order.
fn hash_dir(dir: &FsPath, progress: &dyn Progress) -> Result<Vec<LocalFile>> {
    let mut found = Vec::new();
    walk(dir, "", &mut found)?;
    found.sort();
    let total = found
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    progress.begin("hashing", total);
    let mut files = Vec::with_capacity(found.len());
    for (relative, path) in found {
        let sum = Checksum::of_file(&path)?;
        progress.advance(sum.size);
        files.push(LocalFile { relative, path, sum });
    }
    progress.finish();
    Ok(files)
}

fn walk(dir: &FsPath, relative: &str, out: &mut Vec<(String, std::path::PathBuf)>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(SnapshotError::io(dir))?;
    for entry in entries {
        let entry = entry.map_err(SnapshotError::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(SnapshotError::Target(format!(
                "{}: a file name that is not UTF-8 cannot be named in a manifest",
                entry.path().display()
            )));
        };
        let rel = if relative.is_empty() {
            name.to_owned()
        } else {
            format!("{relative}/{name}")
        };
        let kind = entry.file_type().map_err(SnapshotError::io(entry.path()))?;
        if kind.is_dir() {
            walk(&entry.path(), &rel, out)?;
        } else if kind.is_file() {
            out.push((rel, entry.path()));
        } else {
            return Err(SnapshotError::Target(format!(
                "{}: a snapshot holds only files and directories",
                entry.path().display()
            )));
        }
    }
    Ok(())
}
