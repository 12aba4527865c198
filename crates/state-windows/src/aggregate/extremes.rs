//! [`Min`] and [`Max`]: the smallest and the largest value.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::input::{column_constructors, Extract, Whole};
use super::{Aggregator, Mergeable};

/// quixstreams' `Max()`: the largest value, `None` for a window where
/// nothing was added. State: the value or `null`. Of equal values the
/// first stays (Python's `max`).
///
/// ```
/// use state_windows::Max;
/// struct Trade { price: f64 }
/// let high = Max::of("price", |t: &Trade| t.price);
/// # let _ = high;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Max<X = Whole> {
    input: X,
}

/// quixstreams' `Min()`: the smallest value, `None` for a window where
/// nothing was added. State: the value or `null`. Of equal values the
/// first stays (Python's `min`).
///
/// ```
/// use state_windows::Min;
/// struct Trade { price: f64 }
/// let low = Min::of("price", |t: &Trade| t.price);
/// # let _ = low;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Min<X = Whole> {
    input: X,
}

column_constructors!(Max, "The largest value");
column_constructors!(Min, "The smallest value");

/// `None` and one value, or the one of two that `keep_new` prefers.
fn pick<T>(a: Option<T>, b: Option<T>, keep_new: impl Fn(&T, &T) -> bool) -> Option<T> {
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(a), Some(b)) => Some(if keep_new(&a, &b) { b } else { a }),
    }
}

macro_rules! extreme {
    ($agg:ident, $name:literal, $better:expr) => {
        impl<V: ?Sized, X> Aggregator<V> for $agg<X>
        where
            X: Extract<V>,
            X::Item: PartialOrd + Clone + Serialize + DeserializeOwned,
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
                let Some(new) = self.input.extract(record) else {
                    return;
                };
                let better: fn(&X::Item, &X::Item) -> bool = $better;
                match state {
                    Some(old) if !better(old, &new) => {}
                    _ => *state = Some(new),
                }
            }

            fn result(&self, state: &Self::State) -> Self::Output {
                state.clone()
            }
        }

        impl<V: ?Sized, X> Mergeable<V> for $agg<X>
        where
            X: Extract<V>,
            X::Item: PartialOrd + Clone + Serialize + DeserializeOwned,
        {
            fn merge(&self, a: Self::State, b: Self::State) -> Self::State {
                pick(a, b, $better)
            }
        }
    };
}

extreme!(Max, "Max", |old, new| new > old);
extreme!(Min, "Min", |old, new| new < old);
