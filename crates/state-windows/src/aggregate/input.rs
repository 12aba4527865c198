//! Which part of a record an aggregation reads: the whole value
//! ([`Whole`]), or a column picked by a closure ([`Field`], or
//! [`OptionalField`] for a column that may be absent).
//!
//! quixstreams names a column of a dict (`Sum("x")`); a Rust record is a
//! typed value, so a column is a closure plus the name quixstreams would
//! use. The name appears in multi-aggregation state keys (`"s/Sum/x"`), so
//! it must stay the same for a store to keep its state.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// What an aggregation reads from each record.
///
/// `extract` returning `None` skips the record, as quixstreams skips a
/// `None` value or a missing column.
pub trait Extract<V: ?Sized> {
    /// The value read.
    type Item;

    /// The column's name, if the aggregation reads a column.
    fn column(&self) -> Option<&str>;

    /// The value of `record`, or `None` to skip it.
    fn extract(&self, record: &V) -> Option<Self::Item>;
}

/// The whole record (quixstreams' `column=None`): the record is cloned
/// into the aggregation (numbers and small values; use a [`Field`] to read
/// part of a larger record).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Whole;

impl<V: Clone> Extract<V> for Whole {
    type Item = V;

    fn column(&self) -> Option<&str> {
        None
    }

    fn extract(&self, record: &V) -> Option<V> {
        Some(record.clone())
    }
}

/// The record itself when records are `Option`s, `None` records skipped
/// (quixstreams' `column=None` on a stream with `None` values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Optional;

impl<T: Clone> Extract<Option<T>> for Optional {
    type Item = T;

    fn column(&self) -> Option<&str> {
        None
    }

    fn extract(&self, record: &Option<T>) -> Option<T> {
        record.clone()
    }
}

/// A column that every record has: `f(record)`.
pub struct Field<F, T> {
    column: Cow<'static, str>,
    f: F,
    item: PhantomData<fn() -> T>,
}

impl<F, T> Field<F, T> {
    /// Column `column` (the name stored in state keys), read by `f`.
    pub fn new(column: impl Into<Cow<'static, str>>, f: F) -> Self {
        Field {
            column: column.into(),
            f,
            item: PhantomData,
        }
    }
}

impl<F: Clone, T> Clone for Field<F, T> {
    fn clone(&self) -> Self {
        Field::new(self.column.clone(), self.f.clone())
    }
}

impl<F, T> fmt::Debug for Field<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Field")
            .field("column", &self.column)
            .finish_non_exhaustive()
    }
}

impl<V: ?Sized, T, F: Fn(&V) -> T> Extract<V> for Field<F, T> {
    type Item = T;

    fn column(&self) -> Option<&str> {
        Some(&self.column)
    }

    fn extract(&self, record: &V) -> Option<T> {
        Some((self.f)(record))
    }
}

/// A column that a record may lack: `f(record)`, `None` skipping the
/// record (quixstreams: a missing key or a `None` value).
pub struct OptionalField<F, T> {
    column: Cow<'static, str>,
    f: F,
    item: PhantomData<fn() -> T>,
}

impl<F, T> OptionalField<F, T> {
    /// Column `column` (the name stored in state keys), read by `f`.
    pub fn new(column: impl Into<Cow<'static, str>>, f: F) -> Self {
        OptionalField {
            column: column.into(),
            f,
            item: PhantomData,
        }
    }
}

impl<F: Clone, T> Clone for OptionalField<F, T> {
    fn clone(&self) -> Self {
        OptionalField::new(self.column.clone(), self.f.clone())
    }
}

impl<F, T> fmt::Debug for OptionalField<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OptionalField")
            .field("column", &self.column)
            .finish_non_exhaustive()
    }
}

impl<V: ?Sized, T, F: Fn(&V) -> Option<T>> Extract<V> for OptionalField<F, T> {
    type Item = T;

    fn column(&self) -> Option<&str> {
        Some(&self.column)
    }

    fn extract(&self, record: &V) -> Option<T> {
        (self.f)(record)
    }
}

/// Defines `new()` (whole record), `of(column, f)` and
/// `of_optional(column, f)` for an aggregator `$agg<X>` holding its
/// extractor in field `input`.
macro_rules! column_constructors {
    ($agg:ident, $what:literal) => {
        impl $agg<$crate::aggregate::Whole> {
            #[doc = concat!($what, " of the whole record (quixstreams' `", stringify!($agg), "()`).")]
            pub fn new() -> Self {
                $agg {
                    input: $crate::aggregate::Whole,
                }
            }

            #[doc = concat!($what, " of records that are `Option`s, `None` records skipped (quixstreams' `", stringify!($agg), "()` on a stream with `None` values).")]
            pub fn optional() -> $agg<$crate::aggregate::Optional> {
                $agg {
                    input: $crate::aggregate::Optional,
                }
            }

            #[doc = concat!($what, " of column `column`, read from each record by `f` (quixstreams' `", stringify!($agg), "(\"column\")`).")]
            pub fn of<V: ?Sized, T, F: Fn(&V) -> T>(
                column: impl Into<std::borrow::Cow<'static, str>>,
                f: F,
            ) -> $agg<$crate::aggregate::Field<F, T>> {
                $agg {
                    input: $crate::aggregate::Field::new(column, f),
                }
            }

            #[doc = concat!($what, " of column `column`, which `f` reads from each record; records where it returns `None` are skipped (quixstreams: a missing key or a `None` value).")]
            pub fn of_optional<V: ?Sized, T, F: Fn(&V) -> Option<T>>(
                column: impl Into<std::borrow::Cow<'static, str>>,
                f: F,
            ) -> $agg<$crate::aggregate::OptionalField<F, T>> {
                $agg {
                    input: $crate::aggregate::OptionalField::new(column, f),
                }
            }
        }

        impl Default for $agg<$crate::aggregate::Whole> {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

pub(crate) use column_constructors;
