//! The registered stores: for each, its stream, kind, codec, changelog
//! topic and open partitions.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_cache::WriteBehindBackend;
use state_changelog::SentBytes;
use state_core::ttl::TtlOptions;
use state_core::{
    check_store_format, Codec, HeaderlessRecords, MemoryBudget, PartitionFormat, ReplayCheck, Store, StoreFormat,
    StoreKind, StorePartition, TopicPartition,
};
use state_txn::WindowIndex;

use crate::error::{ManagerError, Result};

/// How long [`RegisteredStore::close_unflushed`] waits for a partition's
/// other handles (a restore task being dropped) to go.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// What a store is registered with (see [`crate::StoreSpec`]), as the
/// registry keeps it.
pub(crate) struct StoreSettings {
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
    /// The write-behind caches of its partitions, if registered with them
    /// (the same backend `store` opens partitions on).
    pub(crate) write_behind: Option<Arc<WriteBehindBackend>>,
    /// Prefix bound of each active partition's window index (windowed
    /// stores; `None`: no index).
    pub(crate) window_index: Option<usize>,
    /// The process's memory budget the window indexes draw from, if any.
    pub(crate) memory_budget: Option<MemoryBudget>,
}

/// A partition [`RegisteredStore::open_checked`] opened: what a restore or
/// standby of it needs.
pub(crate) struct OpenedPartition {
    /// The open partition.
    pub(crate) partition: Arc<dyn StorePartition>,
    /// Where it lives (for messages).
    pub(crate) location: String,
    /// The check its changelog records must pass.
    pub(crate) replay_check: ReplayCheck,
}

/// One registered store.
pub(crate) struct RegisteredStore {
    stream: String,
    name: String,
    kind: StoreKind,
    codec: Codec,
    changelog_topic: Option<String>,
    ttl: Option<TtlOptions>,
    store: Store,
    /// What each open partition was found to be (codec, TTL state).
    formats: BTreeMap<u32, PartitionFormat>,
    write_behind: Option<Arc<WriteBehindBackend>>,
    /// The prefix bound of each active partition's window index, and the
    /// indexes: created on the first transaction of an active partition,
    /// dropped when it stops being active (a restore or standby writes
    /// below the index, so an index never outlives it).
    window_index: Option<usize>,
    indexes: BTreeMap<u32, Arc<WindowIndex>>,
    memory_budget: Option<MemoryBudget>,
    /// The changelog bytes each open partition's transactions handed to
    /// the producer since it was opened here (the snapshot taker's
    /// `every_bytes`): dropped when it closes, so a partition assigned
    /// again counts from zero.
    sent: BTreeMap<u32, SentBytes>,
}

impl RegisteredStore {
    fn new(settings: StoreSettings) -> Self {
        RegisteredStore {
            stream: settings.stream,
            name: settings.name,
            kind: settings.kind,
            codec: settings.codec,
            changelog_topic: settings.changelog_topic,
            ttl: settings.ttl,
            store: settings.store,
            formats: BTreeMap::new(),
            write_behind: settings.write_behind,
            window_index: settings.window_index,
            indexes: BTreeMap::new(),
            memory_budget: settings.memory_budget,
            sent: BTreeMap::new(),
        }
    }

    /// The stream (source topic) the store belongs to.
    pub(crate) fn stream(&self) -> &str {
        &self.stream
    }

    /// The store's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The kind its partitions record.
    pub(crate) fn kind(&self) -> StoreKind {
        self.kind
    }

    /// Its value codec.
    pub(crate) fn codec(&self) -> Codec {
        self.codec
    }

    /// Its changelog topic, unless registered without one.
    pub(crate) fn changelog_topic(&self) -> Option<&str> {
        self.changelog_topic.as_deref()
    }

    /// Its partitions.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The write-behind caches of its partitions, if registered with them.
    pub(crate) fn write_behind(&self) -> Option<&Arc<WriteBehindBackend>> {
        self.write_behind.as_ref()
    }

    /// The open partition `partition`, if any.
    pub(crate) fn partition(&self, partition: u32) -> Option<Arc<dyn StorePartition>> {
        self.store.partition(partition)
    }

    /// The total the changelog sinks of partition `partition` add to
    /// (created on first use; see [`SentBytes`]).
    pub(crate) fn sent_bytes(&mut self, partition: u32) -> SentBytes {
        self.sent.entry(partition).or_default().clone()
    }

    /// The changelog bytes partition `partition`'s transactions handed to
    /// the producer since it was opened here (0: none, or not open).
    pub(crate) fn changelog_bytes_sent(&self, partition: u32) -> u64 {
        self.sent.get(&partition).map_or(0, SentBytes::get)
    }

    /// What open partition `partition` was found to be when it was opened.
    pub(crate) fn format_of(&self, partition: u32) -> Option<&PartitionFormat> {
        self.formats.get(&partition)
    }

    /// What the store expects of its partitions.
    fn format(&self) -> StoreFormat {
        let f = StoreFormat::new(self.kind, self.codec);
        match &self.ttl {
            Some(o) => f.with_ttl(o.clone()),
            None => f,
        }
    }

    /// Opens partition `partition` and checks it holds what the store
    /// expects (kind, codec, TTL mode; see [`state_core::check_store_format`]),
    /// remembering what it was found to be.
    pub(crate) fn open_checked(&mut self, partition: u32) -> Result<OpenedPartition> {
        let opened = self.store.assign_partition(partition)?;
        let location = self.store.partition_location(partition);
        let format = check_store_format(opened.as_ref(), &self.format(), Path::new(&location))?;
        // Records without a codec header were written by quixstreams (JSON)
        // or by versions of this library before the header existed: read
        // them with the store's own codec rather than refuse them.
        let replay_check = format.replay_check().headerless(HeaderlessRecords::StoreCodec);
        self.formats.insert(partition, format);
        Ok(OpenedPartition {
            partition: opened,
            location,
            replay_check,
        })
    }

