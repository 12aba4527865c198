//! Partition snapshots in an object store ([`SnapshotSettings`],
//! `state-snapshot`): restoring partitions without local state from the
//! newest usable snapshot plus the changelog after it, and taking
//! snapshots in the background after checkpoints.
//!
//! * `settings` — [`SnapshotSettings`]: the store, when to take, when to
//!   restore.
//! * `restore` — picking and restoring the newest usable snapshot.
//! * `bootstrap` — restores on a thread of their own, beside the poll loop.
//! * `taker` — snapshots taken and uploaded in the background.
//! * `metrics` — what they count.

mod bootstrap;
mod metrics;
mod restore;
mod settings;
mod taker;

pub(crate) use bootstrap::Bootstraps;
pub(crate) use restore::{BootstrapJob, Bootstrapped};
pub use settings::SnapshotSettings;
pub(crate) use taker::SnapshotTaker;

/// The directory under the group's where snapshots are downloaded and
/// taken (on the partitions' filesystem: RocksDB's checkpoints hard-link,
/// restores move the download into place).
pub(crate) const SCRATCH_DIR: &str = ".snapshots";
