//! `statectl inspect`: what a partition holds, at a glance.

use std::path::{Path, PathBuf};

use serde_json::json;
use state_core::ttl::{self, StampEvidence};
use state_core::{cf, keys, Direction};

use crate::corruption;
use crate::engine::Engine;
use crate::error::{CliError, Result};
use crate::partition_dir::PartitionDir;

/// One column family of an inspected partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnFamilyInfo {
    /// Column family name.
    pub name: String,
    /// RocksDB's estimate of its key count (exact for small, unflushed data;
    /// an estimate after compactions). `None` on fjall, which keeps no
    /// such estimate.
    pub approximate_keys: Option<u64>,
}

/// What [`inspect`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// Partition directory.
    pub path: PathBuf,
    /// The engine of the partition.
    pub engine: Engine,
    /// Column families, sorted by name.
    pub column_families: Vec<ColumnFamilyInfo>,
    /// Bytes of all files in the directory and below.
    pub size_bytes: u64,
    /// Stored changelog offset (last changelog offset the partition includes).
    pub changelog_offset: Option<u64>,
    /// The value codec recorded in the partition (`__value_codec__`), if any.
    /// quixstreams records none (its default serializer is JSON).
    pub codec: Option<String>,
    /// The store kind recorded in the partition, if any.
    pub store_kind: Option<String>,
    /// quixstreams' per-write TTL state.
    pub ttl: TtlInfo,
    /// With [`Checksums::Verify`]: every key of every column family was
    /// read and every block holding them passed its checksum; this many
    /// keys. `None`: not verified.
    pub keys_verified: Option<u64>,
}

/// What a partition says about quixstreams' per-write TTL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TtlInfo {
    /// `__ttl_enabled__` is set: `default` values carry 8-byte stamps.
    pub enabled: bool,
    /// `__ttl_format_version__`, if present.
    pub format_version: Option<u64>,
    /// `__ttl_high_water_ms__`, if present: values stamped at or below it
    /// read as absent.
    pub high_water_ms: Option<u64>,
    /// The migration-done marker is in `__ttl_system__`.
    pub migration_done: bool,
    /// Of the first `default` values sampled, how many look TTL-stamped
    /// (quixstreams' stamp evidence), and how many were sampled.
    pub stamped_sample: (usize, usize),
    /// A quixstreams migration state this library refuses to open, if any.
    pub refused: Option<String>,
    /// Keys in quixstreams' replay census `__ttl_backfill_pending__`: a
    /// replay that has not finished (or ended refused). Counted exactly.
    pub replay_pending_keys: u64,
}

/// How many `default` values [`inspect`] samples for TTL stamps.
const STAMP_SAMPLE: usize = 256;

/// Whether [`inspect`] reads the whole partition to verify checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksums {
    /// Read every key and value of every column family, so that the engine
    /// verifies the checksum of every block of live data (RocksDB and fjall
    /// check each block they load): a damaged block is
    /// [`state_core::Error::PartitionCorrupt`]. Takes as long as reading
    /// the partition.
    Verify,
    /// Do not: fast on large partitions, and nothing is claimed about the
    /// blocks not read.
    Skip,
}

/// Opens the partition at `dir` for reading and describes it, verifying
/// its checksums unless told to skip them. Key-count estimates are
/// RocksDB's: on fjall they are `None`. RocksDB partitions open read-only,
/// next to a running application; a fjall partition must not be open
/// elsewhere (its lock is taken). Damaged files, found at the open or by
/// a read, are [`state_core::Error::PartitionCorrupt`].
pub fn inspect(dir: &PartitionDir, checksums: Checksums) -> Result<Inspection> {
    describe(dir, checksums).map_err(|e| e.corrupt_at(&dir.path))
}

fn describe(dir: &PartitionDir, checksums: Checksums) -> Result<Inspection> {
    let opened = dir.open_for_reading()?;
    let partition = opened.partition();
    let mut names = partition.column_families()?;
    names.sort();
    let mut column_families = Vec::with_capacity(names.len());
    for name in names {
        column_families.push(ColumnFamilyInfo {
            approximate_keys: opened.approximate_keys(&name)?,
            name,
        });
    }
    let text = |key: &[u8]| -> Result<Option<String>> {
        Ok(partition
            .get(cf::METADATA, key)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    };
    let number = |key: &[u8]| -> Result<Option<u64>> {
        Ok(partition
            .get(cf::METADATA, key)?
            .and_then(|v| keys::decode_u64(&v).ok()))
    };
    let now = ttl::wall_clock_ms();
    let (mut stamped, mut sampled) = (0, 0);
    for item in partition
        .iter_range(cf::DEFAULT, b"", None, Direction::Forward)?
        .take(STAMP_SAMPLE)
    {
        let (_, value) = item?;
        sampled += 1;
        if ttl::stamp_evidence(&value, now) == StampEvidence::Stamped {
            stamped += 1;
        }
    }
    let keys_verified = match checksums {
        Checksums::Verify => Some(corruption::read_everything(partition)?),
        Checksums::Skip => None,
    };
    let ttl = TtlInfo {
        enabled: partition
            .get(cf::METADATA, cf::TTL_ENABLED_KEY)?
            .is_some_and(|v| !v.is_empty()),
        format_version: number(cf::TTL_FORMAT_VERSION_KEY)?,
        high_water_ms: number(cf::TTL_HIGH_WATER_KEY)?,
        migration_done: partition.get(cf::TTL_SYSTEM, cf::TTL_MIGRATION_DONE_KEY)?.is_some(),
        stamped_sample: (stamped, sampled),
        refused: state_core::legacy_ttl_situation(partition)?.map(|s| s.to_string()),
        replay_pending_keys: {
            let mut n = 0;
            for item in partition.iter_range(cf::TTL_BACKFILL_PENDING, b"", None, Direction::Forward)? {
                item?;
                n += 1;
            }
            n
        },
    };
    Ok(Inspection {
        path: dir.path.clone(),
        engine: opened.engine(),
        column_families,
        size_bytes: dir_size(&dir.path)?,
        changelog_offset: partition.changelog_offset()?,
        codec: text(cf::VALUE_CODEC_KEY)?,
        store_kind: text(cf::STORE_KIND_KEY)?,
        ttl,
        keys_verified,
    })
}

/// Bytes of the files in `dir` and its subdirectories (fjall keeps its
/// segments and journals in subdirectories; RocksDB keeps one level).
fn dir_size(dir: &Path) -> Result<u64> {
    let io = |source| CliError::Io {
        what: dir.display().to_string(),
        source,
    };
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        // Not following links: a link's target is not the partition's.
        let meta = entry.metadata().map_err(io)?;
        if meta.is_file() {
            total += meta.len();
        } else if meta.is_dir() {
            total += dir_size(&entry.path())?;
        }
    }
    Ok(total)
}

