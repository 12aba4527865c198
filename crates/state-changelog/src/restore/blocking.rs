//! [`RecoveryManager`]: the restore engine on the caller's thread, for
//! tools and tests: rebuilds store partitions from their changelog
//! partitions, all at once, through any [`StorePartition`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use state_core::{ReplayCheck, StorePartition, TopicPartition};

use crate::error::{ChangelogError, Result};
use crate::kafka::consumer::{create_consumer, ConsumerSettings, RECOVERY_GROUP};
use crate::restore::apply::ApplyStats;
use crate::restore::config::RecoveryConfig;
use crate::restore::events::RestoreEvent;
use crate::restore::progress::RecoveryProgress;
use crate::restore::reader::{ChangelogReader, TaskKind, TaskSpec};

/// One store partition to recover and where its changelog is.
pub struct RecoveryPartition {
    /// The store partition to write into.
    pub partition: Arc<dyn StorePartition>,
    /// Its changelog partition (partition number = the source partition's).
    pub changelog: TopicPartition,
    /// Committed source offsets (`topic -> next offset to consume`);
    /// records of checkpoints at or beyond them are skipped.
    pub committed_offsets: BTreeMap<String, i64>,
    /// Where the partition lives (for error messages), e.g. its directory.
    pub location: String,
    /// Replay changelog offsets up to and including this one only (the
    /// default, `None`, replays to the high watermark). Tools use it to
    /// rebuild a partition as of a stored offset.
    pub until: Option<u64>,
    /// Checks every record against the partition's codec and TTL mode
    /// (see [`ReplayCheck`]); `None`: no check.
    pub replay_check: Option<ReplayCheck>,
}

/// Result of a recovery, per partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredPartition {
    /// The changelog partition.
    pub changelog: TopicPartition,
    /// Applied / skipped records and batches.
    pub stats: ApplyStats,
    /// The stored changelog offset afterwards.
    pub offset: Option<u64>,
}

/// Reads changelog partitions from each partition's stored offset to the
/// high watermark and applies them in batches, on the caller's thread: the
/// restore engine of [`crate::Restorer`] driven until every partition is
/// done.
///
/// * The consumer reads with `isolation.level=read_committed`
///   ([`ConsumerSettings::restore`]): records of aborted transactions are
///   never applied.
/// * A partition is finished when the consumer's position reaches the high
///   watermark taken at the start — not when a record at `high - 1` is seen,
///   since transaction markers and compaction leave gaps.
/// * An empty or fully compacted changelog (low = high) finishes at once.
/// * A stored offset at or beyond the high watermark is
///   [`ChangelogError::InvalidStoredOffset`], before anything is applied.
/// * A malformed record fails with a typed error; the partition keeps the
///   batches written before it (data and offset agree), nothing of its batch.
/// * No partition making progress for
///   [`RecoveryConfig::stall_timeout`] is [`ChangelogError::Stalled`].
/// * The stop signal ends recovery promptly with [`ChangelogError::Stopped`]
///   (what was applied is written first).
pub struct RecoveryManager {
    reader: Mutex<ChangelogReader>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for RecoveryManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryManager")
            .field("config", self.reader.lock().config())
            .finish_non_exhaustive()
    }
}

impl RecoveryManager {
    /// A manager whose consumer uses `client` (bootstrap servers, security)
    /// with [`ConsumerSettings::restore`], in `client`'s `group.id` or else
    /// `kafka-state-recovery` (it never commits). `stop` ends a recovery
    /// in progress.
    pub fn new(client: &ClientConfig, config: RecoveryConfig, stop: Arc<AtomicBool>) -> Result<Self> {
        let group = client.get("group.id").unwrap_or(RECOVERY_GROUP);
        let settings = ConsumerSettings::restore(group);
        let kafka = config.consumer_client(client);
        let consumer = create_consumer(&kafka, &settings, "creating the recovery consumer")?;
        let metadata = create_consumer(&kafka, &settings, "creating the recovery consumer's metadata client")?;
        Ok(RecoveryManager {
            reader: Mutex::new(ChangelogReader::new(consumer, metadata, config)),
            stop,
        })
    }

    /// Recovers `partitions` concurrently, calling `progress` as they
    /// advance. The results come in the order of `partitions`. On error,
    /// nothing is left assigned and each partition keeps what was written
    /// to it (data and offset agree).
    pub fn recover(
        &self,
        partitions: Vec<RecoveryPartition>,
        progress: &mut dyn FnMut(&RecoveryProgress),
    ) -> Result<Vec<RecoveredPartition>> {
        let mut reader = self.reader.lock();
        let outcome = drive(&mut reader, &self.stop, partitions, progress);
        // Whatever happened, leave nothing behind.
        reader.clear();
        reader.unassign();
        outcome
    }
}

/// What the engine reported, as blocking recovery needs it.
struct Outcomes<'p> {
    progress: &'p mut dyn FnMut(&RecoveryProgress),
    done: HashMap<TopicPartition, ApplyStats>,
    failure: Option<ChangelogError>,
}

impl Outcomes<'_> {
    fn record(&mut self, e: RestoreEvent) {
        match e {
            RestoreEvent::Progress(p) => (self.progress)(&p),
            RestoreEvent::Restored { changelog, stats, .. } => {
                self.done.insert(changelog, stats);
            }
            RestoreEvent::Failed { error, .. } => {
                self.failure.get_or_insert(error);
            }
        }
    }
}

fn drive(
    reader: &mut ChangelogReader,
    stop: &AtomicBool,
    partitions: Vec<RecoveryPartition>,
    progress: &mut dyn FnMut(&RecoveryProgress),
) -> Result<Vec<RecoveredPartition>> {
    let mut outcomes = Outcomes {
        progress,
        done: HashMap::new(),
        failure: None,
    };
    let mut order = Vec::with_capacity(partitions.len());
    for rp in partitions {
        order.push((rp.changelog.clone(), rp.partition.clone()));
        let spec = TaskSpec {
            changelog: rp.changelog,
            partition: rp.partition,
            location: rp.location,
            replay_check: rp.replay_check,
            kind: TaskKind::Restore {
                committed: rp.committed_offsets,
                until: rp.until,
            },
        };
        reader.register(spec)?;
    }
    let stall_timeout = reader.config().stall_timeout;
    while !reader.is_empty() {
        if let Some(error) = outcomes.failure.take() {
            return Err(error);
        }
        if stop.load(Ordering::Relaxed) {
            reader.finish_all()?;
            return Err(ChangelogError::Stopped);
        }
        let clock_read = reader.poll(&mut |e| outcomes.record(e))?;
        if clock_read && reader.idle_for() > stall_timeout {
            return Err(ChangelogError::Stalled {
                remaining: reader.len(),
                timeout_ms: stall_timeout.as_millis(),
                last_broker_failure: reader.last_broker_failure().map(Box::new),
            });
        }
    }
    if let Some(error) = outcomes.failure {
        return Err(error);
    }
    order
        .into_iter()
        .map(|(changelog, partition)| {
            Ok(RecoveredPartition {
                stats: outcomes.done.get(&changelog).copied().unwrap_or_default(),
                offset: partition.changelog_offset()?,
                changelog,
            })
        })
        .collect()
}
