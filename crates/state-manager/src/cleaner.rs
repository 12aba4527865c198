//! [`StateDirCleaner`]: removes, in the background, the local partitions
//! of registered stores that have not been assigned here (as active or
//! standby) for longer than [`crate::ManagerConfig::state_cleanup_delay`],
//! as Kafka Streams' `state.cleanup.delay.ms` does.
//!
//! The poll loop only decides (a directory listing per store, at most once
//! per sweep interval); a background thread removes. Before removing, it
//! opens the partition with the store's backend, which takes the
//! partition's lock: a partition another process holds stays (the open
//! fails with `PartitionLocked`). Holding the lock, it renames the
//! directory to `.removing-<partition>-<millis>` in the store directory,
//! closes it and deletes the renamed directory, so an open of the partition
//! that waited for the lock finds no directory and starts empty. Leftovers
//! of a removal a crash interrupted are deleted by the next sweep.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use state_core::{Backend, StoreLocation};

use crate::registry::Registry;

/// Prefix of a partition directory being removed.
const REMOVING: &str = ".removing-";

/// The longest time between two sweeps.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct StateDirCleaner {
    delay: Option<Duration>,
    next_sweep: Option<Instant>,
    /// Each partition directory found not open here, with when it was
    /// first found so (a restart starts the wait again: a partition is
    /// never removed sooner than `delay` after this process started).
    unassigned_since: BTreeMap<PathBuf, Instant>,
    removal: Option<JoinHandle<()>>,
}

/// A partition directory due for removal.
struct Due {
    backend: Arc<dyn Backend>,
    location: StoreLocation,
    partition: u32,
    stream: String,
}

impl StateDirCleaner {
    /// A cleaner removing partitions unassigned for `delay`; `None`: off.
    pub(crate) fn new(delay: Option<Duration>) -> Self {
        StateDirCleaner {
            delay,
            next_sweep: None,
            unassigned_since: BTreeMap::new(),
            removal: None,
        }
    }

    /// Sweeps the partition directories of `registry`'s stores if a sweep
    /// is due and no removal is running, and starts removing those not open
    /// here for longer than the delay.
    pub(crate) fn tick(&mut self, registry: &Registry, now: Instant) {
        let Some(delay) = self.delay else { return };
        if self.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        self.next_sweep = Some(now + (delay / 2).min(MAX_SWEEP_INTERVAL));
        if self.removal.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        if let Some(done) = self.removal.take() {
            let _ = done.join();
        }
        let mut seen = BTreeSet::new();
        let mut due = Vec::new();
        let mut leftovers = Vec::new();
        for (_, s) in registry.iter() {
            let location = s.store().location();
            let open = s.store().assigned_partitions();
            let listing = match list(location.dir()) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(dir = %location.dir().display(), error = %e, "state-dir cleaner cannot list a store directory");
                    continue;
                }
            };
            leftovers.extend(listing.leftovers);
            for (partition, path) in listing.partitions {
                seen.insert(path.clone());
                if open.contains(&partition) {
                    self.unassigned_since.remove(&path);
                    continue;
                }
                let since = *self.unassigned_since.entry(path.clone()).or_insert(now);
                if now.duration_since(since) >= delay {
                    self.unassigned_since.remove(&path);
                    due.push(Due {
                        backend: s.store().backend().clone(),
                        location: location.clone(),
                        partition,
                        stream: s.stream().to_owned(),
                    });
                }
            }
        }
        self.unassigned_since.retain(|p, _| seen.contains(p));
        if due.is_empty() && leftovers.is_empty() {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("state-dir-cleaner".to_owned())
            .spawn(move || {
                for dir in leftovers {
                    remove_dir(&dir);
                }
                for d in due {
                    remove(d, delay);
                }
            });
        match spawned {
            Ok(h) => self.removal = Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the state-dir cleaner thread; retrying at the next sweep")
            }
        }
    }
}

/// What a store directory holds: partition directories and leftovers of
/// interrupted removals.
struct Listing {
    partitions: Vec<(u32, PathBuf)>,
    leftovers: Vec<PathBuf>,
}

fn list(dir: &Path) -> std::io::Result<Listing> {
    let mut listing = Listing {
        partitions: Vec::new(),
        leftovers: Vec::new(),
    };
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(listing),
        Err(e) => return Err(e),
    };
    for entry in read {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(REMOVING) {
            listing.leftovers.push(entry.path());
        } else if let Ok(p) = name.parse::<u32>() {
            listing.partitions.push((p, entry.path()));
        }
    }
    Ok(listing)
}

/// Removes partition `d` unless another process holds it.
fn remove(d: Due, delay: Duration) {
    let dir = d.location.partition_dir(d.partition);
    let (store, partition) = (d.location.name(), d.partition);
    let handle = match d.backend.open_partition(&d.location, partition) {
        Ok(h) => Some(h),
        Err(state_core::Error::PartitionLocked { .. }) => {
            tracing::info!(store, stream = d.stream, partition, dir = %dir.display(),
                "state-dir cleaner kept a partition another process holds");
            return;
        }
        // A damaged partition is not held: backends take the lock before
        // they read anything.
        Err(e) if crate::healing::of_state(&e).is_some() => None,
        Err(e) => {
            tracing::warn!(store, stream = d.stream, partition, dir = %dir.display(), error = %e,
                "state-dir cleaner cannot open a partition to remove it; kept");
            return;
        }
    };
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let trash = d.location.dir().join(format!("{REMOVING}{partition}-{millis}"));
    if let Err(e) = std::fs::rename(&dir, &trash) {
        tracing::warn!(store, stream = d.stream, partition, dir = %dir.display(), error = %e,
            "state-dir cleaner cannot move a partition aside to remove it; kept");
        return;
    }
    drop(handle);
    if remove_dir(&trash) {
        crate::metrics::state_dir_cleaned(store, &d.stream);
        tracing::info!(store, stream = d.stream, partition, dir = %dir.display(), delay = ?delay,
            "state-dir cleaner removed a local partition not assigned here for longer than the cleanup delay");
    }
}

/// Deletes `dir`; false (logged) if that failed.
fn remove_dir(dir: &Path) -> bool {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "state-dir cleaner cannot delete a directory");
            false
        }
    }
}
