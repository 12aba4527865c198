//! The registered stores: for each, its stream, kind, codec, changelog
//! topic and open partitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use state_core::ttl::TtlOptions;
use state_core::{Codec, PartitionFormat, Store, StoreFormat, StoreKind};
use state_txn::{WindowIndex, WriteBehindBackend};

use crate::error::{ManagerError, Result};

/// One registered store.
pub(crate) struct RegisteredStore {
    pub(crate) stream: String,
    pub(crate) name: String,
    /// The kind recorded in its partitions ([`crate::StoreType::KIND`]).
    pub(crate) kind: StoreKind,
    pub(crate) codec: Codec,
    pub(crate) changelog_topic: Option<String>,
    /// Per-write TTL (key-value stores only).
    pub(crate) ttl: Option<TtlOptions>,
    /// Its partitions, on its backend.
    pub(crate) store: Store,
    /// What each open partition was found to be (codec, TTL state).
    pub(crate) formats: BTreeMap<u32, PartitionFormat>,
    /// The write-behind caches of its partitions, if registered with them
    /// (the same backend `store` opens partitions on).
    pub(crate) write_behind: Option<Arc<WriteBehindBackend>>,
    /// Prefix bound of each active partition's window index (windowed
    /// stores), and the indexes: created on the first transaction of an
    /// active partition, dropped when it stops being active (a restore or
    /// standby writes below the index, so an index never outlives it).
    pub(crate) window_index: Option<usize>,
    pub(crate) indexes: BTreeMap<u32, Arc<WindowIndex>>,
}

impl RegisteredStore {
    /// What the store expects of its partitions.
    pub(crate) fn format(&self) -> StoreFormat {
        let f = StoreFormat::new(self.kind, self.codec);
        match &self.ttl {
            Some(o) => f.with_ttl(o.clone()),
            None => f,
        }
    }

    /// The window index of active partition `partition`, created on first
    /// use; `None` if the store keeps none.
    pub(crate) fn index_of(&mut self, partition: u32) -> Option<Arc<WindowIndex>> {
        let max = self.window_index?;
        Some(
            self.indexes
                .entry(partition)
                .or_insert_with(|| Arc::new(WindowIndex::new(max)))
                .clone(),
        )
    }

    /// Writes partition `partition`'s write-behind cache to the backend
    /// and forgets its window index: it stops being active. A failed flush
    /// loses nothing (every cached change is in the changelog, which the
    /// next owner replays from the stored offset), so it is logged, not
    /// raised: a revocation must finish.
    pub(crate) fn deactivate(&mut self, partition: u32) {
        self.indexes.remove(&partition);
        if let Some(wb) = &self.write_behind {
            if let Err(e) = wb.flush_partition(self.store.location(), partition) {
                tracing::warn!(
                    store = self.describe(),
                    partition,
                    error = %e,
                    "flushing the write-behind cache failed; its changes are replayed from the changelog"
                );
            }
        }
    }

    /// `stream/store`, for messages.
    pub(crate) fn describe(&self) -> String {
        format!("{}/{}", self.stream, self.name)
    }
}

/// Stores by id (the index a [`crate::StoreHandle`] carries).
#[derive(Default)]
pub(crate) struct Registry {
    stores: Vec<RegisteredStore>,
}

impl Registry {
    /// Adds a store, refusing a second store of the same name on a stream.
    pub(crate) fn add(&mut self, store: RegisteredStore) -> Result<usize> {
        if self
            .stores
            .iter()
            .any(|s| s.stream == store.stream && s.name == store.name)
        {
            return Err(ManagerError::DuplicateStore {
                stream: store.stream,
                store: store.name,
            });
        }
        self.stores.push(store);
        Ok(self.stores.len() - 1)
    }

    /// The store with id `id`. Ids come from handles this registry issued.
    pub(crate) fn get(&self, id: usize) -> &RegisteredStore {
        &self.stores[id]
    }

    /// Every store with its id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &RegisteredStore)> {
        self.stores.iter().enumerate()
    }

    /// Every store, mutably.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut RegisteredStore)> {
        self.stores.iter_mut().enumerate()
    }

    /// Ids of the stores of `stream`.
    pub(crate) fn ids_of(&self, stream: &str) -> Vec<usize> {
        self.iter()
            .filter(|(_, s)| s.stream == stream)
            .map(|(i, _)| i)
            .collect()
    }

    /// The id of the store whose changelog topic is `topic`.
    pub(crate) fn id_of_changelog(&self, topic: &str) -> Option<usize> {
        self.stores
            .iter()
            .position(|s| s.changelog_topic.as_deref() == Some(topic))
    }

    /// The store with id `id`, mutably.
    pub(crate) fn get_mut(&mut self, id: usize) -> &mut RegisteredStore {
        &mut self.stores[id]
    }
}
