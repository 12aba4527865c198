//! [`FjallOptions`]: how fjall partitions are opened and written.

use std::time::Duration;

use state_core::MemoryBudget;

/// How a fjall partition is opened and written.
#[derive(Clone, Debug)]
pub struct FjallOptions {
    /// Block cache of this partition, bytes (default 32 MiB, fjall's own
    /// default). Without a [`memory_budget`](Self::memory_budget) every
    /// partition has its own.
    pub cache_size: u64,
    /// Memtable size per keyspace before it is flushed to a segment,
    /// bytes (default 64 MiB, as RocksDB's `write_buffer_size` here).
    pub max_memtable_size: u64,
    /// Journal size that forces memtables to be flushed, bytes (default
    /// 512 MiB; fjall refuses less than 64 MiB, smaller values are raised).
    pub max_journaling_size: u64,
    /// Background threads (flush, compaction) of this partition's database
    /// (default 1; fjall's default is min(cores, 4) per database, which adds
    /// up with many partitions).
    pub worker_threads: usize,
    /// fsync every batch written with
    /// [`StorePartition::write`](state_core::StorePartition::write) (default
    /// false: handed to the OS only; the changelog covers the gap).
    pub sync_writes: bool,
    /// How many times to try opening a partition whose lock is held.
    pub open_max_retries: u32,
    /// First wait between open attempts; doubles each time, capped at 5 s.
    pub open_retry_backoff: Duration,
    /// One memory budget for the process (default none). With a budget,
    /// every partition on it shares one block cache of half the budget's
    /// engine share ([`cache_size`](Self::cache_size) is ignored), and each
    /// partition's memtables stay within a reservation of the other half:
    /// when the budget cannot cover them, the partition seals its
    /// memtables so fjall flushes them (a soft bound: writes go on while
    /// the flush runs). See `docs/operations.md`, "Memory".
    pub memory_budget: Option<MemoryBudget>,
}

impl Default for FjallOptions {
    fn default() -> Self {
        FjallOptions {
            cache_size: 32 << 20,
            max_memtable_size: 64 << 20,
            max_journaling_size: 512 << 20,
            worker_threads: 1,
            sync_writes: false,
            open_max_retries: 10,
            open_retry_backoff: Duration::from_millis(200),
            memory_budget: None,
        }
    }
}
