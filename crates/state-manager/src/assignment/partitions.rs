//! [`Assignments`]: where every assigned source partition stands, taking
//! partitions over (opening or promoting their stores, handing them to the
//! restorer), resuming them once restored, and letting them go.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::TopicPartitionList;
use state_changelog::{ChangelogError, RecoveryProgress, RestoreEvent, RestoreRequest};
use state_core::TopicPartition;

use super::consumer;
use super::lookup::PartitionKey;
use super::reloads::Reloads;
use super::restorer::LazyRestorer;
use super::roles::{Role, Roles};
use super::standby::{StandbyReport, Standbys};
use super::start_offsets::PlacedOffsets;
use crate::config::ManagerConfig;
use crate::error::{ManagerError, Result};
use crate::events::{Events, ManagerEvent};
use crate::healing::{self, Damage, Healer};
use crate::reader::Readers;
use crate::registry::OpenedPartition;
use crate::registry::Registry;
use crate::snapshots::{BootstrapJob, Bootstrapped, Bootstraps};

/// Receives recovery progress.
type ProgressListener = Box<dyn FnMut(&RecoveryProgress) + Send>;

/// What taking over a source partition restores: each store with a
/// changelog, its changelog partition and the store partition opened for
/// it (`None`: a standby's, promoted in place); and the stores without
/// local state that start from a snapshot (`None`: their job already
/// runs, from an earlier assignment).
struct Takeover {
    offsets: BTreeMap<String, i64>,
    restores: Vec<(usize, TopicPartition, Option<OpenedPartition>)>,
    bootstraps: Vec<(usize, Option<BootstrapJob>)>,
}

/// The source partitions assigned here and the standby replicas kept
/// here, with the restorer thread that restores both.
pub(crate) struct Assignments {
    assigned: Roles,
    /// The committed offset each restoring partition's stores were restored
    /// against: the partition resumes there, so what it processes next and
    /// what its state holds agree even if the group's offset moved in
    /// between (a previous owner's late commit).
    resume_at: BTreeMap<TopicPartition, i64>,
    restorer: LazyRestorer,
    standbys: Standbys,
    progress: Option<ProgressListener>,
    kafka_timeout: Duration,
    /// The corruption policy.
    healer: Healer,
    /// The store partitions (source partition, store id) rebuilt since
    /// they were assigned: one rebuild each, so a disk that keeps
    /// corrupting what is written fails instead of looping.
    rebuilt: BTreeSet<(TopicPartition, usize)>,
    /// Partitions paused after a full disk until their state is reloaded.
    reloads: Reloads,
    /// The committed offsets the last placement read, for the assignment
    /// that follows it in the same rebalance callback.
    placed: PlacedOffsets,
    /// Restores of partitions without local state from snapshots
    /// ([`crate::SnapshotSettings`]), before their changelog tails.
    bootstraps: Bootstraps,
    /// Where snapshot restores are reported.
    events: Events,
    /// Changelog partitions replaying the tail after a snapshot restore
    /// (for the crash harness's [`state_snapshot::crash_point::TAIL_REPLAY`]).
    tail_replays: BTreeSet<TopicPartition>,
}

impl Assignments {
    /// Nothing assigned yet; restores read with `kafka`'s settings.
    pub(crate) fn new(config: &ManagerConfig, kafka: &ClientConfig) -> Self {
        Assignments {
            assigned: Roles::default(),
            resume_at: BTreeMap::new(),
            restorer: LazyRestorer::new(kafka.clone(), config.group_id.clone(), config.recovery.clone()),
            standbys: Standbys::new(config.standby.clone(), config.kafka_timeout),
            progress: None,
            kafka_timeout: config.kafka_timeout,
            healer: Healer::new(config),
            rebuilt: BTreeSet::new(),
            reloads: Reloads::default(),
            placed: PlacedOffsets::default(),
            bootstraps: Bootstraps::new(
                config.snapshots.as_ref(),
                kafka,
                &config.recovery,
                &config.group_id,
                config.state_dir.join(&config.group_id),
                config.kafka_timeout,
            ),
            events: Events::default(),
            tail_replays: BTreeSet::new(),
        }
    }

    /// Reports snapshot restores to `events`.
    pub(crate) fn set_events(&mut self, events: Events) {
        self.events = events;
    }

    /// Receives recovery progress.
    pub(crate) fn set_progress_listener(&mut self, f: impl FnMut(&RecoveryProgress) + Send + 'static) {
        self.progress = Some(Box::new(f));
    }

    /// True if `tp` is assigned here (restoring or ready).
    pub(crate) fn is_assigned(&self, tp: &dyn PartitionKey) -> bool {
        self.assigned.contains_key(tp)
    }

