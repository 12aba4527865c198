//! [`TestDriver`]: runs an application's processor against a
//! [`TestCluster`], the way Kafka Streams' `TopologyTestDriver` runs a
//! topology — pipe input, run until idle, read output, inspect state,
//! move event time, restart — with no sleeps: every wait polls for its
//! condition and has a deadline.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use state_changelog::rdkafka::consumer::Consumer;
use state_changelog::rdkafka::Offset;
use state_changelog::RecoveryProgress;
use state_core::{Direction, TopicPartition};
use state_manager::{
    App, KeyValueStore, ManagerConfig, Polled, ProcessError, ProcessingGuarantee, Processor, StateReader, StoreHandle,
    Topology, WindowedStore,
};
use state_txn::Window;

use super::cluster::TestCluster;
use super::error::TestError;
use super::input::{flush_producer, InputClock, TestInputTopic};
use super::output::{OutputVisibility, SharedVisibility, TestOutputTopic};

/// 2024-01-01T00:00:00Z: where input clocks start unless told otherwise.
pub const DEFAULT_START_TIME: i64 = 1_704_067_200_000;

/// How long a Kafka lookup of the driver waits.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The setup function a driver keeps, to build the application again on
/// every restart.
type Setup<P> = Box<dyn FnMut(&mut Topology<'_>) -> Result<P, ProcessError>>;

/// A change to the manager's configuration, from [`TestDriverBuilder::configure`].
type Configure = Box<dyn FnOnce(&mut ManagerConfig)>;

/// How [`TestDriver::restart`] stops the running member before a new one
/// takes over the same state directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// A clean shutdown ([`App::close`]): the current checkpoint commits.
    Clean,
    /// A crash: the current checkpoint is lost (its Kafka transaction
    /// aborted under exactly-once), local state stays; the new member
    /// processes the lost records again.
    Crash,
    /// A crash that also loses the local state (a new machine): the new
    /// member restores every store from its changelog.
    CrashLosingState,
}

/// Builds a [`TestDriver`] (see [`TestDriver::builder`]).
pub struct TestDriverBuilder {
    group_id: String,
    guarantee: ProcessingGuarantee,
    partitions: u32,
    start_time: i64,
    idle_timeout: Duration,
    configure: Vec<Configure>,
}

