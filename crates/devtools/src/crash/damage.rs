//! `cargo xtask crash --corrupt`: before a killed member restarts, one of
//! its partitions' files is damaged on disk, as a bad disk, a half-copied
//! backup or an operator's slip would. The member must heal (quarantine the
//! partition, rebuild it from its changelog) and the counts stay exact.
//!
//! The kind of damage and the file are drawn from the harness's seeded rng,
//! so a seed replays them.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use state_core::{Backend, StoreLocation};

use crate::rng::Rng;

/// One kind of damage, as counted in the harness report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum DamageKind {
    /// Bytes flipped in a table file (RocksDB SST, fjall segment).
    FlipTable,
    /// Bytes flipped in the write-ahead log (RocksDB) or journal (fjall).
    FlipLog,
    /// A table file deleted.
    DeleteTable,
    /// The manifest (RocksDB MANIFEST, fjall version file) cut in half.
    TruncateManifest,
    /// RocksDB's CURRENT emptied.
    TruncateCurrent,
    /// The stored changelog offset set past the changelog's end (the topic
    /// was recreated, the disk restored from an old backup).
    OffsetPastEnd,
    /// The stored changelog offset overwritten with bytes of the wrong size.
    OffsetGarbled,
}

/// Every kind, in the order a kind whose file is missing falls back along.
const KINDS: [DamageKind; 7] = [
    DamageKind::FlipTable,
    DamageKind::FlipLog,
    DamageKind::DeleteTable,
    DamageKind::TruncateManifest,
    DamageKind::TruncateCurrent,
    DamageKind::OffsetPastEnd,
    DamageKind::OffsetGarbled,
];

impl DamageKind {
    /// The kind named `name` on the command line (`--corrupt-only`).
    pub(super) fn parse(name: &str) -> Result<DamageKind, String> {
        KINDS.into_iter().find(|k| k.name() == name).ok_or_else(|| {
            let names: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
            format!("unknown damage kind {name:?} ({})", names.join(", "))
        })
    }

    /// Its command-line name.
    fn name(self) -> &'static str {
        match self {
            DamageKind::FlipTable => "flip-table",
            DamageKind::FlipLog => "flip-log",
            DamageKind::DeleteTable => "delete-table",
            DamageKind::TruncateManifest => "truncate-manifest",
            DamageKind::TruncateCurrent => "truncate-current",
            DamageKind::OffsetPastEnd => "offset-past-end",
            DamageKind::OffsetGarbled => "offset-garbled",
        }
    }

    /// How the report names it.
    pub(super) fn describe(self) -> &'static str {
        match self {
            DamageKind::FlipTable => "bytes flipped in a table file",
            DamageKind::FlipLog => "bytes flipped in the write-ahead log / journal",
            DamageKind::DeleteTable => "table file deleted",
            DamageKind::TruncateManifest => "manifest truncated",
            DamageKind::TruncateCurrent => "CURRENT truncated",
            DamageKind::OffsetPastEnd => "stored changelog offset past the end",
            DamageKind::OffsetGarbled => "stored changelog offset garbled",
        }
    }
}

/// What `--corrupt` did over a run: each kind's count.
#[derive(Default)]
pub(super) struct DamageCounts(BTreeMap<DamageKind, u32>);

impl DamageCounts {
    /// The report lines, one per kind done.
    pub(super) fn lines(&self) -> Vec<String> {
        self.0.iter().map(|(k, n)| format!("  {}: {n}", k.describe())).collect()
    }

    /// How many damages were done.
    pub(super) fn total(&self) -> u32 {
        self.0.values().sum()
    }
}

/// Damages one partition of the store `store_dir` (`<state>/<group>/<store>/<stream>`)
/// of backend `backend` (`rocksdb` or `fjall`), if any partition is there,
/// with a kind drawn from `rng` (`only`: always that one); counts what was
/// done in `counts` and returns a line saying what.
pub(super) fn damage_one(
    rng: &mut Rng,
    store_dir: &Path,
    backend: &str,
    only: Option<DamageKind>,
    counts: &mut DamageCounts,
) -> Result<Option<String>, String> {
    let mut partitions: Vec<PathBuf> = match std::fs::read_dir(store_dir) {
        Ok(r) => r
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .collect(),
        Err(_) => return Ok(None),
    };
    partitions.sort();
    if partitions.is_empty() {
        return Ok(None);
    }
    let dir = &partitions[rng.index(partitions.len())];
    let drawn = KINDS[rng.index(KINDS.len())];
    let wanted = only.unwrap_or(drawn);
    // A kind whose file is not there (no table flushed yet, fjall has no
    // CURRENT) falls back to the next one that can be done.
    let start = KINDS.iter().position(|k| *k == wanted).unwrap_or(0);
    for i in 0..KINDS.len() {
        let kind = KINDS[(start + i) % KINDS.len()];
        if let Some(what) = apply(rng, kind, dir, backend)? {
            *counts.0.entry(kind).or_default() += 1;
            return Ok(Some(format!("{}: {what}", kind.describe())));
        }
    }
    Ok(None)
}

