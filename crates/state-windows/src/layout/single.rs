//! The single layouts: [`Single`] (one aggregator, state stored bare) and
//! [`CollectValues`] (whole records collected, no state).

use std::marker::PhantomData;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;

use super::{Aggregation, MergeAggregation, Sealed};
use crate::aggregate::{Aggregator, Mergeable};

/// One aggregator, its state stored bare: quixstreams' named methods
/// (`.count()`, `.sum()`, `.mean()`, `.min()`, `.max()`, `.reduce()`).
/// Made by a definition's `aggregate(..)`.
#[derive(Clone, Debug)]
pub struct Single<A> {
    pub(crate) aggregator: A,
}

impl<A> Sealed for Single<A> {}

impl<V: ?Sized, A: Aggregator<V>> Aggregation<V> for Single<A> {
    type State = A::State;
    type Output = A::Output;
    type Stored = A::State;
    type Item = IgnoredAny;

    fn aggregates(&self) -> bool {
        true
    }

    fn collects(&self) -> bool {
        false
    }

    fn init(&self) -> A::State {
        self.aggregator.initialize()
    }

    fn add(&self, state: &mut A::State, record: &V, timestamp: i64) {
        self.aggregator.aggregate(state, record, timestamp);
    }

    fn restore(&self, stored: A::State) -> A::State {
        stored
    }

    fn stored<'a>(&'a self, state: &'a A::State) -> impl Serialize + 'a
    where
        V: 'a,
    {
        state
    }

    fn item<'a>(&'a self, _: &'a V) -> impl Serialize + 'a
    where
        V: 'a,
    {
    }

    fn output(&self, state: &A::State, _: Vec<IgnoredAny>) -> A::Output {
        self.aggregator.result(state)
    }

    fn function(&self) -> Option<String> {
        Some(self.aggregator.name().to_ascii_lowercase())
    }
}

impl<V: ?Sized, A: Mergeable<V>> MergeAggregation<V> for Single<A> {
    fn merge(&self, earlier: A::State, later: A::State) -> A::State {
        self.aggregator.merge(earlier, later)
    }
}

/// Whole records collected, no aggregation: quixstreams' `.collect()`.
/// Windows store `null`; the records go to `__values__` and a closing
/// window emits them in event-time order.
pub struct CollectValues<V> {
    record: PhantomData<fn() -> V>,
}

impl<V> CollectValues<V> {
    pub(crate) fn new() -> Self {
        CollectValues { record: PhantomData }
    }
}

impl<V> Clone for CollectValues<V> {
    fn clone(&self) -> Self {
        CollectValues::new()
    }
}

impl<V> std::fmt::Debug for CollectValues<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CollectValues")
    }
}

impl<V> Sealed for CollectValues<V> {}

impl<V: Serialize + DeserializeOwned> Aggregation<V> for CollectValues<V> {
    type State = ();
    type Output = Vec<V>;
    type Stored = IgnoredAny;
    type Item = V;

    fn aggregates(&self) -> bool {
        false
    }

    fn collects(&self) -> bool {
        true
    }

    fn init(&self) {}

    fn add(&self, _: &mut (), _: &V, _: i64) {}

    fn restore(&self, _: IgnoredAny) {}

    fn stored<'a>(&'a self, state: &'a ()) -> impl Serialize + 'a
    where
        V: 'a,
    {
        state
    }

    fn item<'a>(&'a self, record: &'a V) -> impl Serialize + 'a
    where
        V: 'a,
    {
        record
    }

    fn output(&self, _: &(), collected: Vec<V>) -> Vec<V> {
        collected
    }

    fn function(&self) -> Option<String> {
        Some("collect".to_owned())
    }
}

impl<V: Serialize + DeserializeOwned> MergeAggregation<V> for CollectValues<V> {
    fn merge(&self, _: (), _: ()) {}
}
