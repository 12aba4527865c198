//! The end-to-end workload `e2e` of docs/performance.md ("e2e input and the
//! quixstreams baseline"): a consumer → state → producer pipeline with
//! checkpoints, on a broker in its own process, under exactly-once
//! (`e2e-eos`) and at-least-once (`e2e-alos`).
//!
//! The job has quixstreams' shape: N page views (the pageviews generator)
//! in a 3-partition input topic; per user a count in a key-value store;
//! every view re-keyed by page through a repartition topic; per page a
//! count in 10 s tumbling windows emitted on every update (`.current()`),
//! one output record per input. A checkpoint every C *consumed* records
//! (the repartition records count too: 2N/C checkpoints).
//!
//! Systems, in the same interleaved rounds, each on a fresh broker:
//! * `state-rocksdb`: the job on the manager (RocksDB);
//! * `state-rocksdb-wb`: the same behind write-behind caches;
//! * `bare`: the same topology and client settings (the same manager,
//!   transactions and offset commits) without any state: the limit;
//! * with `QUIX_PYTHON` set, quixstreams 3.28.1 runs
//!   `fixtures/quixstreams/bench_e2e.py` on its own fresh broker after the
//!   rounds, in the same run.
//!
//! Events/s run from the return of the first poll that yields a record to
//! the end of the last checkpoint's commit. The time is split into `poll`,
//! `state` (stores and window), `produce` (send calls), and `checkpoint`,
//! itself split by the manager's checkpoint stages (`produced`: prepare and
//! producer flush; `committed`: offsets or Kafka transaction; `flushed`:
//! local state).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pageviews::events::{partition_of, Generator};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use state_changelog::changelog_topic_name;
use state_manager::{
    CheckpointStage, ConsumerSettings, KeyValueStore, ManagerConfig, ProcessingGuarantee, StateContext,
    StateStoreManager, StoreHandle, StoreSpec, WindowedStore, WriteBehindConfig,
};
use state_windows::kinds::FixedKind;
use state_windows::layout::Single;
use state_windows::{Count, Emit, Tumbling, WindowOperator};

use super::{err, measure_rounds, report, Outcome, Systems};
use crate::crash::Broker;
use crate::params::Params;

/// The workloads, by name.
pub(crate) const WORKLOADS: [&str; 3] = ["e2e", "e2e-eos", "e2e-alos"];

const SEED: u64 = 42;
const USERS: u32 = 10_000;
const PAGES: u32 = 500;
const PARTITIONS: u32 = 3;
const WINDOW: Duration = Duration::from_secs(10);
/// No record is ever late (see docs/performance.md: quixstreams drops late
/// records, and the repartition topic interleaves three partitions).
const GRACE: Duration = Duration::from_secs(3600);
const GROUP: &str = "e2e-bench";
const INPUT: &str = "pageviews";
const BY_PAGE: &str = "pageviews-by-page";
const OUTPUT: &str = "pageviews-counts";
const USER_TOTALS: &str = "default";
/// What the pageviews demo and the quixstreams script set on every producer.
const COMPRESSION: &str = "lz4";
/// A run that receives nothing for this long fails.
const STALL: Duration = Duration::from_secs(60);
/// The mock cluster keeps 5 MB per partition: the largest N that fits.
const MAX_N: u64 = 200_000;

type PageViews = WindowOperator<(), FixedKind, Single<Count>>;

fn page_views() -> Result<PageViews, String> {
    Tumbling::new(WINDOW)
        .grace(GRACE)
        .emit(Emit::OnUpdate)
        .aggregate(Count::new())
        .map_err(err)
}

