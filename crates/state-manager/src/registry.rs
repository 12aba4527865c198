//! Registered stores and their open partitions.

use std::sync::Arc;

use state_core::{Codec, MemoryStore, Store, StorePartition};
use state_rocksdb::RocksDbStore;
use state_txn::TimestampedConfig;

use crate::error::Result;

/// The transactions a store hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// Key-value ([`state_txn::PartitionTransaction`]).
    KeyValue,
    /// Windows ([`state_txn::WindowedTransaction`]).
    Windowed,
    /// Values by event time ([`state_txn::TimestampedTransaction`]).
    Timestamped(TimestampedConfig),
}

impl StoreKind {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            StoreKind::KeyValue => "key-value",
            StoreKind::Windowed => "windowed",
            StoreKind::Timestamped(_) => "timestamped",
        }
    }
}

/// Where a store keeps its partitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// RocksDB under the state directory (default).
    #[default]
    RocksDb,
    /// In memory; rebuilt from the changelog on every assignment.
    Memory,
}

/// How a store is registered.
#[derive(Clone, Copy, Debug)]
pub struct StoreSpec {
    /// The transaction type.
    pub kind: StoreKind,
    /// RocksDB or memory.
    pub backend: Backend,
    /// Value codec.
    pub codec: Codec,
    /// Whether changes go to a changelog topic (needed for fault tolerance).
    pub changelog: bool,
}

impl StoreSpec {
    /// A RocksDB store of `kind` with a changelog and the MessagePack codec.
    pub fn new(kind: StoreKind) -> Self {
        StoreSpec {
            kind,
            backend: Backend::RocksDb,
            codec: Codec::MsgPack,
            changelog: true,
        }
    }
}

pub(crate) enum StoreImpl {
    Rocks(RocksDbStore),
    Memory(MemoryStore),
}

impl StoreImpl {
    pub(crate) fn assign(&mut self, partition: u32) -> Result<Arc<dyn StorePartition>> {
        Ok(match self {
            StoreImpl::Rocks(s) => s.assign_partition(partition)? as Arc<dyn StorePartition>,
            StoreImpl::Memory(s) => s.assign_partition(partition)? as Arc<dyn StorePartition>,
        })
    }

    pub(crate) fn revoke(&mut self, partition: u32) -> Result<()> {
        match self {
            StoreImpl::Rocks(s) => s.revoke_partition(partition)?,
            StoreImpl::Memory(s) => s.revoke_partition(partition)?,
        }
        Ok(())
    }

    pub(crate) fn partition(&self, partition: u32) -> Option<Arc<dyn StorePartition>> {
        match self {
            StoreImpl::Rocks(s) => s.partition(partition).map(|p| p as Arc<dyn StorePartition>),
            StoreImpl::Memory(s) => s.partition(partition).map(|p| p as Arc<dyn StorePartition>),
        }
    }

    pub(crate) fn assigned(&self) -> Vec<u32> {
        match self {
            StoreImpl::Rocks(s) => s.assigned_partitions(),
            StoreImpl::Memory(s) => s.assigned_partitions(),
        }
    }

    pub(crate) fn location(&self, partition: u32) -> String {
        match self {
            StoreImpl::Rocks(s) => s.partition_path(partition).display().to_string(),
            StoreImpl::Memory(s) => format!("memory store {} partition {partition}", s.name()),
        }
    }
}

pub(crate) struct Registered {
    pub(crate) stream: String,
    pub(crate) name: String,
    pub(crate) spec: StoreSpec,
    pub(crate) changelog_topic: Option<String>,
    pub(crate) store: StoreImpl,
}
