//! [`PartitionDir`]: a partition directory and the engine to open it with,
//! and opening it for reading or writing.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use state_core::{Error, StorePartition};
use state_fjall::{FjallOptions, FjallPartition};
use state_rocksdb::{RocksDbOptions, RocksDbPartition};

use crate::engine::Engine;
use crate::error::{CliError, Result};
use crate::rocksdb_lock::RocksDbLock;

/// A partition directory and the engine to open it with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionDir {
    /// The directory (`<state-dir>/<group>/<store>/<stream>/<partition>`).
    pub path: PathBuf,
    /// The engine asked for (`--backend`); `None`: found from the files
    /// ([`Engine::detect`]), RocksDB for a directory that holds none yet.
    pub engine: Option<Engine>,
}

/// A partition opened for reading, with what only its engine can tell.
pub(crate) enum ReadPartition {
    // Boxed: a RocksDB handle is three times a fjall one.
    RocksDb(Box<RocksDbPartition>),
    Fjall(FjallPartition),
}

impl ReadPartition {
    /// The partition through the backend-neutral contract.
    pub fn partition(&self) -> &dyn StorePartition {
        match self {
            ReadPartition::RocksDb(p) => p.as_ref(),
            ReadPartition::Fjall(p) => p,
        }
    }

    /// The engine it was opened with.
    pub fn engine(&self) -> Engine {
        match self {
            ReadPartition::RocksDb(_) => Engine::RocksDb,
            ReadPartition::Fjall(_) => Engine::Fjall,
        }
    }

    /// RocksDB's estimate of the keys in column family `cf`; `None` on
    /// engines that keep no such estimate (fjall).
    pub fn approximate_keys(&self, cf: &str) -> Result<Option<u64>> {
        match self {
            ReadPartition::RocksDb(p) => Ok(Some(p.approximate_keys(cf)?)),
            ReadPartition::Fjall(_) => Ok(None),
        }
    }
}

impl PartitionDir {
    /// `path`, with the engine found from its files.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PartitionDir {
            path: path.into(),
            engine: None,
        }
    }

    /// The same, opened with `engine` (`None`: found from the files).
    pub fn with_engine(self, engine: Option<Engine>) -> Self {
        PartitionDir { engine, ..self }
    }

    /// The engine of an existing partition: the one its files show, which
    /// must be the one asked for. No partition there (of either engine):
    /// [`Error::PartitionNotFound`].
    pub fn existing_engine(&self) -> Result<Engine> {
        match (Engine::detect(&self.path), self.engine) {
            (None, _) => Err(Error::PartitionNotFound {
                path: self.path.clone(),
            }
            .into()),
            (Some(found), Some(asked)) if found != asked => Err(self.mismatch(asked, found)),
            (Some(found), _) => Ok(found),
        }
    }

    /// The engine to write the partition with: the one its files show
    /// (which must be the one asked for), else the one asked for, else
    /// RocksDB. A directory that holds files but no partition (another
    /// engine's, a damaged partition, a store directory) is
    /// [`CliError::ForeignTarget`]: nothing is written beside them.
    pub fn engine_for_writing(&self) -> Result<Engine> {
        match (Engine::detect(&self.path), self.engine) {
            (Some(found), Some(asked)) if found != asked => Err(self.mismatch(asked, found)),
            (Some(found), _) => Ok(found),
            (None, asked) => {
                self.check_empty()?;
                Ok(asked.unwrap_or(Engine::RocksDb))
            }
        }
    }

    /// The directory is missing or empty (a `LOCK` file alone, left by an
    /// open that failed, counts as empty).
    fn check_empty(&self) -> Result<()> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(CliError::Io {
                    what: self.path.display().to_string(),
                    source,
                })
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| CliError::Io {
                what: self.path.display().to_string(),
                source,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let lone_lock = name == "LOCK" && entry.metadata().is_ok_and(|m| m.is_file() && m.len() == 0);
            if !lone_lock {
                names.push(name);
            }
        }
        if names.is_empty() {
            return Ok(());
        }
        names.sort();
        let shown = FOREIGN_NAMES_SHOWN.min(names.len());
        let mut found = names[..shown].join(", ");
        if names.len() > shown {
            found += &format!(" and {} more", names.len() - shown);
        }
        Err(CliError::ForeignTarget {
            path: self.path.clone(),
            found,
        })
    }

    fn mismatch(&self, asked: Engine, found: Engine) -> CliError {
        CliError::EngineMismatch {
            path: self.path.clone(),
            asked,
            found,
        }
    }

    /// Opens the existing partition for reading. RocksDB opens read-only,
    /// without a lock, next to a running application; fjall has no
    /// read-only mode: it takes the partition's lock, so an application
    /// holding it makes this fail at once with [`Error::PartitionLocked`].
    pub(crate) fn open_for_reading(&self) -> Result<ReadPartition> {
        Ok(match self.existing_engine()? {
            Engine::RocksDb => ReadPartition::RocksDb(Box::new(RocksDbPartition::open_read_only(
                &self.path,
                &RocksDbOptions::default(),
            )?)),
            Engine::Fjall => ReadPartition::Fjall(FjallPartition::open_with(
                &self.path,
                &fjall_options(),
                &AtomicBool::new(false),
            )?),
        })
    }

    /// Opens (or creates) the partition for writing, with
    /// [`engine_for_writing`](Self::engine_for_writing); a partition locked
    /// by another process fails at once, before anything in the directory
    /// is touched (RocksDB would rotate the holder's `LOG` first: statectl
    /// takes RocksDB's lock itself before opening, see [`RocksDbLock`]).
    pub(crate) fn open_for_writing(&self) -> Result<WritablePartition> {
        match self.engine_for_writing()? {
            Engine::RocksDb => {
                state_core::create_private_dir(&self.path)?;
                let lock = RocksDbLock::acquire(&self.path)?;
                Ok(WritablePartition {
                    partition: open_writable(Engine::RocksDb, &self.path)?,
                    _lock: Some(lock),
                })
            }
            // fjall takes its lock before it writes anything.
            Engine::Fjall => Ok(WritablePartition {
                partition: open_writable(Engine::Fjall, &self.path)?,
                _lock: None,
            }),
        }
    }
}

