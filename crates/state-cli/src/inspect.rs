//! `statectl inspect`: what a partition holds, at a glance.

use std::path::{Path, PathBuf};

use serde_json::json;
use state_core::StorePartition;
use state_rocksdb::{RocksDbOptions, RocksDbPartition};

use crate::error::{CliError, Result};

/// One column family of an inspected partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnFamilyInfo {
    /// Column family name.
    pub name: String,
    /// RocksDB's estimate of its key count (exact for small, unflushed data;
    /// an estimate after compactions).
    pub approximate_keys: u64,
}

/// What [`inspect`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// Partition directory.
    pub path: PathBuf,
    /// Column families, sorted by name.
    pub column_families: Vec<ColumnFamilyInfo>,
    /// Bytes of all files in the directory.
    pub size_bytes: u64,
    /// Stored changelog offset (last changelog offset the partition includes).
    pub changelog_offset: Option<u64>,
}

/// Opens the partition at `dir` read-only and describes it.
pub fn inspect(dir: &Path) -> Result<Inspection> {
    let partition = RocksDbPartition::open_read_only(dir, &RocksDbOptions::default())?;
    let mut names = partition.column_families()?;
    names.sort();
    let mut column_families = Vec::with_capacity(names.len());
    for name in names {
        column_families.push(ColumnFamilyInfo {
            approximate_keys: partition.approximate_keys(&name)?,
            name,
        });
    }
    Ok(Inspection {
        path: dir.to_owned(),
        column_families,
        size_bytes: dir_size(dir)?,
        changelog_offset: partition.changelog_offset()?,
    })
}

fn dir_size(dir: &Path) -> Result<u64> {
    let io = |source| CliError::Io {
        what: dir.display().to_string(),
        source,
    };
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let meta = entry.map_err(io)?.metadata().map_err(io)?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

impl Inspection {
    /// The inspection as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "path": self.path.display().to_string(),
            "size_bytes": self.size_bytes,
            "changelog_offset": self.changelog_offset,
            "column_families": self.column_families.iter().map(|c| json!({
                "name": c.name,
                "approximate_keys": c.approximate_keys,
            })).collect::<Vec<_>>(),
        })
    }

    /// The inspection as an aligned table for people.
    pub fn to_text(&self) -> String {
        let mut out = format!("partition         {}\n", self.path.display());
        out += &format!("size on disk      {}\n", human_bytes(self.size_bytes));
        out += &format!(
            "changelog offset  {}\n",
            self.changelog_offset
                .map_or_else(|| "none (never written from a changelog)".to_owned(), |o| o.to_string())
        );
        let width = self
            .column_families
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0)
            .max(13);
        out += &format!("\n{:<width$}  {:>12}\n", "column family", "~keys");
        for c in &self.column_families {
            out += &format!("{:<width$}  {:>12}\n", c.name, c.approximate_keys);
        }
        out
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
