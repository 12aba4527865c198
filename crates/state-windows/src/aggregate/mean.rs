//! [`Mean`]: the arithmetic mean of a number.

use super::input::{column_constructors, Extract, Whole};
use super::numbers::MeanValue;
use super::{Aggregator, Mergeable};

/// quixstreams' `Mean()`: the mean of the records (or of a column), `None`
/// for a window where nothing was added. State: `[sum, count]` with a float
/// sum (`[15.0,3]`), as quixstreams stores it.
///
/// ```
/// use state_windows::Mean;
/// struct Reading { celsius: f64 }
/// let avg = Mean::of("celsius", |r: &Reading| r.celsius);
/// # let _ = avg;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mean<X = Whole> {
    input: X,
}

column_constructors!(Mean, "The mean");

impl<V: ?Sized, X> Aggregator<V> for Mean<X>
where
    X: Extract<V>,
    X::Item: MeanValue,
{
    type State = (f64, u64);
    type Output = Option<f64>;

    fn name(&self) -> &str {
        "Mean"
    }

    fn column(&self) -> Option<&str> {
        self.input.column()
    }

    fn initialize(&self) -> (f64, u64) {
        (0.0, 0)
    }

    fn aggregate(&self, state: &mut (f64, u64), record: &V, _: i64) {
        if let Some(v) = self.input.extract(record) {
            state.0 += v.to_f64();
            state.1 += 1;
        }
    }

    fn result(&self, &(sum, n): &(f64, u64)) -> Option<f64> {
        (n > 0).then(|| sum / n as f64)
    }
}

impl<V: ?Sized, X> Mergeable<V> for Mean<X>
where
    X: Extract<V>,
    X::Item: MeanValue,
{
    fn merge(&self, a: (f64, u64), b: (f64, u64)) -> (f64, u64) {
        (a.0 + b.0, a.1 + b.1)
    }
}
