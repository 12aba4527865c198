//! Assignment: opening the store partitions of assigned source partitions,
//! restoring them from their changelogs on the restorer thread while the
//! poll loop goes on, resuming them once restored, keeping standby replicas,
//! and closing partitions on revocation.
//!
//! The rebalance callback only does bookkeeping (open partitions, pause
//! their source partitions, hand them to the restorer); restore time never
//! counts against `max.poll.interval.ms`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use state_changelog::{RestoreEvent, RestoreRequest, Restorer, StandbyRequest};
use state_core::{HeaderlessRecords, ReplayCheck, TopicPartition};

use crate::config::StandbyPolicy;
use crate::error::{ManagerError, Result};
use crate::manager::StateStoreManager;

/// A source partition: (stream, partition).
pub(crate) type SourcePartition = (String, u32);

/// Where an assigned source partition stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Its stores are restoring; the ids of those not done yet. Its source
    /// partition is paused.
    Restoring(BTreeSet<usize>),
    /// Ready: processing may use its stores.
    Active,
}

/// A standby replica kept here for a source partition this instance does
/// not own.
#[derive(Clone, Debug)]
pub(crate) struct Standby {
    /// When it became a standby (for [`StandbyPolicy::RecentlyRevoked`]).
    pub(crate) since: Instant,
}

/// What a standby replica of one store partition has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StandbyReport {
    /// Stream (source topic).
    pub stream: String,
    /// Partition.
    pub partition: u32,
    /// Store name.
    pub store: String,
    /// The last changelog offset applied locally.
    pub applied_offset: Option<u64>,
    /// Changelog records not applied yet (as of the last refresh).
    pub lag: u64,
    /// True while the next changelog record belongs to a checkpoint its
    /// owner has not committed yet (a standby never applies those).
    pub waiting_for_commit: bool,
    /// Bytes the replica takes on disk, if the backend reports it.
    pub disk_bytes: Option<u64>,
}

fn tpl_of(partitions: &[SourcePartition]) -> Result<TopicPartitionList> {
    // Infallible today; Result keeps callers ready for validation.
    let mut tpl = TopicPartitionList::new();
    for (topic, p) in partitions {
        tpl.add_partition(topic, *p as i32);
    }
    Ok(tpl)
}

impl StateStoreManager {
    /// True if `(stream, partition)` is assigned here (restoring or ready).
    pub fn is_assigned(&self, stream: &str, partition: u32) -> bool {
        self.assigned.contains_key(&(stream.to_owned(), partition))
    }

    /// True if `(stream, partition)` is assigned here and its stores are
    /// restored: records of it may be processed.
    pub fn is_ready(&self, stream: &str, partition: u32) -> bool {
        self.assigned.get(&(stream.to_owned(), partition)) == Some(&Role::Active)
    }

    /// Source partitions assigned here whose stores are still restoring.
    pub fn restoring(&self) -> Vec<(String, u32)> {
        self.assigned
            .iter()
            .filter(|(_, r)| matches!(r, Role::Restoring(_)))
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub(crate) fn restorer(&mut self) -> Result<&Restorer> {
        if self.restorer.is_none() {
            let r = Restorer::start(&self.kafka_client, &self.config.group_id, self.config.recovery.clone())?;
            self.restorer = Some(r);
        }
        self.restorer
            .as_ref()
            .ok_or(ManagerError::Changelog(state_changelog::ChangelogError::Stopped))
    }

    /// Takes over newly assigned source partitions: opens their store
    /// partitions (or takes over their standby replicas), pauses the
    /// partitions on `consumer` and hands their stores to the restorer
    /// thread. Returns at once; [`maintain`](Self::maintain) resumes each
    /// partition when its stores have caught up with their changelogs.
    /// [`crate::StateContext`] calls this from the rebalance callback.
    pub fn on_assign<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        partitions: &[(String, u32)],
    ) -> Result<()> {
        let new: Vec<SourcePartition> = partitions
            .iter()
            .filter(|p| !self.assigned.contains_key(*p))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let needs_offsets = new.iter().any(|(stream, _)| {
            self.registry
                .ids_of(stream)
                .iter()
                .any(|id| self.registry.get(*id).changelog_topic.is_some())
        });
        let committed = if needs_offsets {
            self.committed_offsets(consumer, &new)?
        } else {
            BTreeMap::new()
        };
        let mut paused = Vec::new();
        for sp in new {
            let role = self.take_over(&sp, &committed)?;
            tracing::info!(
                stream = sp.0,
                partition = sp.1,
                restoring = role != Role::Active,
                "partition assigned"
            );
            if role == Role::Active {
                self.activate(&sp);
            } else {
                if let Some(o) = committed.get(&sp) {
                    self.resume_at.insert(sp.clone(), *o);
                }
                paused.push(sp.clone());
                self.assigned.insert(sp, role);
            }
        }
        if !paused.is_empty() {
            consumer
                .pause(&tpl_of(&paused)?)
                .map_err(|source| ManagerError::Kafka {
                    operation: "pausing partitions that are restoring",
                    source,
                })?;
        }
        Ok(())
    }

