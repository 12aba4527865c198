//! Aggregations: the [`Aggregator`] trait, quixstreams 3.28.1's
//! aggregators ([`Count`], [`Sum`], [`Mean`], [`Min`], [`Max`],
//! [`Earliest`], [`Latest`], [`First`], [`Last`], [`Reduce`]) and its
//! collector ([`Collect`]).
//!
//! An aggregator keeps a typed state per window, stored with the store's
//! codec; under [`Codec::Json`](state_core::Codec::Json) every built-in
//! state has quixstreams' bytes (`3`, `15`, `4.5`, `[15.0,3]`, `[9,12]`,
//! `null`, ...). Every built-in reads the whole record (`new()`), a column
//! (`of("x", |r| r.x)`) or a column that may be absent
//! (`of_optional("x", |r| r.x)`, records without it are skipped, as
//! quixstreams skips `None`); `optional()` reads records that are
//! `Option`s and skips `None` ones.

mod collect;
mod count;
mod extremes;
mod input;
mod mean;
mod numbers;
mod order;
mod reduce;
mod sum;
mod timed;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use collect::Collect;
pub use count::{Count, Present};
pub use extremes::{Max, Min};
pub use input::{Extract, Field, Optional, OptionalField, Whole};
pub use mean::Mean;
pub use numbers::{FloatSum, MeanValue, Number, SumValue};
pub use order::{First, Last};
pub use reduce::{NoMerger, Reduce};
pub use sum::Sum;
pub use timed::{Earliest, Latest};

/// An aggregation of the records of a window into a state, and of the
/// state into a result. Implement it for aggregations of your own; the
/// window stores [`State`](Self::State) with the store's codec.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use state_windows::{Aggregator, Mergeable};
///
/// /// The spread (max - min) of the amounts in a window.
/// struct Spread;
///
/// #[derive(Serialize, Deserialize)]
/// struct Bounds(Option<(i64, i64)>);
///
/// impl Aggregator<i64> for Spread {
///     type State = Bounds;
///     type Output = i64;
///
///     fn name(&self) -> &str {
///         "Spread"
///     }
///
///     fn initialize(&self) -> Bounds {
///         Bounds(None)
///     }
///
///     fn aggregate(&self, state: &mut Bounds, amount: &i64, _timestamp: i64) {
///         let (lo, hi) = state.0.unwrap_or((*amount, *amount));
///         state.0 = Some((lo.min(*amount), hi.max(*amount)));
///     }
///
///     fn result(&self, state: &Bounds) -> i64 {
///         state.0.map_or(0, |(lo, hi)| hi - lo)
///     }
/// }
///
/// // Session windows merge sessions, so they need `Mergeable`.
/// impl Mergeable<i64> for Spread {
///     fn merge(&self, earlier: Bounds, later: Bounds) -> Bounds {
///         match (earlier.0, later.0) {
///             (Some((a, b)), Some((c, d))) => Bounds(Some((a.min(c), b.max(d)))),
///             (x, y) => Bounds(x.or(y)),
///         }
///     }
/// }
/// ```
pub trait Aggregator<V: ?Sized> {
    /// The state kept for each window, stored with the store's codec.
    type State: Serialize + DeserializeOwned;
    /// What a window emits.
    type Output;

    /// The aggregation's name: quixstreams' class name (`"Sum"`). With
    /// [`column`](Self::column) it makes the state suffix `"Sum/x"` that
    /// multi-aggregation state keys (`"total/Sum/x"`) are built from, so
    /// changing either restarts the aggregation from its initial state.
    fn name(&self) -> &str;

    /// The column the aggregation reads, if any (quixstreams'
    /// `Aggregator(column=...)`).
    fn column(&self) -> Option<&str> {
        None
    }

    /// The state of a window that has no record yet.
    fn initialize(&self) -> Self::State;

    /// Adds `record` (with its event time, ms) to `state`.
    fn aggregate(&self, state: &mut Self::State, record: &V, timestamp: i64);

    /// The window's result from its state.
    fn result(&self, state: &Self::State) -> Self::Output;
}

/// An [`Aggregator`] whose states can be combined, which session windows
/// need when a record bridges two sessions (quixstreams' `merge`).
pub trait Mergeable<V: ?Sized>: Aggregator<V> {
    /// The state of one window made of the windows with states `earlier`
    /// (the one that starts earlier in event time) and `later`; the two
    /// never overlap.
    fn merge(&self, earlier: Self::State, later: Self::State) -> Self::State;
}

/// quixstreams' `state_suffix`: the name, then `/column` if there is one.
pub(crate) fn state_suffix<V: ?Sized, A: Aggregator<V> + ?Sized>(aggregator: &A) -> String {
    match aggregator.column() {
        Some(column) => format!("{}/{column}", aggregator.name()),
        None => aggregator.name().to_owned(),
    }
}
