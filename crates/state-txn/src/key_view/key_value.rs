//! [`KeyView`]: the state of one message key in a [`PartitionTransaction`].

use std::ops::{Deref, DerefMut};

use serde::de::DeserializeOwned;
use serde::Serialize;
use state_core::StorePartition;

use crate::error::Result;
use crate::transaction::PartitionTransaction;
use crate::ttl::{GetOptions, SetOptions};

/// The state of one message key in a key-value transaction: every method
/// takes the state key only, the message key is fixed.
///
/// Made by [`PartitionTransaction::key`] (reads and writes) or
/// [`PartitionTransaction::key_ref`] (reads, from a shared transaction such
/// as a reader's). Reads and writes are exactly the transaction's: a view
/// adds nothing and keeps nothing.
///
/// ```
/// # use std::sync::Arc;
/// # use state_core::{Codec, MemoryPartition};
/// # use state_txn::PartitionTransaction;
/// # let partition = Arc::new(MemoryPartition::new());
/// let mut txn = PartitionTransaction::new(partition, Codec::MsgPack, None);
/// let msg_key: &[u8] = b"user-1"; // what Kafka gives
/// let mut user = txn.key(msg_key);
/// user.set("name", "alice")?;
/// user.set("count", &3u64)?;
/// assert_eq!(user.get::<String>("name")?.as_deref(), Some("alice"));
/// user.delete("count")?;
/// assert!(!user.exists("count")?);
/// # Ok::<(), state_txn::TxnError>(())
/// ```
#[derive(Debug)]
pub struct KeyView<'k, T> {
    txn: T,
    msg_key: &'k [u8],
}

impl<P: StorePartition + ?Sized> PartitionTransaction<P> {
    /// The state of message key `msg_key` (the Kafka record's key bytes):
    /// the everyday API, reads and writes.
    pub fn key<'k>(&mut self, msg_key: &'k [u8]) -> KeyView<'k, &mut Self> {
        KeyView { txn: self, msg_key }
    }

    /// The state of message key `msg_key`, read only: for a transaction
    /// shared by reference (the closures of the manager's `StateReader`,
    /// say).
    pub fn key_ref<'k>(&self, msg_key: &'k [u8]) -> KeyView<'k, &Self> {
        KeyView { txn: self, msg_key }
    }
}

impl<'k, T> KeyView<'k, T> {
    /// The message key this view reads and writes under.
    pub fn message_key(&self) -> &'k [u8] {
        self.msg_key
    }
}

impl<T, P> KeyView<'_, T>
where
    T: Deref<Target = PartitionTransaction<P>>,
    P: StorePartition + ?Sized,
{
    /// The value of state key `key`, decoded
    /// ([`PartitionTransaction::get`]).
    pub fn get<V: DeserializeOwned>(&self, key: &(impl Serialize + ?Sized)) -> Result<Option<V>> {
        self.txn.get(key, self.msg_key)
    }

    /// The value of `key`, or `default` if it has none.
    pub fn get_or<V: DeserializeOwned>(&self, key: &(impl Serialize + ?Sized), default: V) -> Result<V> {
        self.txn.get_or(key, self.msg_key, default)
    }

    /// The value of `key` as `options` say (column family, the record's
    /// event time for per-write TTL) ([`PartitionTransaction::get_with`]).
    pub fn get_with<V: DeserializeOwned>(
        &self,
        key: &(impl Serialize + ?Sized),
        options: GetOptions<'_>,
    ) -> Result<Option<V>> {
        self.txn.get_with(key, self.msg_key, options)
    }

    /// True if `key` has a value.
    pub fn exists(&self, key: &(impl Serialize + ?Sized)) -> Result<bool> {
        self.txn.exists(key, self.msg_key)
    }

    /// True if `key` has a value as `options` say
    /// ([`PartitionTransaction::exists_with`]).
    pub fn exists_with(&self, key: &(impl Serialize + ?Sized), options: GetOptions<'_>) -> Result<bool> {
        self.txn.exists_with(key, self.msg_key, options)
    }

    /// The value bytes of raw state key bytes `key`
    /// ([`PartitionTransaction::get_bytes`]).
    pub fn get_bytes(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.txn.get_bytes(key, self.msg_key)
    }

    /// The value bytes of raw state key bytes `key` as `options` say.
    pub fn get_bytes_with(&self, key: &[u8], options: GetOptions<'_>) -> Result<Option<Vec<u8>>> {
        self.txn.get_bytes_with(key, self.msg_key, options)
    }

    /// True if raw state key bytes `key` have a value.
    pub fn exists_bytes(&self, key: &[u8]) -> Result<bool> {
        self.txn.exists_bytes(key, self.msg_key)
    }
}

