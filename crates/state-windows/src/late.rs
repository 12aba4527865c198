//! Late records: what a window reports about a record that arrived after
//! (one of) its windows closed ([`Late`]), and who hears about it.

use std::cell::Cell;
use std::fmt;

/// A record that came too late for one of its windows: quixstreams'
/// `on_late` arguments. The record is left out of that window (a hopping
/// or sliding record may still count in its other windows).
#[derive(Debug)]
#[non_exhaustive]
pub struct Late<'a, V: ?Sized> {
    /// The record's key (its state prefix).
    pub key: &'a [u8],
    /// The record.
    pub value: &'a V,
    /// The record's event time, ms.
    pub timestamp: i64,
    /// How far behind the window's closing bound the record is, ms
    /// (quixstreams' `late_by_ms`).
    pub late_by: i64,
    /// The window's start, ms.
    pub start: i64,
    /// The window's end, ms (as the window kind reports bounds).
    pub end: i64,
    /// The window's store name.
    pub window: &'a str,
}

/// The user's late-record callback.
pub(crate) type OnLate<V> = Box<dyn Fn(&Late<'_, V>) + Send + Sync>;

/// Reports the late windows of one record: to the callback, to the log
/// (debug), and once per record to [`crate::metrics::LATE_RECORDS`].
pub(crate) struct LateReport<'a, V: ?Sized> {
    pub(crate) callback: Option<&'a OnLate<V>>,
    pub(crate) window: &'a str,
    pub(crate) any: Cell<bool>,
}

impl<'a, V: ?Sized> LateReport<'a, V> {
    pub(crate) fn new(callback: Option<&'a OnLate<V>>, window: &'a str) -> Self {
        LateReport {
            callback,
            window,
            any: Cell::new(false),
        }
    }

    /// Reports window `[start, end]` of the record (`key`, `value`,
    /// `timestamp`) as missed by `late_by` ms.
    pub(crate) fn window(&self, key: &[u8], value: &V, timestamp: i64, late_by: i64, start: i64, end: i64) {
        self.any.set(true);
        tracing::debug!(
            window = self.window,
            timestamp,
            start,
            end,
            late_by,
            "skipping a late record for a closed window"
        );
        if let Some(f) = self.callback {
            f(&Late {
                key,
                value,
                timestamp,
                late_by,
                start,
                end,
                window: self.window,
            });
        }
    }

    /// Counts the record if it was late anywhere.
    pub(crate) fn finish(self) {
        if self.any.get() {
            crate::metrics::late_record(self.window);
        }
    }
}

impl<V: ?Sized> fmt::Debug for LateReport<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LateReport").field("window", &self.window).finish()
    }
}
