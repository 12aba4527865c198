//! One processor: a consumer-group member with its state manager, the
//! per-record processing, checkpoints with their output, and the loop that
//! drives it until the input is done (or until a crash point).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, ProducerContext};
use rdkafka::Offset;
use state_changelog::{ChangelogTopicConfig, ConsumerSettings, RecoveryProgress};
use state_manager::state_snapshot::StoreOptions;
use state_manager::{
    ManagerConfig, ManagerEvent, OutputRecord, SnapshotSettings, SnapshotStore, StateContext, StateStoreManager,
    StoreSpec, WriteBehindConfig,
};
use state_windows::WindowResult;

use crate::align::Align;
use crate::deliveries::Deliveries;
use crate::events::partition_of;
use crate::http::{Live, Shared, EVENTS_PROCESSED};
use crate::progress::{Meter, Progress};
use crate::restores::RecoveryStats;
use crate::thread_time::ThreadTime;
use crate::topics::{Stores, Topics, GROUP, PAGE_WINDOWS, USER_SESSIONS, USER_TOTALS};
use crate::windows::{PageViews, UserSessions};
use crate::{kafka, Config, DemoError, Result};

/// Compression of every record the demo produces. Besides saving bytes it
/// keeps a default run within the mock cluster's 5 MB per partition.
pub(crate) const COMPRESSION: &str = "lz4";
/// Give up when nothing moves for this long.
const STALL: Duration = Duration::from_secs(120);
/// How often the processing loop tells the HTTP handlers where it is.
const STATUS_EVERY: Duration = Duration::from_millis(200);
/// How long a poll waits for records.
const POLL: Duration = Duration::from_millis(100);
/// How long a poll waits while partitions restore: `maintain` resumes a
/// restored partition only once a poll returns, so a long wait would hold
/// the partition back (the restores of a fresh start finish in ~25 ms).
const POLL_WHILE_RESTORING: Duration = Duration::from_millis(5);

/// Sends `record`, waiting while the producer's queue is full.
pub(crate) fn send<C: ProducerContext<DeliveryOpaque = ()>>(
    producer: &BaseProducer<C>,
    operation: &'static str,
    mut record: BaseRecord<'_, [u8], [u8], ()>,
) -> Result<()> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(DemoError::Kafka { operation, source: e }),
        }
    }
}

/// When a consumer group member first held partitions: the wait before it
/// is the broker's (its initial rebalance delay, or the rebalance a
/// departed member started), not the pipeline's work, and is reported
/// apart from processing.
pub(crate) struct GroupJoin {
    subscribed: Instant,
    assigned: Option<Instant>,
}

impl GroupJoin {
    /// Starts the clock: call right after subscribing.
    pub fn new() -> Self {
        GroupJoin {
            subscribed: Instant::now(),
            assigned: None,
        }
    }

    /// Notes the first poll after which `consumer` holds partitions (off
    /// by at most one poll's timeout); free once noted.
    pub fn check<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(&mut self, consumer: &C) -> Result<()> {
        if self.assigned.is_none() && kafka("reading the assignment", consumer.assignment())?.count() > 0 {
            self.assigned = Some(Instant::now());
        }
        Ok(())
    }

    /// True once the group gave partitions.
    pub fn assigned(&self) -> bool {
        self.assigned.is_some()
    }

    /// From subscribing to the first assignment (so far, if none yet).
    pub fn waited(&self) -> Duration {
        self.assigned.unwrap_or_else(Instant::now) - self.subscribed
    }
}

/// Store partitions restored from snapshots, as the manager reported them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotRestores {
    /// Store partitions.
    pub partitions: usize,
    /// Bytes of their snapshots.
    pub bytes: u64,
    /// Time finding, downloading, checking and opening them, added up (one
    /// after another on the manager's snapshot thread, so also the wall
    /// time they took before their changelog tails).
    pub took: Duration,
}

