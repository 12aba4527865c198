//! [`RecoveryManager`]: rebuilds store partitions from their changelog
//! partitions, all at once, through any [`StorePartition`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use state_core::StorePartition;

use crate::error::{ChangelogError, Result};
use crate::kafka::client::KafkaClientContext;
use crate::kafka::consumer::serve_events;
use crate::kafka::consumer::{create_consumer, ConsumerSettings, RECOVERY_GROUP};
use crate::restore::apply::{ApplierConfig, ApplyStats, ChangelogApplier, IncomingRecord};

/// One store partition to recover and where its changelog is.
pub struct RecoveryPartition {
    /// The store partition to write into.
    pub partition: Arc<dyn StorePartition>,
    /// Changelog topic.
    pub topic: String,
    /// Changelog partition (= the source partition number).
    pub changelog_partition: i32,
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
    /// (see [`state_core::ReplayCheck`]); `None`: no check.
    pub replay_check: Option<state_core::ReplayCheck>,
}

/// Progress of one partition's recovery.
#[derive(Clone, Debug, PartialEq)]
pub struct RecoveryProgress {
    /// Changelog topic.
    pub topic: String,
    /// Changelog partition.
    pub partition: i32,
    /// Offsets consumed so far.
    pub done: u64,
    /// Offsets to consume in total (high watermark - start).
    pub total: u64,
    /// Offsets consumed per second so far.
    pub rate: f64,
    /// Time left at that rate (`None` before there is a rate, and once finished).
    pub eta: Option<Duration>,
    /// True once the partition reached its high watermark.
    pub finished: bool,
}

/// Result of a recovery, per partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredPartition {
    /// Changelog topic.
    pub topic: String,
    /// Changelog partition.
    pub partition: i32,
    /// Applied / skipped records and batches.
    pub stats: ApplyStats,
    /// The stored changelog offset afterwards.
    pub offset: Option<u64>,
}

/// Tuning of recovery.
#[derive(Clone, Debug)]
pub struct RecoveryConfig {
    /// Records per write batch at most.
    pub batch_records: usize,
    /// How long one poll waits.
    pub poll_timeout: Duration,
    /// Timeout of metadata calls (watermarks, positions).
    pub metadata_timeout: Duration,
    /// Give up if no partition makes progress for this long.
    pub stall_timeout: Duration,
    /// Minimum time between two progress reports of a partition.
    pub progress_interval: Duration,
    /// Standby replicas: how often the owner's committed offsets (which
    /// decide what a standby may apply) and the standby's lag are refreshed.
    pub standby_refresh_interval: Duration,
    /// Standby replicas: the longest a staged batch waits before it is
    /// written, so a standby's stored offset follows its changelog.
    pub standby_flush_interval: Duration,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            batch_records: 10_000,
            poll_timeout: Duration::from_millis(100),
            metadata_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(60),
            progress_interval: Duration::from_millis(500),
            standby_refresh_interval: Duration::from_secs(1),
            standby_flush_interval: Duration::from_secs(1),
        }
    }
}

struct Active {
    applier: ChangelogApplier,
    partition: Arc<dyn StorePartition>,
    topic: String,
    changelog_partition: i32,
    start: i64,
    high: i64,
    done: u64,
    started: Instant,
    last_report: Instant,
    finished: bool,
}

impl Active {
    fn progress(&self) -> RecoveryProgress {
        let total = (self.high - self.start).max(0) as u64;
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { self.done as f64 / secs } else { 0.0 };
        RecoveryProgress {
            topic: self.topic.clone(),
            partition: self.changelog_partition,
            done: self.done,
            total,
            rate,
            eta: (rate > 0.0 && !self.finished)
                .then(|| Duration::from_secs_f64(total.saturating_sub(self.done) as f64 / rate)),
            finished: self.finished,
        }
    }
}

