//! Restoring store partitions from their changelogs.

pub(crate) mod apply;
pub(crate) mod blocking;
pub(crate) mod worker;
pub(crate) mod writer;

pub use apply::{ApplierConfig, ApplyStats, ChangelogApplier, IncomingRecord};
pub use blocking::{RecoveredPartition, RecoveryConfig, RecoveryManager, RecoveryPartition, RecoveryProgress};
pub use worker::{ChangelogPartition, RestoreEvent, RestoreRequest, Restorer, StandbyRequest, StandbyStatus};