/// Runs the e2e workloads `wanted` asks for; `brokers` is a running
/// broker (fresh topic names per run), else a `mock-broker` process per run.
pub(crate) fn run_all(
    p: Params,
    rounds: u64,
    brokers: Option<&str>,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<(), String> {
    let p = Params { n: p.n.min(MAX_N), ..p };
    for (workload, guarantee, quix) in [
        ("e2e-eos", ProcessingGuarantee::ExactlyOnce, "eos"),
        ("e2e-alos", ProcessingGuarantee::AtLeastOnce, "alos"),
    ] {
        if !(wanted("e2e") || wanted(workload)) {
            continue;
        }
        let op = page_views()?;
        let op = &op;
        let mut systems: Systems = vec![
            (
                "state-rocksdb",
                Box::new(move |dir: &Path, p| run_once(brokers, dir, p, guarantee, State::Stores(op))),
            ),
            (
                "state-rocksdb-wb",
                Box::new(move |dir: &Path, p| run_once(brokers, dir, p, guarantee, State::WriteBehind(op))),
            ),
            (
                "bare",
                Box::new(move |dir: &Path, p| run_once(brokers, dir, p, guarantee, State::None)),
            ),
        ];
        let medians = measure_rounds(workload, p, rounds, &mut systems)?;
        // K: the users the counts are kept for.
        let keys = Params {
            k: u64::from(USERS),
            ..p
        };
        for ((name, _), median) in systems.iter().zip(&medians) {
            report(name, workload, keys, median);
        }
        let rate = |o: &Outcome| p.n as f64 / o.seconds;
        let bare = rate(&medians[2]);
        for ((name, _), m) in systems.iter().zip(&medians).take(2) {
            eprintln!("  {name} {workload} / bare in the same rounds: {:.2}", rate(m) / bare);
        }
        if let Some(quix) = quixstreams(workload, quix, p, brokers)? {
            for ((name, _), m) in systems.iter().zip(&medians) {
                eprintln!("  {name} {workload} / quixstreams-3.28.1: {:.1}x", rate(m) / quix);
            }
        }
    }
    Ok(())
}

/// What a run keeps state in.
#[derive(Clone, Copy)]
enum State<'a> {
    /// The job on RocksDB.
    Stores(&'a PageViews),
    /// The job on RocksDB behind write-behind caches (default bounds).
    WriteBehind(&'a PageViews),
    /// No state: the bare pipeline.
    None,
}

impl<'a> State<'a> {
    fn op(self) -> Option<&'a PageViews> {
        match self {
            State::Stores(op) | State::WriteBehind(op) => Some(op),
            State::None => None,
        }
    }
}

/// The topics of one run: plain names on a fresh mock broker, suffixed on
/// a running broker.
struct Topics {
    input: String,
    by_page: String,
    output: String,
}

/// One run: a fresh broker (or fresh topics), the input produced before the
/// clock starts, then the job (`op` given) or the bare pipeline.
fn run_once(
    brokers: Option<&str>,
    dir: &Path,
    p: Params,
    guarantee: ProcessingGuarantee,
    state: State<'_>,
) -> Result<Outcome, String> {
    let (topics, _broker, bootstrap) = match brokers {
        None => {
            let topics = Topics {
                input: INPUT.into(),
                by_page: BY_PAGE.into(),
                output: OUTPUT.into(),
            };
            let window_store = page_views()?.store_name().to_owned();
            let names = [
                topics.input.clone(),
                topics.by_page.clone(),
                topics.output.clone(),
                changelog_topic_name(GROUP, &topics.input, USER_TOTALS),
                changelog_topic_name(GROUP, &topics.by_page, &window_store),
            ];
            let broker = Broker::with_topics(&names, PARTITIONS)?;
            let bootstrap = broker.bootstrap.clone();
            (topics, Some(broker), bootstrap)
        }
        Some(b) => {
            let suffix = format!(
                "-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0)
            );
            let topics = Topics {
                input: format!("{INPUT}{suffix}"),
                by_page: format!("{BY_PAGE}{suffix}"),
                output: format!("{OUTPUT}{suffix}"),
            };
            let mut client = ClientConfig::new();
            client.set("bootstrap.servers", b);
            for t in [&topics.input, &topics.by_page, &topics.output] {
                state_changelog::create_topic(&client, t, PARTITIONS as usize, 1, &[], Duration::from_secs(30))
                    .map_err(err)?;
            }
            (topics, None, b.to_owned())
        }
    };
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &bootstrap);
    produce_input(&client, &topics.input, p.n)?;
    let job = Job::new(&client, dir, &topics, guarantee, state, brokers.is_none())?;
    job.run(p)
}

