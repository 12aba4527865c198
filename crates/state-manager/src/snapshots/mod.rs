//! Partition snapshots in an object store ([`SnapshotSettings`],
//! `state-snapshot`).
//!
//! * `settings` — [`SnapshotSettings`]: the store, when to take, when to
//!   restore.

mod settings;

pub use settings::SnapshotSettings;