    /// The window index of active partition `partition`, created on first
    /// use; `None` if the store keeps none.
    pub(crate) fn index_of(&mut self, partition: u32) -> Option<Arc<WindowIndex>> {
        let max = self.window_index?;
        let budget = self.memory_budget.as_ref();
        Some(
            self.indexes
                .entry(partition)
                .or_insert_with(|| {
                    Arc::new(match budget {
                        Some(budget) => WindowIndex::with_budget(max, budget),
                        None => WindowIndex::new(max),
                    })
                })
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

    /// Closes partition `partition`, which had `role` (`active` or
    /// `standby`: whose exported figures go to zero).
    pub(crate) fn close(&mut self, partition: u32, role: &'static str) -> Result<()> {
        crate::metrics::partition(&self.name, &self.stream, partition, role, None);
        self.formats.remove(&partition);
        self.sent.remove(&partition);
        self.deactivate(partition);
        if self.store.partition(partition).is_some() {
            self.store.revoke_partition(partition)?;
        }
        Ok(())
    }

    /// Closes partition `partition` here without flushing anything (a
    /// damaged partition being rebuilt, or one that reloads its state from
    /// the changelog after a full disk) and waits until its other handles
    /// are gone (the restorer drops a failed task's handle as it reports
    /// the failure), so the database is closed when this returns: its
    /// directory can be moved aside or opened again at once.
    /// [`state_core::Error::PartitionLocked`] if a handle stays longer
    /// than [`CLOSE_WAIT`]. Nothing to do if it was not open.
    pub(crate) fn close_unflushed(&mut self, partition: u32) -> Result<()> {
        self.formats.remove(&partition);
        self.sent.remove(&partition);
        self.indexes.remove(&partition);
        if self.store.partition(partition).is_none() {
            return Ok(());
        }
        let handle = self.store.revoke_partition(partition)?;
        let deadline = Instant::now() + CLOSE_WAIT;
        while Arc::strong_count(&handle) > 1 {
            if Instant::now() >= deadline {
                return Err(ManagerError::State(state_core::Error::PartitionLocked {
                    path: self.store.location().partition_dir(partition),
                    attempts: 1,
                }));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Lets go of partition `partition` without flushing anything (it was
    /// never active here).
    pub(crate) fn release(&mut self, partition: u32) -> Result<()> {
        self.formats.remove(&partition);
        self.sent.remove(&partition);
        if self.store.partition(partition).is_some() {
            self.store.revoke_partition(partition)?;
        }
        Ok(())
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
    pub(crate) fn add(&mut self, settings: StoreSettings) -> Result<usize> {
        if self
            .stores
            .iter()
            .any(|s| s.stream == settings.stream && s.name == settings.name)
        {
            return Err(ManagerError::DuplicateStore {
                stream: settings.stream,
                store: settings.name,
            });
        }
        self.stores.push(RegisteredStore::new(settings));
        Ok(self.stores.len() - 1)
    }

    /// The store with id `id`. Ids come from handles this registry issued.
    pub(crate) fn get(&self, id: usize) -> &RegisteredStore {
        &self.stores[id]
    }

    /// The store with id `id`, mutably.
    pub(crate) fn get_mut(&mut self, id: usize) -> &mut RegisteredStore {
        &mut self.stores[id]
    }

    /// Every store with its id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &RegisteredStore)> {
        self.stores.iter().enumerate()
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

    /// True if a store of `stream` has a changelog.
    pub(crate) fn has_changelog(&self, stream: &str) -> bool {
        self.stores
            .iter()
            .any(|s| s.stream == stream && s.changelog_topic.is_some())
    }

    /// The changelog partitions of the stores of source partition `source`
    /// (changelog partition *n* follows source partition *n*).
    pub(crate) fn changelogs_of(&self, source: &TopicPartition) -> Vec<TopicPartition> {
        self.stores
            .iter()
            .filter(|s| s.stream == source.topic())
            .filter_map(|s| Some(TopicPartition::new(s.changelog_topic.as_deref()?, source.partition())))
            .collect()
    }

    /// True if any store keeps its local writes in write-behind caches.
    pub(crate) fn has_write_behind_caches(&self) -> bool {
        self.stores.iter().any(|s| s.write_behind.is_some())
    }

    /// Writes the write-behind caches whose time bound passed to their
    /// backends.
    pub(crate) fn flush_due_caches(&self) -> Result<()> {
        for s in &self.stores {
            if let Some(wb) = &s.write_behind {
                wb.flush_due()?;
            }
        }
        Ok(())
    }

    /// Writes every write-behind cache to its backend now.
    pub(crate) fn flush_caches(&self) -> Result<()> {
        for s in &self.stores {
            if let Some(wb) = &s.write_behind {
                wb.flush_all()?;
            }
        }
        Ok(())
    }

    /// How many store partitions are open.
    pub(crate) fn open_partitions(&self) -> usize {
        self.stores.iter().map(|s| s.store.assigned_partitions().len()).sum()
    }

    /// Deletes the data of every store (refused by a store with open
    /// partitions).
    pub(crate) fn destroy_all(&mut self) -> Result<()> {
        for s in &mut self.stores {
            s.store.destroy()?;
        }
        Ok(())
    }
}
