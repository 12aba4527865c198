//! `cargo xtask crash --snapshots`: before some restarts the newest
//! snapshot of one partition in the shared snapshot store is damaged (a
//! byte flipped in one of its files, a file deleted, its manifest cut
//! short), as a bad disk, a half-finished copy or an operator's slip in the
//! bucket would, and the member's local state is wiped so that its restore
//! meets the damage. The restore must notice it (checksums, a manifest that
//! does not parse) and fall back to an older snapshot or a full replay;
//! the counts stay exact.
//!
//! Every change replaces the object (write a copy, rename it over): a
//! restore from a local-filesystem store hard-links verified files into the
//! partition, and damage to the bucket's copy must not reach a member's
//! local files through the shared inode.
//!
//! The kind, partition and file are drawn from the harness's seeded rng.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::rng::Rng;

/// One kind of damage to a snapshot in the store, as counted in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum SnapshotDamage {
    /// A byte flipped in one of the snapshot's files (same name, same size:
    /// only the checksum can tell).
    FlipFile,
    /// One of the snapshot's files deleted from the store.
    DeleteFile,
    /// The snapshot's manifest cut in half.
    TruncateManifest,
}

/// Every kind, in the order a kind that cannot be done falls back along.
const KINDS: [SnapshotDamage; 3] = [
    SnapshotDamage::FlipFile,
    SnapshotDamage::DeleteFile,
    SnapshotDamage::TruncateManifest,
];

impl SnapshotDamage {
    /// How the report names it.
    pub(super) fn describe(self) -> &'static str {
        match self {
            SnapshotDamage::FlipFile => "byte flipped in a snapshot file",
            SnapshotDamage::DeleteFile => "snapshot file deleted",
            SnapshotDamage::TruncateManifest => "snapshot manifest truncated",
        }
    }
}

/// What the snapshot damage did over a run: each kind's count.
#[derive(Default)]
pub(super) struct SnapshotDamageCounts(BTreeMap<SnapshotDamage, u32>);

impl SnapshotDamageCounts {
    /// The report lines, one per kind done.
    pub(super) fn lines(&self) -> Vec<String> {
        self.0.iter().map(|(k, n)| format!("  {}: {n}", k.describe())).collect()
    }

    /// How many damages were done.
    pub(super) fn total(&self) -> u32 {
        self.0.values().sum()
    }
}

/// The newest snapshot of one partition: its partition directory in the
/// store and its manifest's path.
struct Newest {
    partition_dir: PathBuf,
    manifest: PathBuf,
}

/// The newest snapshot of each partition under `store_dir` (a local
/// snapshot store: `<store>/<partition>/manifests/<id>.json`), sorted by
/// partition directory.
fn newest_snapshots(store_dir: &Path) -> Vec<Newest> {
    let mut out = Vec::new();
    for store in sorted_entries(store_dir) {
        for partition_dir in sorted_entries(&store) {
            let newest = sorted_entries(&partition_dir.join("manifests"))
                .into_iter()
                .rfind(|p| p.extension().is_some_and(|e| e == "json"));
            if let Some(manifest) = newest {
                out.push(Newest {
                    partition_dir,
                    manifest,
                });
            }
        }
    }
    out
}

/// The entries of `dir`, sorted (none if it cannot be read).
fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(r) => r.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(_) => return Vec::new(),
    };
    found.sort();
    found
}

/// Damages the newest snapshot of one partition in the local snapshot
/// store at `store_dir`, if there is one, with a kind drawn from `rng`;
/// counts it in `counts` and returns a line saying what was done.
pub(super) fn damage_newest(
    rng: &mut Rng,
    store_dir: &Path,
    counts: &mut SnapshotDamageCounts,
) -> Result<Option<String>, String> {
    let newest = newest_snapshots(store_dir);
    if newest.is_empty() {
        return Ok(None);
    }
    let target = &newest[rng.index(newest.len())];
    let start = rng.index(KINDS.len());
    for i in 0..KINDS.len() {
        let kind = KINDS[(start + i) % KINDS.len()];
        if let Some(what) = apply(rng, kind, target)? {
            *counts.0.entry(kind).or_default() += 1;
            return Ok(Some(format!("{}: {what}", kind.describe())));
        }
    }
    Ok(None)
}

/// Does `kind` to snapshot `target`; `None` if it cannot (an unreadable
/// manifest names no files, a file already gone, an empty file).
fn apply(rng: &mut Rng, kind: SnapshotDamage, target: &Newest) -> Result<Option<String>, String> {
    if kind == SnapshotDamage::TruncateManifest {
        let bytes = read(&target.manifest)?;
        if bytes.is_empty() {
            return Ok(None);
        }
        replace(&target.manifest, &bytes[..bytes.len() / 2])?;
        return Ok(Some(target.manifest.display().to_string()));
    }
    let Some(file) = pick_file(rng, target)? else {
        return Ok(None);
    };
    if kind == SnapshotDamage::DeleteFile {
        std::fs::remove_file(&file).map_err(|e| format!("deleting {}: {e}", file.display()))?;
        return Ok(Some(file.display().to_string()));
    }
    let mut bytes = read(&file)?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let at = rng.index(bytes.len());
    bytes[at] = !bytes[at];
    replace(&file, &bytes)?;
    Ok(Some(format!("byte {at} of {}", file.display())))
}