    fn committed_offsets<C: ConsumerContext, K: Consumer<C>>(
        &self,
        consumer: &K,
        partitions: &[SourcePartition],
    ) -> Result<BTreeMap<SourcePartition, i64>> {
        let committed = consumer
            .committed_offsets(tpl_of(partitions)?, self.config.kafka_timeout)
            .map_err(|source| ManagerError::Kafka {
                operation: "reading committed offsets on assignment",
                source,
            })?;
        let mut map = BTreeMap::new();
        for e in committed.elements() {
            if let Offset::Offset(o) = e.offset() {
                map.insert((e.topic().to_owned(), e.partition().max(0) as u32), o);
            }
        }
        Ok(map)
    }

    /// Opens (or promotes the standby of) every store partition of `sp`
    /// and starts its restore; the role it starts in.
    fn take_over(&mut self, sp: &SourcePartition, committed: &BTreeMap<SourcePartition, i64>) -> Result<Role> {
        let (stream, p) = sp;
        let mut offsets = BTreeMap::new();
        if let Some(c) = committed.get(sp) {
            offsets.insert(stream.clone(), *c);
        }
        let was_standby = self.standbys.remove(sp).is_some();
        let mut waiting = BTreeSet::new();
        for id in self.registry.ids_of(stream) {
            let (partition, location, topic, check) = match self.open_checked(id, *p) {
                Ok(opened) => opened,
                Err(e) => {
                    self.close_partition(sp, "active")?;
                    return Err(e);
                }
            };
            let Some(topic) = topic else { continue };
            let changelog = TopicPartition::new(topic, *p as i32);
            if was_standby {
                self.restorer()?.promote(changelog, offsets.clone())?;
            } else {
                self.restorer()?.restore(RestoreRequest {
                    partition,
                    changelog,
                    committed_offsets: offsets.clone(),
                    location,
                    replay_check: Some(check),
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

    /// Opens partition `p` of store `id` and checks it holds what the store
    /// expects (kind, codec, TTL mode; see [`state_core::check_store_format`]):
    /// the partition, where it lives, the store's changelog topic and the
    /// check its changelog records must pass.
    #[allow(clippy::type_complexity)]
    fn open_checked(
        &mut self,
        id: usize,
        p: u32,
    ) -> Result<(
        std::sync::Arc<dyn state_core::StorePartition>,
        String,
        Option<String>,
        ReplayCheck,
    )> {
        let s = self.registry.get_mut(id);
        let partition = s.store.assign_partition(p)?;
        let location = s.store.partition_location(p);
        let format = state_core::check_store_format(partition.as_ref(), &s.format(), std::path::Path::new(&location))?;
        // Records without a codec header were written by quixstreams (JSON)
        // or by versions of this library before the header existed: read
        // them with the store's own codec rather than refuse them.
        let check = format.replay_check().headerless(HeaderlessRecords::StoreCodec);
        s.formats.insert(p, format);
        Ok((partition, location, s.changelog_topic.clone(), check))
    }

    /// Makes `sp` ready: processing may use its stores and readers may read
    /// them.
    fn activate(&mut self, sp: &SourcePartition) {
        self.assigned.insert(sp.clone(), Role::Active);
        let mut readable = self.readable.write();
        for id in self.registry.ids_of(&sp.0) {
            let s = self.registry.get(id);
            if let (Some(p), Some(f)) = (s.store.partition(sp.1), s.formats.get(&sp.1)) {
                readable.open(id, sp.1, p, f.clone());
            }
        }
    }

    /// Stops readers from reading `sp` (before it is closed or handed to
    /// the restorer as a standby).
    fn deactivate(&mut self, sp: &SourcePartition) {
        {
            let mut readable = self.readable.write();
            for id in self.registry.ids_of(&sp.0) {
                readable.close(id, sp.1);
            }
        }
        for id in self.registry.ids_of(&sp.0) {
            self.registry.get_mut(id).deactivate(sp.1);
        }
    }

    /// Closes every store partition of `sp`, which had `role` (`active` or
    /// `standby`: whose exported figures go to zero).
    fn close_partition(&mut self, sp: &SourcePartition, role: &'static str) -> Result<()> {
        for id in self.registry.ids_of(&sp.0) {
            let s = self.registry.get_mut(id);
            crate::metrics::partition(&s.name, &s.stream, sp.1, role, None);
            s.formats.remove(&sp.1);
            s.deactivate(sp.1);
            if s.store.partition(sp.1).is_some() {
                s.store.revoke_partition(sp.1)?;
            }
        }
        Ok(())
    }

    /// The changelog partitions of `sp`'s stores.
    fn changelogs_of(&self, sp: &SourcePartition) -> Vec<TopicPartition> {
        self.registry
            .ids_of(&sp.0)
            .into_iter()
            .filter_map(|id| self.registry.get(id).changelog_topic.clone())
            .map(|t| TopicPartition::of_store(t, sp.1))
            .collect()
    }

    /// Lets go of revoked source partitions. A restore in progress is
    /// cancelled (its batch in flight is written whole, so data and stored
    /// offset agree); changes of the current checkpoint for them are dropped
    /// (commit first to keep them; [`crate::StateContext`] does). Each store
    /// partition is closed, or kept as a standby replica if the
    /// [`StandbyPolicy`] says so.
    pub fn on_revoke(&mut self, partitions: &[(String, u32)]) -> Result<()> {
        for sp in partitions {
            self.resume_at.remove(sp);
            let Some(role) = self.assigned.remove(sp) else { continue };
            self.deactivate(sp);
            let ids = self.registry.ids_of(&sp.0);
            self.current.txns.drop_partition(&ids, sp.1);
            self.current.processed.remove(sp);
            self.current.first_processed.remove(sp);
            if let Role::Restoring(_) = role {
                let changelogs = self.changelogs_of(sp);
                if let Some(r) = &self.restorer {
                    for (cl, res) in r.release(changelogs)? {
                        if let Err(e) = res {
                            tracing::warn!(topic = cl.topic(), partition = cl.partition(), error = %e, "writing the last restore batch of a revoked partition failed");
                        }
                    }
                }
            }
            if self.config.standby.keeps(sp) && !self.changelogs_of(sp).is_empty() {
                self.start_standby(sp)?;
            } else {
                self.close_partition(sp, "active")?;
            }
            tracing::info!(stream = sp.0, partition = sp.1, "partition revoked");
        }
        Ok(())
    }

    /// Starts a standby replica of `sp` (its store partitions open, its
    /// changelogs tailed). Stores without a changelog have nothing to tail
    /// and stay closed.
    fn start_standby(&mut self, sp: &SourcePartition) -> Result<()> {
        if self.standbys.contains_key(sp) || self.assigned.contains_key(sp) {
            return Ok(());
        }
        for id in self.registry.ids_of(&sp.0) {
            if self.registry.get(id).changelog_topic.is_none() {
                let s = self.registry.get_mut(id);
                s.formats.remove(&sp.1);
                if s.store.partition(sp.1).is_some() {
                    s.store.revoke_partition(sp.1)?;
                }
                continue;
            }
            let (partition, location, topic, check) = self.open_checked(id, sp.1)?;
            let Some(topic) = topic else { continue };
            self.restorer()?.standby(StandbyRequest {
                partition,
                changelog: TopicPartition::of_store(topic, sp.1),
                source: TopicPartition::of_store(sp.0.as_str(), sp.1),
                location,
                replay_check: Some(check),
            })?;
        }
        self.standbys
            .insert(sp.clone(), crate::assignment::Standby { since: Instant::now() });
        tracing::info!(stream = sp.0, partition = sp.1, "standby replica started");
        Ok(())
    }

    /// Stops the standby of `sp` and closes its store partitions.
    fn stop_standby(&mut self, sp: &SourcePartition) -> Result<()> {
        if self.standbys.remove(sp).is_none() {
            return Ok(());
        }
        let changelogs = self.changelogs_of(sp);
        if let Some(r) = &self.restorer {
            r.release(changelogs)?;
        }
        self.close_partition(sp, "standby")?;
        tracing::info!(stream = sp.0, partition = sp.1, "standby replica stopped");
        Ok(())
    }

    /// Handles what the restorer reported: progress to the listener,
    /// finished restores (resuming their partitions on `consumer` once all
    /// their stores are done), failures (returned as the error).
    pub(crate) fn drain_restore_events<C: ConsumerContext, K: Consumer<C>>(&mut self, consumer: &K) -> Result<()> {
        let Some(r) = &self.restorer else { return Ok(()) };
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
                    let Some(id) = self.registry.id_of_changelog(changelog.topic()) else {
                        continue;
                    };
                    let sp = (self.registry.get(id).stream.clone(), changelog.store_partition());
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
                            self.activate(&sp);
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
                    let Some(id) = self.registry.id_of_changelog(changelog.topic()) else {
                        continue;
                    };
                    let sp = (self.registry.get(id).stream.clone(), changelog.store_partition());
                    if standby {
                        // A standby is an optimisation: drop it, the next
                        // owner restores from the changelog as without one.
                        tracing::warn!(stream = sp.0, partition = sp.1, error = %error, "standby replica failed; dropping it");
                        self.stop_standby(&sp)?;
                    } else if first_error.is_none() {
                        first_error = Some(ManagerError::Changelog(error));
                    }
                }
            }
        }
        if !ready.is_empty() {
            // Resume where the restore judged records by: the stores hold
            // exactly the checkpoints committed up to that offset. The
            // consumer's own position came from its own offset fetch, which
            // a previous owner's late commit can put elsewhere.
            let mut at = TopicPartitionList::new();
            for sp in &ready {
                if let Some(o) = self.resume_at.remove(sp) {
                    at.add_partition_offset(&sp.0, sp.1 as i32, Offset::Offset(o))
                        .map_err(|source| ManagerError::Kafka {
                            operation: "building the positions of restored partitions",
                            source,
                        })?;
                }
            }
            if at.count() > 0 {
                let sought = consumer
                    .seek_partitions(at, self.config.kafka_timeout)
                    .map_err(|source| ManagerError::Kafka {
                        operation: "moving restored partitions to their committed offsets",
                        source,
                    })?;
                for e in sought.elements() {
                    if let Err(source) = e.error() {
                        return Err(ManagerError::Kafka {
                            operation: "moving a restored partition to its committed offset",
                            source,
                        });
                    }
                }
            }
            consumer
                .resume(&tpl_of(&ready)?)
                .map_err(|source| ManagerError::Kafka {
                    operation: "resuming restored partitions",
                    source,
                })?;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Brings the standby replicas in line with the [`StandbyPolicy`]:
    /// starts missing ones (explicit set, or every partition), stops
    /// expired ones (recently revoked).
    pub(crate) fn tend_standbys<C: ConsumerContext, K: Consumer<C>>(&mut self, consumer: &K) -> Result<()> {
        let wanted: Vec<SourcePartition> = match &self.config.standby {
            StandbyPolicy::None => Vec::new(),
            StandbyPolicy::RecentlyRevoked { keep_for } => {
                let keep_for = *keep_for;
                let expired: Vec<_> = self
                    .standbys
                    .iter()
                    .filter(|(_, s)| s.since.elapsed() > keep_for)
                    .map(|(k, _)| k.clone())
                    .collect();
                for sp in expired {
                    self.stop_standby(&sp)?;
                }
                Vec::new()
            }
            StandbyPolicy::Partitions(set) => set.iter().cloned().collect(),
            StandbyPolicy::AllPartitions => {
                if self
                    .last_metadata
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(30))
                {
                    Vec::new()
                } else {
                    self.last_metadata = Some(Instant::now());
                    self.all_source_partitions(consumer)
                }
            }
        };
        for sp in wanted {
            if !self.assigned.contains_key(&sp) && !self.standbys.contains_key(&sp) {
                self.start_standby(&sp)?;
            }
        }
        Ok(())
    }

    /// Every partition of every stream with a store with a changelog.
    fn all_source_partitions<C: ConsumerContext, K: Consumer<C>>(&self, consumer: &K) -> Vec<SourcePartition> {
        let streams: BTreeSet<String> = self
            .registry
            .iter()
            .filter(|(_, s)| s.changelog_topic.is_some())
            .map(|(_, s)| s.stream.clone())
            .collect();
        let mut out = Vec::new();
        for stream in streams {
            match consumer.fetch_metadata(Some(&stream), self.config.kafka_timeout) {
                Ok(md) => {
                    for t in md.topics() {
                        for p in t.partitions() {
                            out.push((stream.clone(), p.id().max(0) as u32));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(stream, error = %e, "reading partitions for standby replicas failed; retrying later")
                }
            }
        }
        out
    }

    /// Exports partition counts, standby lag and every open partition's
    /// backend figures (called from `maintain` every few seconds).
    pub(crate) fn export_metrics(&mut self) {
        if self
            .last_export
            .is_some_and(|t| t.elapsed() < crate::metrics::EXPORT_INTERVAL)
        {
            return;
        }
        self.last_export = Some(Instant::now());
        let restoring = self
            .assigned
            .values()
            .filter(|r| matches!(r, Role::Restoring(_)))
            .count();
        crate::metrics::partitions("active", self.assigned.len() - restoring);
        crate::metrics::partitions("restoring", restoring);
        crate::metrics::partitions("standby", self.standbys.len());
        if let Some(r) = &self.restorer {
            for s in r.standby_status() {
                crate::metrics::standby_lag(s.changelog.topic(), s.changelog.partition(), s.lag);
            }
        }
        for (sp, role) in &self.assigned {
            if *role != Role::Active {
                continue;
            }
            for id in self.registry.ids_of(&sp.0) {
                let s = self.registry.get(id);
                if let Some(p) = s.store.partition(sp.1) {
                    crate::metrics::partition(&s.name, &s.stream, sp.1, "active", Some(&p.stats()));
                }
            }
        }
        for sp in self.standbys.keys() {
            for id in self.registry.ids_of(&sp.0) {
                let s = self.registry.get(id);
                if let Some(p) = s.store.partition(sp.1) {
                    crate::metrics::partition(&s.name, &s.stream, sp.1, "standby", Some(&p.stats()));
                }
            }
        }
    }

    /// The standby replicas kept here, per store partition.
    pub fn standby_report(&self) -> Vec<StandbyReport> {
        let status: BTreeMap<TopicPartition, state_changelog::StandbyStatus> = self
            .restorer
            .as_ref()
            .map(|r| {
                r.standby_status()
                    .into_iter()
                    .map(|s| (s.changelog.clone(), s))
                    .collect()
            })
            .unwrap_or_default();
        let mut out = Vec::new();
        for sp in self.standbys.keys() {
            for id in self.registry.ids_of(&sp.0) {
                let s = self.registry.get(id);
                let Some(topic) = &s.changelog_topic else { continue };
                let st = status.get(&TopicPartition::of_store(topic.as_str(), sp.1));
                out.push(StandbyReport {
                    stream: sp.0.clone(),
                    partition: sp.1,
                    store: s.name.clone(),
                    applied_offset: st.and_then(|s| s.applied_offset),
                    lag: st.map_or(0, |s| s.lag),
                    waiting_for_commit: st.is_some_and(|s| s.waiting_for_commit),
                    disk_bytes: s.store.partition(sp.1).and_then(|p| p.stats().disk_bytes),
                });
            }
        }
        out
    }

    /// Deletes the group's whole state directory. Refused while partitions
    /// are assigned or kept as standbys.
    pub fn clear_state(&mut self) -> Result<()> {
        let open: usize = self
            .registry
            .iter()
            .map(|(_, s)| s.store.assigned_partitions().len())
            .sum();
        if open > 0 || !self.assigned.is_empty() {
            return Err(ManagerError::StillAssigned {
                assigned: open.max(self.assigned.len()),
            });
        }
        for (_, s) in self.registry.iter_mut() {
            s.store.destroy()?;
        }
        state_core::remove_store_dir(&self.layout.group_dir())?;
        Ok(())
    }
}
