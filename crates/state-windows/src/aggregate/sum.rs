//! [`Sum`]: the sum of a number.

use super::input::{column_constructors, Extract, Whole};
use super::numbers::SumValue;
use super::{Aggregator, Mergeable};

/// quixstreams' `Sum()`: the sum of the records (or of a column). State:
/// the running sum (`15` for integers; for floats `0` until something is
/// added, then `4.5`, `15.0`: see [`FloatSum`](super::FloatSum)).
///
/// ```
/// use state_windows::Sum;
/// struct Order { cents: i64 }
/// let revenue = Sum::of("cents", |o: &Order| o.cents);
/// let total: Sum = Sum::new(); // records that are numbers
/// # let _ = (revenue, total);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sum<X = Whole> {
    input: X,
}

column_constructors!(Sum, "The sum");

impl<V: ?Sized, X> Aggregator<V> for Sum<X>
where
    X: Extract<V>,
    X::Item: SumValue,
{
    type State = <X::Item as SumValue>::Sum;
    type Output = X::Item;

    fn name(&self) -> &str {
        "Sum"
    }

    fn column(&self) -> Option<&str> {
        self.input.column()
    }

    fn initialize(&self) -> Self::State {
        X::Item::zero()
    }

    fn aggregate(&self, state: &mut Self::State, record: &V, _: i64) {
        if let Some(v) = self.input.extract(record) {
            X::Item::add(state, v);
        }
    }

    fn result(&self, state: &Self::State) -> X::Item {
        X::Item::total(state)
    }
}

impl<V: ?Sized, X> Mergeable<V> for Sum<X>
where
    X: Extract<V>,
    X::Item: SumValue,
{
    fn merge(&self, earlier: Self::State, later: Self::State) -> Self::State {
        X::Item::merge(earlier, later)
    }
}
