//! [`WindowedKeyView`]: the windows of one message key in a
//! [`WindowedTransaction`].

use std::ops::{Deref, DerefMut};

use serde::de::DeserializeOwned;
use serde::Serialize;
use state_core::{Direction, StorePartition};

use crate::error::Result;
use crate::options::{CollectedValues, ExpireOptions};
use crate::windowed::{ExpiredWindow, Window, WindowCursor, WindowedTransaction};

/// The windows of one message key: every method takes window bounds and
/// times (`i64` milliseconds), the message key is fixed.
///
/// Made by [`WindowedTransaction::key`] (reads and writes) or
/// [`WindowedTransaction::key_ref`] (reads). Each method is the
/// transaction's method of the same name with the message key as its
/// `prefix`.
///
/// ```
/// # use std::sync::Arc;
/// # use state_core::{Codec, MemoryPartition};
/// use state_txn::{ExpireOptions, ExpiredWindow, WindowedTransaction};
/// # let partition = Arc::new(MemoryPartition::new());
/// let mut txn = WindowedTransaction::new(partition, Codec::MsgPack, None);
/// let mut page = txn.key(b"/home");
/// for ts in [100, 900, 1500] {
///     let start = ts - ts % 1000;
///     let n: u64 = page.get_window(start, start + 1000)?.unwrap_or(0);
///     page.update_window(start, start + 1000, &(n + 1), ts)?;
/// }
/// let closed: Vec<ExpiredWindow<u64, ()>> = page.expire_windows(0, ExpireOptions::delete())?;
/// assert_eq!((closed[0].start, closed[0].end, closed[0].value), (0, 1000, 2));
/// assert_eq!(page.get_latest_timestamp()?, 1500);
/// # Ok::<(), state_txn::TxnError>(())
/// ```
#[derive(Debug)]
pub struct WindowedKeyView<'k, T> {
    txn: T,
    msg_key: &'k [u8],
}

impl<P: StorePartition + ?Sized> WindowedTransaction<P> {
    /// The windows of message key `msg_key` (the Kafka record's key
    /// bytes): the everyday API, reads and writes.
    pub fn key<'k>(&mut self, msg_key: &'k [u8]) -> WindowedKeyView<'k, &mut Self> {
        WindowedKeyView { txn: self, msg_key }
    }

    /// The windows of message key `msg_key`, read only: for a transaction
    /// shared by reference.
    pub fn key_ref<'k>(&self, msg_key: &'k [u8]) -> WindowedKeyView<'k, &Self> {
        WindowedKeyView { txn: self, msg_key }
    }
}

impl<'k, T> WindowedKeyView<'k, T> {
    /// The message key this view reads and writes under.
    pub fn message_key(&self) -> &'k [u8] {
        self.msg_key
    }
}

