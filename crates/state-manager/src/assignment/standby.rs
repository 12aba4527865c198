//! Standby replicas: warm copies of store partitions this instance does not
//! own, tailing their changelogs on the restorer thread, kept as the
//! [`StandbyPolicy`] says.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, ConsumerContext};
use state_changelog::{StandbyRequest, StandbyStatus};
use state_core::TopicPartition;

use super::restorer::LazyRestorer;
use crate::config::StandbyPolicy;
use crate::error::Result;
use crate::healing::Healer;
use crate::registry::Registry;
use crate::snapshots::Bootstraps;

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
    kept: BTreeMap<TopicPartition, Instant>,
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

    /// True if a standby of `tp` is kept here.
    pub(super) fn contains(&self, tp: &TopicPartition) -> bool {
        self.kept.contains_key(tp)
    }

    /// How many standbys are kept here.
    pub(super) fn len(&self) -> usize {
        self.kept.len()
    }

    /// The source partitions with a standby here.
    pub(super) fn partitions(&self) -> impl Iterator<Item = &TopicPartition> {
        self.kept.keys()
    }

    /// True if a partition revoked from this instance stays as a standby
    /// (its stores have a changelog to tail).
    pub(super) fn keeps(&self, tp: &TopicPartition, registry: &Registry) -> bool {
        self.policy.keeps(tp) && registry.has_changelog(tp.topic())
    }

    /// Forgets the standby of `tp` without closing anything: its stores are
    /// promoted. True if there was one.
    pub(super) fn promote(&mut self, tp: &TopicPartition) -> bool {
        self.kept.remove(tp).is_some()
    }

    /// Starts a standby replica of `tp` (its store partitions open, its
    /// changelogs tailed). Stores without a changelog have nothing to tail
    /// and stay closed.
    ///
    /// A store partition without local state starts from a snapshot first
    /// when `bootstraps` restores from them: [`Standbys::tail`] starts its
    /// tailing once that restore finished.
    pub(super) fn start(
        &mut self,
        tp: &TopicPartition,
        registry: &mut Registry,
        restorer: &mut LazyRestorer,
        healer: &Healer,
        bootstraps: &mut Bootstraps,
    ) -> Result<()> {
        if self.kept.contains_key(tp) {
            return Ok(());
        }
        let p = tp.store_partition();
        for id in registry.ids_of(tp.topic()) {
            let store = registry.get_mut(id);
            if store.changelog_topic().is_none() {
                store.release(p)?;
                continue;
            }
            let opened = healer.open(store, p)?;
            if let Some(job) = bootstraps.job_for(id, store, p, opened.partition.as_ref()) {
                drop(opened);
                store.release(p)?;
                if bootstraps.start(job) {
                    continue;
                }
            }
            self.tail(tp, id, registry, restorer, healer)?;
        }
        self.kept.insert(tp.clone(), Instant::now());
        tracing::info!(
            stream = tp.topic(),
            partition = tp.partition(),
            "standby replica started"
        );
        Ok(())
    }

    /// Opens partition `tp` of store `id` (if it is not open) and tails
    /// its changelog as a standby.
    pub(super) fn tail(
        &self,
        tp: &TopicPartition,
        id: usize,
        registry: &mut Registry,
        restorer: &mut LazyRestorer,
        healer: &Healer,
    ) -> Result<()> {
        let store = registry.get_mut(id);
        let Some(topic) = store.changelog_topic() else {
            return Ok(());
        };
        let changelog = TopicPartition::new(topic, tp.partition());
        let opened = healer.open(store, tp.store_partition())?;
        restorer.get()?.standby(StandbyRequest {
            partition: opened.partition,
            changelog,
            source: tp.clone(),
            location: opened.location,
            replay_check: Some(opened.replay_check),
        })?;
        Ok(())
    }

    /// Stops the standby of `tp` and closes its store partitions.
    pub(super) fn stop(&mut self, tp: &TopicPartition, registry: &mut Registry, restorer: &LazyRestorer) -> Result<()> {
        if self.kept.remove(tp).is_none() {
            return Ok(());
        }
        if let Some(r) = restorer.running() {
            r.release(registry.changelogs_of(tp))?;
        }
        for id in registry.ids_of(tp.topic()) {
            registry.get_mut(id).close(tp.store_partition(), "standby")?;
        }
        tracing::info!(
            stream = tp.topic(),
            partition = tp.partition(),
            "standby replica stopped"
        );
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
    ) -> Result<Vec<TopicPartition>> {
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
                for tp in expired {
                    self.stop(&tp, registry, restorer)?;
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
    ) -> Vec<TopicPartition> {
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
                            out.push(TopicPartition::new(stream.as_str(), p.id()));
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
        let status: BTreeMap<TopicPartition, StandbyStatus> = restorer
            .running()
            .map(|r| {
                r.standby_status()
                    .into_iter()
                    .map(|s| (s.changelog.clone(), s))
                    .collect()
            })
            .unwrap_or_default();
        let mut out = Vec::new();
        for tp in self.kept.keys() {
            let p = tp.store_partition();
            for id in registry.ids_of(tp.topic()) {
                let s = registry.get(id);
                let Some(topic) = s.changelog_topic() else { continue };
                let st = status.get(&TopicPartition::new(topic, tp.partition()));
                out.push(StandbyReport {
                    stream: tp.topic().to_owned(),
                    partition: p,
                    store: s.name().to_owned(),
                    applied_offset: st.and_then(|s| s.applied_offset),
                    lag: st.map_or(0, |s| s.lag),
                    waiting_for_commit: st.is_some_and(|s| s.waiting_for_commit),
                    disk_bytes: s.partition(p).and_then(|p| p.stats().disk_bytes),
                });
            }
        }
        out
    }
}
