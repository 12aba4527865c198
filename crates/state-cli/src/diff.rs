//! Key-by-key comparison of two partitions (what `statectl verify` reports).

use std::collections::BTreeSet;
use std::iter::Peekable;

use serde_json::json;
use state_core::{cf, Direction, KvIter, StorePartition};

use crate::dump::hex;
use crate::error::Result;

/// How a key differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DifferenceKind {
    /// Present in the directory, absent from the replayed changelog.
    OnlyInDir,
    /// Present in the replayed changelog, absent from the directory.
    OnlyInChangelog,
    /// Present in both with different values.
    ValueDiffers,
}

impl DifferenceKind {
    fn name(self) -> &'static str {
        match self {
            DifferenceKind::OnlyInDir => "only-in-dir",
            DifferenceKind::OnlyInChangelog => "only-in-changelog",
            DifferenceKind::ValueDiffers => "value-differs",
        }
    }
}

/// One key that differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// Column family.
    pub cf: String,
    /// The key.
    pub key: Vec<u8>,
    /// How it differs.
    pub kind: DifferenceKind,
    /// Its value in the directory.
    pub dir_value: Option<Vec<u8>>,
    /// Its value in the replayed changelog.
    pub changelog_value: Option<Vec<u8>>,
}

impl Difference {
    /// The difference as one JSON object (hex keys and values).
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "cf": self.cf,
            "key_hex": hex(&self.key),
            "difference": self.kind.name(),
            "dir_value_hex": self.dir_value.as_deref().map(hex),
            "changelog_value_hex": self.changelog_value.as_deref().map(hex),
        })
    }
}

/// Compares every column family of `dir` and `replayed` except
/// `__metadata__` (local bookkeeping, never in a changelog). Returns the
/// differences and the number of keys compared.
pub fn diff_partitions(dir: &dyn StorePartition, replayed: &dyn StorePartition) -> Result<(Vec<Difference>, u64)> {
    let mut names: BTreeSet<String> = dir.column_families()?.into_iter().collect();
    names.extend(replayed.column_families()?);
    names.remove(cf::METADATA);
    let mut out = Vec::new();
    let mut compared = 0;
    for name in names {
        let mut a = dir.iter_range(&name, b"", None, Direction::Forward)?.peekable();
        let mut b = replayed.iter_range(&name, b"", None, Direction::Forward)?.peekable();
        loop {
            let (ka, kb) = (peek_key(&mut a)?, peek_key(&mut b)?);
            let (key, dir_value, changelog_value) = match (ka, kb) {
                (None, None) => break,
                (Some(x), Some(y)) if x == y => {
                    let (k, va) = next(&mut a)?;
                    let (_, vb) = next(&mut b)?;
                    (k, Some(va), Some(vb))
                }
                (Some(x), Some(y)) if x < y => {
                    let (k, v) = next(&mut a)?;
                    (k, Some(v), None)
                }
                (Some(_), None) => {
                    let (k, v) = next(&mut a)?;
                    (k, Some(v), None)
                }
                _ => {
                    let (k, v) = next(&mut b)?;
                    (k, None, Some(v))
                }
            };
            compared += 1;
            let kind = match (&dir_value, &changelog_value) {
                (Some(x), Some(y)) if x == y => continue,
                (Some(_), Some(_)) => DifferenceKind::ValueDiffers,
                (Some(_), None) => DifferenceKind::OnlyInDir,
                _ => DifferenceKind::OnlyInChangelog,
            };
            out.push(Difference {
                cf: name.clone(),
                key,
                kind,
                dir_value,
                changelog_value,
            });
        }
    }
    Ok((out, compared))
}

fn peek_key(it: &mut Peekable<KvIter<'_>>) -> Result<Option<Vec<u8>>> {
    match it.peek() {
        None => Ok(None),
        Some(Ok((k, _))) => Ok(Some(k.clone())),
        Some(Err(_)) => match it.next() {
            Some(Err(e)) => Err(e.into()),
            _ => Ok(None),
        },
    }
}

fn next(it: &mut Peekable<KvIter<'_>>) -> Result<(Vec<u8>, Vec<u8>)> {
    match it.next() {
        Some(item) => Ok(item?),
        None => Ok((Vec::new(), Vec::new())),
    }
}