/// Produces the first `n` events of the generator to `topic` (not timed).
fn produce_input(client: &ClientConfig, topic: &str, n: u64) -> Result<(), String> {
    let producer: BaseProducer = client
        .clone()
        .set("linger.ms", "50")
        .set("compression.type", COMPRESSION)
        .create()
        .map_err(err)?;
    for view in Generator::new(SEED, USERS, PAGES).take(n as usize) {
        let rec = BaseRecord::to(topic)
            .key(view.user.as_bytes())
            .payload(view.page.as_bytes())
            .partition(partition_of(&view.user, PARTITIONS) as i32)
            .timestamp(view.ts);
        send(&producer, rec)?;
    }
    producer.flush(Duration::from_secs(120)).map_err(err)
}

/// Sends `record`, waiting while the producer's queue is full.
fn send<C: ProducerContext<DeliveryOpaque = ()>>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'_, [u8], [u8], ()>,
) -> Result<(), String> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(format!("producing: {e}")),
        }
    }
}

/// The stores of the job.
struct Stores {
    user_totals: StoreHandle<KeyValueStore>,
    page_windows: StoreHandle<WindowedStore>,
}

/// Time per stage of the processing loop.
#[derive(Default)]
struct Split {
    poll: Duration,
    state: Duration,
    produce: Duration,
    checkpoint: Duration,
    checkpoints: u64,
}

/// One consumer-group member with its manager, running the job or the
/// bare pipeline.
struct Job<'a> {
    consumer: BaseConsumer<StateContext>,
    manager: Arc<state_manager::Mutex<StateStoreManager>>,
    stores: Option<Stores>,
    op: Option<&'a PageViews>,
    topics: &'a Topics,
    /// Time of each checkpoint stage reached, from the manager's observer.
    stages: Arc<state_manager::Mutex<[Duration; 3]>>,
}

