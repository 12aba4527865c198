//! [`Count`]: the number of records (with the column, if one is read).

use super::input::{column_constructors, Field, Optional, OptionalField, Whole};
use super::{Aggregator, Mergeable};

/// Whether a record has what an aggregation reads ([`Count`] needs
/// nothing else): the whole record and a [`Field`] always, an
/// [`OptionalField`] when its closure returns `Some`.
pub trait Present<V: ?Sized> {
    /// The column's name, if a column is read.
    fn column(&self) -> Option<&str>;

    /// True if `record` counts.
    fn present(&self, record: &V) -> bool;
}

impl<V: ?Sized> Present<V> for Whole {
    fn column(&self) -> Option<&str> {
        None
    }

    fn present(&self, _: &V) -> bool {
        true
    }
}

impl<T> Present<Option<T>> for Optional {
    fn column(&self) -> Option<&str> {
        None
    }

    fn present(&self, record: &Option<T>) -> bool {
        record.is_some()
    }
}

impl<V: ?Sized, T, F: Fn(&V) -> T> Present<V> for Field<F, T> {
    fn column(&self) -> Option<&str> {
        super::Extract::<V>::column(self)
    }

    fn present(&self, _: &V) -> bool {
        true
    }
}

impl<V: ?Sized, T, F: Fn(&V) -> Option<T>> Present<V> for OptionalField<F, T> {
    fn column(&self) -> Option<&str> {
        super::Extract::<V>::column(self)
    }

    fn present(&self, record: &V) -> bool {
        super::Extract::<V>::extract(self, record).is_some()
    }
}

/// quixstreams' `Count()`: the number of records in the window. State: an
/// integer (`3`).
///
/// With [`of_optional`](Count::of_optional), only records that have the
/// column count (quixstreams' `Count("x")` skips `None`); note that count
/// windows ([`TumblingCount`](crate::TumblingCount), ...) close after a
/// number of *records*, whatever this count says.
///
/// ```
/// use state_windows::Count;
/// let all = Count::new();
/// let with_referrer = Count::of_optional("referrer", |v: &(u32, Option<String>)| v.1.clone());
/// # let _ = (all, with_referrer);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count<X = Whole> {
    input: X,
}

column_constructors!(Count, "The number of records");

impl<V: ?Sized, X: Present<V>> Aggregator<V> for Count<X> {
    type State = u64;
    type Output = u64;

    fn name(&self) -> &str {
        "Count"
    }

    fn column(&self) -> Option<&str> {
        self.input.column()
    }

    fn initialize(&self) -> u64 {
        0
    }

    fn aggregate(&self, state: &mut u64, record: &V, _: i64) {
        if self.input.present(record) {
            *state += 1;
        }
    }

    fn result(&self, state: &u64) -> u64 {
        *state
    }
}

impl<V: ?Sized, X: Present<V>> Mergeable<V> for Count<X> {
    fn merge(&self, earlier: u64, later: u64) -> u64 {
        earlier + later
    }
}