/// How many names of a foreign directory's entries an error shows.
const FOREIGN_NAMES_SHOWN: usize = 5;

/// A partition open for writing, and the lock statectl took for it.
pub(crate) struct WritablePartition {
    /// Declared before the lock, so it is dropped first: the lock is the
    /// process's, shared with the database, and must outlive it.
    pub partition: Arc<dyn StorePartition>,
    _lock: Option<RocksDbLock>,
}

/// Opens (or creates) a partition of `engine` at `path` for writing; a
/// partition locked by another process fails at once.
pub(crate) fn open_writable(engine: Engine, path: &Path) -> Result<Arc<dyn StorePartition>> {
    Ok(match engine {
        Engine::RocksDb => Arc::new(RocksDbPartition::open(
            path,
            &RocksDbOptions {
                open_max_retries: 1,
                ..RocksDbOptions::default()
            },
        )?),
        Engine::Fjall => Arc::new(FjallPartition::open_with(
            path,
            &fjall_options(),
            &AtomicBool::new(false),
        )?),
    })
}

/// fjall options for the CLI: fail at once on a lock.
fn fjall_options() -> FjallOptions {
    FjallOptions {
        open_max_retries: 1,
        ..FjallOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_asked_for_must_match_the_files() {
        let dir = tempfile::tempdir().unwrap();
        drop(FjallPartition::open(dir.path(), &FjallOptions::default()).unwrap());
        let d = PartitionDir::new(dir.path());
        assert_eq!(d.existing_engine().unwrap(), Engine::Fjall);
        let err = d
            .clone()
            .with_engine(Some(Engine::RocksDb))
            .existing_engine()
            .unwrap_err();
        assert!(matches!(err, CliError::EngineMismatch { .. }), "{err}");
        assert!(err.to_string().contains("--backend fjall"), "{err}");
        let err = d.with_engine(Some(Engine::RocksDb)).engine_for_writing().unwrap_err();
        assert!(matches!(err, CliError::EngineMismatch { .. }), "{err}");

        let empty = PartitionDir::new(dir.path().join("new"));
        assert!(matches!(
            empty.existing_engine().unwrap_err(),
            CliError::Store(Error::PartitionNotFound { .. })
        ));
        assert_eq!(empty.engine_for_writing().unwrap(), Engine::RocksDb);
        let fjall = empty.with_engine(Some(Engine::Fjall));
        assert_eq!(fjall.engine_for_writing().unwrap(), Engine::Fjall);
    }
}