impl<'a> Job<'a> {
    fn new(
        client: &ClientConfig,
        dir: &Path,
        topics: &'a Topics,
        guarantee: ProcessingGuarantee,
        state: State<'a>,
        mock: bool,
    ) -> Result<Self, String> {
        let op = state.op();
        let mut mc = ManagerConfig::new(GROUP, dir);
        mc.guarantee = guarantee;
        // Checkpoints by record count only.
        mc.commit_interval = Duration::from_secs(3600);
        // librdkafka's mock cluster does not store offsets sent in a transaction.
        mc.mirror_transactional_offsets = mock;
        // `E2E_PIPELINED=1`: pipelined at-least-once checkpoints
        // (`ManagerConfig::pipelined_checkpoints`; ignored under exactly-once).
        mc.pipelined_checkpoints = std::env::var("E2E_PIPELINED").is_ok_and(|v| v == "1");
        mc.producer_properties = vec![("compression.type".into(), COMPRESSION.into())];
        // `E2E_PRODUCER=key=value,...`: more producer properties, for
        // experiments (every system gets them).
        if let Ok(extra) = std::env::var("E2E_PRODUCER") {
            for kv in extra.split(',').filter(|kv| !kv.is_empty()) {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("E2E_PRODUCER: {kv:?} is not key=value"))?;
                mc.producer_properties.push((k.into(), v.into()));
            }
        }
        let mut manager = StateStoreManager::new(mc, client.clone()).map_err(err)?;
        let stores = match op {
            Some(op) => {
                let mut users = StoreSpec::key_value(&topics.input, USER_TOTALS);
                let mut windows = StoreSpec::window(&topics.by_page, op);
                if let State::WriteBehind(_) = state {
                    users = users.write_behind(WriteBehindConfig::default());
                    windows = windows.write_behind(WriteBehindConfig::windowed());
                }
                Some(Stores {
                    user_totals: manager.register_store(users).map_err(err)?,
                    page_windows: manager.register_store(windows).map_err(err)?,
                })
            }
            None => None,
        };
        if stores.is_some() && !mock {
            manager
                .ensure_changelog_topics(&state_manager::ChangelogTopicConfig::default())
                .map_err(err)?;
        }
        let stages = Arc::new(state_manager::Mutex::new([Duration::ZERO; 3]));
        let observed = stages.clone();
        let mut last = Instant::now();
        manager.set_checkpoint_observer(move |stage| {
            let now = Instant::now();
            let i = match stage {
                CheckpointStage::Produced => {
                    // The first stage of a checkpoint: its start is the
                    // commit call, timed by the loop; record from here.
                    last = now;
                    return;
                }
                CheckpointStage::Committed => 1,
                CheckpointStage::Flushed => 2,
            };
            observed.lock()[i] += now - last;
            last = now;
        });
        let manager = Arc::new(state_manager::Mutex::new(manager));
        let mut c = client.clone();
        // As the pageviews demo: a short fetch backoff (processing between
        // polls would otherwise idle the fetcher for 1 s).
        ConsumerSettings::new(GROUP)
            .from_earliest()
            .short_fetch_backoff()
            .apply_to(&mut c)
            .set("session.timeout.ms", "6000");
        let consumer: BaseConsumer<StateContext> =
            c.create_with_context(StateContext::new(manager.clone())).map_err(err)?;
        consumer
            .subscribe(&[topics.input.as_str(), topics.by_page.as_str()])
            .map_err(err)?;
        Ok(Job {
            consumer,
            manager,
            stores,
            op,
            topics,
            stages,
        })
    }

    /// Runs until N output records are produced and committed.
    fn run(&self, p: Params) -> Result<Outcome, String> {
        let mut split = Split::default();
        let mut started: Option<Instant> = None;
        let mut last_record = Instant::now();
        let mut consumed = 0u64;
        let mut outputs = 0u64;
        let mut value = Vec::with_capacity(64);
        loop {
            let t = Instant::now();
            let polled = self.consumer.poll(Duration::from_millis(100));
            let after_poll = Instant::now();
            if started.is_some() {
                split.poll += after_poll - t;
            }
            let mut m = self.manager.lock();
            m.maintain(&self.consumer).map_err(err)?;
            let msg = match polled {
                Some(Ok(msg)) => msg,
                Some(Err(e)) => return Err(format!("consumer error: {e}")),
                None => {
                    if last_record.elapsed() > STALL {
                        return Err(format!("{consumed} records consumed, then nothing for {STALL:?}"));
                    }
                    continue;
                }
            };
            if started.is_none() {
                started = Some(after_poll);
            }
            last_record = after_poll;
            let partition = msg.partition() as u32;
            let ts = msg.timestamp().to_millis().unwrap_or(0);
            let key = msg.key().unwrap_or_default();
            let payload = msg.payload().unwrap_or_default();
            let is_input = msg.topic() == self.topics.input;
            let t = Instant::now();
            // The state step: the per-user count, or the page's window.
            let mut window = None;
            if let Some(stores) = &self.stores {
                if is_input {
                    let mut user = m.txn(&stores.user_totals, partition).map_err(err)?.key(key);
                    let n: u64 = user.get("total").map_err(err)?.unwrap_or(0);
                    user.set("total", &(n + 1)).map_err(err)?;
                } else if let Some(op) = self.op {
                    let txn = m.txn(&stores.page_windows, partition).map_err(err)?;
                    window = op.process(txn, key, ts, &()).map_err(err)?.pop();
                }
            }
            let t2 = Instant::now();
            split.state += t2 - t;
            // One record out: the repartition record, or the output.
            let out = m.output_producer().map_err(err)?;
            if is_input {
                let rec = BaseRecord::to(&self.topics.by_page)
                    .key(payload)
                    .payload(payload)
                    .partition(partition_of_bytes(payload) as i32)
                    .timestamp(ts);
                send(out.kafka(), rec)?;
            } else {
                value.clear();
                match &window {
                    Some(w) => write!(value, r#"{{"start":{},"end":{},"value":{}}}"#, w.start, w.end, w.value),
                    None => write!(value, r#"{{"value":null}}"#),
                }
                .map_err(err)?;
                let rec = BaseRecord::to(&self.topics.output)
                    .key(key)
                    .payload(&value[..])
                    .partition(partition as i32)
                    .timestamp(ts);
                send(out.kafka(), rec)?;
                outputs += 1;
            }
            drop(out);
            m.processed(msg.topic(), partition, msg.offset()).map_err(err)?;
            let t3 = Instant::now();
            split.produce += t3 - t2;
            consumed += 1;
            if consumed.is_multiple_of(p.c) || outputs == p.n {
                m.commit(&self.consumer).map_err(err)?;
                if outputs == p.n {
                    // A pipelined (at-least-once) checkpoint is still in
                    // flight: the run ends when it is committed.
                    m.finish_checkpoint(&self.consumer).map_err(err)?;
                }
                split.checkpoint += t3.elapsed();
                split.checkpoints += 1;
            }
            if outputs == p.n {
                break;
            }
        }
        let seconds = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let mut o = Outcome::new(seconds, outputs);
        let ms = |d: Duration| (d.as_secs_f64() * 1000.0).round() as i64;
        let stages = *self.stages.lock();
        let produced = split.checkpoint.saturating_sub(stages[1] + stages[2]);
        o.extra.extend([
            ("poll_ms", ms(split.poll)),
            ("state_ms", ms(split.state)),
            ("produce_ms", ms(split.produce)),
            ("checkpoint_ms", ms(split.checkpoint)),
            ("checkpoint_produced_ms", ms(produced)),
            ("checkpoint_committed_ms", ms(stages[1])),
            ("checkpoint_flushed_ms", ms(stages[2])),
            ("checkpoints", split.checkpoints as i64),
            ("consumed", consumed as i64),
        ]);
        Ok(o)
    }
}

/// Kafka's default partitioner for keyed records (as quixstreams' producer).
fn partition_of_bytes(key: &[u8]) -> u32 {
    state_manager::murmur2_partition(key, PARTITIONS)
}

impl Drop for Job<'_> {
    fn drop(&mut self) {
        // Leave the group before the broker goes.
        self.consumer.unsubscribe();
    }
}

