//! The pipeline: topics, input, the processor, the crash, the summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer, ProducerContext};
use rdkafka::Offset;
use state_changelog::{changelog_topic_name, create_topic, ChangelogTopicConfig, RecoveryProgress};
use state_manager::{ManagerConfig, StateContext, StateStoreManager, StoreKind, StoreSpec};

use crate::events::{partition_of, window_start, Generator, Truth};
use crate::verify::{read_output, verify, Verdict};
use crate::{kafka, Config, DemoError, Result};

const GROUP: &str = "pageviews-demo";
const USER_TOTALS: &str = "user-totals";
const PAGE_WINDOWS: &str = "page-windows";
/// Compression of every record the demo produces. Besides saving bytes it
/// keeps a default run within the mock cluster's 5 MB per partition.
const COMPRESSION: &str = "lz4";
/// Give up when nothing moves for this long.
const STALL: Duration = Duration::from_secs(120);

/// Topic names of one run (suffixed on a real cluster so reruns start clean).
pub(crate) struct Topics {
    pub input: String,
    pub by_page: String,
    pub output: String,
}

/// What a run measured and found.
#[derive(Clone, Debug)]
pub struct Report {
    /// Events in the input.
    pub events: u64,
    /// Input records processed, re-processing after the crash included.
    pub processed: u64,
    /// Wall time of processing (both processors, recovery included).
    pub elapsed: Duration,
    /// Input records processed before the crash.
    pub crashed_after: Option<u64>,
    /// Changelog offsets replayed by the second processor.
    pub restored: u64,
    /// How long that recovery took.
    pub recovery: Duration,
    /// Distinct windows in the output.
    pub windows_emitted: usize,
    /// Output records (updates) read.
    pub output_records: u64,
    /// The comparison with the truth.
    pub verdict: Verdict,
}

impl Report {
    /// Input events per second of processing.
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The human summary printed at the end.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "events:          {} in {:.1} s ({:.0} events/s, {} processed incl. re-processing)\n",
            self.events,
            self.elapsed.as_secs_f64(),
            self.events_per_sec(),
            self.processed
        );
        match self.crashed_after {
            Some(n) => {
                s += &format!(
                    "crash:           after {n} events, local state deleted\nrecovery:        {} changelog records restored in {:.2} s\n",
                    self.restored,
                    self.recovery.as_secs_f64()
                )
            }
            None => s += "crash:           none\n",
        }
        s += &format!(
            "windows emitted: {} ({} window updates)\n",
            self.windows_emitted, self.output_records
        );
        s += &format!("verified: {}\n", self.verdict);
        s
    }
}

