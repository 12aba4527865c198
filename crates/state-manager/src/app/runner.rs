//! [`App`]: the poll loop, written once — poll, process, maintain,
//! checkpoint, shut down cleanly — around the application's
//! [`Processor`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use state_changelog::ChangelogTopicConfig;
use state_core::TopicPartition;

use super::context::Context;
use super::error::AppError;
use super::processor::{ProcessError, Processor};
use super::record::Record;
use super::topology::{Topics, Topology};
use crate::config::ManagerConfig;
use crate::context::StateContext;
use crate::error::ManagerError;
use crate::manager::StateStoreManager;
use crate::reader::StateReader;
use crate::Mutex;

/// How long one poll waits for a record by default.
const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// Asks a running [`App::run`] to stop: it finishes the record in hand,
/// then closes cleanly. Cheap to clone; hand a clone to a signal handler
/// or another thread.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// A handle nobody has triggered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the app to stop.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// True once [`request`](Self::request) was called.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What one [`App::step`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Polled {
    /// It processed the record at `offset` of `partition`.
    Processed {
        /// The record's topic and partition.
        partition: TopicPartition,
        /// Its offset.
        offset: i64,
    },
    /// No record was ready (or the one polled belonged to a partition that
    /// is restoring or was revoked: it is delivered again once resumed).
    Nothing,
}

/// Builds an [`App`] with settings beyond [`App::new`]'s.
#[derive(Clone, Debug)]
pub struct AppBuilder {
    config: ManagerConfig,
    kafka: ClientConfig,
    consumer_properties: Vec<(String, String)>,
    poll_timeout: Duration,
    changelog_topics: ChangelogTopicConfig,
}

impl AppBuilder {
    /// Sets a librdkafka property of the processing consumer only
    /// (`session.timeout.ms`, `max.poll.interval.ms`, ...), over the
    /// settings the manager relies on.
    pub fn consumer_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.consumer_properties.push((key.into(), value.into()));
        self
    }

    /// How long one poll waits for a record (default 100 ms): the longest
    /// a quiet app takes to notice a [`Shutdown`].
    pub fn poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// How missing changelog topics are created on [`App::start`].
    pub fn changelog_topics(mut self, config: ChangelogTopicConfig) -> Self {
        self.changelog_topics = config;
        self
    }

    /// Creates the manager, runs `setup` on its [`Topology`] (registering
    /// stores, declaring sources and outputs) for the processor, and
    /// creates the processing consumer
    /// ([`ManagerConfig::consumer_config`]). Nothing is consumed before
    /// [`App::start`] (or the first [`App::step`]).
    pub fn build<P, E, F>(self, setup: F) -> Result<App<P>, AppError>
    where
        P: Processor,
        F: FnOnce(&mut Topology<'_>) -> Result<P, E>,
        E: Into<ProcessError>,
    {
        let mut manager = StateStoreManager::new(self.config.clone(), self.kafka.clone())?;
        let (processor, topics) = {
            let mut topology = Topology::new(&mut manager);
            let processor = setup(&mut topology).map_err(|e| AppError::Setup(e.into()))?;
            (processor, topology.topics())
        };
        let manager = Arc::new(Mutex::new(manager));
        let mut consumer_config = self.config.consumer_config(&self.kafka);
        for (key, value) in &self.consumer_properties {
            consumer_config.set(key, value);
        }
        let consumer = consumer_config
            .create_with_context(StateContext::new(manager.clone()))
            .map_err(|source| ManagerError::Kafka {
                operation: "creating the processing consumer",
                source,
            })?;
        Ok(App {
            manager,
            consumer,
            processor,
            topics,
            changelog_topics: self.changelog_topics,
            poll_timeout: self.poll_timeout,
            started: false,
            stopped: false,
        })
    }
}