/// One processor: a consumer group member with its manager.
pub(crate) struct Processor {
    pub consumer: BaseConsumer<StateContext>,
    pub manager: Arc<Mutex<StateStoreManager>>,
    pub stores: Stores,
    buf: Pending,
    pub recovery: Arc<Mutex<RecoveryStats>>,
    /// What its manager restored from snapshots.
    pub from_snapshots: Arc<Mutex<SnapshotRestores>>,
    /// Checkpoints its manager rewound (`ManagerEvent::CheckpointRewound`).
    pub rewinds: Arc<AtomicU64>,
    /// Keeps the input partitions close in event time.
    align: Align,
    /// Checks that the consumer hands out records in order and once.
    pub deliveries: Deliveries,
    /// `rewinds` as `deliveries` last saw it.
    rewinds_seen: u64,
    /// Where its processing time went.
    pub split: TimeSplit,
    /// When the group first gave it partitions.
    pub join: GroupJoin,
    /// Asks the broker where partitions end, for the end-of-input check.
    /// A client of its own: on the consumer's connection the question
    /// queues behind a fetch the broker holds while it has no records
    /// (up to `fetch.wait.max.ms`), which cost 0.3-0.4 s a check.
    ends: BaseConsumer,
}

/// A client that only asks where partitions end (a consumer that never
/// joins its group): the input's ends before processing, and each
/// processor's end-of-input check.
pub(crate) fn ends_client(client: &ClientConfig) -> Result<BaseConsumer> {
    kafka(
        "creating the client that reads where partitions end",
        ConsumerSettings::new(format!("{GROUP}-ends"))
            .client_config(client)
            .create(),
    )
}

/// Where a processor's time went once it had partitions: polls that
/// returned nothing (waiting for the broker or for the restores) with the
/// end-of-input checks after them, and checkpoints (output records sent,
/// then the manager's commit). The rest is processing records and the
/// polls that returned them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeSplit {
    /// Polls that returned no record, and the checks for the end of the
    /// input after them.
    pub empty_polls: Duration,
    /// Polls that returned a record: part of processing records, the time
    /// the consumer took to hand it out (waiting for a fetch when its
    /// queue ran dry).
    pub record_polls: Duration,
    /// Checkpoints, with the output they send.
    pub checkpoints: Duration,
    /// The processing thread's time on a core and waiting for one, from
    /// its first poll to its last (`None` where the kernel does not say).
    pub poll_thread: Option<ThreadTime>,
    /// How many checkpoints committed.
    pub checkpoint_count: u64,
}

impl std::ops::AddAssign for TimeSplit {
    fn add_assign(&mut self, other: TimeSplit) {
        self.empty_polls += other.empty_polls;
        self.record_polls += other.record_polls;
        if let Some(t) = other.poll_thread {
            *self.poll_thread.get_or_insert_with(ThreadTime::default) += t;
        }
        self.checkpoints += other.checkpoints;
        self.checkpoint_count += other.checkpoint_count;
    }
}

/// What a processor counted that the summary reports, summed over the
/// processors of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Checkpoints its manager rewound.
    pub rewound_checkpoints: u64,
    /// Records handed out again with no rewind (`Deliveries::again`).
    pub delivered_again: u64,
    /// Input offsets jumped over (`Deliveries::skipped`).
    pub skipped_offsets: u64,
    /// Where its processing time went.
    pub split: TimeSplit,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.rewound_checkpoints += other.rewound_checkpoints;
        self.delivered_again += other.delivered_again;
        self.skipped_offsets += other.skipped_offsets;
        self.split += other.split;
    }
}

impl Processor {
    /// What it counted so far.
    pub fn tally(&self) -> Tally {
        Tally {
            rewound_checkpoints: self.rewinds.load(Ordering::Relaxed),
            delivered_again: self.deliveries.again(),
            skipped_offsets: self.deliveries.skipped(),
            split: self.split,
        }
    }
}

