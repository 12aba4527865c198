//! [`Reduce`]: an aggregation written as two closures.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Aggregator, Mergeable};

/// The merger of a [`Reduce`] that has none: such a `Reduce` cannot be
/// used by session windows (it is not [`Mergeable`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMerger;

/// quixstreams' `Reduce(reducer, initializer, merger)`: the state of a
/// window is `initializer(first record)`, then `reducer(state, record)`
/// for every further record. State: whatever `S` serializes to, `null`
/// before the first record. It reads the whole record (quixstreams'
/// `Reduce` ignores `column`), and its state suffix is always `Reduce`.
///
/// Session windows need a [`merger`](Reduce::merger) combining the states
/// of two sessions.
///
/// ```
/// use state_windows::Reduce;
/// // The distinct pages of a window, in first-seen order.
/// let pages = Reduce::new(
///     |page: &String| vec![page.clone()],
///     |mut seen: Vec<String>, page: &String| {
///         if !seen.contains(page) {
///             seen.push(page.clone());
///         }
///         seen
///     },
/// )
/// .merger(|mut a: Vec<String>, b: Vec<String>| {
///     for p in b {
///         if !a.contains(&p) {
///             a.push(p);
///         }
///     }
///     a
/// });
/// # let _ = pages;
/// ```
pub struct Reduce<I, R, M, S> {
    initializer: I,
    reducer: R,
    merger: M,
    state: PhantomData<fn() -> S>,
}

impl<I, R, S> Reduce<I, R, NoMerger, S> {
    /// A reduction: `initializer` makes the state from a window's first
    /// record, `reducer` folds every further record into it.
    pub fn new<V: ?Sized>(initializer: I, reducer: R) -> Self
    where
        I: Fn(&V) -> S,
        R: Fn(S, &V) -> S,
    {
        Reduce {
            initializer,
            reducer,
            merger: NoMerger,
            state: PhantomData,
        }
    }

    /// The same, with `merger` combining the states of two sessions (the
    /// earlier one first), so session windows can use it.
    pub fn merger<M: Fn(S, S) -> S>(self, merger: M) -> Reduce<I, R, M, S> {
        Reduce {
            initializer: self.initializer,
            reducer: self.reducer,
            merger,
            state: PhantomData,
        }
    }
}

impl<I: Clone, R: Clone, M: Clone, S> Clone for Reduce<I, R, M, S> {
    fn clone(&self) -> Self {
        Reduce {
            initializer: self.initializer.clone(),
            reducer: self.reducer.clone(),
            merger: self.merger.clone(),
            state: PhantomData,
        }
    }
}

impl<I, R, M, S> fmt::Debug for Reduce<I, R, M, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reduce").finish_non_exhaustive()
    }
}

impl<V: ?Sized, I, R, M, S> Aggregator<V> for Reduce<I, R, M, S>
where
    I: Fn(&V) -> S,
    R: Fn(S, &V) -> S,
    S: Clone + Serialize + DeserializeOwned,
{
    type State = Option<S>;
    type Output = Option<S>;

    fn name(&self) -> &str {
        "Reduce"
    }

    fn initialize(&self) -> Option<S> {
        None
    }

    fn aggregate(&self, state: &mut Option<S>, record: &V, _: i64) {
        *state = Some(match state.take() {
            None => (self.initializer)(record),
            Some(s) => (self.reducer)(s, record),
        });
    }

    fn result(&self, state: &Option<S>) -> Option<S> {
        state.clone()
    }
}

impl<V: ?Sized, I, R, M, S> Mergeable<V> for Reduce<I, R, M, S>
where
    I: Fn(&V) -> S,
    R: Fn(S, &V) -> S,
    M: Fn(S, S) -> S,
    S: Clone + Serialize + DeserializeOwned,
{
    fn merge(&self, a: Option<S>, b: Option<S>) -> Option<S> {
        match (a, b) {
            (Some(a), Some(b)) => Some((self.merger)(a, b)),
            (a, b) => a.or(b),
        }
    }
}
