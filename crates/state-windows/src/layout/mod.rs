//! How a window stores what it computes, in quixstreams 3.28.1's layouts:
//! [`Single`] (one aggregator, its state stored bare: quixstreams'
//! `.sum()`, `.count()`, ...), [`CollectValues`] (`.collect()`: whole
//! records, no state) and [`Multi`] (`.agg(a=..., b=...)`: the states in
//! one object keyed by `"{name}/{suffix}"`, collected values as records or
//! objects of columns).
//!
//! The window kinds see only [`Aggregation`].

mod multi;
mod schema;
mod single;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::DefinitionError;

pub use multi::{
    AggPart, AggregatorPart, CollectPart, CollectorPart, IntoPart, IntoParts, MergePart, MergeParts, Multi, MultiItem,
    MultiStored, Never, NoWhole, Part, PartInfo, PartRole, Parts, WholeKind, WholeOf, WholeValue,
};
pub use single::{CollectValues, Single};

mod sealed {
    pub trait Sealed {}
}
pub(crate) use sealed::Sealed;

/// What a window computes and how it stores it: [`Single`],
/// [`CollectValues`] or [`Multi`]. Sealed; aggregations of your own
/// implement [`Aggregator`](crate::Aggregator).
pub trait Aggregation<V: ?Sized>: Sealed {
    /// The state of a window, in memory.
    type State;
    /// What a window emits.
    type Output;
    #[doc(hidden)]
    /// A window's stored state, as decoded (`null` is read as `None`
    /// around it and means the initial state).
    type Stored: DeserializeOwned;
    #[doc(hidden)]
    /// A collected value, as decoded.
    type Item: DeserializeOwned;

    /// True if it has aggregators.
    fn aggregates(&self) -> bool;
    /// True if it collects values.
    fn collects(&self) -> bool;
    /// The initial state.
    fn init(&self) -> Self::State;
    /// Adds a record.
    fn add(&self, state: &mut Self::State, record: &V, timestamp: i64);
    #[doc(hidden)]
    /// The state of a decoded stored value.
    fn restore(&self, stored: Self::Stored) -> Self::State;
    #[doc(hidden)]
    /// What is stored for `state`.
    fn stored<'a>(&'a self, state: &'a Self::State) -> impl Serialize + 'a
    where
        V: 'a;
    #[doc(hidden)]
    /// What is collected for `record`.
    fn item<'a>(&'a self, record: &'a V) -> impl Serialize + 'a
    where
        V: 'a;
    #[doc(hidden)]
    /// Runs `f`, a read of stored states or collected values.
    fn decoding<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
    /// The result of a window with `state` and the values collected in it.
    fn output(&self, state: &Self::State, collected: Vec<Self::Item>) -> Self::Output;
    /// quixstreams' function name for store names (`count`, `sum`, ...),
    /// for the single layouts.
    fn function(&self) -> Option<String>;
    #[doc(hidden)]
    /// Refuses what quixstreams refuses.
    fn validate(&self) -> Result<(), DefinitionError> {
        Ok(())
    }
}

/// An [`Aggregation`] whose states session windows can merge.
pub trait MergeAggregation<V: ?Sized>: Aggregation<V> {
    /// The state of the window made of `earlier` and `later`.
    fn merge(&self, earlier: Self::State, later: Self::State) -> Self::State;
}
