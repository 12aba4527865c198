//! [`StateStoreManager`]: the facade tying the registry, assignment,
//! checkpoints and the producer together. Each job lives in its own module
//! (`registry`, `assignment`, `checkpoint`, `producer`); this one holds the
//! state they share and the calls of the processing loop.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerContext};
use state_changelog::{
    changelog_topic_name, ensure_changelog_topic, ChangelogProducer, ChangelogTopicConfig, RecoveryProgress, Restorer,
};
use state_core::{ChangelogSink, Store, StoreLocation, StorePartition};

use crate::assignment::{Role, SourcePartition, Standby};
use crate::checkpoint::{CheckpointStage, CheckpointState};
use crate::config::ManagerConfig;
use crate::error::{ManagerError, Result};
use crate::layout::StateDir;
use crate::producer::ProducerLifecycle;
use crate::registry::{RegisteredStore, Registry};
use crate::spec::{StoreHandle, StoreSpec, StoreType};

/// Receives recovery progress.
pub(crate) type ProgressListener = Box<dyn FnMut(&RecoveryProgress) + Send>;

/// Receives checkpoint stages.
type CheckpointObserver = Box<dyn FnMut(CheckpointStage) + Send>;

/// Tells managers apart, so a handle is only honoured by its own manager.
static NEXT_MANAGER: AtomicU64 = AtomicU64::new(1);

/// Manages the state of one application instance in a consumer group.
///
/// * **Stores** are registered per stream (source topic) with
///   [`register_store`](Self::register_store), which returns a typed
///   [`StoreHandle`]; each store has a changelog topic
///   `changelog__<group>--<stream>--<store>` unless registered without, and
///   runs on the manager's default backend or its own.
/// * **Assignment**: [`on_assign`](Self::on_assign) opens the store
///   partitions of the assigned source partitions, pauses them and hands
///   them to the restorer thread; [`maintain`](Self::maintain), called from
///   the poll loop, resumes each once its stores caught up with their
///   changelogs, so no record of a partition is processed on stale state
///   and restore time never counts against `max.poll.interval.ms`.
///   [`on_revoke`](Self::on_revoke) closes partitions (or keeps standby
///   replicas, see [`crate::StandbyPolicy`]). [`crate::StateContext`] calls
///   both from rdkafka's rebalance callbacks.
/// * **Checkpoints**: [`txn`](Self::txn) gives the current checkpoint's
///   transaction of a store partition; [`commit`](Self::commit) commits all
///   of them with the configured guarantee (see
///   [`crate::ProcessingGuarantee`]).
pub struct StateStoreManager {
    pub(crate) id: u64,
    pub(crate) config: ManagerConfig,
    pub(crate) kafka_client: ClientConfig,
    pub(crate) layout: StateDir,
    pub(crate) registry: Registry,
    pub(crate) kafka: ProducerLifecycle,
    pub(crate) assigned: BTreeMap<SourcePartition, Role>,
    pub(crate) standbys: BTreeMap<SourcePartition, Standby>,
    /// The committed offset each restoring partition's stores were restored
    /// against: the partition resumes there, so what it processes next and
    /// what its state holds agree even if the group's offset moved in
    /// between (a previous owner's late commit).
    pub(crate) resume_at: BTreeMap<SourcePartition, i64>,
    pub(crate) restorer: Option<Restorer>,
    pub(crate) last_metadata: Option<Instant>,
    pub(crate) last_export: Option<Instant>,
    pub(crate) current: CheckpointState,
    pub(crate) last_commit: Instant,
    pub(crate) progress: Option<ProgressListener>,
    pub(crate) readable: crate::reader::SharedReadable,
    observer: Option<CheckpointObserver>,
    pending_error: Option<ManagerError>,
}

impl std::fmt::Debug for StateStoreManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStoreManager")
            .field("group_id", &self.config.group_id)
            .field("assigned", &self.assigned)
            .finish_non_exhaustive()
    }
}

impl StateStoreManager {
    /// A manager for `config`, talking to Kafka with `kafka` (bootstrap
    /// servers and security settings; shared by the changelog producer and
    /// the recovery consumer).
    pub fn new(config: ManagerConfig, kafka: ClientConfig) -> Result<Self> {
        config.validate()?;
        let layout = StateDir::new(&config.state_dir, &config.group_id)?;
        // Owner-only state and group directories, or a warning naming them.
        layout.create_dirs()?;
        Ok(StateStoreManager {
            id: NEXT_MANAGER.fetch_add(1, Ordering::Relaxed),
            kafka: ProducerLifecycle::new(&config, &kafka),
            config,
            kafka_client: kafka,
            layout,
            registry: Registry::default(),
            assigned: BTreeMap::new(),
            standbys: BTreeMap::new(),
            resume_at: BTreeMap::new(),
            restorer: None,
            last_metadata: None,
            last_export: None,
            current: CheckpointState::default(),
            last_commit: Instant::now(),
            progress: None,
            readable: Default::default(),
            observer: None,
            pending_error: None,
        })
    }

