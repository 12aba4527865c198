//! [`ManagerEvent`]: what the manager reports to the listener set with
//! [`crate::StateStoreManager::set_event_listener`] — things that are not
//! errors (processing goes on) but that an operator wants to see beyond a
//! log line. Each is also counted in a metric ([`crate::metrics`]).

use std::time::Duration;

use rdkafka::error::KafkaError;
use state_core::TopicPartition;

/// Something the manager handled on its own that cost work or time.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ManagerEvent {
    /// An exactly-once checkpoint's Kafka transaction committed, but the
    /// group did not take its source offsets: the mirrored offset commit
    /// ([`crate::ManagerConfig::mirror_transactional_offsets`]) was refused,
    /// typically because the group was rebalancing for longer than
    /// [`crate::ManagerConfig::kafka_timeout`] (or the commit ran inside a
    /// rebalance callback, which cannot wait). The checkpoint was not kept
    /// locally and the consumer was moved back to its first records, which
    /// are processed again; counts stay exact. Metrics:
    /// [`crate::metrics::CHECKPOINTS`] with `result="rewound"` and
    /// [`crate::metrics::REWOUND_RECORDS`].
    CheckpointRewound {
        /// Each source partition of the checkpoint with the offsets of the
        /// records that are processed again.
        partitions: Vec<RewoundPartition>,
        /// Why the group refused the offsets.
        cause: KafkaError,
    },
    /// The group refused an offset commit while it was rebalancing; the
    /// manager waited for the rebalance to finish and the commit then
    /// succeeded, so nothing is processed again. Metric:
    /// [`crate::metrics::COMMITS_DELAYED_BY_REBALANCE`].
    CommitDelayedByRebalance {
        /// How long the commit waited.
        waited: Duration,
        /// Commit attempts refused before the one that succeeded.
        refused: u32,
    },
    /// A store partition assigned here without local state (or moved to
    /// quarantine) was restored from a snapshot
    /// ([`crate::ManagerConfig::snapshots`]); its changelog is replayed from
    /// the next offset on. Snapshots skipped on the way (damaged, past the
    /// changelog's end) are logged and counted in
    /// [`crate::metrics::SNAPSHOTS_SKIPPED`]. Metric:
    /// [`crate::metrics::SNAPSHOT_RESTORES`] with `result="restored"`.
    RestoredFromSnapshot {
        /// The store's name.
        store: String,
        /// Its stream (source topic).
        stream: String,
        /// The store partition.
        partition: u32,
        /// The snapshot's id.
        snapshot: String,
        /// The changelog offset the snapshot holds.
        changelog_offset: u64,
        /// Bytes of the snapshot's files, downloaded and checked.
        bytes: u64,
        /// How long finding, downloading, checking and opening it took
        /// (snapshots skipped on the way included; the changelog tail
        /// after it is reported as recovery progress).
        took: Duration,
    },
}

/// The records of one source partition a rewound checkpoint processes
/// again: offsets `first_offset..=last_offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewoundPartition {
    /// The source partition.
    pub partition: TopicPartition,
    /// Offset of the first record processed again.
    pub first_offset: i64,
    /// Offset of the last record the checkpoint held.
    pub last_offset: i64,
}

impl RewoundPartition {
    /// How many offsets are processed again (records, on a topic without
    /// transaction markers).
    pub fn records(&self) -> u64 {
        (self.last_offset - self.first_offset + 1).max(0) as u64
    }
}

/// Receives manager events.
pub(crate) type EventListener = Box<dyn FnMut(&ManagerEvent) + Send>;

/// Where events go: the listener, if one is set. Clones share it (the
/// checkpointer and the assignments both report).
#[derive(Clone, Default)]
pub(crate) struct Events {
    listener: std::sync::Arc<parking_lot::Mutex<Option<EventListener>>>,
}

impl Events {
    /// Sends every event to `f` from now on.
    pub(crate) fn set_listener(&mut self, f: impl FnMut(&ManagerEvent) + Send + 'static) {
        *self.listener.lock() = Some(Box::new(f));
    }

    /// Reports `event` to the listener.
    pub(crate) fn emit(&mut self, event: ManagerEvent) {
        if let Some(f) = &mut *self.listener.lock() {
            f(&event);
        }
    }
}