/// Does `kind` to partition directory `dir`; `None` if it has no file for it.
fn apply(rng: &mut Rng, kind: DamageKind, dir: &Path, backend: &str) -> Result<Option<String>, String> {
    let fjall = backend == "fjall";
    let pick = |rng: &mut Rng, want: &dyn Fn(&Path) -> bool| -> Option<PathBuf> {
        let found: Vec<PathBuf> = files(dir).into_iter().filter(|p| want(p)).collect();
        (!found.is_empty()).then(|| found[rng.index(found.len())].clone())
    };
    let name = |p: &Path| -> String {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let is_table = |p: &Path| {
        if fjall {
            p.components().any(|c| c.as_os_str() == "tables") && p.is_file()
        } else {
            name(p).ends_with(".sst")
        }
    };
    let is_log = |p: &Path| {
        if fjall {
            name(p).ends_with(".jnl")
        } else {
            name(p).ends_with(".log") && !name(p).starts_with("LOG")
        }
    };
    let is_manifest = |p: &Path| {
        let n = name(p);
        if fjall {
            n.starts_with('v') && n[1..].parse::<u32>().is_ok()
        } else {
            n.starts_with("MANIFEST-")
        }
    };
    match kind {
        DamageKind::FlipTable | DamageKind::FlipLog => {
            let want: &dyn Fn(&Path) -> bool = if kind == DamageKind::FlipTable {
                &is_table
            } else {
                &is_log
            };
            // Half the time a table's first quarter, where its data blocks
            // are: damage there is found by a read while processing rather
            // than by the open (which reads the index, filter and footer at
            // the end). Then the newest table of the data (not the
            // metadata, which the open reads), whose values the reads want.
            let head_only = kind == DamageKind::FlipTable && rng.below(2) == 0;
            let file = if head_only {
                newest_data_table(dir, &is_table, fjall)
            } else {
                pick(rng, want)
            };
            let Some(file) = file else { return Ok(None) };
            let flipped = flip_bytes(rng, &file, head_only)?;
            Ok((flipped > 0).then(|| format!("{flipped} bytes of {}", file.display())))
        }
        DamageKind::DeleteTable => {
            let Some(file) = pick(rng, &is_table) else {
                return Ok(None);
            };
            std::fs::remove_file(&file).map_err(|e| format!("deleting {}: {e}", file.display()))?;
            Ok(Some(file.display().to_string()))
        }
        DamageKind::TruncateManifest => {
            let Some(file) = pick(rng, &is_manifest) else {
                return Ok(None);
            };
            truncate(&file, |len| len / 2)?;
            Ok(Some(file.display().to_string()))
        }
        DamageKind::TruncateCurrent => {
            let file = dir.join("CURRENT");
            if fjall || !file.is_file() {
                return Ok(None);
            }
            truncate(&file, |_| 0)?;
            Ok(Some(file.display().to_string()))
        }
        DamageKind::OffsetPastEnd | DamageKind::OffsetGarbled => {
            let (Some(parent), Some(p)) = (dir.parent(), name(dir).parse::<u32>().ok()) else {
                return Ok(None);
            };
            let engine: std::sync::Arc<dyn Backend> = if fjall {
                state_fjall::FjallBackend::shared(Default::default())
            } else {
                state_manager::RocksDbBackend::shared(Default::default())
            };
            // The partition may already be unreadable (an earlier damage
            // its member has not healed yet): then there is nothing to do.
            let Ok(part) = engine.open_partition(&StoreLocation::new("counts", parent), p) else {
                return Ok(None);
            };
            let result = if kind == DamageKind::OffsetPastEnd {
                part.write_changelog_offset(1_000_000_000)
            } else {
                part.put(state_core::cf::METADATA, state_core::cf::CHANGELOG_OFFSET_KEY, b"bad")
            };
            result
                .and_then(|()| part.persist())
                .map_err(|e| format!("damaging the offset of {}: {e}", dir.display()))?;
            Ok(Some(dir.display().to_string()))
        }
    }
}

/// The newest table file under partition `dir` that holds data rather than
/// metadata: RocksDB's name their column family in their properties
/// (`__metadata__`), fjall keeps its own in keyspace 0.
fn newest_data_table(dir: &Path, is_table: &dyn Fn(&Path) -> bool, fjall: bool) -> Option<PathBuf> {
    let metadata = state_core::cf::METADATA.as_bytes();
    files(dir)
        .into_iter()
        .filter(|p| is_table(p))
        .filter(|p| {
            if fjall {
                !p.components().any(|c| c.as_os_str() == "0")
            } else {
                std::fs::read(p).is_ok_and(|b| !b.windows(metadata.len()).any(|w| w == metadata))
            }
        })
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

/// Every file under `dir`, recursively, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(read) = std::fs::read_dir(&d) else { continue };
        for e in read.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Flips (inverts) 1 to 8 bytes of `file` at random places (in its first
/// quarter if `head_only`); returns how many (0 for an empty file).
fn flip_bytes(rng: &mut Rng, file: &Path, head_only: bool) -> Result<u64, String> {
    let err = |e: std::io::Error| format!("damaging {}: {e}", file.display());
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .map_err(err)?;
    let len = f.metadata().map_err(err)?.len();
    if len == 0 {
        return Ok(0);
    }
    let n = 1 + rng.below(8);
    let span = if head_only { (len / 4).max(1) } else { len };
    for _ in 0..n {
        let at = rng.below(span);
        let mut b = [0u8];
        f.seek(SeekFrom::Start(at)).map_err(err)?;
        f.read_exact(&mut b).map_err(err)?;
        f.seek(SeekFrom::Start(at)).map_err(err)?;
        f.write_all(&[!b[0]]).map_err(err)?;
    }
    f.sync_all().map_err(err)?;
    Ok(n)
}

/// Cuts `file` to `to(len)` bytes.
fn truncate(file: &Path, to: impl Fn(u64) -> u64) -> Result<(), String> {
    let err = |e: std::io::Error| format!("truncating {}: {e}", file.display());
    let f = std::fs::OpenOptions::new().write(true).open(file).map_err(err)?;
    let len = f.metadata().map_err(err)?.len();
    f.set_len(to(len)).map_err(err)
}