    /// Moves whenever a source partition is assigned, revoked or changes
    /// role (see [`crate::StateStoreManager::assignment_version`]).
    pub(crate) fn version(&self) -> u64 {
        self.assigned.version()
    }

    /// True if `tp` is assigned here and its stores are restored.
    pub(crate) fn is_ready(&self, tp: &dyn PartitionKey) -> bool {
        self.assigned.get(tp) == Some(&Role::Active)
    }

    /// The source partitions assigned here (restoring or ready).
    pub(crate) fn assigned(&self) -> Vec<TopicPartition> {
        self.assigned.keys().cloned().collect()
    }

    /// Stops every standby replica and closes its store partitions.
    pub(crate) fn stop_standbys(&mut self, registry: &mut Registry) -> Result<()> {
        let kept: Vec<TopicPartition> = self.standbys.partitions().cloned().collect();
        for tp in kept {
            self.standbys.stop(&tp, registry, &self.restorer)?;
        }
        Ok(())
    }

    /// Stops the restorer thread, if it runs (it starts again when next
    /// needed). Call it with no restore or standby left.
    pub(crate) fn stop_restorer(&mut self) {
        self.restorer.stop();
    }

    /// Cancels the running snapshot download and waits for its thread to
    /// end (a chunk, not a download: see [`Bootstraps::stop`]). Call it
    /// with no partition assigned or standing by: none waits for it then.
    pub(crate) fn stop_bootstraps(&mut self) {
        self.bootstraps.stop();
    }

    /// How many source partitions are assigned here.
    pub(crate) fn len(&self) -> usize {
        self.assigned.len()
    }

    /// Ok if records of `tp` may be processed; [`ManagerError::NotAssigned`]
    /// or [`ManagerError::Restoring`] if not.
    pub(crate) fn check_ready(&self, tp: &TopicPartition) -> Result<()> {
        match self.assigned.get(tp) {
            Some(Role::Active) => Ok(()),
            Some(Role::Restoring(_)) => Err(ManagerError::Restoring {
                stream: tp.topic().to_owned(),
                partition: tp.store_partition(),
            }),
            None => Err(ManagerError::NotAssigned {
                stream: tp.topic().to_owned(),
                partition: tp.store_partition(),
            }),
        }
    }