/// Reads changelog partitions from each partition's stored offset to the
/// high watermark and applies them in batches.
///
/// * The consumer reads with `isolation.level=read_committed`: records of
///   aborted transactions are never applied.
/// * A partition is finished when the consumer's position reaches the high
///   watermark taken at the start — not when a record at `high - 1` is seen,
///   since transaction markers and compaction leave gaps.
/// * An empty or fully compacted changelog (low = high) finishes at once.
/// * A stored offset at or beyond the high watermark is
///   [`ChangelogError::InvalidStoredOffset`], before anything is applied.
/// * A malformed record fails with a typed error; the partition keeps the
///   batches written before it (data and offset agree), nothing of its batch.
/// * The stop signal ends recovery promptly with [`ChangelogError::Stopped`].
pub struct RecoveryManager {
    consumer: BaseConsumer<KafkaClientContext>,
    config: RecoveryConfig,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for RecoveryManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RecoveryManager {
    /// A manager whose consumer uses `client` (bootstrap servers, security).
    pub fn new(client: &ClientConfig, config: RecoveryConfig, stop: Arc<AtomicBool>) -> Result<Self> {
        let group = client.get("group.id").unwrap_or(RECOVERY_GROUP);
        let consumer = create_consumer(
            client,
            &ConsumerSettings::restore(group),
            "creating the recovery consumer",
        )?;
        Ok(RecoveryManager { consumer, config, stop })
    }

    fn kafka<T>(&self, operation: &'static str, r: rdkafka::error::KafkaResult<T>) -> Result<T> {
        r.map_err(|source| {
            serve_events(&self.consumer);
            ChangelogError::from_kafka(operation, source, None, Some(self.consumer.context()))
        })
    }

    /// Recovers `partitions` concurrently, calling `progress` as they advance.
    pub fn recover(
        &self,
        partitions: Vec<RecoveryPartition>,
        progress: &mut dyn FnMut(&RecoveryProgress),
    ) -> Result<Vec<RecoveredPartition>> {
        let mut active: Vec<Active> = Vec::new();
        let mut results = Vec::new();
        for rp in partitions {
            let (low, high) = self.kafka(
                "fetching changelog watermarks",
                self.consumer
                    .fetch_watermarks(&rp.topic, rp.changelog_partition, self.config.metadata_timeout),
            )?;
            let stored = rp.partition.changelog_offset()?;
            if let Some(stored) = stored {
                if stored as i64 >= high {
                    return Err(ChangelogError::InvalidStoredOffset {
                        topic: rp.topic,
                        partition: rp.changelog_partition,
                        stored,
                        high_watermark: high,
                        path: rp.location,
                    });
                }
            }
            let start = stored.map_or(low, |s| (s as i64 + 1).max(low));
            let high = match rp.until {
                Some(until) => high.min(until as i64 + 1),
                None => high,
            };
            let mut applier = ChangelogApplier::new(
                rp.partition.clone(),
                rp.topic.clone(),
                rp.changelog_partition,
                rp.committed_offsets,
                ApplierConfig {
                    max_batch_records: self.config.batch_records,
                },
            );
            if let Some(check) = rp.replay_check {
                applier = applier.with_replay_check(check);
            }
            let mut a = Active {
                applier,
                partition: rp.partition,
                topic: rp.topic,
                changelog_partition: rp.changelog_partition,
                start,
                high,
                done: 0,
                started: Instant::now(),
                last_report: Instant::now(),
                finished: start >= high,
            };
            tracing::info!(
                topic = a.topic,
                partition = a.changelog_partition,
                start,
                high,
                "recovering {} changelog offsets",
                (high - start).max(0)
            );
            if a.finished {
                progress(&a.progress());
                results.push(RecoveredPartition {
                    topic: a.topic.clone(),
                    partition: a.changelog_partition,
                    stats: ApplyStats::default(),
                    offset: stored,
                });
            } else {
                a.last_report = Instant::now() - self.config.progress_interval;
                active.push(a);
            }
        }
        if active.is_empty() {
            return Ok(results);
        }
        let mut tpl = TopicPartitionList::new();
        let mut index = Index::default();
        for (i, a) in active.iter().enumerate() {
            self.kafka(
                "building the assignment",
                tpl.add_partition_offset(&a.topic, a.changelog_partition, Offset::Offset(a.start)),
            )?;
            index.insert(&a.topic, a.changelog_partition, i);
        }
        self.kafka("assigning changelog partitions", self.consumer.assign(&tpl))?;
        let outcome = self.consume(&mut active, &index, progress);
        // Whatever happened, leave nothing assigned.
        let _ = self.consumer.unassign();
        outcome?;
        for a in active {
            results.push(RecoveredPartition {
                offset: a.partition.changelog_offset()?,
                topic: a.topic,
                partition: a.changelog_partition,
                stats: a.applier.stats(),
            });
        }
        Ok(results)
    }

    fn consume(&self, active: &mut [Active], index: &Index, progress: &mut dyn FnMut(&RecoveryProgress)) -> Result<()> {
        let mut remaining = active.iter().filter(|a| !a.finished).count();
        let mut last_progress = Instant::now();
        // Reading the clock costs as much as applying a small record on
        // some virtual machines: read it every few hundred records and at
        // the end of each fetch, which is precise enough for progress
        // reports and the stall timeout.
        let mut now = last_progress;
        let mut since_clock = 0u32;
        while remaining > 0 {
            if self.stop.load(Ordering::Relaxed) {
                for a in active.iter_mut() {
                    a.applier.finish()?;
                }
                return Err(ChangelogError::Stopped);
            }
            match self.consumer.poll(self.config.poll_timeout) {
                Some(Ok(msg)) => {
                    since_clock += 1;
                    if since_clock >= CLOCK_EVERY {
                        since_clock = 0;
                        now = Instant::now();
                    }
                    let Some(i) = index.get(&msg) else {
                        continue;
                    };
                    let a = &mut active[i];
                    if a.finished || msg.offset() >= a.high {
                        continue;
                    }
                    let headers = msg
                        .headers()
                        .into_iter()
                        .flat_map(|h| h.iter().map(|h| (h.key, h.value)));
                    a.applier.apply(IncomingRecord::from_headers(
                        msg.offset(),
                        msg.key(),
                        msg.payload(),
                        headers,
                    ))?;
                    a.done = (msg.offset() - a.start + 1).max(0) as u64;
                    last_progress = now;
                    if msg.offset() + 1 >= a.high {
                        Self::finish(a, progress)?;
                        remaining -= 1;
                    } else if now.saturating_duration_since(a.last_report) >= self.config.progress_interval {
                        a.last_report = now;
                        tracing::debug!(
                            topic = a.topic,
                            partition = a.changelog_partition,
                            done = a.done,
                            "recovering"
                        );
                        progress(&a.progress());
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "recovery consumer error; retrying");
                }
                None => {
                    now = Instant::now();
                    // The end of a fetch: hand what we have to the writer,
                    // then check positions, which move past markers and
                    // compacted gaps.
                    for a in active.iter_mut().filter(|a| !a.finished) {
                        a.applier.submit()?;
                    }
                    let positions = self.kafka("reading consumer positions", self.consumer.position())?;
                    for el in positions.elements() {
                        let Some(i) = index.get_by_name(el.topic(), el.partition()) else {
                            continue;
                        };
                        let a = &mut active[i];
                        if let Offset::Offset(pos) = el.offset() {
                            if !a.finished && pos >= a.high {
                                a.done = (a.high - a.start) as u64;
                                Self::finish(a, progress)?;
                                remaining -= 1;
                                last_progress = now;
                            }
                        }
                    }
                    if remaining > 0 && now.saturating_duration_since(last_progress) > self.config.stall_timeout {
                        return Err(ChangelogError::Stalled {
                            remaining,
                            timeout_ms: self.config.stall_timeout.as_millis(),
                            last_broker_failure: self.consumer.context().last_failure().map(Box::new),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(a: &mut Active, progress: &mut dyn FnMut(&RecoveryProgress)) -> Result<()> {
        let stats = a.applier.finish()?;
        a.finished = true;
        tracing::info!(
            topic = a.topic,
            partition = a.changelog_partition,
            applied = stats.applied,
            skipped = stats.skipped,
            batches = stats.batches,
            "changelog partition recovered"
        );
        progress(&a.progress());
        Ok(())
    }
}

/// Records between two reads of the clock in the consume loops.
pub(crate) const CLOCK_EVERY: u32 = 256;

/// Which entry of the active list a changelog partition is, looked up per
/// record. With one topic (the usual case: one store's changelog) the
/// topic name is compared, not hashed; a partition is found by its number.
/// The hot loop allocates nothing.
#[derive(Default)]
struct Index(HashMap<String, HashMap<i32, usize>>);

impl Index {
    fn insert(&mut self, topic: &str, partition: i32, i: usize) {
        self.0.entry(topic.to_owned()).or_default().insert(partition, i);
    }

    fn get(&self, msg: &BorrowedMessage<'_>) -> Option<usize> {
        let by_partition = match self.0.len() {
            1 => {
                let (topic, by_partition) = self.0.iter().next()?;
                if msg.topic() != topic {
                    return None;
                }
                by_partition
            }
            _ => self.0.get(msg.topic())?,
        };
        by_partition.get(&msg.partition()).copied()
    }

    fn get_by_name(&self, topic: &str, partition: i32) -> Option<usize> {
        self.0.get(topic)?.get(&partition).copied()
    }
}
