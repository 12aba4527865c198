//! [`Backend`]: the object-safe contract a storage engine implements so the
//! layers above (transactions, recovery, the manager) can open its
//! partitions without knowing which engine it is.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::budget::MemoryBudget;
use crate::error::Result;
use crate::partition::StorePartition;

/// Where the partitions of one store live: its name and its base directory.
///
/// The manager uses `<state_dir>/<group_id>/<store>/<stream_id>` as the
/// directory; partition *n* of a durable backend lives in `<dir>/<n>`
/// ([`StoreLocation::partition_dir`]). Backends that keep nothing on disk
/// ignore the directory.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreLocation {
    name: String,
    dir: PathBuf,
}

impl StoreLocation {
    /// Store `name` with partitions under `dir`.
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        StoreLocation {
            name: name.into(),
            dir: dir.into(),
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store's base directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<partition>`: the directory of one partition.
    pub fn partition_dir(&self, partition: u32) -> PathBuf {
        self.dir.join(partition.to_string())
    }
}

/// What a backend says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendInfo {
    /// Short stable name (`rocksdb`, `memory`, ...), used in logs, errors,
    /// metrics labels and command-line flags.
    pub name: &'static str,
    /// True if a partition's data survives closing and reopening it (and a
    /// process restart). A non-durable backend starts every partition empty;
    /// its state is rebuilt from the changelog on every assignment.
    pub durable: bool,
}

/// A storage engine: opens partition *n* of a store, and deletes a store's
/// data. Object safe, so the manager, recovery and tools take any engine as
/// `Arc<dyn Backend>`; [`crate::Store`] does the per-store bookkeeping
/// (which partitions are open) once for every backend.
///
/// # Contract (checked by the conformance kit, `state_core::testkit`)
/// * [`open_partition`](Backend::open_partition) returns a partition that
///   keeps the [`StorePartition`] contract. For a durable backend, opening
///   the same partition again after every handle to it was dropped sees
///   everything written before.
/// * A backend may refuse to open a partition that is open elsewhere (a
///   lock); it then fails with a typed error rather than sharing files.
/// * [`destroy_store`](Backend::destroy_store) deletes the data of every
///   partition of the store; it is only called while none is open. A store
///   that never existed is not an error.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Name and durability of this backend.
    fn info(&self) -> BackendInfo;

    /// Opens (creating if new) partition `partition` of `store`.
    fn open_partition(&self, store: &StoreLocation, partition: u32) -> Result<Arc<dyn StorePartition>>;

    /// Deletes the data of every partition of `store`.
    fn destroy_store(&self, store: &StoreLocation) -> Result<()>;

    /// Opens the snapshot in `snapshot_dir` as partition `partition` of
    /// `store`, in place of whatever that partition held: the files a
    /// [`StorePartition::snapshot`] of this backend produced, moved or
    /// downloaded (and checked) there. `Ok(None)` (the default): this
    /// backend restores no snapshots.
    ///
    /// # Contract
    /// * The partition must not be open (the caller revoked it, or never
    ///   assigned it).
    /// * On success the partition holds exactly the snapshot's data and
    ///   changelog offset, and `snapshot_dir` is consumed (moved into the
    ///   partition's place, or read and deleted by the caller).
    /// * On an error the partition's previous local data is still there
    ///   ([`crate::install_snapshot_dir`] puts it back), and the caller
    ///   falls back to another snapshot or a full replay.
    fn restore_snapshot(
        &self,
        snapshot_dir: &Path,
        store: &StoreLocation,
        partition: u32,
    ) -> Result<Option<Arc<dyn StorePartition>>> {
        let _ = (snapshot_dir, store, partition);
        Ok(None)
    }

    /// Where partition `partition` of `store` lives, for messages and tools
    /// (by default its directory).
    fn partition_location(&self, store: &StoreLocation, partition: u32) -> String {
        store.partition_dir(partition).display().to_string()
    }

    /// The [`MemoryBudget`] the engine's caches and write buffers draw
    /// from, if it was given one (by default none). A manager with a
    /// budget checks its stores' backends against it.
    fn memory_budget(&self) -> Option<&MemoryBudget> {
        None
    }
}

/// Removes a directory tree; a missing directory is not an error. For
/// durable backends' [`Backend::destroy_store`].
pub fn remove_store_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(crate::Error::Io {
            path: dir.to_owned(),
            source,
        }),
    }
}
