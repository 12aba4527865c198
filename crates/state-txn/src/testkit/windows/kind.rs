//! What every window type shares: [`WindowKind`] (one message in, the
//! windows updated and closed out), the [`Message`] it is given, its
//! [`MessageKey`], the [`Processed`] result and the [`Closing`] strategy.

use serde_json::Value;
use state_core::{Codec, StorePartition};

use crate::error::Result;
use crate::windowed::WindowedTransaction;

/// A window type: what it does with one message.
pub trait WindowKind {
    /// quixstreams' `process_window` for one message whose state prefix
    /// is already made.
    fn process_message(&self, txn: &mut WindowedTransaction, message: Message<'_>) -> Result<Processed>;

    /// quixstreams' `process_window` for one message.
    fn process(
        &self,
        txn: &mut WindowedTransaction,
        key: &MessageKey,
        value: &Value,
        timestamp: i64,
    ) -> Result<Processed> {
        let prefix = key.prefix(txn.codec())?;
        self.process_message(
            txn,
            Message {
                key,
                prefix: &prefix,
                value,
                timestamp,
            },
        )
    }
}

/// One message as a window sees it.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// Its key.
    pub key: &'a MessageKey,
    /// The key's state prefix ([`MessageKey::prefix`]).
    pub prefix: &'a [u8],
    /// Its value.
    pub value: &'a Value,
    /// Its timestamp, ms.
    pub timestamp: i64,
}

impl<'a> Message<'a> {
    /// Key, prefix, value and timestamp.
    pub fn parts(self) -> (&'a MessageKey, &'a [u8], &'a Value, i64) {
        (self.key, self.prefix, self.value, self.timestamp)
    }
}

/// A message key. quixstreams stores `bytes` keys as they are and encodes
/// every other key with the store's serializer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKey {
    /// A bytes key: its own prefix.
    Bytes(Vec<u8>),
    /// Any other key, as JSON: its prefix is the key encoded with the codec.
    Typed(String),
}

impl MessageKey {
    /// The state prefix of this key (quixstreams' `as_state(prefix=key)`).
    pub fn prefix(&self, codec: Codec) -> Result<Vec<u8>> {
        match self {
            MessageKey::Bytes(b) => Ok(b.clone()),
            MessageKey::Typed(s) => Ok(codec.encode(s)?),
        }
    }

    /// The key a prefix was made from, with the kind of `self` (quixstreams'
    /// `key_from_prefix(prefix, message_key)`).
    pub fn from_prefix<P: StorePartition + ?Sized>(
        &self,
        txn: &WindowedTransaction<P>,
        prefix: &[u8],
    ) -> Result<MessageKey> {
        match self {
            MessageKey::Bytes(_) => Ok(MessageKey::Bytes(prefix.to_vec())),
            MessageKey::Typed(_) => Ok(MessageKey::Typed(txn.key_from_prefix(prefix)?)),
        }
    }
}

/// Which watermark closes windows (quixstreams' `ClosingStrategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closing {
    /// Each key's own latest timestamp.
    Key,
    /// The partition's.
    Partition,
}

/// What processing one message produced: the windows updated and the
/// windows closed (`.current()` / `.final()`), each with its message key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Processed {
    /// Updated windows.
    pub updated: Vec<(MessageKey, Value)>,
    /// Closed windows, each emitted once.
    pub expired: Vec<(MessageKey, Value)>,
}
