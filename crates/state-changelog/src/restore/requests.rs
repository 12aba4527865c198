//! What the [`Restorer`](crate::Restorer) is asked to do.

use std::collections::BTreeMap;
use std::sync::Arc;

use state_core::{ReplayCheck, StorePartition, TopicPartition};

/// A partition to restore to the end of its changelog (an active task).
pub struct RestoreRequest {
    /// The store partition to write into.
    pub partition: Arc<dyn StorePartition>,
    /// Its changelog partition.
    pub changelog: TopicPartition,
    /// Committed source offsets (`topic -> next offset to consume`);
    /// records of checkpoints at or beyond them are skipped.
    pub committed_offsets: BTreeMap<String, i64>,
    /// Where the partition lives (for messages).
    pub location: String,
    /// Checks every record against the partition's codec and TTL mode
    /// (see [`ReplayCheck`]); `None`: no check.
    pub replay_check: Option<ReplayCheck>,
}

/// A partition to keep warm as a standby replica.
pub struct StandbyRequest {
    /// The store partition to write into.
    pub partition: Arc<dyn StorePartition>,
    /// Its changelog partition.
    pub changelog: TopicPartition,
    /// The source partition whose committed offset (in the application's
    /// group) decides which records are committed.
    pub source: TopicPartition,
    /// Where the partition lives (for messages).
    pub location: String,
    /// As [`RestoreRequest::replay_check`].
    pub replay_check: Option<ReplayCheck>,
}