/// What the current checkpoint will emit. Its records are sent when the
/// checkpoint commits, not as they are made: librdkafka's mock cluster
/// never lists aborted transactions in its fetch responses, so a
/// read-committed consumer there would see the records of the transaction
/// a crash aborts (on Kafka they could go at once; docs/performance.md).
#[derive(Default)]
struct Pending {
    /// Repartition records: (page, ts).
    forward: Vec<(String, i64)>,
    /// Page windows closed, with the partition they were processed in.
    closed_windows: Vec<(u32, WindowResult<u64>)>,
    /// User sessions closed, with their partition.
    closed_sessions: Vec<(u32, WindowResult<u64>)>,
    /// Records processed since the last checkpoint.
    records: usize,
}

/// What every processor of one run shares.
pub(crate) struct Run<'a> {
    pub cfg: &'a Config,
    pub client: ClientConfig,
    pub topics: &'a Topics,
    pub state_dir: PathBuf,
    /// Views per page and window.
    pub views: PageViews,
    /// Sessions per user.
    pub sessions: UserSessions,
    /// Where each input partition ends.
    pub input_ends: Vec<i64>,
    pub progress: Progress,
    /// The HTTP handlers' view of the run, when serving.
    pub shared: Option<Arc<Shared>>,
}

impl Run<'_> {
    /// Snapshots in the local directory `dir`: taken once a partition's
    /// changelog moved by a checkpoint's worth of records spread over the
    /// partitions, or every second, so a run of any size has some before
    /// its crash.
    fn snapshot_settings(&self, dir: &std::path::Path) -> Result<SnapshotSettings> {
        let dir = std::path::absolute(dir)?;
        let store = SnapshotStore::open(&format!("file://{}", dir.display()), &StoreOptions::new())?;
        let per_partition = (self.cfg.commit_every as u64 / u64::from(self.cfg.partitions.max(1))).max(1);
        Ok(SnapshotSettings::new(store)
            .every_records(Some(per_partition))
            .every(Some(Duration::from_secs(1))))
    }

    /// A new processor (a new group member with its own manager).
    pub fn processor(&self) -> Result<Processor> {
        let mut mc = ManagerConfig::with_backend(GROUP, &self.state_dir, self.cfg.backend.clone());
        mc.guarantee = self.cfg.guarantee;
        // One logical instance: the restarted processor fences the crashed one.
        mc.instance_id = Some("instance-0".into());
        mc.commit_interval = Duration::from_secs(3600);
        // librdkafka's mock cluster does not store offsets sent in a transaction.
        mc.mirror_transactional_offsets = self.cfg.brokers.is_none();
        mc.producer_properties = vec![("compression.type".into(), COMPRESSION.into())];
        // Write-behind caches already take the local write off the poll
        // loop; pipelining on top of them measured slower (reads through
        // the write in flight, then the cache), so they keep the
        // sequential checkpoint.
        mc.pipelined_checkpoints = self.cfg.pipelined && !self.cfg.write_behind;
        if let Some(dir) = &self.cfg.snapshots {
            mc.snapshots = Some(self.snapshot_settings(dir)?);
        }
        let mut manager = StateStoreManager::new(mc, self.client.clone())?;
        let from_snapshots = Arc::new(Mutex::new(SnapshotRestores::default()));
        let counted = from_snapshots.clone();
        let rewinds = Arc::new(AtomicU64::new(0));
        let rewound = rewinds.clone();
        manager.set_event_listener(move |e| match e {
            ManagerEvent::RestoredFromSnapshot { bytes, took, .. } => {
                let mut c = counted.lock();
                c.partitions += 1;
                c.bytes += bytes;
                c.took += *took;
            }
            ManagerEvent::CheckpointRewound { .. } => {
                rewound.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        });
        let mut user_totals = StoreSpec::key_value(&self.topics.input, USER_TOTALS);
        let mut page_windows = StoreSpec::windowed(&self.topics.by_page, PAGE_WINDOWS);
        let mut user_sessions = StoreSpec::windowed(&self.topics.input, USER_SESSIONS);
        if self.cfg.write_behind {
            user_totals = user_totals.write_behind(WriteBehindConfig::default());
            // Window stores get bounds that hold their open windows between
            // flushes (see `WriteBehindConfig::windowed`).
            page_windows = page_windows.write_behind(WriteBehindConfig::windowed());
            user_sessions = user_sessions.write_behind(WriteBehindConfig::windowed());
        }
        let stores = Stores {
            user_totals: manager.register_store(user_totals)?,
            page_windows: manager.register_store(page_windows)?,
            user_sessions: manager.register_store(user_sessions)?,
        };
        manager.ensure_changelog_topics(&ChangelogTopicConfig::default())?;
        let recovery = Arc::new(Mutex::new(RecoveryStats::default()));
        let r = recovery.clone();
        let progress = self.progress.clone();
        let mut meters: BTreeMap<(String, i32), Meter> = BTreeMap::new();
        manager.set_progress_listener(move |p: &RecoveryProgress| {
            r.lock().record(p);
            if p.total == 0 {
                // Nothing to restore: no meter.
                return;
            }
            let (topic, partition) = (p.changelog.topic(), p.changelog.partition());
            let key = (topic.to_owned(), partition);
            let meter = meters.entry(key).or_insert_with(|| {
                // changelog__<group>--<stream>--<store>: name the store.
                let store = topic.rsplit("--").next().unwrap_or(topic);
                progress.meter(&format!("restore {store}[{partition}]"), p.total, "records")
            });
            meter.set_length(p.total);
            meter.set_position(p.done);
            if p.finished {
                meter.finish();
            }
        });
        if let Some(shared) = &self.shared {
            shared.set_live(Live {
                reader: manager.reader(),
                stores: stores.clone(),
                recovery: recovery.clone(),
            });
        }
        let manager = Arc::new(Mutex::new(manager));
        let mut c = consumer_config(&self.client, GROUP, self.cfg.brokers.is_none());
        if let Ok(d) = std::env::var("PAGEVIEWS_CONSUMER_DEBUG") {
            c.set("debug", d);
        }
        let consumer: BaseConsumer<StateContext> = kafka(
            "creating the consumer",
            c.create_with_context(StateContext::new(manager.clone())),
        )?;
        kafka(
            "subscribing",
            consumer.subscribe(&[self.topics.input.as_str(), self.topics.by_page.as_str()]),
        )?;
        let ends = ends_client(&self.client)?;
        Ok(Processor {
            ends,
            join: GroupJoin::new(),
            consumer,
            manager,
            stores,
            buf: Pending::default(),
            recovery,
            from_snapshots,
            rewinds,
            align: Align::new(&self.topics.input, self.input_ends.clone(), self.cfg.window_grace / 2),
            deliveries: Deliveries::default(),
            rewinds_seen: 0,
            split: TimeSplit::default(),
        })
    }

    /// Processes one record of `topic` (its topic, which the caller reads
    /// once); true if it was an input event, false for a repartitioned
    /// view.
    fn process(
        &self,
        manager: &Mutex<StateStoreManager>,
        stores: &Stores,
        buf: &mut Pending,
        msg: &BorrowedMessage<'_>,
        topic: &str,
    ) -> Result<bool> {
        let partition = msg.partition() as u32;
        let ts = msg.timestamp().to_millis().unwrap_or(0);
        let key = std::str::from_utf8(msg.key().unwrap_or_default()).map_err(|_| DemoError::BadRecord {
            topic: topic.to_owned(),
            reason: "key is not UTF-8".into(),
        })?;
        let mut m = manager.lock();
        let is_input = topic == self.topics.input;
        if is_input {
            let page = std::str::from_utf8(msg.payload().unwrap_or_default()).map_err(|_| DemoError::BadRecord {
                topic: topic.to_owned(),
                reason: "page is not UTF-8".into(),
            })?;
            let mut user = m.txn(&stores.user_totals, partition)?.key(key.as_bytes());
            let n: u64 = user.get("total")?.unwrap_or(0);
            user.set("total", &(n + 1))?;
            let sessions = m.txn(&stores.user_sessions, partition)?;
            for closed in self.sessions.process(sessions, key.as_bytes(), ts, page)? {
                buf.closed_sessions.push((partition, closed));
            }
            buf.forward.push((page.to_owned(), ts));
        } else {
            let windows = m.txn(&stores.page_windows, partition)?;
            for closed in self.views.process(windows, key.as_bytes(), ts, &())? {
                buf.closed_windows.push((partition, closed));
            }
        }
        m.processed(topic, partition, msg.offset())?;
        buf.records += 1;
        Ok(is_input)
    }

    /// Emits the checkpoint's repartition records, closed windows and
    /// closed sessions, then commits everything.
    fn checkpoint(
        &self,
        consumer: &BaseConsumer<StateContext>,
        manager: &Mutex<StateStoreManager>,
        buf: &mut Pending,
    ) -> Result<()> {
        let mut m = manager.lock();
        // Through the manager's topic handles: no lookup by name per record.
        if !buf.forward.is_empty() {
            let by_page = m.output_topic(&self.topics.by_page)?;
            for (page, ts) in buf.forward.drain(..) {
                let rec = OutputRecord::new()
                    .key(page.as_bytes())
                    .value(&[])
                    .partition(partition_of(&page, self.cfg.partitions) as i32)
                    .timestamp(ts);
                by_page.send(rec)?;
            }
        }
        if !buf.closed_windows.is_empty() {
            let output = m.output_topic(&self.topics.output)?;
            for (partition, w) in buf.closed_windows.drain(..) {
                let page = String::from_utf8_lossy(&w.key);
                let value = serde_json::json!({ "page": page, "start": w.start, "end": w.end, "count": w.value });
                let value = value.to_string();
                output.send(
                    OutputRecord::new()
                        .key(&w.key)
                        .value(value.as_bytes())
                        .partition(partition as i32),
                )?;
            }
        }
        if !buf.closed_sessions.is_empty() {
            let sessions = m.output_topic(&self.topics.sessions)?;
            for (partition, s) in buf.closed_sessions.drain(..) {
                let user = String::from_utf8_lossy(&s.key);
                let value = serde_json::json!({ "user": user, "start": s.start, "end": s.end, "views": s.value });
                let value = value.to_string();
                sessions.send(
                    OutputRecord::new()
                        .key(&s.key)
                        .value(value.as_bytes())
                        .partition(partition as i32),
                )?;
            }
        }
        m.commit(consumer)?;
        buf.records = 0;
        Ok(())
    }

    /// [`checkpoint`](Self::checkpoint), counted in `p.split` when it had
    /// records to commit.
    fn timed_checkpoint(&self, p: &mut Processor) -> Result<()> {
        let records = p.buf.records;
        let started = Instant::now();
        self.checkpoint(&p.consumer, &p.manager, &mut p.buf)?;
        if records > 0 {
            p.split.checkpoints += started.elapsed();
            p.split.checkpoint_count += 1;
        }
        Ok(())
    }

    /// True once every assigned partition's position is at its high
    /// watermark and nothing is pending.
    fn caught_up(&self, p: &Processor) -> Result<bool> {
        let assignment = kafka("reading the assignment", p.consumer.assignment())?;
        if assignment.count() != 2 * self.cfg.partitions as usize || !p.manager.lock().restoring().is_empty() {
            return Ok(false);
        }
        let positions = kafka("reading positions", p.consumer.position())?;
        // A partition this processor has not read from has no position yet;
        // its committed offset says how far the group got (asked only then:
        // the group coordinator's answer can queue behind a held fetch too).
        let mut committed = None;
        let mut at = Vec::with_capacity(positions.count());
        for e in positions.elements() {
            let pos = match e.offset() {
                Offset::Offset(pos) => Some(pos),
                _ => {
                    if committed.is_none() {
                        committed = Some(kafka(
                            "reading committed offsets",
                            p.consumer.committed(Duration::from_secs(10)),
                        )?);
                    }
                    committed
                        .as_ref()
                        .and_then(|c| c.find_partition(e.topic(), e.partition()))
                        .and_then(|c| match c.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        })
                }
            };
            at.push((e.topic().to_owned(), e.partition(), pos));
        }
        // Each partition's end from the broker, asked for all at once: one
        // after another they took about 300 ms each on the mock cluster,
        // 2.4 s at the end of every run.
        let ends: Vec<Result<i64>> = std::thread::scope(|scope| {
            let asks: Vec<_> = at
                .iter()
                .map(|(topic, partition, _)| {
                    let consumer = &p.ends;
                    scope.spawn(move || {
                        kafka(
                            "reading watermarks",
                            consumer.fetch_watermarks(topic, *partition, Duration::from_secs(10)),
                        )
                        .map(|(_, high)| high)
                    })
                })
                .collect();
            asks.into_iter()
                .map(|ask| ask.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        });
        for ((_, _, pos), high) in at.iter().zip(ends) {
            let high = high?;
            match pos {
                Some(pos) if *pos >= high => {}
                _ if high == 0 => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Tells the HTTP handlers how far `p` got and which partitions it
    /// has (they answer 503 for restoring partitions, 404 for others).
    fn publish(&self, p: &Processor, processed: u64) {
        let Some(shared) = &self.shared else { return };
        let (assigned, restoring) = {
            let m = p.manager.lock();
            let mut assigned = BTreeSet::new();
            for stream in shared.streams() {
                for partition in 0..self.cfg.partitions {
                    if m.is_assigned(stream, partition) {
                        assigned.insert((stream.to_owned(), partition));
                    }
                }
            }
            let restoring = m
                .restoring()
                .into_iter()
                .map(|tp| (tp.topic().to_owned(), tp.store_partition()))
                .collect();
            (assigned, restoring)
        };
        shared.update(processed, assigned, restoring);
    }

    /// Runs `p` until `stop_after` input records or until everything is
    /// processed.
    pub fn drive(&self, p: &mut Processor, stop_after: Option<u64>, processed: &mut u64, meter: &Meter) -> Result<()> {
        let before = ThreadTime::now();
        let driven = self.drive_loop(p, stop_after, processed, meter);
        if let (Some(before), Some(after)) = (before, ThreadTime::now()) {
            *p.split.poll_thread.get_or_insert_with(ThreadTime::default) += after.since(before);
        }
        driven
    }

    /// [`drive`](Self::drive)'s loop.
    fn drive_loop(&self, p: &mut Processor, stop_after: Option<u64>, processed: &mut u64, meter: &Meter) -> Result<()> {
        let mut last_progress = Instant::now();
        let mut last_status = Instant::now();
        let mut input_here = 0u64;
        let events = metrics::counter!(EVENTS_PROCESSED);
        self.publish(p, *processed);
        let mut poll_for = POLL;
        loop {
            // Two clock reads a turn: around the poll, the second one also
            // the turn's time for the status and the stall checks.
            let polling = Instant::now();
            let polled = p.consumer.poll(poll_for);
            let polled_at = Instant::now();
            if p.join.assigned() {
                match polled {
                    None => p.split.empty_polls += polled_at - polling,
                    Some(_) => p.split.record_polls += polled_at - polling,
                }
            }
            p.join.check(&p.consumer)?;
            // Errors of rebalances and restores; resumes restored partitions.
            p.manager.lock().maintain(&p.consumer)?;
            p.align.adjust(&p.consumer, &p.manager.lock())?;
            if polled_at.saturating_duration_since(last_status) >= STATUS_EVERY {
                self.publish(p, *processed);
                last_status = polled_at;
            }
            match polled {
                Some(Ok(msg)) => {
                    let rewinds = p.rewinds.load(Ordering::Relaxed);
                    if rewinds != p.rewinds_seen {
                        p.rewinds_seen = rewinds;
                        p.deliveries.rewound();
                    }
                    // Read once: librdkafka hands the name out as a C
                    // string, measured and checked as UTF-8 on every call.
                    let topic = msg.topic();
                    let input = topic == self.topics.input;
                    p.deliveries.handed_out(input, msg.partition(), msg.offset());
                    if self.process(&p.manager, &p.stores, &mut p.buf, &msg, topic)? {
                        let ts = msg.timestamp().to_millis().unwrap_or(0);
                        p.align.processed(msg.partition(), msg.offset(), ts);
                        input_here += 1;
                        *processed += 1;
                        events.increment(1);
                        if (*processed).is_multiple_of(1000) {
                            meter.set_position((*processed).min(self.cfg.events));
                        }
                        if stop_after.is_some_and(|n| input_here >= n) {
                            self.publish(p, *processed);
                            return Ok(());
                        }
                    }
                    last_progress = polled_at;
                    if p.buf.records >= self.cfg.commit_every {
                        self.timed_checkpoint(p)?;
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                None => {
                    poll_for = if p.manager.lock().restoring().is_empty() {
                        POLL
                    } else {
                        POLL_WHILE_RESTORING
                    };
                    self.timed_checkpoint(p)?;
                    let checking = Instant::now();
                    // With pipelined checkpoints the last one may still be
                    // in flight: under at-least-once its records (the
                    // repartitioned views among them) are not yet known
                    // delivered, so the ends read next could miss them, and
                    // under either guarantee its local write may not have
                    // landed for the check of the state that follows.
                    p.manager.lock().finish_checkpoint(&p.consumer)?;
                    let done = self.caught_up(p)?;
                    p.split.empty_polls += checking.elapsed();
                    if done {
                        self.publish(p, *processed);
                        return Ok(());
                    }
                    if last_progress.elapsed() > STALL {
                        return Err(DemoError::Stuck(STALL, "no records arrive".into()));
                    }
                }
            }
        }
    }
}

/// The processing consumer's settings for consumer group `group` on
/// `client`; the bare reference pipeline uses them too, so the two differ
/// only by the state. `on_mock`: the client talks to librdkafka's mock
/// cluster (see [`MOCK_SESSION_TIMEOUT`]).
pub(crate) fn consumer_config(client: &ClientConfig, group: &str, on_mock: bool) -> ClientConfig {
    let mut c = client.clone();
    // Processing between polls lets the fetch queue pass its threshold;
    // librdkafka's default 1 s fetch pause then idles the pipeline (see
    // docs/operations.md): a short fetch backoff.
    ConsumerSettings::new(group)
        .from_earliest()
        .short_fetch_backoff()
        .apply_to(&mut c)
        .set("max.poll.interval.ms", "300000")
        // Small prefetches: a partition that runs ahead in event time is
        // paused (see `Align`), which drops what was prefetched.
        .set("max.partition.fetch.bytes", "65536")
        .set("queued.min.messages", "5000");
    if on_mock {
        c.set("session.timeout.ms", MOCK_SESSION_TIMEOUT.as_millis().to_string())
            .set("heartbeat.interval.ms", "1000");
    } else {
        // The least a Kafka broker accepts by default
        // (`group.min.session.timeout.ms`).
        c.set("session.timeout.ms", "6000");
    }
    c
}

/// The processors' session timeout on librdkafka's mock cluster. There a
/// member leaving the group (the crashed processor's consumer closing)
/// starts a rebalance that lasts `session.timeout.ms` − 1 s
/// (`rdkafka_mock_cgrp.c`), and the restarted processor waits it out.
/// A Kafka broker instead empties the group at once, and the restarted
/// member waits the initial rebalance delay,
/// `group.initial.rebalance.delay.ms`, 3 s by default. 4 s makes the
/// mock's wait those 3 s (it was 4.8–5.0 s with 6 s). Heartbeats every
/// second keep a busy machine from timing a member out.
pub(crate) const MOCK_SESSION_TIMEOUT: Duration = Duration::from_secs(4);
