//! [`EngineMemory`]: the block cache (and, under a memory budget, the write
//! buffer manager) that the partitions of a backend share.

use state_core::{BudgetPool, MemoryBudget};

/// Writers do not stall at the write buffer manager's limit (RocksDB's
/// `allow_stall`): a stalled writer waits for flushes that only writes to
/// the other databases would trigger (the manager flushes the database
/// being written to), so one thread writing to many partitions can wait
/// forever (seen with 192 partitions on a 128 MiB budget). Over the
/// limit, every write flushes its own partition's memtables instead.
const STALL_AT_LIMIT: bool = false;

/// The share of a budget's engine memory its memtables may take (the rest
/// is for blocks): a half, as Kafka Streams' bounded-memory recipe.
const MEMTABLE_SHARE_DIVISOR: usize = 2;

/// Smallest cache a budget gets, even when its engine share is gone (to
/// another engine on the same budget): RocksDB needs room for a few
/// blocks and the memtables' reservations.
const MIN_CACHE: usize = 8 << 20;

/// What the partitions of one backend share: a block cache (or none) and,
/// under a budget, the write buffer manager charging their memtables to it.
#[derive(Clone, Default)]
pub(crate) struct EngineMemory {
    pub(crate) cache: Option<rocksdb::Cache>,
    pub(crate) write_buffers: Option<rocksdb::WriteBufferManager>,
}

/// The one cache and write buffer manager of a [`MemoryBudget`], made by
/// the first RocksDB backend (or partition) opened with it.
struct BudgetMemory {
    cache: rocksdb::Cache,
    write_buffers: rocksdb::WriteBufferManager,
}

impl BudgetMemory {
    fn new(granted: usize) -> Self {
        let capacity = granted.max(MIN_CACHE);
        if granted < MIN_CACHE {
            tracing::warn!(
                granted,
                capacity,
                "the memory budget's engine share is (nearly) all taken by another engine; RocksDB gets a \
                 minimal block cache beyond the budget. Give each engine its own budget, or raise the engine share"
            );
        }
        let cache = rocksdb::Cache::new_lru_cache(capacity);
        let write_buffers = rocksdb::WriteBufferManager::new_write_buffer_manager_with_cache(
            capacity / MEMTABLE_SHARE_DIVISOR,
            STALL_AT_LIMIT,
            cache.clone(),
        );
        BudgetMemory { cache, write_buffers }
    }
}

impl EngineMemory {
    /// A block cache of `bytes` of its own (none for 0), no write buffer
    /// manager: the engine's memory outside a budget.
    pub(crate) fn own_cache(bytes: usize) -> Self {
        EngineMemory {
            cache: (bytes > 0).then(|| rocksdb::Cache::new_lru_cache(bytes)),
            write_buffers: None,
        }
    }

    /// The cache and write buffer manager of `budget`.
    pub(crate) fn of_budget(budget: &MemoryBudget) -> Self {
        let shared = budget.shared(BudgetPool::Engine, budget.engine_bytes(), BudgetMemory::new);
        EngineMemory {
            cache: Some(shared.cache.clone()),
            write_buffers: Some(shared.write_buffers.clone()),
        }
    }

    /// Bytes in the block cache (memtables charged to it included).
    pub(crate) fn cache_usage(&self) -> Option<usize> {
        self.cache.as_ref().map(rocksdb::Cache::get_usage)
    }

    /// Bytes of memtables the write buffer manager counts.
    pub(crate) fn memtable_usage(&self) -> Option<usize> {
        self.write_buffers.as_ref().map(rocksdb::WriteBufferManager::get_usage)
    }
}