impl Inspection {
    /// The inspection as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "path": self.path.display().to_string(),
            "backend": self.engine.name(),
            "size_bytes": self.size_bytes,
            "changelog_offset": self.changelog_offset,
            "codec": self.codec,
            "store_kind": self.store_kind,
            "checksums": match self.keys_verified {
                Some(_) => "verified",
                None => "not verified",
            },
            "keys_verified": self.keys_verified,
            "ttl": {
                "enabled": self.ttl.enabled,
                "format_version": self.ttl.format_version,
                "high_water_ms": self.ttl.high_water_ms,
                "migration_done": self.ttl.migration_done,
                "stamped_values_sampled": self.ttl.stamped_sample.0,
                "values_sampled": self.ttl.stamped_sample.1,
                "refused": self.ttl.refused,
                "replay_pending_keys": self.ttl.replay_pending_keys,
            },
            "column_families": self.column_families.iter().map(|c| json!({
                "name": c.name,
                "approximate_keys": c.approximate_keys,
            })).collect::<Vec<_>>(),
        })
    }

    /// The inspection as an aligned table for people.
    pub fn to_text(&self) -> String {
        let mut out = format!("partition         {}\n", self.path.display());
        out += &format!("backend           {}\n", self.engine);
        out += &format!("size on disk      {}\n", human_bytes(self.size_bytes));
        out += &format!(
            "changelog offset  {}\n",
            self.changelog_offset
                .map_or_else(|| "none (never written from a changelog)".to_owned(), |o| o.to_string())
        );
        out += &format!(
            "value codec       {}\n",
            match &self.codec {
                Some(c) => format!("{c} (recorded)"),
                None =>
                    "none recorded (quixstreams writes JSON; dump finds it from the values, or pass --codec)".to_owned(),
            }
        );
        if let Some(kind) = &self.store_kind {
            out += &format!("store kind        {kind}\n");
        }
        out += &format!(
            "checksums         {}\n",
            match self.keys_verified {
                Some(keys) => format!("verified (every block of {keys} keys read)"),
                None => "not verified (--skip-checksums)".to_owned(),
            }
        );
        out += &format!("per-write TTL     {}\n", self.ttl_text());
        if let Some(refused) = &self.ttl.refused {
            out += &format!("TTL state         refused: {refused}\n");
        }
        if self.ttl.replay_pending_keys > 0 {
            out += &format!(
                "TTL replay        not finished: {} keys in __ttl_backfill_pending__\n",
                self.ttl.replay_pending_keys
            );
        }
        let width = self
            .column_families
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0)
            .max(13);
        out += &format!("\n{:<width$}  {:>12}\n", "column family", "~keys");
        for c in &self.column_families {
            let keys = c.approximate_keys.map_or_else(|| "n/a".to_owned(), |n| n.to_string());
            out += &format!("{:<width$}  {:>12}\n", c.name, keys);
        }
        if self.column_families.iter().any(|c| c.approximate_keys.is_none()) {
            out += &format!("(key estimates are RocksDB's; {} keeps none)\n", self.engine);
        }
        out
    }
}

impl Inspection {
    fn ttl_text(&self) -> String {
        let t = &self.ttl;
        let (stamped, sampled) = t.stamped_sample;
        if t.enabled {
            let mut s = "on (values carry 8-byte expiry stamps".to_owned();
            if let Some(v) = t.format_version {
                s += &format!(", format {v}");
            }
            match t.high_water_ms {
                Some(hw) => s += &format!(", high-water {hw} ms"),
                None => s += ", no high-water yet",
            }
            if t.migration_done {
                s += ", migration done";
            }
            s + ")"
        } else if stamped > 0 {
            format!("off, but {stamped} of {sampled} sampled values look TTL-stamped")
        } else {
            "off".to_owned()
        }
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {} ({n} bytes)", UNITS[unit])
    }
}