/// One of the files the manifest of `target` lists that is in the store
/// (`None` if the manifest does not parse or none is there).
fn pick_file(rng: &mut Rng, target: &Newest) -> Result<Option<PathBuf>, String> {
    let id = target
        .manifest
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    let Ok(manifest) = state_snapshot::Manifest::parse(&read(&target.manifest)?, &id) else {
        return Ok(None);
    };
    let present: Vec<PathBuf> = manifest
        .files
        .iter()
        .map(|f| {
            target
                .partition_dir
                .join("files")
                .join(format!("{}-{}", f.xxh3_128, f.size))
        })
        .filter(|p| p.is_file())
        .collect();
    Ok((!present.is_empty()).then(|| present[rng.index(present.len())].clone()))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Replaces `path` with a new file holding `bytes` (a new inode: hard
/// links to the old one keep the old bytes).
fn replace(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("damage-tmp");
    std::fs::write(&tmp, bytes).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("replacing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with two partitions' snapshots (manifests and files as a
    /// real upload lays them out).
    fn store(dir: &Path) -> PathBuf {
        let root = dir.join("store");
        for (p, ids) in [
            (0, &["00000000000000000005-0000000000001"][..]),
            (
                1,
                &[
                    "00000000000000000003-0000000000001",
                    "00000000000000000009-0000000000002",
                ][..],
            ),
        ] {
            let part = root.join("changelog").join(p.to_string());
            std::fs::create_dir_all(part.join("manifests")).unwrap();
            std::fs::create_dir_all(part.join("files")).unwrap();
            for id in ids {
                let sum = format!("{:032x}", p * 100 + id.len());
                let manifest = state_snapshot::Manifest {
                    format_version: state_snapshot::FORMAT_VERSION,
                    id: id.to_string(),
                    store: "changelog".into(),
                    partition: p as u32,
                    backend: "rocksdb".into(),
                    layout: "rocksdb-checkpoint".into(),
                    codec: None,
                    kind: None,
                    changelog_offset: Some(1),
                    created_unix_ms: 1,
                    files: vec![state_snapshot::ManifestFile {
                        path: "000001.sst".into(),
                        size: 4,
                        xxh3_128: sum.clone(),
                    }],
                };
                std::fs::write(part.join("manifests").join(format!("{id}.json")), manifest.to_json()).unwrap();
                std::fs::write(part.join("files").join(format!("{sum}-4")), b"abcd").unwrap();
            }
        }
        root
    }

    #[test]
    fn the_newest_snapshot_of_each_partition_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let root = store(dir.path());
        let newest = newest_snapshots(&root);
        assert_eq!(newest.len(), 2);
        assert!(newest[1].manifest.ends_with("00000000000000000009-0000000000002.json"));
        assert!(newest_snapshots(&dir.path().join("none")).is_empty());
    }

    #[test]
    fn every_kind_damages_and_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let root = store(dir.path());
        let target = newest_snapshots(&root).remove(0);
        let mut rng = Rng(7);
        let file = pick_file(&mut rng, &target).unwrap().unwrap();
        // A hard link (as a restore makes) keeps the old bytes.
        let linked = dir.path().join("linked");
        std::fs::hard_link(&file, &linked).unwrap();
        assert!(apply(&mut rng, SnapshotDamage::FlipFile, &target).unwrap().is_some());
        assert_ne!(std::fs::read(&file).unwrap(), b"abcd");
        assert_eq!(std::fs::read(&file).unwrap().len(), 4);
        assert_eq!(std::fs::read(&linked).unwrap(), b"abcd");
        assert!(apply(&mut rng, SnapshotDamage::DeleteFile, &target).unwrap().is_some());
        assert!(!file.exists());
        assert!(
            apply(&mut rng, SnapshotDamage::DeleteFile, &target).unwrap().is_none(),
            "nothing left to delete"
        );
        assert!(apply(&mut rng, SnapshotDamage::TruncateManifest, &target)
            .unwrap()
            .is_some());
        let id = target.manifest.file_stem().unwrap().to_str().unwrap();
        assert!(state_snapshot::Manifest::parse(&std::fs::read(&target.manifest).unwrap(), id).is_err());

        let mut counts = SnapshotDamageCounts::default();
        let mut rng = Rng(1);
        for _ in 0..6 {
            assert!(damage_newest(&mut rng, &root, &mut counts).unwrap().is_some());
        }
        assert_eq!(counts.total(), 6);
        assert!(damage_newest(&mut rng, &dir.path().join("none"), &mut counts)
            .unwrap()
            .is_none());
    }
}
