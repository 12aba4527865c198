//! [`Earliest`] and [`Latest`]: the value with the smallest and the
//! largest event time.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::input::{column_constructors, Extract, Whole};
use super::{Aggregator, Mergeable};

/// quixstreams' `Earliest()`: the value with the smallest event time
/// (the first of equal times), whatever order records arrive in. State:
/// `[value, timestamp]` or `null`.
///
/// ```
/// use state_windows::Earliest;
/// struct Visit { page: String }
/// let landing = Earliest::of("page", |v: &Visit| v.page.clone());
/// # let _ = landing;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Earliest<X = Whole> {
    input: X,
}

/// quixstreams' `Latest()`: the value with the largest event time (the
/// last of equal times), whatever order records arrive in. State:
/// `[value, timestamp]` or `null`.
///
/// ```
/// use state_windows::Latest;
/// struct Visit { page: String }
/// let exit = Latest::of("page", |v: &Visit| v.page.clone());
/// # let _ = exit;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latest<X = Whole> {
    input: X,
}

column_constructors!(Earliest, "The value with the smallest event time");
column_constructors!(Latest, "The value with the largest event time");

macro_rules! timed {
    ($agg:ident, $name:literal, $replaces:expr, $merge_later_wins:expr) => {
        impl<V: ?Sized, X> Aggregator<V> for $agg<X>
        where
            X: Extract<V>,
            X::Item: Clone + Serialize + DeserializeOwned,
        {
            type State = Option<(X::Item, i64)>;
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

            fn aggregate(&self, state: &mut Self::State, record: &V, timestamp: i64) {
                let Some(new) = self.input.extract(record) else {
                    return;
                };
                let replaces: fn(i64, i64) -> bool = $replaces;
                match state {
                    Some((_, old)) if !replaces(*old, timestamp) => {}
                    _ => *state = Some((new, timestamp)),
                }
            }

            fn result(&self, state: &Self::State) -> Self::Output {
                state.as_ref().map(|(v, _)| v.clone())
            }
        }

        impl<V: ?Sized, X> Mergeable<V> for $agg<X>
        where
            X: Extract<V>,
            X::Item: Clone + Serialize + DeserializeOwned,
        {
            fn merge(&self, a: Self::State, b: Self::State) -> Self::State {
                let later_wins: fn(i64, i64) -> bool = $merge_later_wins;
                match (a, b) {
                    (None, b) => b,
                    (a, None) => a,
                    (Some(a), Some(b)) => Some(if later_wins(a.1, b.1) { b } else { a }),
                }
            }
        }
    };
}

// Earliest: a strictly earlier time replaces; of two sessions the earlier
// one wins ties (quixstreams: `a if a[1] <= b[1] else b`).
timed!(Earliest, "Earliest", |old, new| new < old, |a, b| b < a);
// Latest: an equal or later time replaces; of two sessions the later one
// wins ties (quixstreams: `b if b[1] >= a[1] else a`).
timed!(Latest, "Latest", |old, new| new >= old, |a, b| b >= a);