impl<T, P> WindowedKeyView<'_, T>
where
    T: Deref<Target = WindowedTransaction<P>>,
    P: StorePartition + ?Sized,
{
    /// The aggregate of window `[start, end)`, if any.
    pub fn get_window<V: DeserializeOwned>(&self, start: i64, end: i64) -> Result<Option<V>> {
        self.txn.get_window(start, end, self.msg_key)
    }

    /// The aggregate of window `[start, end)`, or `default`.
    pub fn get_window_or<V: DeserializeOwned>(&self, start: i64, end: i64, default: V) -> Result<V> {
        self.txn.get_window_or(start, end, self.msg_key, default)
    }

    /// The windows with `start_from < start <= start_to`, by start (then
    /// end), in `direction` ([`WindowedTransaction::get_windows`]).
    pub fn get_windows<V: DeserializeOwned>(
        &self,
        start_from: i64,
        start_to: i64,
        direction: Direction,
    ) -> Result<Vec<Window<V>>> {
        self.txn.get_windows(start_from, start_to, self.msg_key, direction)
    }

    /// A lazy walk over the windows with `start_from <= start` and, if
    /// given, `start <= start_to` ([`WindowedTransaction::windows_cursor`]).
    pub fn windows_cursor(&self, start_from: i64, start_to: Option<i64>, direction: Direction) -> Result<WindowCursor> {
        self.txn.windows_cursor(self.msg_key, start_from, start_to, direction)
    }

    /// [`windows_cursor`](Self::windows_cursor) as an iterator borrowing
    /// the transaction ([`WindowedTransaction::iter_windows`]).
    pub fn iter_windows<'a, V: DeserializeOwned + 'a>(
        &'a self,
        start_from: i64,
        start_to: Option<i64>,
        direction: Direction,
    ) -> Result<impl Iterator<Item = Result<Window<V>>> + 'a>
    where
        P: 'a,
    {
        self.txn.iter_windows(self.msg_key, start_from, start_to, direction)
    }

    /// The values collected with `start <= id < end`, in (id, counter) order.
    pub fn get_from_collection<C: DeserializeOwned>(&self, start: i64, end: i64) -> Result<Vec<C>> {
        self.txn.get_from_collection(start, end, self.msg_key)
    }

    /// The latest event time `update_window` saw for this key (0 if none).
    pub fn get_latest_timestamp(&self) -> Result<i64> {
        self.txn.get_latest_timestamp(self.msg_key)
    }

    /// The key's expiry checkpoint, `None` when never set
    /// ([`WindowedTransaction::get_expiry_checkpoint`]).
    pub fn get_expiry_checkpoint(&self) -> Result<Option<i64>> {
        self.txn.get_expiry_checkpoint(self.msg_key)
    }

    /// The key's expiry checkpoint, 0 when never set.
    pub fn get_latest_expired(&self) -> Result<i64> {
        self.txn.get_latest_expired(self.msg_key)
    }
}

impl<T, P> WindowedKeyView<'_, T>
where
    T: DerefMut<Target = WindowedTransaction<P>>,
    P: StorePartition + ?Sized,
{
    /// Sets the aggregate of window `[start, end)` and raises the key's
    /// latest timestamp to `timestamp` if it is newer.
    pub fn update_window(
        &mut self,
        start: i64,
        end: i64,
        value: &(impl Serialize + ?Sized),
        timestamp: i64,
    ) -> Result<()> {
        self.txn.update_window(start, end, value, timestamp, self.msg_key)
    }

    /// Deletes window `[start, end)`.
    pub fn delete_window(&mut self, start: i64, end: i64) -> Result<()> {
        self.txn.delete_window(start, end, self.msg_key)
    }

    /// The key's windows with start <= `max_start_time` not expired before,
    /// each returned once ever ([`WindowedTransaction::expire_windows`]).
    pub fn expire_windows<V: DeserializeOwned, C: DeserializeOwned>(
        &mut self,
        max_start_time: i64,
        options: ExpireOptions,
    ) -> Result<Vec<ExpiredWindow<V, C>>> {
        self.txn.expire_windows(max_start_time, self.msg_key, options)
    }

    /// Deletes the key's windows with start <= `max_start_time`
    /// ([`WindowedTransaction::delete_windows`]).
    pub fn delete_windows(&mut self, max_start_time: i64, values: CollectedValues) -> Result<()> {
        self.txn.delete_windows(max_start_time, values, self.msg_key)
    }

    /// Adds `value` to the key's collection under id `id` (`None`: the
    /// counter), returning the counter that orders it.
    pub fn add_to_collection(&mut self, id: Option<i64>, value: &(impl Serialize + ?Sized)) -> Result<u64> {
        self.txn.add_to_collection(id, value, self.msg_key)
    }

    /// Deletes the values collected with id < `end`, from `start` or, if
    /// `None`, from the last deleted id.
    pub fn delete_from_collection(&mut self, end: i64, start: Option<i64>) -> Result<()> {
        self.txn.delete_from_collection(end, self.msg_key, start)
    }

    /// Stores the key's expiry checkpoint.
    pub fn set_expiry_checkpoint(&mut self, value: i64) -> Result<()> {
        self.txn.set_expiry_checkpoint(value, self.msg_key)
    }
}
