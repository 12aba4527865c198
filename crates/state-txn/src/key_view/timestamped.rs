//! [`TimestampedKeyView`]: the values of one message key in a
//! [`TimestampedTransaction`].

use std::ops::{Deref, DerefMut};

use serde::de::DeserializeOwned;
use serde::Serialize;
use state_core::StorePartition;

use crate::error::Result;
use crate::timestamped::TimestampedTransaction;

/// The values of one message key by event time: every method takes times
/// (`i64` milliseconds), the message key is fixed.
///
/// Made by [`TimestampedTransaction::key`] (reads and writes) or
/// [`TimestampedTransaction::key_ref`] (reads). Each method is the
/// transaction's method of the same name with the message key as its
/// `prefix`.
///
/// ```
/// # use std::sync::Arc;
/// # use state_core::{Codec, MemoryPartition};
/// use state_txn::{TimestampedConfig, TimestampedTransaction};
/// # let partition = Arc::new(MemoryPartition::new());
/// let retention = TimestampedConfig { grace_ms: 60_000, keep_duplicates: false };
/// let mut txn = TimestampedTransaction::new(partition, Codec::MsgPack, None, retention);
/// let mut sensor = txn.key(b"sensor-7");
/// sensor.set_for_timestamp(1_000, &20.5)?;
/// sensor.set_for_timestamp(2_000, &21.0)?;
/// assert_eq!(sensor.get_latest::<f64>(1_999)?, Some(20.5));
/// # Ok::<(), state_txn::TxnError>(())
/// ```
#[derive(Debug)]
pub struct TimestampedKeyView<'k, T> {
    txn: T,
    msg_key: &'k [u8],
}

impl<P: StorePartition + ?Sized> TimestampedTransaction<P> {
    /// The values of message key `msg_key` (the Kafka record's key bytes):
    /// the everyday API, reads and writes.
    pub fn key<'k>(&mut self, msg_key: &'k [u8]) -> TimestampedKeyView<'k, &mut Self> {
        TimestampedKeyView { txn: self, msg_key }
    }

    /// The values of message key `msg_key`, read only: for a transaction
    /// shared by reference.
    pub fn key_ref<'k>(&self, msg_key: &'k [u8]) -> TimestampedKeyView<'k, &Self> {
        TimestampedKeyView { txn: self, msg_key }
    }
}

impl<'k, T> TimestampedKeyView<'k, T> {
    /// The message key this view reads and writes under.
    pub fn message_key(&self) -> &'k [u8] {
        self.msg_key
    }
}

impl<T, P> TimestampedKeyView<'_, T>
where
    T: Deref<Target = TimestampedTransaction<P>>,
    P: StorePartition + ?Sized,
{
    /// The newest value at or before `timestamp` and not before the
    /// minimum eligible timestamp ([`TimestampedTransaction::get_latest`]).
    pub fn get_latest<V: DeserializeOwned>(&self, timestamp: i64) -> Result<Option<V>> {
        self.txn.get_latest(timestamp, self.msg_key)
    }

    /// The values with `start <= timestamp < end`, oldest first.
    pub fn get_interval<V: DeserializeOwned>(&self, start: i64, end: i64) -> Result<Vec<V>> {
        self.txn.get_interval(start, end, self.msg_key)
    }

    /// The first `limit` values with `start <= timestamp < end`.
    pub fn get_interval_limited<V: DeserializeOwned>(&self, start: i64, end: i64, limit: usize) -> Result<Vec<V>> {
        self.txn.get_interval_limited(start, end, self.msg_key, limit)
    }

    /// The key's minimum eligible timestamp (0 if none): older entries are
    /// expired.
    pub fn min_eligible_timestamp(&self) -> Result<i64> {
        self.txn.min_eligible_timestamp(self.msg_key)
    }
}

impl<T, P> TimestampedKeyView<'_, T>
where
    T: DerefMut<Target = TimestampedTransaction<P>>,
    P: StorePartition + ?Sized,
{
    /// Stores `value` at event time `timestamp`
    /// ([`TimestampedTransaction::set_for_timestamp`]).
    pub fn set_for_timestamp(&mut self, timestamp: i64, value: &(impl Serialize + ?Sized)) -> Result<()> {
        self.txn.set_for_timestamp(timestamp, value, self.msg_key)
    }

    /// Deletes the entries with `start <= timestamp < end`, returning how
    /// many were deleted.
    pub fn delete_interval(&mut self, start: i64, end: i64) -> Result<usize> {
        self.txn.delete_interval(start, end, self.msg_key)
    }
}