    /// A reader of the committed state of the partitions this instance owns,
    /// for other threads (interactive queries); see [`crate::StateReader`].
    pub fn reader(&self) -> crate::StateReader {
        crate::StateReader {
            manager: self.id,
            readable: self.readable.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// Receives recovery progress (records done / total per partition).
    pub fn set_progress_listener(&mut self, f: impl FnMut(&RecoveryProgress) + Send + 'static) {
        self.progress = Some(Box::new(f));
    }

    /// Receives every [`CheckpointStage`] a checkpoint passes (for metrics,
    /// tracing, and crash tests that stop a process between two stages).
    pub fn set_checkpoint_observer(&mut self, f: impl FnMut(CheckpointStage) + Send + 'static) {
        self.observer = Some(Box::new(f));
    }

    pub(crate) fn observe(&mut self, stage: CheckpointStage) {
        if let Some(f) = &mut self.observer {
            f(stage);
        }
    }

    /// Registers a store and returns its handle. A second store of the same
    /// name on the same stream is [`ManagerError::DuplicateStore`].
    pub fn register_store<T: StoreType>(&mut self, spec: StoreSpec<T>) -> Result<StoreHandle<T>> {
        let dir = self.layout.store_dir(&spec.name, &spec.stream)?;
        let mut backend = spec.backend.unwrap_or_else(|| self.config.backend.clone());
        let changelog_topic = spec
            .changelog
            .then(|| changelog_topic_name(&self.config.group_id, &spec.stream, &spec.name));
        let write_behind = match (spec.write_behind, &changelog_topic) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(ManagerError::InvalidConfig {
                    field: "write_behind",
                    problem: format!(
                        "needs a changelog, but store {:?} of stream {:?} was registered without one: a crash \
                         would lose every write since the last local flush. Remove .without_changelog() or \
                         .write_behind(..) from its StoreSpec",
                        spec.name, spec.stream
                    ),
                })
            }
            (Some(config), Some(_)) => {
                let wb = Arc::new(state_cache::WriteBehindBackend::new(backend, config));
                backend = wb.clone();
                Some(wb)
            }
        };
        let id = self.registry.add(RegisteredStore {
            stream: spec.stream.clone(),
            name: spec.name.clone(),
            kind: T::KIND,
            codec: spec.codec,
            changelog_topic,
            ttl: spec.ttl,
            store: Store::new(backend, StoreLocation::new(spec.name.clone(), dir)),
            formats: Default::default(),
            write_behind,
            window_index: spec.window_index,
            indexes: Default::default(),
        })?;
        Ok(StoreHandle {
            manager: self.id,
            id,
            stream: spec.stream.into(),
            name: spec.name.into(),
            settings: spec.settings,
            kind: std::marker::PhantomData,
        })
    }

    /// Changelog topics of the registered stores: `(source topic, changelog topic)`.
    pub fn changelog_topics(&self) -> Vec<(String, String)> {
        self.registry
            .iter()
            .filter_map(|(_, s)| s.changelog_topic.clone().map(|t| (s.stream.clone(), t)))
            .collect()
    }

    /// Creates missing changelog topics (compacted, with the source's
    /// partition count) and validates existing ones, through the admin API.
    pub fn ensure_changelog_topics(&self, config: &ChangelogTopicConfig) -> Result<()> {
        for (source, changelog) in self.changelog_topics() {
            ensure_changelog_topic(&self.kafka_client, &source, &changelog, config)?;
        }
        Ok(())
    }

    /// The producer for the application's own output records. Under
    /// exactly-once, records sent through it before [`commit`](Self::commit)
    /// belong to the checkpoint's Kafka transaction.
    pub fn output_producer(&mut self) -> Result<Arc<ChangelogProducer>> {
        self.kafka.begin()?;
        self.kafka.producer()
    }

    fn check_handle<T: StoreType>(&self, handle: &StoreHandle<T>) -> Result<()> {
        if handle.manager != self.id {
            return Err(ManagerError::ForeignHandle {
                stream: handle.stream.to_string(),
                store: handle.name.to_string(),
            });
        }
        Ok(())
    }

    /// The current checkpoint's transaction on partition `partition` of the
    /// store behind `handle`, started on first use.
    ///
    /// Fails with [`ManagerError::NotAssigned`] if the partition is not
    /// assigned to this instance, and with [`ManagerError::Restoring`] while
    /// its stores are still restoring (its records are paused until then).
    pub fn txn<T: StoreType>(&mut self, handle: &StoreHandle<T>, partition: u32) -> Result<&mut T::Txn> {
        self.check_handle(handle)?;
        let key = (handle.id, partition);
        if !T::txns(&mut self.current.txns).contains_key(&key) {
            let txn = self.begin_txn(handle, partition)?;
            T::txns(&mut self.current.txns).insert(key, txn);
        }
        T::txns(&mut self.current.txns)
            .get_mut(&key)
            .ok_or_else(|| ManagerError::NotAssigned {
                stream: handle.stream.to_string(),
                partition,
            })
    }