impl<T, P> KeyView<'_, T>
where
    T: DerefMut<Target = PartitionTransaction<P>>,
    P: StorePartition + ?Sized,
{
    /// Sets state key `key` to `value` ([`PartitionTransaction::set`]).
    pub fn set(&mut self, key: &(impl Serialize + ?Sized), value: &(impl Serialize + ?Sized)) -> Result<()> {
        self.txn.set(key, value, self.msg_key)
    }

    /// Sets `key` to `value` as `options` say: column family, the record's
    /// event time and a TTL ([`PartitionTransaction::set_with`]).
    pub fn set_with(
        &mut self,
        key: &(impl Serialize + ?Sized),
        value: &(impl Serialize + ?Sized),
        options: SetOptions<'_>,
    ) -> Result<()> {
        self.txn.set_with(key, value, self.msg_key, options)
    }

    /// Deletes `key` (no error if it has no value).
    pub fn delete(&mut self, key: &(impl Serialize + ?Sized)) -> Result<()> {
        self.txn.delete(key, self.msg_key)
    }

    /// Sets raw state key bytes `key` to raw value bytes
    /// ([`PartitionTransaction::set_bytes`]).
    pub fn set_bytes(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.txn.set_bytes(key, value, self.msg_key)
    }

    /// Sets raw state key bytes `key` to raw value bytes as `options` say.
    pub fn set_bytes_with(&mut self, key: &[u8], value: &[u8], options: SetOptions<'_>) -> Result<()> {
        self.txn.set_bytes_with(key, value, self.msg_key, options)
    }

    /// Deletes raw state key bytes `key`.
    pub fn delete_bytes(&mut self, key: &[u8]) -> Result<()> {
        self.txn.delete_bytes(key, self.msg_key)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use state_core::{Codec, MemoryPartition};

    use crate::PartitionTransaction;

    #[test]
    fn the_view_reads_and_writes_what_the_prefix_methods_do() {
        let mut t = PartitionTransaction::new(Arc::new(MemoryPartition::new()), Codec::Json, None);
        t.key(b"user-1").set("count", &1u64).unwrap();
        t.set("count", &2u64, b"user-2").unwrap();
        assert_eq!(t.get::<_, u64>("count", b"user-1").unwrap(), Some(1));
        assert_eq!(t.key_ref(b"user-2").get::<u64>("count").unwrap(), Some(2));
        assert_eq!(t.key_ref(b"user-3").get_or("count", 0u64).unwrap(), 0);
        let mut raw = t.key(b"user-1");
        raw.set_bytes(b"raw", b"\x01").unwrap();
        assert_eq!(raw.get_bytes(b"raw").unwrap().as_deref(), Some(&b"\x01"[..]));
        raw.delete_bytes(b"raw").unwrap();
        assert!(!raw.exists_bytes(b"raw").unwrap());
        assert_eq!(raw.message_key(), b"user-1");
        assert_eq!(
            t.iter_range(state_core::cf::DEFAULT, b"", None, state_core::Direction::Forward)
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>(),
            vec![b"user-1|\"count\"".to_vec(), b"user-2|\"count\"".to_vec()],
            "the message key is the prefix"
        );
    }
}
