//! The test driver and test cluster (`kafka_state::testing`): a keyed
//! counter with outputs through crashes, windows closing as event time
//! moves, processing errors, and the manager used directly on a test
//! cluster.

use std::time::Duration;

use kafka_state::testing::{Restart, TestCluster, TestDriver, TestError, TestRecord};
use kafka_state::{
    processor_fn, AppError, ExpireOptions, KeyValueStore, ManagerConfig, ManagerError, MemoryBackend, Processor,
    StateStoreManager, StoreHandle, StoreSpec, Topology, WindowedStore,
};

/// Counts records per key in `counts` and sends `key -> count` to `counts-out`.
struct Counter {
    counts: StoreHandle<KeyValueStore>,
}

fn counter(t: &mut Topology<'_>) -> Result<Counter, ManagerError> {
    t.output("counts-out");
    Ok(Counter {
        counts: t.store(StoreSpec::key_value("events", "counts"))?,
    })
}

impl Processor for Counter {
    fn process(
        &mut self,
        record: &kafka_state::Record<'_>,
        ctx: &mut kafka_state::Context<'_>,
    ) -> Result<(), kafka_state::ProcessError> {
        let key = record.key().unwrap_or_default();
        let mut state = ctx.store(&self.counts)?.key(key);
        let n: u64 = state.get("count")?.unwrap_or(0) + 1;
        state.set("count", &n)?;
        ctx.send_to("counts-out", key, n.to_string().as_bytes())?;
        Ok(())
    }
}

fn count_of(driver: &TestDriver<Counter>, key: &str) -> Option<u64> {
    let counts = driver.processor().counts.clone();
    driver.get(&counts, key, "count").expect("a committed count")
}

#[test]
fn exactly_once_counts_and_outputs_survive_a_crash() -> Result<(), TestError> {
    let mut driver = TestDriver::builder().exactly_once().partitions(2).build(counter)?;
    let events = driver.input_topic("events")?;
    let mut out = driver.output_topic("counts-out")?;
    events.pipe_all([("a", "x"), ("b", "x"), ("a", "x")])?;
    assert_eq!(driver.run_until_idle()?, 3);
    assert_eq!(count_of(&driver, "a"), Some(2));
    assert_eq!(out.read_latest_by_key()?.get("a").map(String::as_str), Some("2"));

    // Two records processed but not committed, then a crash: the new
    // member processes them again, and the aborted outputs never show.
    events.pipe_all([("a", "x"), ("b", "x")])?;
    driver.process_records(2)?;
    driver.restart(Restart::Crash)?;
    assert_eq!(driver.run_until_idle()?, 2);
    assert_eq!(count_of(&driver, "a"), Some(3));
    assert_eq!(count_of(&driver, "b"), Some(2));
    let mut values: Vec<(String, String)> = out
        .read_records()?
        .into_iter()
        .map(|r| (r.key_str(), r.value_str()))
        .collect();
    values.sort();
    assert_eq!(
        values,
        [("a".to_owned(), "3".to_owned()), ("b".to_owned(), "2".to_owned())],
        "one output per input record, none of the aborted checkpoint"
    );
    Ok(())
}

#[test]
fn a_member_that_lost_its_state_restores_it_from_the_changelog() -> Result<(), TestError> {
    let mut driver = TestDriver::builder().exactly_once().build(counter)?;
    let events = driver.input_topic("events")?;
    for i in 0..20 {
        events.pipe(format!("k{}", i % 5), "x")?;
    }
    driver.run_until_idle()?;
    driver.restart(Restart::CrashLosingState)?;
    assert_eq!(driver.run_until_idle()?, 0, "nothing to process again");
    let restored: u64 = driver.restores().iter().map(|p| p.done).sum();
    assert!(
        restored >= 5,
        "every key's count came back from the changelog: {restored}"
    );
    assert!(driver.restores().iter().all(|p| p.finished));
    for k in 0..5 {
        assert_eq!(count_of(&driver, &format!("k{k}")), Some(4));
    }
    // A clean restart keeps local state: nothing to restore.
    driver.restart(Restart::Clean)?;
    driver.run_until_idle()?;
    assert_eq!(driver.restores().iter().map(|p| p.done).sum::<u64>(), 0);
    assert_eq!(count_of(&driver, "k0"), Some(4));
    Ok(())
}

