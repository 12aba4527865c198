//! [`Context`]: what a processor works with for one record — the current
//! checkpoint's store transactions of the record's partition, and the
//! producer of output records.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::BaseRecord;
use state_changelog::OutputRecord;

use crate::error::{ManagerError, Result};
use crate::manager::StateStoreManager;
use crate::spec::{StoreHandle, StoreType};

/// The processor's access to state and output for one record.
///
/// * [`store`](Self::store): the current checkpoint's transaction of a
///   store's partition, the record's partition, typed by the handle.
/// * [`send`](Self::send): an output record through the manager's producer:
///   under exactly-once it belongs to the checkpoint's Kafka transaction
///   (visible to read-committed consumers once the checkpoint commits);
///   under at-least-once it is delivered before the checkpoint commits
///   its offsets.
pub struct Context<'a> {
    manager: &'a mut StateStoreManager,
    partition: u32,
    timestamp: Option<i64>,
}

impl<'a> Context<'a> {
    /// The context of a record of partition `partition` with `timestamp`.
    pub(crate) fn new(manager: &'a mut StateStoreManager, partition: u32, timestamp: Option<i64>) -> Self {
        Context {
            manager,
            partition,
            timestamp,
        }
    }

    /// The current checkpoint's transaction on the record's partition of
    /// the store behind `store` (a `PartitionTransaction` for key-value
    /// stores, a `WindowedTransaction` for windowed ones, ...), started on
    /// first use. See [`StateStoreManager::txn`] for its errors.
    pub fn store<T: StoreType>(&mut self, store: &StoreHandle<T>) -> Result<&mut T::Txn> {
        self.manager.txn(store, self.partition)
    }

    /// Sends `record` to an output topic with the checkpoint (see the type's
    /// docs). A record without a partition goes where the manager's
    /// partitioner ([`crate::ManagerConfig::partitioner`]) puts its key; a
    /// record without a timestamp gets the input record's, as in Kafka
    /// Streams, so event time flows downstream. Waits while the producer's
    /// queue is full.
    pub fn send<K, P>(&mut self, record: BaseRecord<'_, K, P>) -> Result<()>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let mut record = record;
        if record.timestamp.is_none() {
            record.timestamp = self.timestamp;
        }
        let producer = self.manager.output_producer()?;
        loop {
            match producer.kafka().send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.kafka().poll(Duration::from_millis(5));
                }
                Err((source, _)) => {
                    return Err(ManagerError::Kafka {
                        operation: "sending an output record",
                        source,
                    })
                }
            }
        }
    }

    /// [`send`](Self::send) of `value` under `key` to `topic`, through
    /// the manager's handle for `topic`
    /// ([`StateStoreManager::output_topic`]): the topic is looked up once,
    /// not for every record.
    pub fn send_to(&mut self, topic: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let out = self.manager.output_topic(topic)?;
        let mut record = OutputRecord::new().key(key).value(value);
        if let Some(ts) = self.timestamp {
            record = record.timestamp(ts);
        }
        Ok(out.send(record)?)
    }

    /// The record's partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The manager, for what the context does not cover (another
    /// partition's transaction, the configuration, ...).
    pub fn manager(&mut self) -> &mut StateStoreManager {
        self.manager
    }
}
