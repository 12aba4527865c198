//! Standby replicas: warm copies of store partitions this instance does not
//! own, tailing their changelogs on the restorer thread, kept as the
//! [`StandbyPolicy`] says.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, ConsumerContext};
use state_changelog::{StandbyRequest, StandbyStatus};

use super::restorer::LazyRestorer;
use super::SourcePartition;
use crate::config::StandbyPolicy;
use crate::error::Result;
use crate::registry::Registry;

/// How long the partition list of every stream (for
/// [`StandbyPolicy::AllPartitions`]) is reused before it is read again.
const METADATA_REFRESH: Duration = Duration::from_secs(30);

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

/// The standby replicas kept here, by source partition, with when each
/// became one (for [`StandbyPolicy::RecentlyRevoked`]).
pub(super) struct Standbys {
    policy: StandbyPolicy,
    kafka_timeout: Duration,
    kept: BTreeMap<SourcePartition, Instant>,
    last_metadata: Option<Instant>,
}

impl Standbys {
    /// None yet, kept as `policy` says.
    pub(super) fn new(policy: StandbyPolicy, kafka_timeout: Duration) -> Self {
        Standbys {
            policy,
            kafka_timeout,
            kept: BTreeMap::new(),
            last_metadata: None,
        }
    }

    /// True if a standby of `sp` is kept here.
    pub(super) fn contains(&self, sp: &SourcePartition) -> bool {
        self.kept.contains_key(sp)
    }

    /// How many standbys are kept here.
    pub(super) fn len(&self) -> usize {
        self.kept.len()
    }

    /// The source partitions with a standby here.
    pub(super) fn partitions(&self) -> impl Iterator<Item = &SourcePartition> {
        self.kept.keys()
    }

    /// True if a partition revoked from this instance stays as a standby
    /// (its stores have a changelog to tail).
    pub(super) fn keeps(&self, sp: &SourcePartition, registry: &Registry) -> bool {
        self.policy.keeps(sp) && registry.has_changelog(&sp.0)
    }

    /// Forgets the standby of `sp` without closing anything: its stores are
    /// promoted. True if there was one.
    pub(super) fn promote(&mut self, sp: &SourcePartition) -> bool {
        self.kept.remove(sp).is_some()
    }

    /// Starts a standby replica of `sp` (its store partitions open, its
    /// changelogs tailed). Stores without a changelog have nothing to tail
    /// and stay closed.
    pub(super) fn start(
        &mut self,
        sp: &SourcePartition,
        registry: &mut Registry,
        restorer: &mut LazyRestorer,
    ) -> Result<()> {
        if self.kept.contains_key(sp) {
            return Ok(());
        }
        for id in registry.ids_of(&sp.0) {
            let store = registry.get_mut(id);
            let Some(topic) = store.changelog_topic().map(str::to_owned) else {
                store.release(sp.1)?;
                continue;
            };
            let opened = store.open_checked(sp.1)?;
            restorer.get()?.standby(StandbyRequest {
                partition: opened.partition,
                changelog: (topic, sp.1 as i32),
                source: (sp.0.clone(), sp.1 as i32),
                location: opened.location,
                replay_check: Some(opened.replay_check),
            })?;
        }
        self.kept.insert(sp.clone(), Instant::now());
        tracing::info!(stream = sp.0, partition = sp.1, "standby replica started");
        Ok(())
    }

    /// Stops the standby of `sp` and closes its store partitions.
    pub(super) fn stop(
        &mut self,
        sp: &SourcePartition,
        registry: &mut Registry,
        restorer: &LazyRestorer,
    ) -> Result<()> {
        if self.kept.remove(sp).is_none() {
            return Ok(());
        }
        if let Some(r) = restorer.running() {
            let changelogs = registry
                .changelogs_of(&sp.0)
                .into_iter()
                .map(|t| (t, sp.1 as i32))
                .collect();
            r.release(changelogs)?;
        }
        for id in registry.ids_of(&sp.0) {
            registry.get_mut(id).close(sp.1, "standby")?;
        }
        tracing::info!(stream = sp.0, partition = sp.1, "standby replica stopped");
        Ok(())
    }

    /// Stops the standbys [`StandbyPolicy::RecentlyRevoked`] keeps no
    /// longer, and returns the source partitions the policy wants a
    /// standby of (explicit set, or every partition): the caller starts
    /// those it does not own.
    pub(super) fn tend<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        registry: &mut Registry,
        restorer: &LazyRestorer,
    ) -> Result<Vec<SourcePartition>> {
        match &self.policy {
            StandbyPolicy::None => Ok(Vec::new()),
            StandbyPolicy::RecentlyRevoked { keep_for } => {
                let keep_for = *keep_for;
                let expired: Vec<_> = self
                    .kept
                    .iter()
                    .filter(|(_, since)| since.elapsed() > keep_for)
                    .map(|(k, _)| k.clone())
                    .collect();
                for sp in expired {
                    self.stop(&sp, registry, restorer)?;
                }
                Ok(Vec::new())
            }
            StandbyPolicy::Partitions(set) => Ok(set.iter().cloned().collect()),
            StandbyPolicy::AllPartitions => {
                if self.last_metadata.is_some_and(|t| t.elapsed() < METADATA_REFRESH) {
                    Ok(Vec::new())
                } else {
                    self.last_metadata = Some(Instant::now());
                    Ok(self.all_source_partitions(consumer, registry))
                }
            }
        }
    }

    /// Every partition of every stream with a store with a changelog.
    fn all_source_partitions<C: ConsumerContext, K: Consumer<C>>(
        &self,
        consumer: &K,
        registry: &Registry,
    ) -> Vec<SourcePartition> {
        let streams: BTreeSet<String> = registry
            .iter()
            .filter(|(_, s)| s.changelog_topic().is_some())
            .map(|(_, s)| s.stream().to_owned())
            .collect();
        let mut out = Vec::new();
        for stream in streams {
            match consumer.fetch_metadata(Some(&stream), self.kafka_timeout) {
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

    /// What each standby replica kept here has, per store partition.
    pub(super) fn report(&self, registry: &Registry, restorer: &LazyRestorer) -> Vec<StandbyReport> {
        let status: BTreeMap<(String, i32), StandbyStatus> = restorer
            .running()
            .map(|r| {
                r.standby_status()
                    .into_iter()
                    .map(|s| (s.changelog.clone(), s))
                    .collect()
            })
            .unwrap_or_default();
        let mut out = Vec::new();
        for sp in self.kept.keys() {
            for id in registry.ids_of(&sp.0) {
                let s = registry.get(id);
                let Some(topic) = s.changelog_topic() else { continue };
                let st = status.get(&(topic.to_owned(), sp.1 as i32));
                out.push(StandbyReport {
                    stream: sp.0.clone(),
                    partition: sp.1,
                    store: s.name().to_owned(),
                    applied_offset: st.and_then(|s| s.applied_offset),
                    lag: st.map_or(0, |s| s.lag),
                    waiting_for_commit: st.is_some_and(|s| s.waiting_for_commit),
                    disk_bytes: s.partition(sp.1).and_then(|p| p.stats().disk_bytes),
                });
            }
        }
        out
    }
}