#[test]
fn records_go_where_the_test_says() -> Result<(), TestError> {
    let mut driver = TestDriver::builder().partitions(3).build(counter)?;
    let events = driver.input_topic("events")?;
    events.pipe_record(TestRecord::new("a", "x").partition(2).at(5))?;
    driver.run_until_idle()?;
    let counts = driver.processor().counts.clone();
    let read = |p| driver.reader().get::<_, u64>(&counts, p, "count", b"a");
    assert_eq!(read(2)?, Some(1));
    let err = events.pipe_record(TestRecord::new("a", "x").at(0)).unwrap_err();
    assert!(matches!(err, TestError::InvalidTimestamp { timestamp: 0 }), "{err}");
    Ok(())
}

/// Tumbling one-minute windows of counts per key, emitted to
/// `closed-windows` once the key's event time passes their end.
struct Windows {
    windows: StoreHandle<WindowedStore>,
}

const MINUTE: i64 = 60_000;

fn windows(t: &mut Topology<'_>) -> Result<Windows, ManagerError> {
    t.output("closed-windows");
    Ok(Windows {
        windows: t.store(StoreSpec::windowed("events", "per-minute"))?,
    })
}

impl Processor for Windows {
    fn process(
        &mut self,
        record: &kafka_state::Record<'_>,
        ctx: &mut kafka_state::Context<'_>,
    ) -> Result<(), kafka_state::ProcessError> {
        let key = record.key().unwrap_or_default();
        let ts = record.timestamp().unwrap_or(0);
        let start = ts - ts % MINUTE;
        let mut windows = ctx.store(&self.windows)?.key(key);
        let n: u64 = windows.get_window(start, start + MINUTE)?.unwrap_or(0);
        windows.update_window(start, start + MINUTE, &(n + 1), ts)?;
        // Windows that ended before the minute of this record are final.
        let closed = windows.expire_windows::<u64, ()>(start - MINUTE, ExpireOptions::delete())?;
        for w in closed {
            let value = format!("{}@{}", w.value, w.start);
            ctx.send_to("closed-windows", key, value.as_bytes())?;
        }
        Ok(())
    }
}

#[test]
fn a_window_closes_when_event_time_moves_past_it() -> Result<(), TestError> {
    let mut driver = TestDriver::builder()
        .exactly_once()
        .start_time(10 * MINUTE)
        .build(windows)?;
    let events = driver.input_topic("events")?;
    let mut closed = driver.output_topic("closed-windows")?;
    events.pipe("a", "x")?;
    events.advance_time(Duration::from_secs(10));
    events.pipe("a", "x")?;
    driver.run_until_idle()?;
    assert!(closed.read_records()?.is_empty(), "the window is still open");
    let store = driver.processor().windows.clone();
    let open: Vec<kafka_state::Window<u64>> = driver.windows(&store, "a")?;
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].start, open[0].value), (10 * MINUTE, 2));

    events.advance_time(Duration::from_secs(120));
    events.pipe("a", "x")?;
    driver.run_until_idle()?;
    let emitted = closed.read_latest_by_key()?;
    assert_eq!(
        emitted.get("a").map(String::as_str),
        Some(format!("2@{}", 10 * MINUTE).as_str())
    );
    assert_eq!(
        driver.windows::<u64>(&store, "a")?.len(),
        1,
        "the closed window was deleted"
    );
    Ok(())
}

#[test]
fn a_processing_error_aborts_the_checkpoint_and_stops_the_app() -> Result<(), TestError> {
    let mut driver = TestDriver::builder().exactly_once().build(|t: &mut Topology<'_>| {
        let counts = t.store(StoreSpec::key_value("events", "counts"))?;
        Ok::<_, ManagerError>(processor_fn(move |record, ctx| {
            if record.value() == Some(b"poison".as_slice()) {
                return Err("a poison record".into());
            }
            ctx.store(&counts)?
                .key(record.key().unwrap_or_default())
                .set("seen", &true)?;
            Ok(())
        }))
    })?;
    let events = driver.input_topic("events")?;
    events.pipe("a", "ok")?;
    events.pipe("a", "poison")?;
    let err = driver.run_until_idle().unwrap_err();
    assert!(
        matches!(&err, TestError::App(e) if matches!(**e, AppError::Process { offset: 1, .. })),
        "{err}"
    );
    assert!(err.to_string().contains("a poison record"), "{err}");
    assert!(driver.app().is_stopped());
    assert!(matches!(driver.app_mut().step(), Err(AppError::Stopped)));
    Ok(())
}