/// A stream processor: one consumer in the group, its state manager and
/// your [`Processor`], with the poll loop written once.
///
/// [`step`](Self::step) polls one record, gives it to the processor with
/// its store transactions and output producer ([`Context`]), marks it
/// processed, and maintains the manager (resumes restored partitions,
/// checkpoints every [`ManagerConfig::commit_interval`]).
/// [`run`](Self::run) steps until a [`Shutdown`] is requested, then
/// [`close`](Self::close)s: the current checkpoint commits and the member
/// leaves the group, handing its partitions over without reprocessing.
/// The test driver (`kafka_state::testing`) runs the same processor
/// through the same steps.
///
/// The manager stays available ([`manager`](Self::manager)) for what the
/// app does not cover; an application with its own loop uses the manager
/// directly.
pub struct App<P> {
    manager: Arc<Mutex<StateStoreManager>>,
    consumer: BaseConsumer<StateContext>,
    processor: P,
    topics: Topics,
    changelog_topics: ChangelogTopicConfig,
    poll_timeout: Duration,
    started: bool,
    stopped: bool,
}

impl<P> std::fmt::Debug for App<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("topics", &self.topics)
            .field("started", &self.started)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl App<()> {
    /// A builder for settings beyond [`App::new`]'s (consumer properties,
    /// poll timeout, changelog topic creation).
    pub fn builder(config: ManagerConfig, kafka: ClientConfig) -> AppBuilder {
        AppBuilder {
            config,
            kafka,
            consumer_properties: Vec::new(),
            poll_timeout: DEFAULT_POLL_TIMEOUT,
            changelog_topics: ChangelogTopicConfig::default(),
        }
    }
}

impl<P: Processor> App<P> {
    /// An app for `config`, talking to Kafka with `kafka` (bootstrap
    /// servers, security), whose topology and processor `setup` makes. See
    /// [`AppBuilder::build`].
    pub fn new<E, F>(config: ManagerConfig, kafka: ClientConfig, setup: F) -> Result<Self, AppError>
    where
        F: FnOnce(&mut Topology<'_>) -> Result<P, E>,
        E: Into<ProcessError>,
    {
        App::builder(config, kafka).build(setup)
    }

    /// Creates missing changelog topics (validating existing ones) and
    /// subscribes to the sources. Done by the first [`step`](Self::step)
    /// if not called; calling it again does nothing.
    pub fn start(&mut self) -> Result<(), AppError> {
        if self.started {
            return Ok(());
        }
        self.manager.lock().ensure_changelog_topics(&self.changelog_topics)?;
        let sources: Vec<&str> = self.topics.sources.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&sources)
            .map_err(|source| ManagerError::Kafka {
                operation: "subscribing to the source topics",
                source,
            })?;
        self.started = true;
        Ok(())
    }

    /// Polls once (up to the poll timeout), processes the record if one
    /// came, then maintains the manager. An error other than a non-fatal
    /// consumer error or a full disk stops the app ([`AppError::is_fatal`]); a processing
    /// error first aborts the current checkpoint.
    pub fn step(&mut self) -> Result<Polled, AppError> {
        if self.stopped {
            return Err(AppError::Stopped);
        }
        self.start()?;
        let outcome = match self.consumer.poll(self.poll_timeout) {
            None => Ok(Polled::Nothing),
            Some(Err(source)) => Err(AppError::Consume { source }),
            Some(Ok(msg)) => process(&self.manager, &mut self.processor, &msg),
        };
        let outcome = match outcome {
            Err(e @ AppError::Process { .. }) => Err(e),
            other => match self.manager.lock().maintain(&self.consumer) {
                Ok(()) => other,
                Err(e) => Err(e.into()),
            },
        };
        if outcome.as_ref().is_err_and(AppError::is_fatal) {
            self.stopped = true;
        }
        outcome
    }

    /// Commits the current checkpoint now (otherwise every
    /// [`ManagerConfig::commit_interval`], on revocation and on close).
    pub fn commit(&mut self) -> Result<(), AppError> {
        if self.stopped {
            return Err(AppError::Stopped);
        }
        let committed = self.manager.lock().commit(&self.consumer).map_err(AppError::from);
        if committed.as_ref().is_err_and(AppError::is_fatal) {
            self.stopped = true;
        }
        committed
    }

