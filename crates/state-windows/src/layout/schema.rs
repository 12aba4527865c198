//! The names a multi-aggregation's stored objects are keyed by, made
//! available to `Deserialize` while a window operator reads its state.
//!
//! quixstreams stores several aggregations as one object keyed
//! `"{result}/{suffix}"` (`{"n/Count":3,"s/Sum/x":15}`), and collected
//! columns as `{"x":1,"y":10}`. The keys are runtime strings (column names
//! chosen by the user) while `serde`'s `Deserialize` has no runtime input,
//! and the transaction layer decodes values itself; so the operator sets
//! the current [`Schema`] for the duration of each read
//! ([`with_schema`]), and the map visitors look keys up in it.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

/// The keys of one multi-aggregation's stored objects, by part (tuple
/// position).
#[derive(Debug, Default)]
pub(crate) struct Schema {
    /// The state key of each aggregator part (`None` for collectors).
    pub(crate) state_keys: Vec<Option<Box<str>>>,
    /// The collected column of each column-collector part.
    pub(crate) columns: Vec<Option<Box<str>>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Schema>>> = const { RefCell::new(None) };
}

/// Runs `f` with `schema` as the current schema of this thread.
///
/// Already current (the operator sets it once per record, and its reads
/// set it again): `f` runs as is. Making it current clones the `Arc`, an
/// atomic increment that cost ~5% of the hopping benchmark when done for
/// every read.
pub(crate) fn with_schema<R>(schema: &Arc<Schema>, f: impl FnOnce() -> R) -> R {
    if CURRENT.with(|c| c.borrow().as_ref().is_some_and(|s| Arc::ptr_eq(s, schema))) {
        return f();
    }
    struct Restore(Option<Arc<Schema>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let previous = CURRENT.with(|c| c.borrow_mut().replace(schema.clone()));
    let _restore = Restore(previous);
    f()
}

/// Runs `f` with the current schema, or is an error for a read outside
/// [`with_schema`]. The schema is borrowed, not cloned (no atomic
/// increment per decoded value); `f` must not call [`with_schema`] with
/// another schema (decoding never does).
pub(crate) fn with_current<R, E: de::Error>(f: impl FnOnce(&Schema) -> Result<R, E>) -> Result<R, E> {
    CURRENT.with(|c| match c.borrow().as_deref() {
        Some(schema) => f(schema),
        None => Err(E::custom(
            "a multi-aggregation state was decoded outside its window operator",
        )),
    })
}

/// Deserializes a map key into the index of the name it equals in
/// `names` (`None`: not one of them), without allocating.
pub(crate) struct SlotOf<'a>(pub(crate) &'a [Option<Box<str>>]);

impl<'de> DeserializeSeed<'de> for SlotOf<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for SlotOf<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|n| n.as_deref() == Some(key)))
    }

    fn visit_bytes<E: de::Error>(self, key: &[u8]) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|n| n.as_deref().map(str::as_bytes) == Some(key)))
    }
}
