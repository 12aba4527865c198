//! The transactions of one processing interval, committed together.

use std::collections::BTreeMap;

use state_core::ProcessedOffsets;
use state_txn::{PartitionTransaction, TimestampedTransaction, WindowedTransaction};

/// One open transaction of a store partition.
pub(crate) enum Txn {
    KeyValue(PartitionTransaction),
    Windowed(WindowedTransaction),
    Timestamped(TimestampedTransaction),
}

impl Txn {
    pub(crate) fn prepare(&mut self, offsets: Option<&ProcessedOffsets>) -> state_txn::Result<()> {
        match self {
            Txn::KeyValue(t) => t.prepare(offsets),
            Txn::Windowed(t) => t.prepare(offsets),
            Txn::Timestamped(t) => t.prepare(offsets),
        }
    }

    pub(crate) fn flush(&mut self, offset: Option<u64>) -> state_txn::Result<()> {
        match self {
            Txn::KeyValue(t) => t.flush(offset),
            Txn::Windowed(t) => t.flush(offset),
            Txn::Timestamped(t) => t.flush(offset),
        }
    }
}

/// Key of a store partition transaction: (stream, store, partition).
pub(crate) type TxnKey = (String, String, u32);

/// The state of the current processing interval.
#[derive(Default)]
pub(crate) struct CheckpointState {
    pub(crate) txns: BTreeMap<TxnKey, Txn>,
    /// (topic, partition) -> offset of the last processed record.
    pub(crate) processed: BTreeMap<(String, u32), i64>,
    /// Exactly-once: a Kafka transaction is open.
    pub(crate) kafka_txn_open: bool,
}

impl CheckpointState {
    pub(crate) fn is_empty(&self) -> bool {
        self.txns.is_empty() && self.processed.is_empty()
    }
}
