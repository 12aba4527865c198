//! [`First`] and [`Last`]: the first and the last value in processing
//! order.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::input::{column_constructors, Extract, Whole};
use super::{Aggregator, Mergeable};

/// quixstreams' `First()`: the first value processed (records without the
/// column are skipped). State: the value or `null`. When sessions merge,
/// the earlier session's value stays (processing order is not kept across
/// a merge); use [`Earliest`](super::Earliest) for a result that does not
/// depend on arrival order.
///
/// ```
/// use state_windows::First;
/// let first: First = First::new();
/// # let _ = first;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct First<X = Whole> {
    input: X,
}

/// quixstreams' `Last()`: the last value processed (records without the
/// column are skipped). State: the value or `null`. When sessions merge,
/// the later session's value stays; use [`Latest`](super::Latest) for a
/// result that does not depend on arrival order.
///
/// ```
/// use state_windows::Last;
/// struct Reading { celsius: f64 }
/// let last = Last::of("celsius", |r: &Reading| r.celsius);
/// # let _ = last;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Last<X = Whole> {
    input: X,
}

column_constructors!(First, "The first value processed");
column_constructors!(Last, "The last value processed");

macro_rules! ordered {
    ($agg:ident, $name:literal, $replace:expr, $merge:expr) => {
        impl<V: ?Sized, X> Aggregator<V> for $agg<X>
        where
            X: Extract<V>,
            X::Item: Clone + Serialize + DeserializeOwned,
        {
            type State = Option<X::Item>;
            type Output = Option<X::Item>;

            fn name(&self) -> &str {
                $name
            }

            fn column(&self) -> Option<&str> {
                self.input.column()
            }

            fn initialize(&self) -> Self::State {
                None
            }

            fn aggregate(&self, state: &mut Self::State, record: &V, _: i64) {
                let replace: fn(&Option<X::Item>) -> bool = $replace;
                if replace(state) {
                    if let Some(v) = self.input.extract(record) {
                        *state = Some(v);
                    }
                }
            }

            fn result(&self, state: &Self::State) -> Self::Output {
                state.clone()
            }
        }

        impl<V: ?Sized, X> Mergeable<V> for $agg<X>
        where
            X: Extract<V>,
            X::Item: Clone + Serialize + DeserializeOwned,
        {
            fn merge(&self, a: Self::State, b: Self::State) -> Self::State {
                let merge: fn(Self::State, Self::State) -> Self::State = $merge;
                merge(a, b)
            }
        }
    };
}

ordered!(First, "First", |s| s.is_none(), |a, b| a.or(b));
ordered!(Last, "Last", |_| true, |a, b| b.or(a));