    /// Steps until `shutdown` is requested, then closes. Non-fatal consumer
    /// errors and a full disk are logged and polling goes on (see
    /// [`AppError::is_fatal`]); any other error stops the
    /// loop, the app leaves the group without committing
    /// ([`abort`](Self::abort)), and the error is returned.
    pub fn run(mut self, shutdown: &Shutdown) -> Result<(), AppError> {
        let stopped = loop {
            if shutdown.is_requested() {
                break Ok(());
            }
            match self.step() {
                Ok(_) => {}
                Err(e) if !e.is_fatal() => tracing::warn!(error = %e, "polling goes on after this error"),
                Err(e) => break Err(e),
            }
        };
        match stopped {
            Ok(()) => self.close(),
            Err(e) => {
                tracing::error!(error = %e, "stopping the application");
                if let Err(abort) = self.abort() {
                    tracing::warn!(error = %abort, "leaving the group after the error failed too");
                }
                Err(e)
            }
        }
    }

    /// Shuts down cleanly ([`StateStoreManager::close`]): commits the
    /// current checkpoint, writes the caches, leaves the group (the
    /// partitions move at once, nothing is processed twice) and releases
    /// every partition. An app stopped by an error is
    /// [`abort`](Self::abort)ed instead.
    pub fn close(self) -> Result<(), AppError> {
        if self.stopped {
            return self.abort();
        }
        Ok(StateStoreManager::close(&self.manager, self.consumer)?)
    }

    /// Leaves the group without committing: the current checkpoint is
    /// dropped (its Kafka transaction aborted under exactly-once) and
    /// whoever takes its partitions over processes its records again —
    /// what a crash loses, without waiting for the group to notice one.
    pub fn abort(self) -> Result<(), AppError> {
        let aborted = self.manager.lock().abort();
        let closed = StateStoreManager::close(&self.manager, self.consumer);
        Ok(aborted.and(closed)?)
    }

    /// The topics the app reads, writes, and keeps changelogs in.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// The shared state manager (the consumer's context drives it too).
    pub fn manager(&self) -> &Arc<Mutex<StateStoreManager>> {
        &self.manager
    }

    /// A reader of the committed state for other threads.
    pub fn reader(&self) -> StateReader {
        self.manager.lock().reader()
    }

    /// The processing consumer.
    pub fn consumer(&self) -> &BaseConsumer<StateContext> {
        &self.consumer
    }

    /// The processor.
    pub fn processor(&self) -> &P {
        &self.processor
    }

    /// The processor, mutably.
    pub fn processor_mut(&mut self) -> &mut P {
        &mut self.processor
    }

    /// True once an error stopped the app.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }
}

/// Gives `msg` to `processor` with its context and marks it processed;
/// on a processing error, aborts the current checkpoint.
fn process<P: Processor>(
    manager: &Mutex<StateStoreManager>,
    processor: &mut P,
    msg: &BorrowedMessage<'_>,
) -> Result<Polled, AppError> {
    let record = Record::of(msg);
    let mut m = manager.lock();
    if !m.is_ready(record.topic(), record.partition()) {
        // Fetched before its partition was paused for a restore, or
        // revoked since: a resumed partition is moved back to its
        // committed offset, so the record comes again.
        tracing::debug!(
            topic = record.topic(),
            partition = record.partition(),
            offset = record.offset(),
            "record of a partition not ready; it is delivered again once resumed"
        );
        return Ok(Polled::Nothing);
    }
    let result = processor.process(
        &record,
        &mut Context::new(&mut m, record.partition(), record.timestamp()),
    );
    if let Err(source) = result {
        if m.damage_found() && m.config().on_corrupt == crate::CorruptionPolicy::Rebuild {
            // The maintain after this rebuilds the partition and moves the
            // consumer back to this record.
            tracing::warn!(
                topic = record.topic(),
                partition = record.partition(),
                offset = record.offset(),
                error = %source,
                "processing found a damaged store partition; it is rebuilt and the record processed again"
            );
            return Ok(Polled::Nothing);
        }
        if let Err(e) = m.abort() {
            tracing::warn!(error = %e, "aborting the checkpoint after a processing error failed");
        }
        return Err(AppError::Process {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
            source,
        });
    }
    m.processed(record.topic(), record.partition(), record.offset())?;
    Ok(Polled::Processed {
        partition: record.source(),
        offset: record.offset(),
    })
}