fn mock_broker() -> Result<PathBuf, String> {
    crate::crash::helper("mock-broker")
}

/// With `QUIX_PYTHON` set, runs `fixtures/quixstreams/bench_e2e.py` for
/// `workload` on its own fresh broker (or `brokers`), prints its JSON line
/// and returns its events/s.
fn quixstreams(workload: &str, guarantee: &str, p: Params, brokers: Option<&str>) -> Result<Option<f64>, String> {
    let Some(python) = std::env::var_os("QUIX_PYTHON") else {
        return Ok(None);
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/quixstreams/bench_e2e.py");
    eprintln!("  quixstreams-3.28.1 {workload}: running {script}");
    let mut cmd = Command::new(&python);
    cmd.arg(script).args(["--guarantee", guarantee]);
    match brokers {
        Some(b) => cmd.args(["--brokers", b]),
        None => cmd.arg("--mock-broker").arg(mock_broker()?),
    };
    let out = cmd
        .env("N", p.n.to_string())
        .env("C", p.c.to_string())
        .env("USERS", USERS.to_string())
        .env("PAGES", PAGES.to_string())
        .env("SEED", SEED.to_string())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {} {script}: {e}", python.to_string_lossy()))?;
    if !out.status.success() {
        return Err(format!("{script} {workload} failed: {}", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    let rate = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["records_per_s"].as_f64());
    Ok(rate)
}
