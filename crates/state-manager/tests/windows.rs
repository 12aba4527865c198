//! A window operator on a manager's windowed store, on the mock cluster:
//! its state follows the store's changelog, so a member that crashes
//! mid-checkpoint is replaced by one that restores the windows and goes
//! on, and under exactly-once every window is emitted by a committed
//! checkpoint exactly once, with the exact count; the open windows are
//! readable from other threads; write-behind changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Offset;
use state_manager::state_windows::kinds::FixedKind;
use state_manager::state_windows::layout::Single;
use state_manager::state_windows::{Count, Tumbling, WindowOperator};
use state_manager::{
    Codec, ManagerConfig, Mutex, ProcessingGuarantee, StateContext, StateStoreManager, StoreHandle, StoreSpec,
    WindowedStore, WriteBehindConfig,
};
use test_support::kafka::{client, mock_cluster};

const GROUP: &str = "g";
const INPUT: &str = "clicks";
const PARTITIONS: i32 = 2;
const KEYS: u64 = 6;
const RECORDS: u64 = 300;
/// Event time of record `i`: 40 ms apart, so each key's 1 s windows close
/// every few records.
const STEP_MS: i64 = 40;
/// Event time of record 0 (librdkafka reads a timestamp of 0 as "now").
const BASE_MS: i64 = 1_767_225_600_000;

type Views = WindowOperator<[u8], FixedKind, Single<Count>>;

fn views() -> Views {
    Tumbling::new(Duration::from_secs(1))
        .grace(Duration::from_millis(100))
        .aggregate(Count::new())
        .expect("a valid window")
}

/// A window: (key, start).
type WindowId = (Vec<u8>, i64);