    /// Source partitions assigned here whose stores are still restoring.
    pub(crate) fn restoring(&self) -> Vec<TopicPartition> {
        self.assigned
            .iter()
            .filter(|(_, r)| matches!(r, Role::Restoring(_)))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Takes over newly assigned source partitions (see
    /// [`crate::StateStoreManager::on_assign`]).
    pub(crate) fn assign<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        partitions: &[TopicPartition],
        registry: &mut Registry,
        readers: &Readers,
    ) -> Result<()> {
        // The offsets the placement read, which the consumer starts at;
        // taken whatever follows, so no later assignment sees them.
        let placed = std::mem::take(&mut self.placed);
        let new: Vec<TopicPartition> = partitions
            .iter()
            .filter(|p| !self.assigned.contains_key(*p))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let committed = if new.iter().any(|tp| registry.has_changelog(tp.topic())) {
            placed.or_read(consumer, &new, self.kafka_timeout)?
        } else {
            BTreeMap::new()
        };
        // Every store partition opens before the first restore starts: an
        // open beside running restores competes with them for the CPU (the
        // demo: 7 ms per partition alone, 15-90 ms beside restores), and
        // restores started one open after another end one open after
        // another.
        let mut opened = Vec::new();
        let mut failure = None;
        let mut paused = Vec::new();
        for tp in new {
            match self.open_stores(&tp, &committed, registry) {
                Ok(takeover) => opened.push((tp, takeover)),
                Err(e) if crate::error::disk_full_cause(&e).is_some() => {
                    // Assigned, paused, reopened once there is space.
                    if let Some(o) = committed.get(&tp) {
                        self.resume_at.insert(tp.clone(), *o);
                    }
                    self.wait_for_disk(&tp, registry);
                    paused.push(tp.clone());
                    failure.get_or_insert(crate::disk_full::raise(e, vec![tp]));
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        for (tp, takeover) in opened {
            let role = self.start_restores(takeover, registry)?;
            tracing::info!(
                stream = tp.topic(),
                partition = tp.partition(),
                restoring = role != Role::Active,
                "partition assigned"
            );
            if role == Role::Active {
                self.activate(&tp, registry, readers);
            } else {
                if let Some(o) = committed.get(&tp) {
                    self.resume_at.insert(tp.clone(), *o);
                }
                paused.push(tp.clone());
                self.assigned.insert(tp, role);
            }
        }
        if !paused.is_empty() {
            consumer::pause(consumer, &paused)?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Opens (or takes over the standby of) every store partition of `tp`:
    /// what its restores need. On failure its store partitions are closed.
    fn open_stores(
        &mut self,
        tp: &TopicPartition,
        committed: &BTreeMap<TopicPartition, i64>,
        registry: &mut Registry,
    ) -> Result<Takeover> {
        let p = tp.store_partition();
        // The restorer judges changelog records by the source offsets they
        // carry, keyed by stream.
        let mut offsets = BTreeMap::new();
        if let Some(c) = committed.get(tp) {
            offsets.insert(tp.topic().to_owned(), *c);
        }
        let was_standby = self.standbys.promote(tp);
        let mut restores = Vec::new();
        let mut bootstraps = Vec::new();
        for id in registry.ids_of(tp.topic()) {
            if self.bootstraps.running((id, p)) {
                // Restoring from a snapshot (revoked meanwhile and back, or
                // a standby's): that restore goes on, then this partition's
                // (the partition must not open before).
                self.bootstraps.set_wanted((id, p), true);
                bootstraps.push((id, None));
                continue;
            }
            let store = registry.get_mut(id);
            let opened = match self.healer.open(store, p) {
                Ok(opened) => opened,
                Err(e) => {
                    close(tp, "active", registry)?;
                    return Err(e);
                }
            };
            let Some(topic) = store.changelog_topic() else { continue };
            if !was_standby {
                if let Some(job) = self.bootstraps.job_for(id, store, p, opened.partition.as_ref()) {
                    drop(opened);
                    if let Err(e) = store.release(p) {
                        close(tp, "active", registry)?;
                        return Err(e);
                    }
                    bootstraps.push((id, Some(job)));
                    continue;
                }
            }
            let changelog = TopicPartition::new(topic, tp.partition());
            restores.push((id, changelog, (!was_standby).then_some(opened)));
        }
        Ok(Takeover {
            offsets,
            restores,
            bootstraps,
        })
    }

    /// Starts the restores of a source partition whose stores are open
    /// (promotes its standbys); the role it starts in.
    fn start_restores(&mut self, takeover: Takeover, registry: &mut Registry) -> Result<Role> {
        let Takeover {
            offsets,
            restores,
            bootstraps,
        } = takeover;
        let mut waiting = BTreeSet::new();
        for (id, job) in bootstraps {
            if let Some(job) = job {
                let partition = job.partition;
                if !self.bootstraps.start(job) {
                    // No thread for it: the whole changelog, as without
                    // snapshots.
                    self.restore_store(id, partition, &offsets, registry)?;
                }
            }
            waiting.insert(id);
        }
        for (id, changelog, opened) in restores {
            match opened {
                None => self.restorer.get()?.promote(changelog, offsets.clone())?,
                Some(opened) => self.restorer.get()?.restore(RestoreRequest {
                    partition: opened.partition,
                    changelog,
                    committed_offsets: offsets.clone(),
                    location: opened.location,
                    replay_check: Some(opened.replay_check),
                })?,
            }
            waiting.insert(id);
        }
        Ok(if waiting.is_empty() {
            Role::Active
        } else {
            Role::Restoring(waiting)
        })
    }

    /// Opens partition `partition` of store `id` and restores it from its
    /// changelog, from the offset it stores on, judged by `offsets`.
    fn restore_store(
        &mut self,
        id: usize,
        partition: u32,
        offsets: &BTreeMap<String, i64>,
        registry: &mut Registry,
    ) -> Result<()> {
        let store = registry.get_mut(id);
        let opened = self.healer.open(store, partition)?;
        let Some(topic) = store.changelog_topic() else {
            return Ok(());
        };
        self.restorer.get()?.restore(RestoreRequest {
            partition: opened.partition,
            changelog: TopicPartition::new(topic, partition as i32),
            committed_offsets: offsets.clone(),
            location: opened.location,
            replay_check: Some(opened.replay_check),
        })?;
        Ok(())
    }

    /// Hands the partitions whose snapshot restore finished (with or
    /// without a snapshot) to the restorer, which replays their changelogs
    /// from the offset they now store on. Those revoked meanwhile keep
    /// what was restored as local state.
    fn finish_bootstraps(&mut self, registry: &mut Registry) -> Result<()> {
        let mut first_error = None;
        for ((id, p), report) in self.bootstraps.finished() {
            let tp = TopicPartition::of_store(registry.get(id).stream(), p);
            let active = matches!(self.assigned.get(&tp), Some(Role::Restoring(w)) if w.contains(&id));
            let standby = !active && self.standbys.contains(&tp);
            if !active && !standby {
                continue;
            }
            let from_snapshot = matches!(report.outcome, Bootstrapped::Snapshot { .. });
            if let Bootstrapped::Snapshot { id: snapshot, offset } = report.outcome {
                let store = registry.get(id);
                self.events.emit(ManagerEvent::RestoredFromSnapshot {
                    store: store.name().to_owned(),
                    stream: store.stream().to_owned(),
                    partition: p,
                    snapshot,
                    changelog_offset: offset,
                    bytes: report.bytes,
                    took: report.took,
                });
            }
            if active {
                let mut offsets = BTreeMap::new();
                if let Some(c) = self.resume_at.get(&tp) {
                    offsets.insert(tp.topic().to_owned(), *c);
                }
                match self.restore_store(id, p, &offsets, registry) {
                    Ok(()) => {
                        if let (true, Some(topic)) = (from_snapshot, registry.get(id).changelog_topic()) {
                            self.tail_replays.insert(TopicPartition::new(topic, p as i32));
                        }
                    }
                    Err(e) => {
                        tracing::error!(stream = tp.topic(), partition = p, error = %e, "restoring after a snapshot failed");
                        first_error.get_or_insert(e);
                    }
                }
            } else if let Err(e) = self.standbys.tail(&tp, id, registry, &mut self.restorer, &self.healer) {
                // A standby is an optimisation: drop it, as any failed one.
                tracing::warn!(stream = tp.topic(), partition = p, error = %e, "standby replica failed after its snapshot; dropping it");
                if let Err(e) = self.standbys.stop(&tp, registry, &self.restorer) {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Makes `tp` ready: processing may use its stores and readers may read
    /// them.
    fn activate(&mut self, tp: &TopicPartition, registry: &Registry, readers: &Readers) {
        self.assigned.insert(tp.clone(), Role::Active);
        let p = tp.store_partition();
        readers.open(registry.ids_of(tp.topic()).into_iter().filter_map(|id| {
            let s = registry.get(id);
            Some((id, p, s.partition(p)?, s.format_of(p)?.clone()))
        }));
    }

    /// Lets go of revoked source partition `tp` (see
    /// [`crate::StateStoreManager::on_revoke`]); the caller has dropped the
    /// current checkpoint's changes to it. A restore in progress is
    /// cancelled; the store partitions are closed or kept as a standby.
    pub(crate) fn revoke(&mut self, tp: &TopicPartition, registry: &mut Registry, readers: &Readers) -> Result<()> {
        self.resume_at.remove(tp);
        self.rebuilt.retain(|(t, _)| t != tp);
        self.reloads.forget(tp);
        let Some(role) = self.assigned.remove(tp) else {
            return Ok(());
        };
        let ids = registry.ids_of(tp.topic());
        // Readers stop first, then the partitions stop being active.
        readers.close(&ids, tp.store_partition());
        for id in &ids {
            registry.get_mut(*id).deactivate(tp.store_partition());
        }
        let mut bootstrapping = false;
        for id in &ids {
            if self.bootstraps.running((*id, tp.store_partition())) {
                self.bootstraps.set_wanted((*id, tp.store_partition()), false);
                bootstrapping = true;
            }
        }
        for changelog in registry.changelogs_of(tp) {
            self.tail_replays.remove(&changelog);
        }
        if let (Role::Restoring(_), Some(r)) = (role, self.restorer.running()) {
            let changelogs = registry.changelogs_of(tp);
            for (cl, res) in r.release(changelogs)? {
                if let Err(e) = res {
                    tracing::warn!(topic = cl.topic(), partition = cl.partition(), error = %e, "writing the last restore batch of a revoked partition failed");
                }
            }
        }
        if self.standbys.keeps(tp, registry) && !bootstrapping {
            self.start_standby(tp, registry)?;
        } else {
            close(tp, "active", registry)?;
        }
        tracing::info!(stream = tp.topic(), partition = tp.partition(), "partition revoked");
        Ok(())
    }

    /// Starts a standby of `tp` unless it is assigned here.
    fn start_standby(&mut self, tp: &TopicPartition, registry: &mut Registry) -> Result<()> {
        if self.assigned.contains_key(tp) {
            return Ok(());
        }
        // A snapshot restore given up by a revocation still writes the
        // partition's directory: no standby opens it before it ends (the
        // standbys are tended again later).
        let p = tp.store_partition();
        if registry
            .ids_of(tp.topic())
            .into_iter()
            .any(|id| self.bootstraps.running((id, p)))
        {
            return Ok(());
        }
        self.standbys
            .start(tp, registry, &mut self.restorer, &self.healer, &mut self.bootstraps)
    }

    /// Handles what the restorer reported: progress to the listener,
    /// finished restores (resuming their partitions on `consumer` once all
    /// their stores are done), failures (returned as the error).
    pub(crate) fn drain_restore_events<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        registry: &mut Registry,
        readers: &Readers,
    ) -> Result<()> {
        let bootstrapped = self.finish_bootstraps(registry);
        let Some(r) = self.restorer.running() else {
            return bootstrapped;
        };
        let events = r.events();
        let mut first_error = bootstrapped.err();
        let mut ready = Vec::new();
        for event in events {
            match event {
                RestoreEvent::Progress(p) => {
                    if p.finished {
                        self.tail_replays.remove(&p.changelog);
                    } else if p.done > 0 && self.tail_replays.contains(&p.changelog) {
                        state_snapshot::crash_point::reached(state_snapshot::crash_point::TAIL_REPLAY);
                    }
                    crate::metrics::restore(p.changelog.topic(), p.changelog.partition(), p.done, p.total, p.rate);
                    if let Some(f) = &mut self.progress {
                        f(&p);
                    }
                }
                RestoreEvent::Restored {
                    changelog,
                    committed_offsets,
                    ..
                } => {
                    self.tail_replays.remove(&changelog);
                    let Some(id) = registry.id_of_changelog(changelog.topic()) else {
                        continue;
                    };
                    let tp = TopicPartition::new(registry.get(id).stream(), changelog.partition());
                    // Resume where this restore judged records by (a
                    // promoted standby may have judged by newer offsets
                    // than those read on assignment).
                    if let Some(o) = committed_offsets.get(tp.topic()) {
                        if self.assigned.contains_key(&tp) {
                            let e = self.resume_at.entry(tp.clone()).or_insert(*o);
                            *e = (*e).max(*o);
                        }
                    }
                    if self.reloads.contains(&tp) {
                        // Closed for a reload since (another store of it
                        // found the disk full): restored again later.
                        continue;
                    }
                    if let Some(Role::Restoring(waiting)) = self.assigned.get_mut(&tp) {
                        waiting.remove(&id);
                        if waiting.is_empty() {
                            self.activate(&tp, registry, readers);
                            tracing::info!(
                                stream = tp.topic(),
                                partition = tp.partition(),
                                "partition restored; resuming it"
                            );
                            ready.push(tp);
                        }
                    }
                }
                RestoreEvent::Failed {
                    changelog,
                    standby,
                    error,
                } => {
                    self.tail_replays.remove(&changelog);
                    let Some(id) = registry.id_of_changelog(changelog.topic()) else {
                        continue;
                    };
                    let tp = TopicPartition::new(registry.get(id).stream(), changelog.partition());
                    if standby {
                        // A standby is an optimisation: drop it, the next
                        // owner restores from the changelog as without one.
                        tracing::warn!(stream = tp.topic(), partition = tp.partition(), error = %error, "standby replica failed; dropping it");
                        self.standbys.stop(&tp, registry, &self.restorer)?;
                    } else if crate::error::disk_full_cause(&error).is_some() && self.assigned.contains_key(&tp) {
                        // Reopened and restored again once there is space
                        // (the partition stays paused and restoring).
                        if let Err(e) = self.stop_for_reload(&tp, registry, readers) {
                            tracing::error!(stream = tp.topic(), partition = tp.partition(), error = %e, "closing a partition whose restore found the disk full failed");
                        }
                        first_error.get_or_insert(crate::disk_full::raise(ManagerError::Changelog(error), vec![tp]));
                    } else if let Some(damage) = self.rebuildable(&tp, id, &error) {
                        // Only this partition waits (it stays paused and
                        // restoring); the others go on.
                        if let Err(e) = self.rebuild(&tp, id, damage, &error, registry) {
                            tracing::error!(stream = tp.topic(), partition = tp.partition(), error = %e, "rebuilding a damaged partition failed");
                            first_error.get_or_insert(e);
                        }
                    } else if first_error.is_none() {
                        first_error = Some(ManagerError::Changelog(error));
                    }
                }
            }
        }
        if !ready.is_empty() {
            let at = ready
                .iter()
                .filter_map(|tp| Some((tp.clone(), self.resume_at.remove(tp)?)))
                .collect();
            consumer::resume(consumer, &ready, &at, self.kafka_timeout)?;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Gives every partition of `assignment` without an offset an absolute
    /// one (see `start_offsets`), and keeps the committed offsets it read
    /// for the [`assign`](Self::assign) that follows. Call from the
    /// rebalance callback, before the assignment is applied.
    pub(crate) fn place<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        assignment: &mut TopicPartitionList,
    ) {
        self.placed = super::start_offsets::place(consumer, assignment, self.kafka_timeout);
    }

    /// Keeps every partition assigned to `consumer` except `except` (those
    /// the rebalance adds or takes away) at the application's position (see
    /// `consumer::hold_positions`). Call from a rebalance callback.
    pub(crate) fn hold_positions<C: ConsumerContext, K: Consumer<C>>(&self, consumer: &K, except: &[TopicPartition]) {
        consumer::hold_positions(consumer, except, self.kafka_timeout);
    }

    /// Reloads assigned source partitions whose checkpoint was committed
    /// to Kafka but not written locally because the disk was full (each
    /// with the offset committed for it, `None`: ask the group): pauses
    /// them, closes their store partitions without flushing and tries to
    /// reopen them and restore them from their changelogs at once (see
    /// `reloads`); [`retry_reloads`](Self::retry_reloads) tries again
    /// while the disk stays full.
    pub(crate) fn reload<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        partitions: Vec<(TopicPartition, Option<i64>)>,
        registry: &mut Registry,
        readers: &Readers,
    ) -> Result<()> {
        let partitions: Vec<(TopicPartition, Option<i64>)> = partitions
            .into_iter()
            .filter(|(tp, _)| self.assigned.contains_key(tp))
            .collect();
        if partitions.is_empty() {
            return Ok(());
        }
        let unknown: Vec<TopicPartition> = partitions
            .iter()
            .filter(|(_, at)| at.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        let committed = if unknown.is_empty() {
            BTreeMap::new()
        } else {
            consumer::committed_offsets(consumer, &unknown, self.kafka_timeout)?
        };
        // Every partition is stopped even if another fails to: none may
        // go on processing on state that lacks a committed checkpoint.
        let mut first_error = None;
        for (tp, at) in partitions {
            if let Some(o) = at.or_else(|| committed.get(&tp).copied()) {
                self.resume_at.insert(tp.clone(), o);
            }
            // Pausing also drops the records fetched past the checkpoint.
            let stopped =
                consumer::pause(consumer, std::slice::from_ref(&tp)).and(self.stop_for_reload(&tp, registry, readers));
            if let Err(e) = stopped {
                first_error.get_or_insert(e);
            }
            tracing::warn!(
                stream = tp.topic(),
                partition = tp.partition(),
                resume_at = self.resume_at.get(&tp),
                "disk full: the partition's committed checkpoint is not in its local state; paused until its \
                 state is reloaded from the changelog"
            );
        }
        let retried = self.retry_reloads(consumer, registry, readers, true);
        match first_error {
            Some(e) => Err(e),
            None => retried,
        }
    }

    /// Makes assigned `tp` wait for a reload (nothing is processed for it
    /// from now on), then closes its store partitions without flushing,
    /// letting go of restores in progress; the caller pauses it.
    fn stop_for_reload(&mut self, tp: &TopicPartition, registry: &mut Registry, readers: &Readers) -> Result<()> {
        let p = tp.store_partition();
        let ids = registry.ids_of(tp.topic());
        readers.close(&ids, p);
        let was_restoring = matches!(self.assigned.get(tp), Some(Role::Restoring(_)));
        self.wait_for_disk(tp, registry);
        if let (true, Some(r)) = (was_restoring, self.restorer.running()) {
            for (cl, res) in r.release(registry.changelogs_of(tp))? {
                if let Err(e) = res {
                    tracing::debug!(topic = cl.topic(), partition = cl.partition(), error = %e, "a restore let go for a reload failed");
                }
            }
        }
        for id in &ids {
            registry.get_mut(*id).close_unflushed(p)?;
        }
        Ok(())
    }

    /// Marks `tp`, whose store partitions are closed, as restoring and
    /// waiting to be reopened.
    fn wait_for_disk(&mut self, tp: &TopicPartition, registry: &Registry) {
        let restoring = registry
            .ids_of(tp.topic())
            .into_iter()
            .filter(|id| registry.get(*id).changelog_topic().is_some())
            .collect();
        self.assigned.insert(tp.clone(), Role::Restoring(restoring));
        self.reloads.wait(tp.clone());
    }

    /// Tries to reopen the partitions waiting for a reload (at most once a
    /// second unless `now`) and to restore them from their changelogs;
    /// those the full disk still refuses wait on, and the error says so.
    pub(crate) fn retry_reloads<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        registry: &mut Registry,
        readers: &Readers,
        now: bool,
    ) -> Result<()> {
        let due = self.reloads.due(now);
        if due.is_empty() {
            return Ok(());
        }
        // Every due partition is tried: an error is kept for the end.
        let mut first_error = None;
        for tp in due {
            match self.reopen(&tp, registry) {
                Ok(()) => {
                    tracing::info!(
                        stream = tp.topic(),
                        partition = tp.partition(),
                        "reopened after a full disk; reloading its state from the changelog"
                    );
                    if self.assigned.get(&tp) == Some(&Role::Restoring(BTreeSet::new())) {
                        // No store with a changelog: nothing to reload.
                        self.activate(&tp, registry, readers);
                        let at = self
                            .resume_at
                            .remove(&tp)
                            .map(|o| (tp.clone(), o))
                            .into_iter()
                            .collect();
                        if let Err(e) = consumer::resume(consumer, std::slice::from_ref(&tp), &at, self.kafka_timeout) {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                Err(e) => {
                    self.reloads.wait(tp.clone());
                    for id in registry.ids_of(tp.topic()) {
                        if let Err(close) = registry.get_mut(id).close_unflushed(tp.store_partition()) {
                            tracing::warn!(stream = tp.topic(), partition = tp.partition(), error = %close, "closing a partition that could not reopen failed");
                        }
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        crate::metrics::waiting_for_disk(self.reloads.len());
        match first_error {
            Some(e) => Err(crate::disk_full::raise(e, self.reloads.partitions())),
            None => Ok(()),
        }
    }

    /// Opens every store partition of `tp` and starts restoring those with
    /// a changelog, judged by the offset committed for `tp`. Nothing is
    /// restored unless every store opened.
    fn reopen(&mut self, tp: &TopicPartition, registry: &mut Registry) -> Result<()> {
        let p = tp.store_partition();
        let mut opened = Vec::new();
        for id in registry.ids_of(tp.topic()) {
            opened.push((id, self.healer.open(registry.get_mut(id), p)?));
        }
        let mut offsets = BTreeMap::new();
        if let Some(c) = self.resume_at.get(tp) {
            offsets.insert(tp.topic().to_owned(), *c);
        }
        for (id, opened) in opened {
            let Some(topic) = registry.get(id).changelog_topic() else {
                continue;
            };
            self.restorer.get()?.restore(RestoreRequest {
                partition: opened.partition,
                changelog: TopicPartition::new(topic, tp.partition()),
                committed_offsets: offsets.clone(),
                location: opened.location,
                replay_check: Some(opened.replay_check),
            })?;
        }
        Ok(())
    }

    /// The damage `error` (a failed restore of store `id` of `tp`) reports,
    /// if the policy rebuilds it: `tp` is still restoring here and this
    /// store partition was not rebuilt since it was assigned.
    fn rebuildable(&self, tp: &TopicPartition, id: usize, error: &ChangelogError) -> Option<Damage> {
        let restoring = matches!(self.assigned.get(tp), Some(Role::Restoring(w)) if w.contains(&id));
        if !self.healer.rebuilds() || !restoring || self.rebuilt.contains(&(tp.clone(), id)) {
            return None;
        }
        healing::of_restore(error)
    }

    /// Rebuilds store `id`'s partition of `tp`, whose restore failed with
    /// `cause`: moves it aside, reopens it empty and restores it again
    /// from the changelog's start, judged by the same committed offset.
    fn rebuild(
        &mut self,
        tp: &TopicPartition,
        id: usize,
        damage: Damage,
        cause: &ChangelogError,
        registry: &mut Registry,
    ) -> Result<()> {
        let p = tp.store_partition();
        self.rebuilt.insert((tp.clone(), id));
        let store = registry.get_mut(id);
        self.healer.close_and_move_aside(store, p, damage, cause)?;
        let opened = store.open_checked(p)?;
        let Some(topic) = store.changelog_topic() else {
            return Ok(());
        };
        if let Some(job) = self.bootstraps.job_for(id, store, p, opened.partition.as_ref()) {
            drop(opened);
            store.release(p)?;
            if self.bootstraps.start(job) {
                return Ok(());
            }
            let mut offsets = BTreeMap::new();
            if let Some(c) = self.resume_at.get(tp) {
                offsets.insert(tp.topic().to_owned(), *c);
            }
            return self.restore_store(id, p, &offsets, registry);
        }
        let changelog = TopicPartition::new(topic, tp.partition());
        let mut offsets = BTreeMap::new();
        if let Some(c) = self.resume_at.get(tp) {
            offsets.insert(tp.topic().to_owned(), *c);
        }
        self.restorer.get()?.restore(RestoreRequest {
            partition: opened.partition,
            changelog,
            committed_offsets: offsets,
            location: opened.location,
            replay_check: Some(opened.replay_check),
        })?;
        Ok(())
    }

    /// True if damaged partitions are rebuilt ([`crate::CorruptionPolicy::Rebuild`]).
    pub(crate) fn rebuilds(&self) -> bool {
        self.healer.rebuilds()
    }

    /// Rebuilds store `id`'s partition of active source partition `tp`,
    /// found damaged while processing (`found`): pauses `tp`, moves the
    /// store partition aside, reopens it empty and restores it from the
    /// changelog; `tp` resumes at the group's committed offset (or, with
    /// none, at the partition's first record) when the restore ends. The
    /// caller has dropped the checkpoint in progress. The other partitions
    /// go on. A store without a changelog is
    /// [`ManagerError::CannotRebuild`]; a second damage of the same store
    /// partition since its assignment is returned as it is (a disk that
    /// keeps corrupting what is written fails instead of looping).
    pub(crate) fn rebuild_active<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        tp: &TopicPartition,
        id: usize,
        found: healing::Found,
        registry: &mut Registry,
        readers: &Readers,
    ) -> Result<()> {
        if self.assigned.get(tp) != Some(&Role::Active) {
            // Revoked (its next owner opens it and finds the damage) or
            // restoring already.
            return Ok(());
        }
        let p = tp.store_partition();
        let store = registry.get(id);
        let Some(topic) = store.changelog_topic().map(str::to_owned) else {
            return Err(healing::cannot_rebuild(store, p, found.error));
        };
        if self.rebuilt.contains(&(tp.clone(), id)) {
            return Err(ManagerError::State(found.error));
        }
        let mut committed = consumer::committed_offsets(consumer, std::slice::from_ref(tp), self.kafka_timeout)?;
        let resume_at = match committed.remove(tp) {
            Some(o) => o,
            // Nothing committed yet: from the first record (state
            // applications read from the earliest offset).
            None => consumer
                .fetch_watermarks(tp.topic(), tp.partition(), self.kafka_timeout)
                .map(|(low, _)| low)
                .map_err(|source| ManagerError::Kafka {
                    operation: "reading the first offset of a partition being rebuilt",
                    source,
                })?,
        };
        consumer::pause(consumer, std::slice::from_ref(tp))?;
        let ids = registry.ids_of(tp.topic());
        readers.close(&ids, p);
        for other in &ids {
            registry.get_mut(*other).deactivate(p);
        }
        self.rebuilt.insert((tp.clone(), id));
        let store = registry.get_mut(id);
        self.healer.close_and_move_aside(store, p, found.damage, &found.error)?;
        let opened = store.open_checked(p)?;
        let changelog = TopicPartition::new(topic, tp.partition());
        self.restorer.get()?.restore(RestoreRequest {
            partition: opened.partition,
            changelog,
            committed_offsets: BTreeMap::from([(tp.topic().to_owned(), resume_at)]),
            location: opened.location,
            replay_check: Some(opened.replay_check),
        })?;
        self.resume_at.insert(tp.clone(), resume_at);
        self.assigned.insert(tp.clone(), Role::Restoring(BTreeSet::from([id])));
        Ok(())
    }

    /// Brings the standby replicas in line with the
    /// [`crate::StandbyPolicy`]: starts missing ones (explicit set, or
    /// every partition), stops expired ones (recently revoked).
    pub(crate) fn tend_standbys<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        registry: &mut Registry,
    ) -> Result<()> {
        for tp in self.standbys.tend(consumer, registry, &self.restorer)? {
            if !self.assigned.contains_key(&tp) && !self.standbys.contains(&tp) {
                self.start_standby(&tp, registry)?;
            }
        }
        Ok(())
    }

    /// Exports partition counts, standby lag and every open partition's
    /// backend figures.
    pub(crate) fn export_metrics(&self, registry: &Registry) {
        let restoring = self
            .assigned
            .values()
            .filter(|r| matches!(r, Role::Restoring(_)))
            .count();
        crate::metrics::partitions("active", self.assigned.len() - restoring);
        crate::metrics::partitions("restoring", restoring);
        crate::metrics::partitions("standby", self.standbys.len());
        crate::metrics::waiting_for_disk(self.reloads.len());
        if let Some(r) = self.restorer.running() {
            for s in r.standby_status() {
                crate::metrics::standby_lag(s.changelog.topic(), s.changelog.partition(), s.lag);
            }
        }
        let active = self
            .assigned
            .iter()
            .filter(|(_, role)| **role == Role::Active)
            .map(|(tp, _)| (tp, "active"));
        let standby = self.standbys.partitions().map(|tp| (tp, "standby"));
        for (tp, role) in active.chain(standby) {
            let p = tp.store_partition();
            for id in registry.ids_of(tp.topic()) {
                let s = registry.get(id);
                if let Some(partition) = s.partition(p) {
                    crate::metrics::partition(s.name(), s.stream(), p, role, Some(&partition.stats()));
                }
            }
        }
    }

    /// The standby replicas kept here, per store partition.
    pub(crate) fn standby_report(&self, registry: &Registry) -> Vec<StandbyReport> {
        self.standbys.report(registry, &self.restorer)
    }
}

/// Closes every store partition of `tp`, which had `role` (`active` or
/// `standby`: whose exported figures go to zero).
fn close(tp: &TopicPartition, role: &'static str, registry: &mut Registry) -> Result<()> {
    for id in registry.ids_of(tp.topic()) {
        registry.get_mut(id).close(tp.store_partition(), role)?;
    }
    Ok(())
}
