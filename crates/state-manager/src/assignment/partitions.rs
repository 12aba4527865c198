//! [`Assignments`]: where every assigned source partition stands, taking
//! partitions over (opening or promoting their stores, handing them to the
//! restorer), resuming them once restored, and letting them go.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerContext};
use state_changelog::{ChangelogError, RecoveryProgress, RestoreEvent, RestoreRequest};
use state_core::TopicPartition;

use super::consumer;
use super::restorer::LazyRestorer;
use super::standby::{StandbyReport, Standbys};
use crate::config::ManagerConfig;
use crate::error::{ManagerError, Result};
use crate::healing::{self, Damage, Healer};
use crate::reader::Readers;
use crate::registry::OpenedPartition;
use crate::registry::Registry;

/// Receives recovery progress.
type ProgressListener = Box<dyn FnMut(&RecoveryProgress) + Send>;

/// Where an assigned source partition stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Role {
    /// Its stores are restoring; the ids of those not done yet. Its source
    /// partition is paused.
    Restoring(BTreeSet<usize>),
    /// Ready: processing may use its stores.
    Active,
}

/// What taking over a source partition restores: each store with a
/// changelog, its changelog partition and the store partition opened for
/// it (`None`: a standby's, promoted in place).
struct Takeover {
    offsets: BTreeMap<String, i64>,
    restores: Vec<(usize, TopicPartition, Option<OpenedPartition>)>,
}

/// The source partitions assigned here and the standby replicas kept
/// here, with the restorer thread that restores both.
pub(crate) struct Assignments {
    assigned: BTreeMap<TopicPartition, Role>,
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
}

impl Assignments {
    /// Nothing assigned yet; restores read with `kafka`'s settings.
    pub(crate) fn new(config: &ManagerConfig, kafka: &ClientConfig) -> Self {
        Assignments {
            assigned: BTreeMap::new(),
            resume_at: BTreeMap::new(),
            restorer: LazyRestorer::new(kafka.clone(), config.group_id.clone(), config.recovery.clone()),
            standbys: Standbys::new(config.standby.clone(), config.kafka_timeout),
            progress: None,
            kafka_timeout: config.kafka_timeout,
            healer: Healer::new(config),
            rebuilt: BTreeSet::new(),
        }
    }

    /// Receives recovery progress.
    pub(crate) fn set_progress_listener(&mut self, f: impl FnMut(&RecoveryProgress) + Send + 'static) {
        self.progress = Some(Box::new(f));
    }

    /// True if `tp` is assigned here (restoring or ready).
    pub(crate) fn is_assigned(&self, tp: &TopicPartition) -> bool {
        self.assigned.contains_key(tp)
    }

    /// True if `tp` is assigned here and its stores are restored.
    pub(crate) fn is_ready(&self, tp: &TopicPartition) -> bool {
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
        let new: Vec<TopicPartition> = partitions
            .iter()
            .filter(|p| !self.assigned.contains_key(*p))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let committed = if new.iter().any(|tp| registry.has_changelog(tp.topic())) {
            consumer::committed_offsets(consumer, &new, self.kafka_timeout)?
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
        for tp in new {
            match self.open_stores(&tp, &committed, registry) {
                Ok(takeover) => opened.push((tp, takeover)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let mut paused = Vec::new();
        for (tp, takeover) in opened {
            let role = self.start_restores(takeover)?;
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
        for id in registry.ids_of(tp.topic()) {
            let store = registry.get_mut(id);
            let opened = match self.healer.open(store, p) {
                Ok(opened) => opened,
                Err(e) => {
                    close(tp, "active", registry)?;
                    return Err(e);
                }
            };
            let Some(topic) = store.changelog_topic() else { continue };
            let changelog = TopicPartition::new(topic, tp.partition());
            restores.push((id, changelog, (!was_standby).then_some(opened)));
        }
        Ok(Takeover { offsets, restores })
    }

    /// Starts the restores of a source partition whose stores are open
    /// (promotes its standbys); the role it starts in.
    fn start_restores(&mut self, takeover: Takeover) -> Result<Role> {
        let Takeover { offsets, restores } = takeover;
        let mut waiting = BTreeSet::new();
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
        let Some(role) = self.assigned.remove(tp) else {
            return Ok(());
        };
        let ids = registry.ids_of(tp.topic());
        // Readers stop first, then the partitions stop being active.
        readers.close(&ids, tp.store_partition());
        for id in &ids {
            registry.get_mut(*id).deactivate(tp.store_partition());
        }
        if let (Role::Restoring(_), Some(r)) = (role, self.restorer.running()) {
            let changelogs = registry.changelogs_of(tp);
            for (cl, res) in r.release(changelogs)? {
                if let Err(e) = res {
                    tracing::warn!(topic = cl.topic(), partition = cl.partition(), error = %e, "writing the last restore batch of a revoked partition failed");
                }
            }
        }
        if self.standbys.keeps(tp, registry) {
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
        self.standbys.start(tp, registry, &mut self.restorer, &self.healer)
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
        let Some(r) = self.restorer.running() else {
            return Ok(());
        };
        let events = r.events();
        let mut ready = Vec::new();
        let mut first_error = None;
        for event in events {
            match event {
                RestoreEvent::Progress(p) => {
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
                    let Some(id) = registry.id_of_changelog(changelog.topic()) else {
                        continue;
                    };
                    let tp = TopicPartition::new(registry.get(id).stream(), changelog.partition());
                    if standby {
                        // A standby is an optimisation: drop it, the next
                        // owner restores from the changelog as without one.
                        tracing::warn!(stream = tp.topic(), partition = tp.partition(), error = %error, "standby replica failed; dropping it");
                        self.standbys.stop(&tp, registry, &self.restorer)?;
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

    /// Keeps every partition assigned to `consumer` except `except` (those
    /// the rebalance adds or takes away) at the application's position (see
    /// `consumer::hold_positions`). Call from a rebalance callback.
    pub(crate) fn hold_positions<C: ConsumerContext, K: Consumer<C>>(&self, consumer: &K, except: &[TopicPartition]) {
        consumer::hold_positions(consumer, except, self.kafka_timeout);
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
