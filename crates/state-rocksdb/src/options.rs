//! Options of RocksDB partitions, with quixstreams' defaults.

use std::path::PathBuf;
use std::time::Duration;

use state_core::MemoryBudget;

use crate::hook::{HookTarget, RocksDbOptionsHook};
use crate::memory::EngineMemory;

/// Block compression of SST files. Only LZ4 is compiled in (quixstreams'
/// default); other algorithms would double the native build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    None,
    /// LZ4 (the default).
    #[default]
    Lz4,
}

/// How a RocksDB partition is opened and written.
#[derive(Clone, Debug)]
pub struct RocksDbOptions {
    /// Memtable size per column family, bytes (default 64 MiB).
    pub write_buffer_size: usize,
    /// Memtables per column family before writes stall (default 3).
    pub max_write_buffer_number: i32,
    /// Target SST file size, bytes (default 64 MiB).
    pub target_file_size_base: u64,
    /// LRU block cache shared by the partitions of a backend, bytes
    /// (default 128 MiB; 0 disables it). Ignored with a
    /// [`memory_budget`](Self::memory_budget), whose cache is used.
    pub block_cache_size: usize,
    /// Budget of the cache of committed values in front of point reads
    /// (`state_cache::WriteThroughCache`), bytes (default 0: off). It pays off when hot keys live in SST files
    /// (a RocksDB read then costs a block-cache lookup and a block search);
    /// while the working set is in the memtable, as in every workload of
    /// `cargo xtask bench`, it only adds copies, so it is opt-in. See
    /// `docs/performance.md`.
    pub value_cache_bytes: usize,
    /// Bloom filter bits per key for point lookups (`None`: no filter).
    pub bloom_filter_bits_per_key: Option<f64>,
    /// SST compression.
    pub compression: Compression,
    /// fsync every write batch (default false: the WAL is written but not
    /// synced per batch, as in quixstreams; the changelog covers the gap).
    pub sync_writes: bool,
    /// Use fsync instead of fdatasync when RocksDB syncs files.
    pub use_fsync: bool,
    /// Put the write-ahead log in another directory (e.g. a faster disk).
    pub wal_dir: Option<PathBuf>,
    /// How many times to try opening a partition whose lock is held.
    pub open_max_retries: u32,
    /// First wait between open attempts; doubles each time, capped at 5 s.
    pub open_retry_backoff: Duration,
    /// One memory budget for the process (default none: the bounds above
    /// apply per backend and per column family). With a budget, every
    /// partition of every backend given it shares one LRU block cache of
    /// the budget's [engine share](MemoryBudget::engine_bytes), and their
    /// memtables are charged to that cache through one write buffer
    /// manager (at most half of it), so block cache plus memtables stay
    /// under that one number; index and filter blocks are kept in the cache
    /// (and so counted); memtables grow in small arena blocks; the value
    /// cache ([`value_cache_bytes`](Self::value_cache_bytes)) draws from
    /// the budget's cache share. See `docs/operations.md`, "Memory".
    pub memory_budget: Option<MemoryBudget>,
    /// A closure called with the options of every partition after the
    /// library set its own and before the partition is opened (see
    /// [`RocksDbOptionsHook`] for what it may not change).
    pub options_hook: Option<RocksDbOptionsHook>,
}

impl Default for RocksDbOptions {
    fn default() -> Self {
        RocksDbOptions {
            write_buffer_size: 64 << 20,
            max_write_buffer_number: 3,
            target_file_size_base: 64 << 20,
            block_cache_size: 128 << 20,
            value_cache_bytes: 0,
            bloom_filter_bits_per_key: Some(10.0),
            compression: Compression::Lz4,
            sync_writes: false,
            use_fsync: true,
            wal_dir: None,
            open_max_retries: 10,
            open_retry_backoff: Duration::from_millis(200),
            memory_budget: None,
            options_hook: None,
        }
    }
}

