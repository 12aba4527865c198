//! [`Collect`]: every record (or a column of it), in a list.

use std::borrow::Cow;

use super::input::{Field, Whole};

/// quixstreams' `Collect()`: a window's records, or a column of them, as
/// a list in event-time order (records of equal time in arrival order).
///
/// A collector keeps no state in the window: the values go to the store's
/// `__values__` column family as they arrive and are read back when the
/// window closes, so windows that collect emit only on close
/// ([`Emit::OnClose`](crate::Emit::OnClose)). Use it in
/// [`agg`](crate::Tumbling::agg) next to aggregators; `.collect()` on a
/// definition collects whole records alone.
///
/// Stored values follow quixstreams: the whole record if any collector of
/// the window reads it, else an object of the collected columns
/// (`{"x":1,"y":10}`, in declaration order; quixstreams uses Python set
/// order, see `docs/formats.md`).
///
/// ```
/// use state_windows::Collect;
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Click { page: String }
/// let clicks = Collect::new(); // whole records (`Click: Clone`)
/// let pages = Collect::of("page", |c: &Click| c.page.clone());
/// # let _: Collect = clicks;
/// # let _ = pages;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Collect<X = Whole> {
    pub(crate) input: X,
}

impl Collect<Whole> {
    /// Collects whole records.
    pub fn new() -> Self {
        Collect { input: Whole }
    }

    /// Collects column `column`, read from each record by `f`.
    pub fn of<V: ?Sized, T, F: Fn(&V) -> T>(column: impl Into<Cow<'static, str>>, f: F) -> Collect<Field<F, T>> {
        Collect {
            input: Field::new(column, f),
        }
    }
}

impl Default for Collect<Whole> {
    fn default() -> Self {
        Self::new()
    }
}
