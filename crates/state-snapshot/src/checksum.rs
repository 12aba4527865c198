//! [`Checksum`]: the content address of a snapshot file (XXH3-128 of its
//! bytes, with its size), computed while the bytes stream by.

use std::io::Read;
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

use crate::error::{Result, SnapshotError};

/// Bytes read at a time when hashing a local file.
const READ_CHUNK: usize = 1 << 20;

/// The XXH3-128 of a file's bytes and its size: equal checksums mean equal
/// files (XXH3-128 finds damage, it does not resist forgery: the store is
/// trusted not to be hostile, only to lose or damage bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checksum {
    /// XXH3-128 of the bytes.
    pub xxh3_128: u128,
    /// Number of bytes.
    pub size: u64,
}

impl Checksum {
    /// The hash as 32 lowercase hex digits, as manifests record it.
    pub fn hex(&self) -> String {
        format!("{:032x}", self.xxh3_128)
    }

    /// Parses 32 hex digits (what [`hex`](Self::hex) writes).
    pub fn parse_hex(hex: &str, size: u64) -> Option<Checksum> {
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(hex, 16)
            .ok()
            .map(|xxh3_128| Checksum { xxh3_128, size })
    }

    /// Hashes the local file at `path`.
    pub fn of_file(path: &Path) -> Result<Checksum> {
        let mut file = std::fs::File::open(path).map_err(SnapshotError::io(path))?;
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = file.read(&mut buf).map_err(SnapshotError::io(path))?;
            if n == 0 {
                return Ok(hasher.finish());
            }
            hasher.update(&buf[..n]);
        }
    }
}

/// A [`Checksum`] computed over bytes given piece by piece.
pub(crate) struct Hasher {
    state: Xxh3,
    size: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Hasher {
            state: Xxh3::new(),
            size: 0,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.state.update(bytes);
        self.size += bytes.len() as u64;
    }

    pub fn finish(&self) -> Checksum {
        Checksum {
            xxh3_128: self.state.digest128(),
            size: self.size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_hashes_as_its_bytes_and_hex_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let sum = Checksum::of_file(&path).unwrap();
        assert_eq!(sum.size, bytes.len() as u64);
        assert_eq!(sum.xxh3_128, xxhash_rust::xxh3::xxh3_128(&bytes));
        assert_eq!(Checksum::parse_hex(&sum.hex(), sum.size), Some(sum));
        assert_eq!(Checksum::parse_hex("xyz", 1), None);
        assert_eq!(Checksum::parse_hex(&"g".repeat(32), 1), None);
    }
}
