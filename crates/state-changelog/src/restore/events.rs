//! What the restore engine reports: [`RestoreEvent`]s and
//! [`StandbyStatus`].

use std::collections::BTreeMap;
use std::time::Duration;

use state_core::TopicPartition;

use crate::error::ChangelogError;
use crate::restore::apply::ApplyStats;
use crate::restore::progress::RecoveryProgress;

/// What the restorer reports. Drain them with
/// [`Restorer::events`](crate::Restorer::events).
#[derive(Debug)]
pub enum RestoreEvent {
    /// Progress of an active restore (also logged): the first with its
    /// first record, then at most one per
    /// [`RecoveryConfig::progress_interval`](crate::RecoveryConfig::progress_interval),
    /// and a last one with `finished` set just before
    /// [`RestoreEvent::Restored`].
    Progress(RecoveryProgress),
    /// An active restore reached the high watermark taken when it started
    /// (or when its standby was promoted): the partition is ready.
    Restored {
        /// The changelog partition.
        changelog: TopicPartition,
        /// What was applied.
        stats: ApplyStats,
        /// The stored changelog offset afterwards.
        offset: Option<u64>,
        /// How long the restore took.
        elapsed: Duration,
        /// The committed source offsets its records were judged by: the
        /// partition holds exactly the checkpoints committed before them,
        /// so its source partition resumes there.
        committed_offsets: BTreeMap<String, i64>,
    },
    /// A restore or standby failed; the task is dropped. The partition keeps
    /// the batches written before the failure (data and offset agree).
    Failed {
        /// The changelog partition.
        changelog: TopicPartition,
        /// True if it was a standby.
        standby: bool,
        /// Why.
        error: ChangelogError,
    },
}

/// What a standby replica has, as last reported by the restorer thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StandbyStatus {
    /// The changelog partition.
    pub changelog: TopicPartition,
    /// The last changelog offset applied (stored in the partition).
    pub applied_offset: Option<u64>,
    /// The changelog's high watermark at the last check.
    pub high_watermark: i64,
    /// Records between what is applied and the high watermark.
    pub lag: u64,
    /// True while the next record belongs to a checkpoint not yet committed.
    pub waiting_for_commit: bool,
}