    fn begin_txn<T: StoreType>(&mut self, handle: &StoreHandle<T>, partition: u32) -> Result<T::Txn> {
        let not_assigned = || ManagerError::NotAssigned {
            stream: handle.stream.to_string(),
            partition,
        };
        match self.assigned.get(&(handle.stream.to_string(), partition)) {
            None => return Err(not_assigned()),
            Some(Role::Restoring(_)) => {
                return Err(ManagerError::Restoring {
                    stream: handle.stream.to_string(),
                    partition,
                })
            }
            Some(Role::Active) => {}
        }
        self.kafka.begin()?;
        let (format, topic, part, index) = {
            let s = self.registry.get_mut(handle.id);
            let part = s.store.partition(partition).ok_or_else(not_assigned)?;
            let format = s.formats.get(&partition).cloned().ok_or_else(not_assigned)?;
            (format, s.changelog_topic.clone(), part, s.index_of(partition))
        };
        let sink: Option<Arc<dyn ChangelogSink>> = match topic {
            Some(topic) => Some(self.kafka.producer()?.sink(topic, partition as i32)),
            None => None,
        };
        Ok(T::begin(part, &format, sink, &handle.settings, index))
    }

    /// Records that the record at `offset` of `topic[partition]` was
    /// processed in the current checkpoint.
    pub fn processed(&mut self, topic: &str, partition: u32, offset: i64) -> Result<()> {
        self.kafka.begin()?;
        let e = self
            .current
            .processed
            .entry((topic.to_owned(), partition))
            .or_insert(offset);
        *e = (*e).max(offset);
        let f = self
            .current
            .first_processed
            .entry((topic.to_owned(), partition))
            .or_insert(offset);
        *f = (*f).min(offset);
        Ok(())
    }

    /// The manager's share of every turn of the poll loop; call it after
    /// each `poll` (it is cheap when there is nothing to do):
    ///
    /// * returns an error raised in a rebalance callback or by a restore;
    /// * resumes partitions whose stores finished restoring;
    /// * starts and stops standby replicas as the [`crate::StandbyPolicy`] says;
    /// * exports metrics (partition sizes, standby lag) every few seconds;
    /// * commits the current checkpoint when `commit_interval` has passed.
    pub fn maintain<C: ConsumerContext, K: Consumer<C>>(&mut self, consumer: &K) -> Result<()> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        self.drain_restore_events(consumer)?;
        self.tend_standbys(consumer)?;
        self.flush_due_caches()?;
        self.export_metrics();
        if self.commit_due() {
            self.commit(consumer)?;
        }
        Ok(())
    }

    /// Writes the write-behind caches whose time bound passed to their
    /// backends (between checkpoints, so a quiet partition's changes do not
    /// wait for its next write).
    fn flush_due_caches(&mut self) -> Result<()> {
        for (_, s) in self.registry.iter() {
            if let Some(wb) = &s.write_behind {
                wb.flush_due()?;
            }
        }
        Ok(())
    }

    /// Writes every write-behind cache to its backend now (a clean
    /// shutdown; revocations flush their partitions by themselves). After
    /// it, a restart replays nothing already committed.
    pub fn flush_caches(&mut self) -> Result<()> {
        for (_, s) in self.registry.iter() {
            if let Some(wb) = &s.write_behind {
                wb.flush_all()?;
            }
        }
        Ok(())
    }

    /// The write-behind cache of each open partition of the store behind
    /// `handle` (empty if it was registered without
    /// [`StoreSpec::write_behind`](crate::StoreSpec::write_behind)):
    /// `changelog_offset` is what its committed checkpoints include,
    /// `flushed_offset` what the backend holds; a restart now would replay
    /// the changelog between them.
    pub fn write_behind_stats<T: StoreType>(
        &self,
        handle: &StoreHandle<T>,
    ) -> Result<std::collections::BTreeMap<u32, state_cache::WriteBehindStats>> {
        self.check_handle(handle)?;
        let s = self.registry.get(handle.id);
        let Some(wb) = &s.write_behind else {
            return Ok(Default::default());
        };
        Ok(s.store
            .assigned_partitions()
            .into_iter()
            .filter_map(|p| Some((p, wb.partition(s.store.location(), p)?.cache_stats())))
            .collect())
    }

    /// True once `commit_interval` has passed since the last commit.
    pub fn commit_due(&self) -> bool {
        self.last_commit.elapsed() >= self.config.commit_interval
    }

    /// Takes an error raised inside a rebalance callback, if any.
    pub fn take_error(&mut self) -> Option<ManagerError> {
        self.pending_error.take()
    }

    pub(crate) fn set_error(&mut self, e: ManagerError) {
        tracing::error!(error = %e, "state manager error in a rebalance callback");
        self.pending_error.get_or_insert(e);
    }

    /// The open partition `partition` of the store behind `handle`, for
    /// inspection (tests, tools). Reads through it see only what was
    /// flushed (and, for a store with write-behind, its cache).
    pub fn partition<T: StoreType>(&self, handle: &StoreHandle<T>, partition: u32) -> Result<Arc<dyn StorePartition>> {
        self.check_handle(handle)?;
        self.registry
            .get(handle.id)
            .store
            .partition(partition)
            .ok_or_else(|| ManagerError::NotAssigned {
                stream: handle.stream.to_string(),
                partition,
            })
    }
}
