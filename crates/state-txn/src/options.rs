//! Options of windowed operations, named instead of bare booleans.

/// What [`crate::WindowedTransaction::expire_windows`] and
/// [`crate::WindowedTransaction::expire_all_windows`] do besides returning
/// the expired windows.
///
/// ```
/// use state_txn::ExpireOptions;
/// let o = ExpireOptions::delete().collecting();
/// assert!(o.delete && o.collect && !o.end_inclusive);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExpireOptions {
    /// Delete the expired windows (and, with `collect`, their collected
    /// values). Without it they stay readable, but are never expired again.
    pub delete: bool,
    /// Return each window with the values collected into `[start, end)`
    /// (collection windows).
    pub collect: bool,
    /// Also collect the value at `end` itself (`[start, end]`), as
    /// quixstreams' sliding windows do.
    pub end_inclusive: bool,
}

impl ExpireOptions {
    /// Return the windows, keep them stored.
    pub const fn keep() -> Self {
        ExpireOptions {
            delete: false,
            collect: false,
            end_inclusive: false,
        }
    }

    /// Return the windows and delete them.
    pub const fn delete() -> Self {
        ExpireOptions {
            delete: true,
            collect: false,
            end_inclusive: false,
        }
    }

    /// The same, also returning (and, when deleting, deleting) collected values.
    pub const fn collecting(self) -> Self {
        ExpireOptions { collect: true, ..self }
    }

    /// The same, with collected values up to and including the window end.
    pub const fn end_inclusive(self) -> Self {
        ExpireOptions {
            end_inclusive: true,
            ..self
        }
    }
}

/// Whether [`crate::WindowedTransaction::delete_windows`] also deletes the
/// values collected for the deleted windows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CollectedValues {
    /// Leave collected values alone.
    #[default]
    Keep,
    /// Delete collected values with an id below the deletion bound.
    Delete,
}
