//! Options of RocksDB partitions, with quixstreams' defaults.

use std::path::PathBuf;
use std::time::Duration;

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
    /// LRU block cache shared by the partitions of a store, bytes
    /// (default 128 MiB; 0 disables it).
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
        }
    }
}

impl RocksDbOptions {
    /// Options for a column family (and the DB defaults), using `cache` as
    /// the block cache if given.
    pub(crate) fn cf_options(&self, cache: Option<&rocksdb::Cache>) -> rocksdb::Options {
        let mut o = rocksdb::Options::default();
        o.set_write_buffer_size(self.write_buffer_size);
        o.set_max_write_buffer_number(self.max_write_buffer_number);
        o.set_target_file_size_base(self.target_file_size_base);
        o.set_compression_type(match self.compression {
            Compression::None => rocksdb::DBCompressionType::None,
            Compression::Lz4 => rocksdb::DBCompressionType::Lz4,
        });
        let mut table = rocksdb::BlockBasedOptions::default();
        match cache {
            Some(cache) => table.set_block_cache(cache),
            None => table.disable_cache(),
        }
        if let Some(bits) = self.bloom_filter_bits_per_key {
            table.set_bloom_filter(bits, false);
        }
        o.set_block_based_table_factory(&table);
        o
    }

    /// Database-wide options.
    pub(crate) fn db_options(&self, cache: Option<&rocksdb::Cache>) -> rocksdb::Options {
        let mut o = self.cf_options(cache);
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_use_fsync(self.use_fsync);
        // Bulk loads skip the WAL; flushing all column families atomically
        // keeps the changelog offset (metadata cf) from reaching disk before
        // the data it covers (other cfs). See docs/durability.md.
        o.set_atomic_flush(true);
        if let Some(dir) = &self.wal_dir {
            o.set_wal_dir(dir);
        }
        o
    }
}
