//! Assignment: opening the store partitions of assigned source partitions,
//! recovering them from their changelogs, and closing them on revocation.

use std::collections::BTreeMap;
use std::time::Instant;

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use state_changelog::{RecoveredPartition, RecoveryManager, RecoveryPartition, RecoveryProgress};

use crate::error::{ManagerError, Result};
use crate::manager::StateStoreManager;

impl StateStoreManager {
    /// True if `(stream, partition)` is assigned here.
    pub fn is_assigned(&self, stream: &str, partition: u32) -> bool {
        self.assigned.contains(&(stream.to_owned(), partition))
    }

    /// Opens the store partitions of the given source partitions and
    /// recovers them from their changelogs. `committed` holds the committed
    /// offset (next to consume) of each source partition; changelog records
    /// of checkpoints at or beyond it are skipped.
    pub fn on_assign(
        &mut self,
        partitions: &[(String, u32)],
        committed: &BTreeMap<(String, u32), i64>,
    ) -> Result<Vec<RecoveredPartition>> {
        let mut to_recover = Vec::new();
        for (stream, p) in partitions {
            if !self.assigned.insert((stream.clone(), *p)) {
                continue;
            }
            for id in self.registry.ids_of(stream) {
                let s = self.registry.get_mut(id);
                let partition = s.store.assign_partition(*p)?;
                let location = s.store.partition_location(*p);
                if let Err(e) =
                    state_core::check_store_kind(partition.as_ref(), s.kind, std::path::Path::new(&location))
                {
                    drop(partition);
                    s.store.revoke_partition(*p)?;
                    self.assigned.remove(&(stream.clone(), *p));
                    return Err(e.into());
                }
                if let Some(topic) = &s.changelog_topic {
                    let mut offsets = BTreeMap::new();
                    if let Some(c) = committed.get(&(stream.clone(), *p)) {
                        offsets.insert(stream.clone(), *c);
                    }
                    to_recover.push(RecoveryPartition {
                        partition,
                        topic: topic.clone(),
                        changelog_partition: *p as i32,
                        committed_offsets: offsets,
                        location,
                        until: None,
                    });
                }
            }
            tracing::info!(stream, partition = p, "partition assigned");
        }
        if to_recover.is_empty() {
            return Ok(Vec::new());
        }
        let recovery = RecoveryManager::new(&self.kafka_client, self.config.recovery.clone(), self.stop.clone())?;
        let started = Instant::now();
        let mut noop = |_: &RecoveryProgress| {};
        let listener: &mut dyn FnMut(&RecoveryProgress) = match &mut self.progress {
            Some(f) => f.as_mut(),
            None => &mut noop,
        };
        let res = recovery.recover(to_recover, listener)?;
        let applied: u64 = res.iter().map(|r| r.stats.applied).sum();
        tracing::info!(partitions = res.len(), applied, elapsed = ?started.elapsed(), "recovery finished");
        Ok(res)
    }

    /// [`on_assign`](Self::on_assign) with the committed offsets read from
    /// `consumer`'s group (what the rebalance callback and tests use).
    pub fn on_assign_from<C: ConsumerContext, K: Consumer<C>>(
        &mut self,
        consumer: &K,
        partitions: &[(String, u32)],
    ) -> Result<Vec<RecoveredPartition>> {
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in partitions {
            tpl.add_partition(topic, *p as i32);
        }
        let committed = consumer
            .committed_offsets(tpl, self.config.kafka_timeout)
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
        self.on_assign(partitions, &map)
    }

    /// Closes the store partitions of the given source partitions. Changes
    /// of the current checkpoint for them are dropped (commit first to keep
    /// them; [`crate::StateContext`] does).
    pub fn on_revoke(&mut self, partitions: &[(String, u32)]) -> Result<()> {
        for (stream, p) in partitions {
            if !self.assigned.remove(&(stream.clone(), *p)) {
                continue;
            }
            let ids = self.registry.ids_of(stream);
            self.current.txns.drop_partition(&ids, *p);
            self.current.processed.remove(&(stream.clone(), *p));
            for id in ids {
                self.registry.get_mut(id).store.revoke_partition(*p)?;
            }
            tracing::info!(stream, partition = p, "partition revoked");
        }
        Ok(())
    }

    /// Deletes the group's whole state directory. Refused while partitions
    /// are assigned.
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