#[test]
fn a_manager_used_directly_creates_its_changelogs_on_a_test_cluster() -> Result<(), TestError> {
    let cluster = TestCluster::new()?;
    cluster.create_topic("clicks", 3)?;
    let dir = tempfile::tempdir().map_err(|source| TestError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let mut config = ManagerConfig::with_backend("direct", dir.path(), MemoryBackend::shared());
    cluster.configure(&mut config);
    assert!(config.mirror_transactional_offsets);
    let mut manager = StateStoreManager::new(config, cluster.client_config())?;
    manager.register_store(StoreSpec::key_value("clicks", "counts"))?;
    manager.ensure_changelog_topics(&Default::default())?;
    assert_eq!(cluster.partitions("changelog__direct--clicks--counts")?, Some(3));
    Ok(())
}

/// `login` starts a 30-minute session (per-write TTL, by event time);
/// `check` sends `active` or `expired` to `sessions-out`.
fn sessions(t: &mut Topology<'_>) -> Result<impl Processor, ManagerError> {
    let sessions = t.store(StoreSpec::key_value("logins", "sessions").ttl(kafka_state::TtlOptions::default()))?;
    t.output("sessions-out");
    Ok(processor_fn(move |record, ctx| {
        let user = record.key().unwrap_or_default();
        let now = record.timestamp().unwrap_or(0);
        let mut session = ctx.store(&sessions)?.key(user);
        if record.value() == Some(b"login".as_slice()) {
            let ttl = kafka_state::SetOptions::at(now).ttl(Duration::from_secs(30 * 60));
            session.set_with("session", "s", ttl)?;
            return Ok(());
        }
        let active = session
            .get_with::<String>("session", kafka_state::GetOptions::at(now))?
            .is_some();
        let state: &[u8] = if active { b"active" } else { b"expired" };
        ctx.send_to("sessions-out", user, state)?;
        Ok(())
    }))
}

#[test]
fn a_ttl_expires_when_event_time_moves_past_it() -> Result<(), TestError> {
    let mut driver = TestDriver::builder().exactly_once().build(sessions)?;
    let logins = driver.input_topic("logins")?;
    let mut out = driver.output_topic("sessions-out")?;
    logins.pipe("ann", "login")?;
    // The partition switches into TTL mode when the first TTL write
    // commits (quixstreams' rule); reads check expiry from then on.
    driver.run_until_idle()?;
    logins.advance_time(Duration::from_secs(10 * 60));
    logins.pipe("ann", "check")?;
    logins.advance_time(Duration::from_secs(30 * 60));
    logins.pipe("ann", "check")?;
    driver.run_until_idle()?;
    let seen: Vec<String> = out.read_key_values()?.into_iter().map(|(_, v)| v).collect();
    assert_eq!(seen, ["active", "expired"]);
    Ok(())
}

/// Two apps of one group under exactly-once on a test cluster; one closes
/// mid-run with processed but uncommitted records. The other takes over:
/// the records both processed add up to the input (none twice).
#[test]
fn an_app_that_closes_hands_over_without_reprocessing() -> Result<(), TestError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use kafka_state::rdkafka::consumer::{BaseConsumer, Consumer};
    use kafka_state::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use kafka_state::{App, ProcessingGuarantee, Shutdown};

    const RECORDS: usize = 400;
    let cluster = TestCluster::new()?;
    cluster.create_topic("events", 4)?;
    cluster.create_topic("counts-out", 4)?;
    let kafka_error = |operation| move |source| TestError::Kafka { operation, source };
    let dir = tempfile::tempdir().map_err(|source| TestError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let app = |name: &str, processed: Arc<AtomicUsize>| -> Result<App<_>, TestError> {
        let mut config = ManagerConfig::with_backend("handover", dir.path().join(name), MemoryBackend::shared());
        config.guarantee = ProcessingGuarantee::ExactlyOnce;
        config.instance_id = Some(name.to_owned());
        cluster.configure(&mut config);
        Ok(App::builder(config, cluster.client_config())
            .poll_timeout(Duration::from_millis(10))
            .consumer_property("session.timeout.ms", "3000")
            .consumer_property("heartbeat.interval.ms", "300")
            .build(move |t: &mut Topology<'_>| {
                let mut counter = counter(t)?;
                Ok::<_, ManagerError>(processor_fn(move |record, ctx| {
                    counter.process(record, ctx)?;
                    processed.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }))
            })?)
    };
    let (a_done, b_done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut a = app("a", a_done.clone())?;
    let b = app("b", b_done.clone())?;
    a.start()?;
    let shutdown = Shutdown::new();
    let stop_b = shutdown.clone();
    let b_thread = std::thread::spawn(move || b.run(&stop_b));

    // Both members own partitions before any input arrives.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let owns = |app: &App<_>| app.consumer().assignment().map(|a| a.count()).unwrap_or(0);
    while owns(&a) == 0 || owns(&a) == 4 {
        a.step()?;
        assert!(
            std::time::Instant::now() < deadline,
            "the group did not share the partitions"
        );
    }
    let producer: BaseProducer = cluster
        .client_config()
        .set("partitioner", "murmur2_random")
        .create()
        .map_err(kafka_error("creating a producer"))?;
    for i in 0..RECORDS {
        let key = format!("k{}", i % 20);
        producer
            .send(BaseRecord::<str, str>::to("events").key(&key).payload("x"))
            .map_err(|(e, _)| TestError::Kafka {
                operation: "producing",
                source: e,
            })?;
    }
    producer
        .flush(Duration::from_secs(30))
        .map_err(kafka_error("flushing"))?;
    while a_done.load(Ordering::Relaxed) < 30 {
        a.step()?;
        assert!(std::time::Instant::now() < deadline, "A processed too little");
    }
    a.close()?;

    // B finishes: the group's committed offsets reach the end of the input.
    let observer: BaseConsumer = cluster
        .client_config()
        .set("group.id", "handover")
        .create()
        .map_err(kafka_error("creating an observer"))?;
    let mut all = kafka_state::rdkafka::TopicPartitionList::new();
    for p in 0..4 {
        all.add_partition("events", p);
    }
    loop {
        let committed = observer
            .committed_offsets(all.clone(), Duration::from_secs(10))
            .map_err(kafka_error("reading committed offsets"))?;
        let total: i64 = committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                kafka_state::rdkafka::Offset::Offset(o) => o,
                _ => 0,
            })
            .sum();
        if total == RECORDS as i64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B did not finish: {total} of {RECORDS} committed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    shutdown.request();
    match b_thread.join() {
        Ok(result) => result?,
        Err(_) => panic!("B's thread panicked"),
    }
    assert_eq!(
        a_done.load(Ordering::Relaxed) + b_done.load(Ordering::Relaxed),
        RECORDS,
        "records processed by both apps: none twice"
    );
    Ok(())
}

