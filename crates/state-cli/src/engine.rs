//! [`Engine`]: the storage engines `statectl` opens (`--backend`), and
//! which one a directory holds, found from the files each leaves.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// A storage engine `statectl` opens partitions with (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    /// RocksDB (`state-rocksdb`, and quixstreams' state directories).
    RocksDb,
    /// fjall (`state-fjall`).
    Fjall,
}

/// The first bytes of fjall's `version` file (fjall 3's magic bytes, up to
/// its format version).
const FJALL_MAGIC: &[u8] = b"FJL";

impl Engine {
    /// The name `--backend` takes and output shows: `rocksdb` or `fjall`.
    pub fn name(self) -> &'static str {
        match self {
            Engine::RocksDb => "rocksdb",
            Engine::Fjall => "fjall",
        }
    }

    /// The engine whose files are in `dir`, if any: RocksDB keeps a
    /// `CURRENT` file, fjall a `version` file starting with its magic bytes.
    /// `None` for a missing or empty directory, or one of neither.
    pub fn detect(dir: &Path) -> Option<Engine> {
        if dir.join("CURRENT").is_file() {
            return Some(Engine::RocksDb);
        }
        let mut magic = [0u8; FJALL_MAGIC.len()];
        let fjall = std::fs::File::open(dir.join("version")).and_then(|mut f| f.read_exact(&mut magic));
        match fjall {
            Ok(()) if magic == FJALL_MAGIC => Some(Engine::Fjall),
            _ => None,
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use state_fjall::{FjallOptions, FjallPartition};
    use state_rocksdb::{RocksDbOptions, RocksDbPartition};

    use super::*;

    #[test]
    fn each_engine_is_found_from_its_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Engine::detect(dir.path()), None, "empty");
        assert_eq!(Engine::detect(&dir.path().join("missing")), None);
        let rocks = dir.path().join("rocks");
        drop(RocksDbPartition::open(&rocks, &RocksDbOptions::default()).unwrap());
        assert_eq!(Engine::detect(&rocks), Some(Engine::RocksDb));
        let fjall = dir.path().join("fjall");
        drop(FjallPartition::open(&fjall, &FjallOptions::default()).unwrap());
        assert_eq!(Engine::detect(&fjall), Some(Engine::Fjall));
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("version"), b"1.0\n").unwrap();
        assert_eq!(Engine::detect(&other), None, "a version file of something else");
    }
}
