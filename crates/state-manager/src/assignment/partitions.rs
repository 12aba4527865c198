//! [`Assignments`]: where every assigned source partition stands, taking
//! partitions over (opening or promoting their stores, handing them to the
//! restorer), resuming them once restored, and letting them go.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerContext};
use state_changelog::{RecoveryProgress, RestoreEvent, RestoreRequest};

use super::consumer;
use super::restorer::LazyRestorer;
use super::standby::{StandbyReport, Standbys};
use super::SourcePartition;
use crate::config::ManagerConfig;
use crate::error::{ManagerError, Result};
use crate::reader::Readers;
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

/// The source partitions assigned here and the standby replicas kept
/// here, with the restorer thread that restores both.
pub(crate) struct Assignments {
    assigned: BTreeMap<SourcePartition, Role>,
    /// The committed offset each restoring partition's stores were restored
    /// against: the partition resumes there, so what it processes next and
    /// what its state holds agree even if the group's offset moved in
    /// between (a previous owner's late commit).
    resume_at: BTreeMap<SourcePartition, i64>,
    restorer: LazyRestorer,
    standbys: Standbys,
    progress: Option<ProgressListener>,
    kafka_timeout: Duration,
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
        }
    }

    /// Receives recovery progress.
    pub(crate) fn set_progress_listener(&mut self, f: impl FnMut(&RecoveryProgress) + Send + 'static) {
        self.progress = Some(Box::new(f));
    }

    /// True if `sp` is assigned here (restoring or ready).
    pub(crate) fn is_assigned(&self, sp: &SourcePartition) -> bool {
        self.assigned.contains_key(sp)
    }

    /// True if `sp` is assigned here and its stores are restored.
    pub(crate) fn is_ready(&self, sp: &SourcePartition) -> bool {
        self.assigned.get(sp) == Some(&Role::Active)
    }

    /// How many source partitions are assigned here.
    pub(crate) fn len(&self) -> usize {
        self.assigned.len()
    }

    /// Ok if records of `sp` may be processed; [`ManagerError::NotAssigned`]
    /// or [`ManagerError::Restoring`] if not.
    pub(crate) fn check_ready(&self, sp: &SourcePartition) -> Result<()> {
        match self.assigned.get(sp) {
            Some(Role::Active) => Ok(()),
            Some(Role::Restoring(_)) => Err(ManagerError::Restoring {
                stream: sp.0.clone(),
                partition: sp.1,
            }),
            None => Err(ManagerError::NotAssigned {
                stream: sp.0.clone(),
                partition: sp.1,
            }),
        }
    }

    /// Source partitions assigned here whose stores are still restoring.
    pub(crate) fn restoring(&self) -> Vec<SourcePartition> {
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
        partitions: &[SourcePartition],
        registry: &mut Registry,
        readers: &Readers,
    ) -> Result<()> {
        let new: Vec<SourcePartition> = partitions
            .iter()
            .filter(|p| !self.assigned.contains_key(*p))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let committed = if new.iter().any(|(stream, _)| registry.has_changelog(stream)) {
            consumer::committed_offsets(consumer, &new, self.kafka_timeout)?
        } else {
            BTreeMap::new()
        };
        let mut paused = Vec::new();
        for sp in new {
            let role = self.take_over(&sp, &committed, registry)?;
            tracing::info!(
                stream = sp.0,
                partition = sp.1,
                restoring = role != Role::Active,
                "partition assigned"
            );
            if role == Role::Active {
                self.activate(&sp, registry, readers);
            } else {
                if let Some(o) = committed.get(&sp) {
                    self.resume_at.insert(sp.clone(), *o);
                }
                paused.push(sp.clone());
                self.assigned.insert(sp, role);
            }
        }
        if !paused.is_empty() {
            consumer::pause(consumer, &paused)?;
        }
        Ok(())
    }

    /// Opens (or promotes the standby of) every store partition of `sp`
    /// and starts its restore; the role it starts in.
    fn take_over(
        &mut self,
        sp: &SourcePartition,
        committed: &BTreeMap<SourcePartition, i64>,
        registry: &mut Registry,
    ) -> Result<Role> {
        let (stream, p) = sp;
        let mut offsets = BTreeMap::new();
        if let Some(c) = committed.get(sp) {
            offsets.insert(stream.clone(), *c);
        }
        let was_standby = self.standbys.promote(sp);
        let mut waiting = BTreeSet::new();
        for id in registry.ids_of(stream) {
            let store = registry.get_mut(id);
            let opened = match store.open_checked(*p) {
                Ok(opened) => opened,
                Err(e) => {
                    close(sp, "active", registry)?;
                    return Err(e);
                }
            };
            let Some(topic) = store.changelog_topic() else { continue };
            let changelog = (topic.to_owned(), *p as i32);
            if was_standby {
                self.restorer.get()?.promote(changelog, offsets.clone())?;
            } else {
                self.restorer.get()?.restore(RestoreRequest {
                    partition: opened.partition,
                    changelog,
                    committed_offsets: offsets.clone(),
                    location: opened.location,
                    replay_check: Some(opened.replay_check),
                })?;
            }
            waiting.insert(id);
        }
        Ok(if waiting.is_empty() {
            Role::Active
        } else {
            Role::Restoring(waiting)
        })
    }

    /// Makes `sp` ready: processing may use its stores and readers may read
    /// them.
    fn activate(&mut self, sp: &SourcePartition, registry: &Registry, readers: &Readers) {
        self.assigned.insert(sp.clone(), Role::Active);
        readers.open(registry.ids_of(&sp.0).into_iter().filter_map(|id| {
            let s = registry.get(id);
            Some((id, sp.1, s.partition(sp.1)?, s.format_of(sp.1)?.clone()))
        }));
    }

    /// Lets go of revoked source partition `sp` (see
    /// [`crate::StateStoreManager::on_revoke`]); the caller has dropped the
    /// current checkpoint's changes to it. A restore in progress is
    /// cancelled; the store partitions are closed or kept as a standby.
    pub(crate) fn revoke(&mut self, sp: &SourcePartition, registry: &mut Registry, readers: &Readers) -> Result<()> {
        self.resume_at.remove(sp);
        let Some(role) = self.assigned.remove(sp) else {
            return Ok(());
        };
        let ids = registry.ids_of(&sp.0);
        // Readers stop first, then the partitions stop being active.
        readers.close(&ids, sp.1);
        for id in &ids {
            registry.get_mut(*id).deactivate(sp.1);
        }
        if let (Role::Restoring(_), Some(r)) = (role, self.restorer.running()) {
            let changelogs = registry
                .changelogs_of(&sp.0)
                .into_iter()
                .map(|t| (t, sp.1 as i32))
                .collect();
            for (cl, res) in r.release(changelogs)? {
                if let Err(e) = res {
                    tracing::warn!(topic = cl.0, partition = cl.1, error = %e, "writing the last restore batch of a revoked partition failed");
                }
            }
        }
        if self.standbys.keeps(sp, registry) {
            self.start_standby(sp, registry)?;
        } else {
            close(sp, "active", registry)?;
        }
        tracing::info!(stream = sp.0, partition = sp.1, "partition revoked");
        Ok(())
    }

    /// Starts a standby of `sp` unless it is assigned here.
    fn start_standby(&mut self, sp: &SourcePartition, registry: &mut Registry) -> Result<()> {
        if self.assigned.contains_key(sp) {
            return Ok(());
        }
        self.standbys.start(sp, registry, &mut self.restorer)
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
                    crate::metrics::restore(&p.topic, p.partition, p.done, p.total, p.rate);
                    if let Some(f) = &mut self.progress {
                        f(&p);
                    }
                }
                RestoreEvent::Restored {
                    changelog,
                    committed_offsets,
                    ..
                } => {
                    let Some(id) = registry.id_of_changelog(&changelog.0) else {
                        continue;
                    };
                    let sp = (registry.get(id).stream().to_owned(), changelog.1 as u32);
                    // Resume where this restore judged records by (a
                    // promoted standby may have judged by newer offsets
                    // than those read on assignment).
                    if let Some(o) = committed_offsets.get(&sp.0) {
                        if self.assigned.contains_key(&sp) {
                            let e = self.resume_at.entry(sp.clone()).or_insert(*o);
                            *e = (*e).max(*o);
                        }
                    }
                    if let Some(Role::Restoring(waiting)) = self.assigned.get_mut(&sp) {
                        waiting.remove(&id);
                        if waiting.is_empty() {
                            self.activate(&sp, registry, readers);
                            tracing::info!(stream = sp.0, partition = sp.1, "partition restored; resuming it");
                            ready.push(sp);
                        }
                    }
                }
                RestoreEvent::Failed {
                    changelog,
                    standby,
                    error,
                } => {
                    let Some(id) = registry.id_of_changelog(&changelog.0) else {
                        continue;
                    };
                    let sp = (registry.get(id).stream().to_owned(), changelog.1 as u32);
                    if standby {
                        // A standby is an optimisation: drop it, the next
                        // owner restores from the changelog as without one.
                        tracing::warn!(stream = sp.0, partition = sp.1, error = %error, "standby replica failed; dropping it");
                        self.standbys.stop(&sp, registry, &self.restorer)?;
                    } else if first_error.is_none() {
                        first_error = Some(ManagerError::Changelog(error));
                    }
                }
            }
        }
        if !ready.is_empty() {
            let at = ready
                .iter()
                .filter_map(|sp| Some((sp.clone(), self.resume_at.remove(sp)?)))
                .collect();
            consumer::resume(consumer, &ready, &at, self.kafka_timeout)?;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Brings the standby replicas in line with the
    /// [`crate::StandbyPolicy`]: starts missing ones (explicit set, or
    /// every partition), stops expired ones (recently revoked).
    pub(crate) fn tend_standbys<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        registry: &mut Registry,
    ) -> Result<()> {
        for sp in self.standbys.tend(consumer, registry, &self.restorer)? {
            if !self.assigned.contains_key(&sp) && !self.standbys.contains(&sp) {
                self.start_standby(&sp, registry)?;
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
                crate::metrics::standby_lag(&s.changelog.0, s.changelog.1, s.lag);
            }
        }
        let active = self
            .assigned
            .iter()
            .filter(|(_, role)| **role == Role::Active)
            .map(|(sp, _)| (sp, "active"));
        let standby = self.standbys.partitions().map(|sp| (sp, "standby"));
        for (sp, role) in active.chain(standby) {
            for id in registry.ids_of(&sp.0) {
                let s = registry.get(id);
                if let Some(p) = s.partition(sp.1) {
                    crate::metrics::partition(s.name(), s.stream(), sp.1, role, Some(&p.stats()));
                }
            }
        }
    }

    /// The standby replicas kept here, per store partition.
    pub(crate) fn standby_report(&self, registry: &Registry) -> Vec<StandbyReport> {
        self.standbys.report(registry, &self.restorer)
    }
}

/// Closes every store partition of `sp`, which had `role` (`active` or
/// `standby`: whose exported figures go to zero).
fn close(sp: &SourcePartition, role: &'static str, registry: &mut Registry) -> Result<()> {
    for id in registry.ids_of(&sp.0) {
        registry.get_mut(id).close(sp.1, role)?;
    }
    Ok(())
}