/// Sends each record's `tenant` header (`-` without one) to `tenants-out`.
fn tenants(t: &mut Topology<'_>) -> Result<impl Processor, ManagerError> {
    use kafka_state::rdkafka::message::Headers;
    t.source("tagged").output("tenants-out");
    Ok(processor_fn(move |record, ctx| {
        let tenant = record
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "tenant"))
            .and_then(|h| h.value)
            .unwrap_or(b"-");
        ctx.send_to("tenants-out", record.key().unwrap_or_default(), tenant)?;
        Ok(())
    }))
}

#[test]
fn a_processor_reads_the_headers_its_records_carry() -> Result<(), TestError> {
    let mut driver = TestDriver::builder().build(tenants)?;
    let tagged = driver.input_topic("tagged")?;
    let mut out = driver.output_topic("tenants-out")?;
    tagged.pipe_record(TestRecord::new("a", "x").header("other", "1").header("tenant", "acme"))?;
    tagged.pipe_record(TestRecord::new("b", "x"))?;
    driver.run_until_idle()?;
    let seen: Vec<(String, String)> = out
        .read_records()?
        .into_iter()
        .map(|r| (r.key_str(), r.value_str()))
        .collect();
    assert_eq!(
        seen,
        [("a".to_owned(), "acme".to_owned()), ("b".to_owned(), "-".to_owned())]
    );
    Ok(())
}
