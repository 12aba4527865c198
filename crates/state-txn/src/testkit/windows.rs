//! quixstreams 3.28.1's window types (`dataframe/windows/*.py`) written on
//! our windowed transaction primitives, making the same transaction calls in
//! the same order: tumbling and hopping ([`FixedWindow`]), [`SlidingWindow`],
//! [`CountWindow`] and [`SessionWindow`]. They are small, unoptimised and
//! exist to prove the primitives carry every window type (the conformance
//! kit checks each against a naive model on every backend, and
//! `state-rocksdb`'s quixstreams tests check sessions and sliding windows
//! byte for byte against quixstreams itself).
//!
//! Values are JSON values; aggregations are quixstreams' `Count()` and
//! `Sum()`, and `Collect()`; results are the dictionaries quixstreams emits.

use serde_json::{Map, Value};
use state_core::{Codec, StorePartition};

use crate::error::Result;
use crate::WindowedTransaction;

mod count;
mod fixed;
mod session;
mod sliding;

pub use count::CountWindow;
pub use fixed::FixedWindow;
pub use session::SessionWindow;
pub use sliding::SlidingWindow;

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

/// An aggregator quixstreams ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregator {
    /// `Count()`: the number of non-null values.
    Count,
    /// `Sum()`: the sum of the (integer) values.
    Sum,
}

impl Aggregator {
    fn class(self) -> &'static str {
        match self {
            Aggregator::Count => "Count",
            Aggregator::Sum => "Sum",
        }
    }

    fn agg(self, old: &Value, value: &Value) -> Value {
        let old = old.as_i64().unwrap_or(0);
        if value.is_null() {
            return Value::from(old);
        }
        match self {
            Aggregator::Count => Value::from(old + 1),
            Aggregator::Sum => Value::from(old + value.as_i64().unwrap_or(0)),
        }
    }

    fn merge(self, a: &Value, b: &Value) -> Value {
        Value::from(a.as_i64().unwrap_or(0) + b.as_i64().unwrap_or(0))
    }
}

/// What a window computes: quixstreams' `SingleAggregationWindowMixin` (one
/// aggregator or collector, stored bare, emitted as `value`) or
/// `MultiAggregationWindowMixin` (a dictionary `{"<column>/<Class>": state}`,
/// emitted as one field per column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aggregations {
    /// `(result column, aggregator)`, in declaration order.
    pub aggregators: Vec<(String, Aggregator)>,
    /// The result column of a `Collect()` collector, if any.
    pub collect: Option<String>,
    /// The single-aggregation layout (exactly one aggregator or collector,
    /// named `value`).
    pub single: bool,
}

impl Aggregations {
    /// Multi-aggregation with the given aggregators and optional collector.
    pub fn multi(aggregators: &[(&str, Aggregator)], collect: Option<&str>) -> Self {
        Aggregations {
            aggregators: aggregators.iter().map(|(c, a)| ((*c).to_owned(), *a)).collect(),
            collect: collect.map(str::to_owned),
            single: false,
        }
    }

    /// Single aggregation with one aggregator.
    pub fn single(aggregator: Aggregator) -> Self {
        Aggregations {
            aggregators: vec![("value".to_owned(), aggregator)],
            collect: None,
            single: true,
        }
    }

    /// Single `Collect()`.
    pub fn single_collect() -> Self {
        Aggregations {
            aggregators: Vec::new(),
            collect: Some("value".to_owned()),
            single: true,
        }
    }

    /// True if there are aggregators.
    pub fn aggregate(&self) -> bool {
        !self.aggregators.is_empty()
    }

    /// True if values are collected.
    pub fn collects(&self) -> bool {
        self.collect.is_some()
    }

    fn state_key(column: &str, a: Aggregator) -> String {
        format!("{column}/{}", a.class())
    }

    /// `_initialize_value`.
    pub fn init(&self) -> Value {
        if self.single {
            return match self.aggregators.first() {
                Some(_) => Value::from(0),
                None => Value::Null,
            };
        }
        let mut m = Map::new();
        for (c, a) in &self.aggregators {
            m.insert(Self::state_key(c, *a), Value::from(0));
        }
        Value::Object(m)
    }

    /// `_aggregate_value`.
    pub fn agg(&self, state: &Value, value: &Value) -> Value {
        if self.single {
            return match self.aggregators.first() {
                Some((_, a)) => a.agg(state, value),
                None => Value::Null,
            };
        }
        let mut m = Map::new();
        for (c, a) in &self.aggregators {
            let k = Self::state_key(c, *a);
            let old = state.get(&k).cloned().unwrap_or(Value::from(0));
            m.insert(k, a.agg(&old, value));
        }
        Value::Object(m)
    }

    /// `_merge_values` (`a` starts earlier).
    pub fn merge(&self, a: &Value, b: &Value) -> Value {
        if self.single {
            return match self.aggregators.first() {
                Some((_, agg)) => agg.merge(a, b),
                None => Value::Null,
            };
        }
        let mut m = Map::new();
        for (c, agg) in &self.aggregators {
            let k = Self::state_key(c, *agg);
            let zero = Value::from(0);
            m.insert(
                k.clone(),
                agg.merge(a.get(&k).unwrap_or(&zero), b.get(&k).unwrap_or(&zero)),
            );
        }
        Value::Object(m)
    }

    /// `_results`: the dictionary emitted for a window.
    pub fn results(&self, aggregated: &Value, collected: &[Value], start: i64, end: i64) -> Value {
        let mut m = Map::new();
        m.insert("start".into(), Value::from(start));
        m.insert("end".into(), Value::from(end));
        if self.single {
            if self.aggregate() {
                m.insert("value".into(), aggregated.clone());
            } else {
                m.insert("value".into(), Value::Array(collected.to_vec()));
            }
            return Value::Object(m);
        }
        for (c, a) in &self.aggregators {
            let v = aggregated
                .get(Self::state_key(c, *a))
                .cloned()
                .unwrap_or(Value::from(0));
            m.insert(c.clone(), v);
        }
        if let Some(c) = &self.collect {
            m.insert(c.clone(), Value::Array(collected.to_vec()));
        }
        Value::Object(m)
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
