//! [`Healer`]: the [`CorruptionPolicy`] applied to one store partition.

use super::damage::{self, Damage};
use super::quarantine::{Origin, Quarantine};
use crate::config::{CorruptionPolicy, ManagerConfig};
use crate::error::{ManagerError, Result};
use crate::registry::{OpenedPartition, RegisteredStore};

/// Applies the manager's [`CorruptionPolicy`]: moves damaged partitions
/// aside and reopens them empty, so their restore starts from the
/// changelog's beginning.
#[derive(Clone, Debug)]
pub(crate) struct Healer {
    policy: CorruptionPolicy,
    quarantine: Quarantine,
}

impl Healer {
    /// The policy of `config`, quarantining under `config`'s group directory.
    pub(crate) fn new(config: &ManagerConfig) -> Self {
        Healer {
            policy: config.on_corrupt,
            quarantine: Quarantine::new(&config.state_dir.join(&config.group_id), config.quarantine),
        }
    }

    /// True if damaged partitions are rebuilt.
    pub(crate) fn rebuilds(&self) -> bool {
        self.policy == CorruptionPolicy::Rebuild
    }

    /// Opens partition `partition` of `store` (see
    /// [`RegisteredStore::open_checked`]). A damaged one is, under
    /// [`CorruptionPolicy::Rebuild`], moved aside and opened empty; a
    /// damaged one of a store without a changelog is
    /// [`ManagerError::CannotRebuild`].
    pub(crate) fn open(&self, store: &mut RegisteredStore, partition: u32) -> Result<OpenedPartition> {
        let err = match store.open_checked(partition) {
            Ok(opened) => return Ok(opened),
            Err(e) => e,
        };
        let Some((damage, _)) = damage::of_open(&err).filter(|_| self.rebuilds()) else {
            return Err(err);
        };
        if store.changelog_topic().is_none() {
            let ManagerError::State(source) = err else {
                return Err(err);
            };
            return Err(cannot_rebuild(store, partition, source));
        }
        self.move_aside(store, partition, damage, &err)?;
        store.open_checked(partition)
    }

    /// Closes partition `partition` of `store` (whose restore failed with
    /// `cause`, a damage) and moves it aside; the caller reopens it empty
    /// and restores it again. Refused (the cause returned) if a handle
    /// elsewhere keeps the partition open.
    pub(crate) fn close_and_move_aside(
        &self,
        store: &mut RegisteredStore,
        partition: u32,
        damage: Damage,
        cause: &dyn std::fmt::Display,
    ) -> Result<()> {
        store.close_unflushed(partition)?;
        self.move_aside(store, partition, damage, cause)
    }

    fn move_aside(
        &self,
        store: &RegisteredStore,
        partition: u32,
        damage: Damage,
        cause: &dyn std::fmt::Display,
    ) -> Result<()> {
        let dir = store.store().location().partition_dir(partition);
        let origin = Origin {
            store: store.name(),
            stream: store.stream(),
            partition,
        };
        let moved = self.quarantine.move_aside(&dir, &origin)?;
        crate::metrics::partition_rebuilt(store.name(), store.stream(), damage.as_str());
        tracing::warn!(
            store = store.name(),
            stream = store.stream(),
            partition,
            reason = damage.as_str(),
            error = %cause,
            quarantined = ?moved,
            "damaged partition moved to quarantine; rebuilding it from its changelog"
        );
        Ok(())
    }
}

/// [`ManagerError::CannotRebuild`]: partition `partition` of `store`, which
/// has no changelog, is damaged (`source` says how).
pub(crate) fn cannot_rebuild(store: &RegisteredStore, partition: u32, source: state_core::Error) -> ManagerError {
    ManagerError::CannotRebuild {
        store: store.name().to_owned(),
        stream: store.stream().to_owned(),
        partition,
        path: store.store().location().partition_dir(partition),
        source: Box::new(source),
    }
}