/// Record `i`: key `k{i % KEYS}` on partition `(i % KEYS) % PARTITIONS`,
/// time `BASE_MS + i * STEP_MS`. Returns the count of every window.
fn produce(bootstrap: &str) -> BTreeMap<WindowId, u64> {
    let producer: BaseProducer = client(bootstrap).set("linger.ms", "5").create().unwrap();
    let mut truth = BTreeMap::new();
    for i in 0..RECORDS {
        let key = format!("k{}", i % KEYS);
        let ts = BASE_MS + i as i64 * STEP_MS;
        producer
            .send(
                BaseRecord::<str, str>::to(INPUT)
                    .key(&key)
                    .payload("")
                    .partition(((i % KEYS) % PARTITIONS as u64) as i32)
                    .timestamp(ts),
            )
            .unwrap();
        *truth.entry((key.into_bytes(), ts - ts % 1000)).or_insert(0) += 1;
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    truth
}

/// One member: a consumer whose rebalances drive its manager, with the
/// operator's windowed store.
struct Member {
    consumer: BaseConsumer<StateContext>,
    manager: Arc<Mutex<StateStoreManager>>,
    store: StoreHandle<WindowedStore>,
    dir: tempfile::TempDir,
    /// Windows emitted since the last commit.
    pending: Vec<(WindowId, u64)>,
    processed: usize,
}

impl Member {
    fn join(bootstrap: &str, name: &str, views: &Views, write_behind: bool) -> Member {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ManagerConfig::new(GROUP, dir.path());
        cfg.guarantee = ProcessingGuarantee::ExactlyOnce;
        cfg.instance_id = Some(name.to_owned());
        cfg.mirror_transactional_offsets = true;
        cfg.commit_interval = Duration::from_secs(3600);
        cfg.kafka_timeout = Duration::from_secs(10);
        let mut manager = StateStoreManager::new(cfg, client(bootstrap)).unwrap();
        let mut spec = StoreSpec::window(INPUT, views).codec(Codec::Json);
        if write_behind {
            spec = spec.write_behind(WriteBehindConfig {
                max_dirty_age: Duration::from_secs(3600),
                ..Default::default()
            });
        }
        let store = manager.register_store(spec).unwrap();
        let manager = Arc::new(Mutex::new(manager));
        let mut c = state_manager::ConsumerSettings::new(GROUP)
            .from_earliest()
            .client_config(&client(bootstrap));
        c.set("session.timeout.ms", "3000")
            .set("heartbeat.interval.ms", "300")
            .set("max.poll.interval.ms", "3000");
        let consumer: BaseConsumer<StateContext> = c.create_with_context(StateContext::new(manager.clone())).unwrap();
        consumer.subscribe(&[INPUT]).unwrap();
        Member {
            consumer,
            manager,
            store,
            dir,
            pending: Vec::new(),
            processed: 0,
        }
    }

    /// Polls once; processes the record, if any, through `views`.
    fn poll(&mut self, views: &Views) -> bool {
        let polled = self.consumer.poll(Duration::from_millis(50));
        let mut m = self.manager.lock();
        m.maintain(&self.consumer).unwrap();
        let Some(msg) = polled else { return false };
        let msg = msg.unwrap();
        let partition = msg.partition() as u32;
        let ts = msg.timestamp().to_millis().unwrap();
        let txn = m.txn(&self.store, partition).unwrap();
        for w in views.process(txn, msg.key().unwrap(), ts, &[][..]).unwrap() {
            self.pending.push(((w.key, w.start), w.value));
        }
        m.processed(INPUT, partition, msg.offset()).unwrap();
        self.processed += 1;
        true
    }

    /// Commits; returns the windows the committed checkpoint emitted.
    fn commit(&mut self) -> Vec<(WindowId, u64)> {
        self.manager.lock().commit(&self.consumer).unwrap();
        std::mem::take(&mut self.pending)
    }

    fn caught_up(&self) -> bool {
        let assignment = self.consumer.assignment().unwrap();
        if assignment.count() != PARTITIONS as usize {
            return false;
        }
        let committed = self
            .consumer
            .committed_offsets(assignment, Duration::from_secs(5))
            .unwrap();
        committed.elements().iter().all(|e| {
            let (_, high) = self
                .consumer
                .fetch_watermarks(INPUT, e.partition(), Duration::from_secs(5))
                .unwrap();
            matches!(e.offset(), Offset::Offset(o) if o >= high)
        })
    }
}

/// Member A processes part of the input, committing every 25 records, then
/// 20 more without committing and crashes (its state directory deleted);
/// member B restores the windows from the changelog and processes the
/// rest. Every window that closed was emitted exactly once by a committed
/// checkpoint, with its exact count; the others are open in B's state with
/// their exact counts, as a reader sees them.
fn crash_and_restore(write_behind: bool) {
    let changelog = format!("changelog__{GROUP}--{INPUT}--tumbling_window_1000_count");
    let cluster = mock_cluster(&[(INPUT, PARTITIONS), (changelog.as_str(), PARTITIONS)]).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let views = views();
    assert_eq!(views.store_name(), "tumbling_window_1000_count");
    let truth = produce(&bootstrap);

    let mut emitted: Vec<(WindowId, u64)> = Vec::new();
    let mut a = Member::join(&bootstrap, "a", &views, write_behind);
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.processed < 120 {
        if a.poll(&views) && a.processed.is_multiple_of(25) {
            emitted.extend(a.commit());
        }
        assert!(Instant::now() < deadline, "A did not get its records in time");
    }
    emitted.extend(a.commit());
    while a.processed < 140 {
        a.poll(&views);
    }
    assert!(!a.pending.is_empty(), "A dies with emitted but uncommitted windows");
    let dir = a.dir.path().to_owned();
    std::mem::forget(a);
    std::fs::remove_dir_all(&dir).unwrap();

    let mut b = Member::join(&bootstrap, "b", &views, write_behind);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for _ in 0..50 {
            if !b.poll(&views) {
                break;
            }
        }
        emitted.extend(b.commit());
        if b.caught_up() {
            break;
        }
        assert!(Instant::now() < deadline, "B did not finish in time");
    }

    let mut seen = BTreeMap::new();
    for (window, count) in &emitted {
        assert!(
            seen.insert(window.clone(), *count).is_none(),
            "{window:?} emitted twice"
        );
        assert_eq!(Some(count), truth.get(window), "count of {window:?}");
    }
    let reader = b.manager.lock().reader();
    for k in 0..KEYS {
        let key = format!("k{k}").into_bytes();
        let partition = ((k % KEYS) % PARTITIONS as u64) as u32;
        for w in reader.open_windows(&b.store, partition, &views, &key).unwrap() {
            let id = (w.key.clone(), w.start);
            assert_eq!(Some(&w.value), truth.get(&id), "open window {id:?}");
            assert!(seen.insert(id, w.value).is_none(), "open and emitted");
        }
    }
    assert_eq!(seen, truth, "every window emitted once or open");
}

#[test]
fn window_state_is_restored_and_windows_are_emitted_exactly_once() {
    crash_and_restore(false);
}

#[test]
fn window_state_behind_write_behind_is_restored_and_emitted_exactly_once() {
    crash_and_restore(true);
}