impl std::fmt::Debug for TestDriverBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDriverBuilder")
            .field("group_id", &self.group_id)
            .field("guarantee", &self.guarantee)
            .field("partitions", &self.partitions)
            .field("start_time", &self.start_time)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl TestDriverBuilder {
    /// The consumer group and the manager's group id (default
    /// `test-app`); part of changelog topic names.
    pub fn group_id(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = group_id.into();
        self
    }

    /// The processing guarantee (default: the manager's, at-least-once).
    pub fn guarantee(mut self, guarantee: ProcessingGuarantee) -> Self {
        self.guarantee = guarantee;
        self
    }

    /// Shorthand for `guarantee(ProcessingGuarantee::ExactlyOnce)`.
    pub fn exactly_once(self) -> Self {
        self.guarantee(ProcessingGuarantee::ExactlyOnce)
    }

    /// Partitions of every source and output topic the driver creates
    /// (default 4; changelogs follow their sources).
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// Where input clocks start, ms since the epoch (default
    /// [`DEFAULT_START_TIME`]; must be positive).
    pub fn start_time(mut self, start_time: i64) -> Self {
        self.start_time = start_time.max(1);
        self
    }

    /// How long [`TestDriver::run_until_idle`] (and every other wait) may
    /// take before it fails (default 60 s).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Adjusts the manager's configuration (backend, standbys, codec, your
    /// production settings). Applied after the driver's defaults; the
    /// driver then sets the state directory, `mirror_transactional_offsets`
    /// and an hour-long `commit_interval` (it commits itself, see
    /// [`TestDriver::run_until_idle`]).
    pub fn configure(mut self, f: impl FnOnce(&mut ManagerConfig) + 'static) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    /// Starts a test cluster, builds the application with `setup` (the
    /// same function production passes to [`App::new`]), creates its
    /// sources, outputs and changelogs on the cluster, and starts it.
    pub fn build<P, E, F>(self, setup: F) -> Result<TestDriver<P>, TestError>
    where
        P: Processor,
        E: Into<ProcessError>,
        F: FnMut(&mut Topology<'_>) -> Result<P, E> + 'static,
    {
        let cluster = TestCluster::new()?;
        let state_dir = tempfile::tempdir().map_err(|source| TestError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let mut config = default_config(&self.group_id, state_dir.path());
        config.guarantee = self.guarantee;
        for f in self.configure {
            f(&mut config);
        }
        config.state_dir = state_dir.path().to_owned();
        config.commit_interval = Duration::from_secs(3600);
        cluster.configure(&mut config);
        // A restore ends with a fetch at the changelog's end, which waits
        // this long for more records (500 ms by default).
        config
            .recovery
            .consumer_properties
            .push(("fetch.wait.max.ms".to_owned(), "10".to_owned()));
        let mut setup = setup;
        let mut setup: Setup<P> = Box::new(move |t: &mut Topology<'_>| setup(t).map_err(Into::into));
        let visibility: SharedVisibility = Arc::new(Mutex::new(OutputVisibility {
            transactional: config.guarantee == ProcessingGuarantee::ExactlyOnce,
            ..Default::default()
        }));
        let restores = Arc::new(Mutex::new(BTreeMap::new()));
        let app = build_app(&config, &cluster, &restores, &mut setup)?;
        let mut driver = TestDriver {
            app,
            setup,
            cluster,
            config,
            state_dir,
            partitions: self.partitions,
            idle_timeout: self.idle_timeout,
            start_time: self.start_time,
            clocks: BTreeMap::new(),
            restores,
            visibility,
        };
        driver.start_app()?;
        Ok(driver)
    }
}

/// The manager's defaults for `group_id` with state under `dir`: RocksDB
/// with feature `rocksdb`, memory otherwise.
fn default_config(group_id: &str, dir: &std::path::Path) -> ManagerConfig {
    #[cfg(feature = "rocksdb")]
    {
        ManagerConfig::new(group_id, dir)
    }
    #[cfg(not(feature = "rocksdb"))]
    {
        ManagerConfig::with_backend(group_id, dir, state_core::MemoryBackend::shared())
    }
}

/// Builds the application of `setup` on `cluster` with `config`; its
/// manager reports restore progress to `restores`. Not started.
fn build_app<P: Processor>(
    config: &ManagerConfig,
    cluster: &TestCluster,
    restores: &Restores,
    setup: &mut Setup<P>,
) -> Result<App<P>, TestError> {
    let restores = restores.clone();
    let app = App::builder(config.clone(), cluster.client_config())
        // Quick turns: idle checks run between polls.
        .poll_timeout(Duration::from_millis(10))
        .consumer_property("fetch.wait.max.ms", "10")
        // A member that leaves is noticed by a LeaveGroup; these bound
        // the rest (the mock holds a rebalance for session.timeout.ms - 1 s).
        .consumer_property("session.timeout.ms", "2000")
        .consumer_property("heartbeat.interval.ms", "200")
        .build(|topology: &mut Topology<'_>| {
            // Set first, so a setup function's own listener wins.
            topology.manager().set_progress_listener(move |p: &RecoveryProgress| {
                restores
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(p.changelog.clone(), p.clone());
            });
            setup(topology)
        })?;
    Ok(app)
}

/// The last restore progress of each changelog partition.
type Restores = Arc<Mutex<BTreeMap<TopicPartition, RecoveryProgress>>>;

/// Runs an application's processor against its own [`TestCluster`], as
/// Kafka Streams' `TopologyTestDriver` runs a topology: one member of the
/// group, owning every partition, on a temporary state directory.
///
/// ```no_run
/// # use kafka_state::testing::{TestDriver, TestError};
/// # use kafka_state::{processor_fn, KeyValueStore, StoreSpec, Topology, ManagerError};
/// # fn main() -> Result<(), TestError> {
/// let mut driver = TestDriver::builder().exactly_once().build(|t: &mut Topology<'_>| {
///     let counts = t.store(StoreSpec::key_value("words", "counts"))?;
///     Ok::<_, ManagerError>(processor_fn(move |record, ctx| {
///         let mut word = ctx.store(&counts)?.key(record.key().unwrap_or_default());
///         let n: u64 = word.get("count")?.unwrap_or(0);
///         word.set("count", &(n + 1))?;
///         Ok(())
///     }))
/// })?;
/// let words = driver.input_topic("words")?;
/// words.pipe("hello", "")?;
/// driver.run_until_idle()?;
/// # Ok(())
/// # }
/// ```
///
/// * **Input**: [`input_topic`](Self::input_topic) pipes records with
///   chosen keys, values, timestamps and partitions, stamped by the
///   topic's event-time clock.
/// * **Run**: [`run_until_idle`](Self::run_until_idle) processes until
///   every input record is processed and committed and nothing restores;
///   [`process_records`](Self::process_records) processes some without
///   committing (work a crash then loses).
/// * **Output**: [`output_topic`](Self::output_topic) reads what the
///   processor sent, as a read-committed consumer would.
/// * **State**: [`get`](Self::get), [`windows`](Self::windows) and
///   [`reader`](Self::reader) read committed state by message key.
/// * **Time**: [`TestInputTopic::advance_time`] moves a topic's event time:
///   windows close and TTLs expire when the next record says so.
/// * **Restarts**: [`restart`](Self::restart) stops the member cleanly or
///   crashes it (with or without its local state) and starts a new one on
///   the same state directory; [`restores`](Self::restores) says what it
///   restored from the changelogs.
///
/// The driver commits when the application is idle
/// ([`run_until_idle`](Self::run_until_idle)) and when told
/// ([`commit`](Self::commit)); `commit_interval` does not apply. The
/// application is rebuilt by its setup function on every restart, so store
/// handles come from [`processor`](Self::processor) after a restart.
pub struct TestDriver<P> {
    app: App<P>,
    setup: Setup<P>,
    cluster: TestCluster,
    config: ManagerConfig,
    // Removed when the driver is dropped, after the app that uses it.
    state_dir: tempfile::TempDir,
    partitions: u32,
    idle_timeout: Duration,
    start_time: i64,
    clocks: BTreeMap<String, Arc<Mutex<InputClock>>>,
    restores: Restores,
    visibility: SharedVisibility,
}

impl<P> std::fmt::Debug for TestDriver<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDriver")
            .field("app", &self.app)
            .field("cluster", &self.cluster)
            .field("state_dir", &self.state_dir.path())
            .finish_non_exhaustive()
    }
}

impl TestDriver<()> {
    /// A builder: group id, guarantee, partitions, start time, the
    /// manager's configuration.
    pub fn builder() -> TestDriverBuilder {
        TestDriverBuilder {
            group_id: "test-app".to_owned(),
            guarantee: ProcessingGuarantee::default(),
            partitions: 4,
            start_time: DEFAULT_START_TIME,
            idle_timeout: Duration::from_secs(60),
            configure: Vec::new(),
        }
    }
}

impl<P: Processor> TestDriver<P> {
    /// A driver with the defaults of [`TestDriver::builder`].
    pub fn new<E, F>(setup: F) -> Result<Self, TestError>
    where
        E: Into<ProcessError>,
        F: FnMut(&mut Topology<'_>) -> Result<P, E> + 'static,
    {
        TestDriver::builder().build(setup)
    }

    /// Creates the application's topics (if missing) and starts it.
    fn start_app(&mut self) -> Result<(), TestError> {
        self.cluster.create_topics_for(self.app.topics(), self.partitions)?;
        self.app.start()?;
        Ok(())
    }

    /// A handle to pipe records into `topic`, one of the application's
    /// sources. Handles of one topic share its event-time clock.
    pub fn input_topic(&mut self, topic: &str) -> Result<TestInputTopic, TestError> {
        if !self.app.topics().sources.contains(topic) {
            return Err(TestError::UnknownTopic {
                topic: topic.to_owned(),
                problem: "not a source of the application (register a store on it or declare it with \
                          Topology::source)",
            });
        }
        let partitions = self.topic_partitions(topic)?;
        let start = self.start_time;
        let clock = self
            .clocks
            .entry(topic.to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(InputClock::new(start))))
            .clone();
        Ok(TestInputTopic::new(
            topic.to_owned(),
            partitions,
            self.config.partitioner,
            self.cluster.owner().clone(),
            clock,
        ))
    }

    /// A reader of `topic`, one of the application's declared outputs,
    /// from its beginning.
    pub fn output_topic(&self, topic: &str) -> Result<TestOutputTopic, TestError> {
        if !self.app.topics().outputs.contains(topic) {
            return Err(TestError::UnknownTopic {
                topic: topic.to_owned(),
                problem: "not an output of the application (declare it with Topology::output)",
            });
        }
        let partitions = self.topic_partitions(topic)?;
        TestOutputTopic::new(
            self.cluster.bootstrap_servers(),
            topic,
            partitions,
            self.visibility.clone(),
        )
    }

    /// Runs the application until it is idle: every record piped so far
    /// (and every record it wrote to its own sources) is processed and
    /// committed, every source partition is assigned to it and none is
    /// restoring. Commits whenever a poll finds nothing. Returns how many
    /// records it processed; fails with [`TestError::NotIdle`] after the
    /// idle timeout.
    pub fn run_until_idle(&mut self) -> Result<usize, TestError> {
        flush_producer(self.cluster.owner())?;
        let started = Instant::now();
        let mut processed = 0;
        loop {
            if let Polled::Processed { .. } = self.app.step()? {
                processed += 1;
                continue;
            }
            self.commit()?;
            if let Some(busy) = self.busy()? {
                if started.elapsed() > self.idle_timeout {
                    return Err(TestError::NotIdle {
                        waited: started.elapsed(),
                        status: busy,
                    });
                }
                continue;
            }
            return Ok(processed);
        }
    }

    /// Processes `records` records without committing them (a crash then
    /// loses them; [`run_until_idle`](Self::run_until_idle) commits them).
    /// Waits for them to arrive, up to the idle timeout.
    pub fn process_records(&mut self, records: usize) -> Result<(), TestError> {
        flush_producer(self.cluster.owner())?;
        let started = Instant::now();
        let mut processed = 0;
        while processed < records {
            if let Polled::Processed { .. } = self.app.step()? {
                processed += 1;
            } else if started.elapsed() > self.idle_timeout {
                return Err(TestError::Timeout {
                    what: format!("{records} records to process ({processed} came)"),
                    waited: started.elapsed(),
                });
            }
        }
        Ok(())
    }

    /// Commits the current checkpoint now.
    pub fn commit(&mut self) -> Result<(), TestError> {
        self.app.commit()?;
        self.note_commit()
    }

    /// Stops the running member as `how` says and starts a new one (built
    /// again by the setup function) on the same state directory and group.
    /// The new member restores its stores from the changelogs when the
    /// next run assigns it the partitions; [`restores`](Self::restores)
    /// then says what it replayed.
    pub fn restart(&mut self, how: Restart) -> Result<(), TestError> {
        flush_producer(self.cluster.owner())?;
        // Built first: a failure leaves the running member in place. It
        // opens no partition before it starts.
        let next = build_app(&self.config, &self.cluster, &self.restores, &mut self.setup)?;
        let old = std::mem::replace(&mut self.app, next);
        let manager = old.manager().clone();
        match how {
            Restart::Clean => {
                old.close()?;
                self.note_commit()?;
            }
            Restart::Crash | Restart::CrashLosingState => {
                old.abort()?;
                self.note_abort()?;
                if how == Restart::CrashLosingState {
                    manager.lock().clear_state()?;
                }
            }
        }
        drop(manager);
        self.restores.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.start_app()
    }

    /// The last restore progress of each changelog partition the running
    /// member restored (since it started), by changelog partition.
    pub fn restores(&self) -> Vec<RecoveryProgress> {
        self.restores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The value of `key` in the committed state of the key-value store
    /// behind `store`, for message key `msg_key` (looked up in the
    /// partition `msg_key`'s records are in).
    pub fn get<K, V>(
        &self,
        store: &StoreHandle<KeyValueStore>,
        msg_key: impl AsRef<[u8]>,
        key: &K,
    ) -> Result<Option<V>, TestError>
    where
        K: Serialize + ?Sized,
        V: DeserializeOwned,
    {
        let msg_key = msg_key.as_ref();
        let partition = self.partition_of(store.stream(), msg_key)?;
        Ok(self.reader().get(store, partition, key, msg_key)?)
    }

    /// Every window of message key `msg_key` in the committed state of the
    /// windowed store behind `store`, by start.
    pub fn windows<V: DeserializeOwned>(
        &self,
        store: &StoreHandle<WindowedStore>,
        msg_key: impl AsRef<[u8]>,
    ) -> Result<Vec<Window<V>>, TestError> {
        let msg_key = msg_key.as_ref();
        let partition = self.partition_of(store.stream(), msg_key)?;
        Ok(self
            .reader()
            .get_windows(store, partition, -1, i64::MAX, msg_key, Direction::Forward)?)
    }

    /// A reader of the committed state (interactive queries).
    pub fn reader(&self) -> StateReader {
        self.app.reader()
    }

    /// The partition of `topic` that records with key `key` are in.
    pub fn partition_of(&self, topic: &str, key: &[u8]) -> Result<u32, TestError> {
        let partitions = self.topic_partitions(topic)?;
        self.config
            .partitioner
            .partition(key, partitions)
            .ok_or_else(|| TestError::UnknownTopic {
                topic: topic.to_owned(),
                problem: "its producers place this key at random (an empty key under consistent_random)",
            })
    }

    /// The processor of the running member (with its store handles).
    pub fn processor(&self) -> &P {
        self.app.processor()
    }

    /// The running member.
    pub fn app(&self) -> &App<P> {
        &self.app
    }

    /// The running member, mutably (to step it yourself).
    pub fn app_mut(&mut self) -> &mut App<P> {
        &mut self.app
    }

    /// The test cluster (fault injection, topics of your own).
    pub fn cluster(&self) -> &TestCluster {
        &self.cluster
    }

    /// The manager's configuration the members run with.
    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// Partitions of `topic` on the cluster.
    fn topic_partitions(&self, topic: &str) -> Result<u32, TestError> {
        self.cluster.partitions(topic)?.ok_or_else(|| TestError::UnknownTopic {
            topic: topic.to_owned(),
            problem: "it does not exist on the test cluster",
        })
    }

    /// The end offset of every partition of the declared outputs.
    fn output_ends(&self) -> Result<BTreeMap<TopicPartition, i64>, TestError> {
        let mut ends = BTreeMap::new();
        for topic in &self.app.topics().outputs {
            for p in 0..self.topic_partitions(topic)? as i32 {
                let (_, high) = self
                    .app
                    .consumer()
                    .fetch_watermarks(topic, p, LOOKUP_TIMEOUT)
                    .map_err(|source| TestError::Kafka {
                        operation: "reading an output topic's end",
                        source,
                    })?;
                ends.insert(TopicPartition::new(topic.as_str(), p), high);
            }
        }
        Ok(ends)
    }

    /// After a commit: every output record written so far is committed.
    fn note_commit(&mut self) -> Result<(), TestError> {
        let ends = self.output_ends()?;
        let mut visibility = self.visibility.lock().unwrap_or_else(PoisonError::into_inner);
        for (tp, end) in ends {
            visibility.committed_end.insert(tp, end);
        }
        Ok(())
    }

    /// After a crash: output records written since the last commit belong
    /// to the aborted checkpoint (exactly-once), hidden from readers.
    fn note_abort(&mut self) -> Result<(), TestError> {
        let ends = self.output_ends()?;
        let mut visibility = self.visibility.lock().unwrap_or_else(PoisonError::into_inner);
        if !visibility.transactional {
            return Ok(());
        }
        for (tp, end) in ends {
            let committed = visibility.committed_end.get(&tp).copied().unwrap_or(0);
            if end > committed {
                visibility.aborted.entry(tp.clone()).or_default().push(committed..end);
            }
            visibility.committed_end.insert(tp, end);
        }
        Ok(())
    }

    /// What keeps the application busy, or `None` if it is idle.
    fn busy(&self) -> Result<Option<String>, TestError> {
        let restoring = self.app.manager().lock().restoring();
        if !restoring.is_empty() {
            return Ok(Some(format!("partitions restoring: {restoring:?}")));
        }
        let consumer = self.app.consumer();
        let kafka = |operation| move |source| TestError::Kafka { operation, source };
        let assignment = consumer.assignment().map_err(kafka("reading the assignment"))?;
        let mut expected = 0;
        for topic in &self.app.topics().sources {
            expected += self.topic_partitions(topic)? as usize;
        }
        if assignment.count() < expected {
            return Ok(Some(format!(
                "{} of {expected} source partitions assigned",
                assignment.count()
            )));
        }
        let committed = consumer
            .committed_offsets(assignment, LOOKUP_TIMEOUT)
            .map_err(kafka("reading the committed offsets"))?;
        let mut behind = Vec::new();
        for e in committed.elements() {
            let (_, high) = consumer
                .fetch_watermarks(e.topic(), e.partition(), LOOKUP_TIMEOUT)
                .map_err(kafka("reading a source partition's end"))?;
            let at = match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            };
            if at < high {
                behind.push(format!("{}[{}] committed {at} of {high}", e.topic(), e.partition()));
            }
        }
        Ok((!behind.is_empty()).then(|| format!("input not processed and committed: {}", behind.join(", "))))
    }
}
