//! Store types by the transactions they hand out: key-value, windowed and
//! timestamped stores over RocksDB partitions. The manager registers these.

use std::sync::Arc;

use state_core::{ChangelogSink, Codec, Result, Store};
use state_txn::{PartitionTransaction, TimestampedConfig, TimestampedTransaction, WindowedTransaction};

use crate::{RocksDbPartition, RocksDbStore};

fn open(store: &mut RocksDbStore, partition: u32) -> Result<Arc<RocksDbPartition>> {
    store.assign_partition(partition)
}

/// A key-value store: [`PartitionTransaction`]s over RocksDB partitions.
#[derive(Debug)]
pub struct KeyValueStore {
    /// The partitions.
    pub store: RocksDbStore,
    /// The value codec.
    pub codec: Codec,
}

impl KeyValueStore {
    /// Starts a transaction on partition `partition` (opening it if needed).
    pub fn begin(
        &mut self,
        partition: u32,
        sink: Option<Arc<dyn ChangelogSink>>,
    ) -> Result<PartitionTransaction<RocksDbPartition>> {
        Ok(PartitionTransaction::new(
            open(&mut self.store, partition)?,
            self.codec,
            sink,
        ))
    }
}

/// A windowed store: [`WindowedTransaction`]s over RocksDB partitions.
#[derive(Debug)]
pub struct WindowedStore {
    /// The partitions.
    pub store: RocksDbStore,
    /// The value codec.
    pub codec: Codec,
}

impl WindowedStore {
    /// Starts a windowed transaction on partition `partition`.
    pub fn begin(
        &mut self,
        partition: u32,
        sink: Option<Arc<dyn ChangelogSink>>,
    ) -> Result<WindowedTransaction<RocksDbPartition>> {
        Ok(WindowedTransaction::new(
            open(&mut self.store, partition)?,
            self.codec,
            sink,
        ))
    }
}

/// A timestamped store: [`TimestampedTransaction`]s over RocksDB partitions
/// with one retention setting for the store.
#[derive(Debug)]
pub struct TimestampedStore {
    /// The partitions.
    pub store: RocksDbStore,
    /// The value codec.
    pub codec: Codec,
    /// Grace period and duplicate handling.
    pub config: TimestampedConfig,
}

impl TimestampedStore {
    /// Starts a timestamped transaction on partition `partition`.
    pub fn begin(
        &mut self,
        partition: u32,
        sink: Option<Arc<dyn ChangelogSink>>,
    ) -> Result<TimestampedTransaction<RocksDbPartition>> {
        Ok(TimestampedTransaction::new(
            open(&mut self.store, partition)?,
            self.codec,
            sink,
            self.config,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RocksDbOptions;

    #[test]
    fn each_store_type_hands_out_its_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |name: &str| RocksDbStore::new(name, dir.path().join(name), RocksDbOptions::default());
        let mut w = WindowedStore {
            store: mk("w"),
            codec: Codec::MsgPack,
        };
        let mut t = w.begin(0, None).unwrap();
        t.update_window(0, 10, &1u32, 3, b"k").unwrap();
        t.commit().unwrap();
        assert_eq!(
            w.begin(0, None).unwrap().get_window::<u32>(0, 10, b"k").unwrap(),
            Some(1)
        );

        let mut ts = TimestampedStore {
            store: mk("t"),
            codec: Codec::MsgPack,
            config: TimestampedConfig {
                grace_ms: 100,
                keep_duplicates: false,
            },
        };
        let mut t = ts.begin(0, None).unwrap();
        t.set_for_timestamp(5, &"v", b"k").unwrap();
        t.commit().unwrap();
        assert_eq!(
            ts.begin(0, None)
                .unwrap()
                .get_latest::<String>(9, b"k")
                .unwrap()
                .as_deref(),
            Some("v")
        );

        let mut kv = KeyValueStore {
            store: mk("kv"),
            codec: Codec::Json,
        };
        let mut t = kv.begin(1, None).unwrap();
        t.set("a", &1, b"").unwrap();
        t.commit().unwrap();
        assert!(dir.path().join("kv").join("1").exists());
    }
}