fn bar(show: bool, len: u64, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Sends `record`, waiting while the producer's queue is full.
fn send<C: ProducerContext<DeliveryOpaque = ()>>(
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

/// Produces the click stream; returns the truth computed from it.
fn produce_input(cfg: &Config, client: &ClientConfig, topic: &str) -> Result<Truth> {
    let producer: BaseProducer = kafka(
        "creating the input producer",
        client
            .clone()
            .set("linger.ms", "20")
            .set("compression.type", COMPRESSION)
            .create(),
    )?;
    let window_ms = cfg.window.as_millis() as i64;
    let mut truth = Truth::default();
    let progress = bar(cfg.progress, cfg.events, "producing");
    for (i, view) in Generator::new(cfg.seed, cfg.users, cfg.pages)
        .take(cfg.events as usize)
        .enumerate()
    {
        truth.add(&view, window_ms);
        let rec = BaseRecord::to(topic)
            .key(view.user.as_bytes())
            .payload(view.page.as_bytes())
            .partition(partition_of(&view.user, cfg.partitions) as i32)
            .timestamp(view.ts);
        send(&producer, "producing input", rec)?;
        if i % 10_000 == 0 {
            progress.set_position(i as u64);
        }
    }
    kafka("flushing the input", producer.flush(Duration::from_secs(120)))?;
    progress.finish_and_clear();
    Ok(truth)
}

/// One processor: a consumer group member with its manager.
struct Processor {
    consumer: BaseConsumer<StateContext>,
    manager: Arc<Mutex<StateStoreManager>>,
    buf: Pending,
    recovery: Arc<Mutex<RecoveryStats>>,
}

/// What the current checkpoint will emit.
#[derive(Default)]
struct Pending {
    /// Repartition records: (page, ts).
    forward: Vec<(String, i64)>,
    /// Windows changed: (partition, page, start) → count.
    changed: BTreeMap<(u32, String, i64), u64>,
    /// Records processed since the last checkpoint.
    records: usize,
}

#[derive(Default)]
struct RecoveryStats {
    started: Option<Instant>,
    finished: Option<Instant>,
    done: BTreeMap<(String, i32), u64>,
}

struct Run<'a> {
    cfg: &'a Config,
    client: ClientConfig,
    topics: &'a Topics,
    state_dir: PathBuf,
    window_ms: i64,
}

impl Run<'_> {
    fn processor(&self) -> Result<Processor> {
        let mut mc = ManagerConfig::new(GROUP, &self.state_dir);
        mc.guarantee = self.cfg.guarantee;
        // One logical instance: the restarted processor fences the crashed one.
        mc.instance_id = "instance-0".into();
        mc.commit_interval = Duration::from_secs(3600);
        // librdkafka's mock cluster does not store offsets sent in a transaction.
        mc.mirror_transactional_offsets = self.cfg.brokers.is_none();
        mc.producer_properties = vec![("compression.type".into(), COMPRESSION.into())];
        let mut manager = StateStoreManager::new(mc, self.client.clone())?;
        manager.register_store(&self.topics.input, USER_TOTALS, StoreSpec::new(StoreKind::KeyValue))?;
        manager.register_store(&self.topics.by_page, PAGE_WINDOWS, StoreSpec::new(StoreKind::Windowed))?;
        manager.ensure_changelog_topics(&ChangelogTopicConfig::default())?;
        let recovery = Arc::new(Mutex::new(RecoveryStats::default()));
        let r = recovery.clone();
        manager.set_progress_listener(move |p: &RecoveryProgress| {
            let mut r = r.lock();
            r.started.get_or_insert_with(Instant::now);
            r.done.insert((p.topic.clone(), p.partition), p.done);
            if p.finished {
                r.finished = Some(Instant::now());
            }
        });
        let manager = Arc::new(Mutex::new(manager));
        let mut c = self.client.clone();
        c.set("group.id", GROUP)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("session.timeout.ms", "6000")
            // Processing between polls lets the fetch queue pass its
            // threshold; librdkafka's default 1 s fetch pause then idles
            // the pipeline (see docs/operations.md).
            .set("fetch.queue.backoff.ms", "5")
            .set("max.poll.interval.ms", "300000");
        let consumer: BaseConsumer<StateContext> = kafka(
            "creating the consumer",
            c.create_with_context(StateContext::new(manager.clone())),
        )?;
        kafka(
            "subscribing",
            consumer.subscribe(&[self.topics.input.as_str(), self.topics.by_page.as_str()]),
        )?;
        Ok(Processor {
            consumer,
            manager,
            buf: Pending::default(),
            recovery,
        })
    }

    fn process(
        &self,
        manager: &Mutex<StateStoreManager>,
        buf: &mut Pending,
        msg: &BorrowedMessage<'_>,
    ) -> Result<bool> {
        let partition = msg.partition() as u32;
        let ts = msg.timestamp().to_millis().unwrap_or(0);
        let key = std::str::from_utf8(msg.key().unwrap_or_default()).map_err(|_| DemoError::BadRecord {
            topic: msg.topic().to_owned(),
            reason: "key is not UTF-8".into(),
        })?;
        let mut m = manager.lock();
        let is_input = msg.topic() == self.topics.input;
        if is_input {
            let page = std::str::from_utf8(msg.payload().unwrap_or_default()).map_err(|_| DemoError::BadRecord {
                topic: msg.topic().to_owned(),
                reason: "page is not UTF-8".into(),
            })?;
            let totals = m.kv(&self.topics.input, USER_TOTALS, partition)?;
            let n: u64 = totals.get("total", key.as_bytes())?.unwrap_or(0);
            totals.set("total", &(n + 1), key.as_bytes())?;
            buf.forward.push((page.to_owned(), ts));
        } else {
            let start = window_start(ts, self.window_ms);
            let end = start + self.window_ms;
            let windows = m.windowed(&self.topics.by_page, PAGE_WINDOWS, partition)?;
            let n: u64 = windows.get_window(start, end, key.as_bytes())?.unwrap_or(0);
            windows.update_window(start, end, &(n + 1), ts, key.as_bytes())?;
            buf.changed.insert((partition, key.to_owned(), start), n + 1);
        }
        m.processed(msg.topic(), partition, msg.offset())?;
        buf.records += 1;
        Ok(is_input)
    }

    /// Emits the checkpoint's repartition records and window results, then
    /// commits everything.
    fn checkpoint(
        &self,
        consumer: &BaseConsumer<StateContext>,
        manager: &Mutex<StateStoreManager>,
        buf: &mut Pending,
    ) -> Result<()> {
        let mut m = manager.lock();
        if let Some(e) = m.take_error() {
            return Err(e.into());
        }
        if !buf.forward.is_empty() || !buf.changed.is_empty() {
            let out = m.output_producer()?;
            for (page, ts) in buf.forward.drain(..) {
                let rec = BaseRecord::to(&self.topics.by_page)
                    .key(page.as_bytes())
                    .payload(&[][..])
                    .partition(partition_of(&page, self.cfg.partitions) as i32)
                    .timestamp(ts);
                send(out.kafka(), "producing", rec)?;
            }
            for ((partition, page, start), count) in std::mem::take(&mut buf.changed) {
                let value = serde_json::json!({
                    "page": page, "start": start, "end": start + self.window_ms, "count": count
                })
                .to_string();
                let rec = BaseRecord::to(&self.topics.output)
                    .key(page.as_bytes())
                    .payload(value.as_bytes())
                    .partition(partition as i32);
                send(out.kafka(), "producing", rec)?;
            }
        }
        m.commit(consumer)?;
        buf.records = 0;
        Ok(())
    }

    /// True once every assigned partition's position is at its high
    /// watermark and nothing is pending.
    fn caught_up(&self, p: &Processor) -> Result<bool> {
        let assignment = kafka("reading the assignment", p.consumer.assignment())?;
        if assignment.count() != 2 * self.cfg.partitions as usize {
            return Ok(false);
        }
        let positions = kafka("reading positions", p.consumer.position())?;
        // A partition this processor has not read from has no position yet;
        // its committed offset says how far the group got.
        let committed = kafka(
            "reading committed offsets",
            p.consumer.committed(Duration::from_secs(10)),
        )?;
        for e in positions.elements() {
            let at = match e.offset() {
                Offset::Offset(pos) => Some(pos),
                _ => committed
                    .find_partition(e.topic(), e.partition())
                    .and_then(|c| match c.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    }),
            };
            let (_, high) = kafka(
                "reading watermarks",
                p.consumer
                    .fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(10)),
            )?;
            match at {
                Some(pos) if pos >= high => {}
                _ if high == 0 => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Runs `p` until `stop_after` input records (then returns Some) or
    /// until everything is processed (then returns None).
    fn drive(&self, p: &mut Processor, stop_after: Option<u64>, processed: &mut u64, bar: &ProgressBar) -> Result<()> {
        let mut last_progress = Instant::now();
        let mut input_here = 0u64;
        loop {
            match p.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(msg)) => {
                    if self.process(&p.manager, &mut p.buf, &msg)? {
                        input_here += 1;
                        *processed += 1;
                        if *processed % 1000 == 0 {
                            bar.set_position((*processed).min(bar.length().unwrap_or(u64::MAX)));
                        }
                        if stop_after.is_some_and(|n| input_here >= n) {
                            return Ok(());
                        }
                    }
                    last_progress = Instant::now();
                    if p.buf.records >= self.cfg.commit_every {
                        self.checkpoint(&p.consumer, &p.manager, &mut p.buf)?;
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                None => {
                    self.checkpoint(&p.consumer, &p.manager, &mut p.buf)?;
                    if self.caught_up(p)? {
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

/// Fails if the mock cluster dropped old records of any partition (its log
/// is capped), which would make the verification meaningless.
fn check_nothing_dropped(consumer: &BaseConsumer<StateContext>, topics: &[String], partitions: u32) -> Result<()> {
    for topic in topics {
        for partition in 0..partitions as i32 {
            let (low, _) = kafka(
                "reading watermarks",
                consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)),
            )?;
            if low > 0 {
                return Err(DemoError::MockRetention {
                    topic: topic.clone(),
                    partition,
                    low,
                });
            }
        }
    }
    Ok(())
}

/// Deletes the processor's local state directory.
fn delete_state(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Runs the whole demo: input, processing with a crash, verification.
pub fn run(cfg: &Config) -> Result<Report> {
    if cfg.partitions == 0 || cfg.window.is_zero() || cfg.commit_every == 0 || !(0.0..1.0).contains(&cfg.crash_at) {
        return Err(DemoError::Config(
            "partitions, window and commit-every must be positive and crash-at in [0, 1)".into(),
        ));
    }
    let mock: Option<MockCluster<'static, DefaultProducerContext>> = match cfg.brokers {
        Some(_) => None,
        None => Some(kafka("starting the mock cluster", MockCluster::new(1))?),
    };
    let brokers = match (&cfg.brokers, &mock) {
        (Some(b), _) => b.clone(),
        (None, Some(m)) => m.bootstrap_servers(),
        (None, None) => unreachable!("a mock cluster is started when no brokers are given"),
    };
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &brokers);
    // Fresh names on a real cluster, so a rerun does not see old records.
    let suffix = match cfg.brokers {
        Some(_) => format!(
            "-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        ),
        None => String::new(),
    };
    let topics = Topics {
        input: format!("pageviews{suffix}"),
        by_page: format!("pageviews-by-page{suffix}"),
        output: format!("page-window-counts{suffix}"),
    };
    match &mock {
        // The mock cluster answers topic creation through its own API only.
        Some(m) => {
            let changelogs = [
                changelog_topic_name(GROUP, &topics.input, USER_TOTALS),
                changelog_topic_name(GROUP, &topics.by_page, PAGE_WINDOWS),
            ];
            for t in [&topics.input, &topics.by_page, &topics.output]
                .into_iter()
                .chain(&changelogs)
            {
                kafka("creating a topic", m.create_topic(t, cfg.partitions as i32, 1))?;
            }
        }
        None => {
            for t in [&topics.input, &topics.by_page, &topics.output] {
                create_topic(&client, t, cfg.partitions as usize, 1, &[], Duration::from_secs(30))?;
            }
        }
    }
    let scratch = tempfile::tempdir()?;
    let state_dir = cfg.state_dir.clone().unwrap_or_else(|| scratch.path().join("state"));
    let run = Run {
        cfg,
        client: client.clone(),
        topics: &topics,
        state_dir: state_dir.clone(),
        window_ms: cfg.window.as_millis() as i64,
    };

    let truth = produce_input(cfg, &client, &topics.input)?;
    let started = Instant::now();
    let progress = bar(cfg.progress, cfg.events, "processing");
    let mut processed = 0u64;
    let crash_after = (cfg.crash_at > 0.0).then_some((cfg.events as f64 * cfg.crash_at) as u64);

    let mut crashed_after = None;
    if let Some(n) = crash_after.filter(|n| *n > 0) {
        let mut first = run.processor()?;
        run.drive(&mut first, Some(n), &mut processed, &progress)?;
        // The crash: the checkpoint in flight is dropped, never committed,
        // and the local state is gone.
        first.manager.lock().abort()?;
        drop(first);
        delete_state(&state_dir)?;
        crashed_after = Some(processed);
        progress.println(format!("crashed after {processed} events; local state deleted"));
    }
    let mut second = run.processor()?;
    run.drive(&mut second, None, &mut processed, &progress)?;
    progress.finish_and_clear();
    let elapsed = started.elapsed();

    let (restored, recovery) = {
        let r = second.recovery.lock();
        let time = match (r.started, r.finished) {
            (Some(s), Some(f)) => f.saturating_duration_since(s),
            _ => Duration::ZERO,
        };
        (r.done.values().sum(), time)
    };
    if mock.is_some() {
        let mut all = vec![topics.input.clone(), topics.by_page.clone(), topics.output.clone()];
        all.extend(second.manager.lock().changelog_topics().into_iter().map(|(_, t)| t));
        check_nothing_dropped(&second.consumer, &all, cfg.partitions)?;
    }
    let output = read_output(&client, &topics.output, cfg.partitions)?;
    let verdict = verify(&truth, &output, &second.manager.lock(), &topics, cfg)?;
    Ok(Report {
        events: cfg.events,
        processed,
        elapsed,
        crashed_after: crashed_after.filter(|_| crash_after.is_some()),
        restored,
        recovery,
        windows_emitted: output.latest.len(),
        output_records: output.records,
        verdict,
    })
}