/// Memtables grow by blocks of this size under a memory budget. Every
/// column family written since its last flush holds at least one block,
/// and the write buffer manager counts whole blocks: RocksDB's default (up
/// to 1 MiB) times the column families of hundreds of partitions would
/// reach the budget's memtable limit with barely any data, and every write
/// would then flush (at 64 KiB, 192 partitions of 3 stores reached a
/// 128 MiB budget's limit).
pub(crate) const BUDGET_ARENA_BLOCK: usize = 16 << 10;

/// Buffer of each file RocksDB writes (the write-ahead log of every
/// partition, flush and compaction outputs) under a memory budget: the
/// default (1 MiB) is kept per partition's log, outside the budget.
pub(crate) const BUDGET_FILE_BUFFER: usize = 64 << 10;

/// Read-ahead of each compaction input under a memory budget (default
/// 2 MiB per input file, outside the budget).
pub(crate) const BUDGET_READAHEAD: usize = 256 << 10;

impl RocksDbOptions {
    /// These options with `hook` called on every partition's options.
    pub fn with_options_hook(
        mut self,
        hook: impl Fn(&HookTarget<'_>, &mut rocksdb::Options, &mut rocksdb::Options) + Send + Sync + 'static,
    ) -> Self {
        self.options_hook = Some(RocksDbOptionsHook::new(hook));
        self
    }

    /// The memory these options ask for: the budget's cache and write
    /// buffer manager (shared with every other user of the budget), or a
    /// cache of `block_cache_size` of its own.
    pub(crate) fn engine_memory(&self) -> EngineMemory {
        match &self.memory_budget {
            Some(budget) => EngineMemory::of_budget(budget),
            None => EngineMemory::own_cache(self.block_cache_size),
        }
    }

    /// Options for a column family (and the DB defaults), with `memory`'s
    /// block cache if it has one.
    pub(crate) fn cf_options(&self, memory: &EngineMemory) -> rocksdb::Options {
        let mut o = rocksdb::Options::default();
        o.set_write_buffer_size(self.write_buffer_size);
        o.set_max_write_buffer_number(self.max_write_buffer_number);
        o.set_target_file_size_base(self.target_file_size_base);
        o.set_compression_type(match self.compression {
            Compression::None => rocksdb::DBCompressionType::None,
            Compression::Lz4 => rocksdb::DBCompressionType::Lz4,
        });
        let mut table = rocksdb::BlockBasedOptions::default();
        match &memory.cache {
            Some(cache) => table.set_block_cache(cache),
            None => table.disable_cache(),
        }
        if let Some(bits) = self.bloom_filter_bits_per_key {
            table.set_bloom_filter(bits, false);
        }
        if memory.write_buffers.is_some() {
            // Under a budget: what table readers hold goes into the cache,
            // where it is counted (L0's stay pinned: read on every get).
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            o.set_arena_block_size(BUDGET_ARENA_BLOCK);
        }
        o.set_block_based_table_factory(&table);
        o
    }

    /// Database-wide options.
    pub(crate) fn db_options(&self, memory: &EngineMemory) -> rocksdb::Options {
        let mut o = self.cf_options(memory);
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_use_fsync(self.use_fsync);
        // Bulk loads skip the WAL; flushing all column families atomically
        // keeps the changelog offset (metadata cf) from reaching disk before
        // the data it covers (other cfs). See docs/durability.md. Checked
        // after an options hook ran (`hook::check_required`).
        o.set_atomic_flush(true);
        // The MANIFEST records every synced WAL (and its deletion), so an
        // open that reads a MANIFEST cut short (a partial copy, a damaged
        // disk) finds the WALs its older version still expects missing and
        // fails with `Corruption` (rebuilt from the changelog), instead of
        // replaying the newest WAL over the older version's tables: that
        // would pair the newest stored changelog offset with data missing
        // the tables the cut forgot (the crash harness's `--corrupt`
        // showed counts lost so).
        o.set_track_and_verify_wals_in_manifest(true);
        if let Some(dir) = &self.wal_dir {
            o.set_wal_dir(dir);
        }
        if let Some(wbm) = &memory.write_buffers {
            o.set_write_buffer_manager(wbm);
            o.set_writable_file_max_buffer_size(BUDGET_FILE_BUFFER as u64);
            o.set_compaction_readahead_size(BUDGET_READAHEAD);
        }
        o
    }
}
