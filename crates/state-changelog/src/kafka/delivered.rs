//! [`DeliveredCells`]: the offset of the last delivered record of each
//! changelog partition a sink writes to, raised by delivery reports without
//! a lookup.
//!
//! A delivery report names its record's topic only as librdkafka's C
//! string, which rust-rdkafka measures and UTF-8-checks on every read; then
//! came a hash lookup under the tracker's lock. That was about a tenth of a
//! microsecond for each of the ~2.9M changelog records of a demo run, on
//! the thread that serves the reports (the poll loop's, while a checkpoint
//! flushes). A sink instead hands librdkafka a pointer to its partition's
//! cell as the record's opaque, and the report raises the cell in place.
//!
//! Why the pointer stays valid: the cells belong to the producer's context
//! ([`super::DeliveryTracker`]), which keeps every cell it handed out for as
//! long as it lives, and only that producer's reports carry the pointers.

use std::ffi::c_void;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

/// No record delivered yet.
const NONE: i64 = -1;

/// One changelog partition's last delivered offset.
#[derive(Debug)]
pub(crate) struct DeliveredCell(AtomicI64);

impl DeliveredCell {
    /// The opaque a record produced for this partition carries.
    pub(crate) fn as_opaque(self: &Arc<Self>) -> *mut c_void {
        Arc::as_ptr(self).cast_mut().cast::<c_void>()
    }

    /// The offset of the last record known delivered, if any.
    fn get(&self) -> Option<i64> {
        Some(self.0.load(Ordering::Acquire)).filter(|&o| o > NONE)
    }

    fn raise(&self, offset: i64) {
        self.0.fetch_max(offset, Ordering::AcqRel);
    }
}

/// The cells of one producer, by topic and partition. See the
/// [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct DeliveredCells {
    cells: Mutex<FxHashMap<(String, i32), Arc<DeliveredCell>>>,
}

impl DeliveredCells {
    /// The cell of `topic[partition]`, made on first use and kept for the
    /// life of `self`.
    pub(crate) fn cell(&self, topic: &str, partition: i32) -> Arc<DeliveredCell> {
        self.cells
            .lock()
            .entry((topic.to_owned(), partition))
            .or_insert_with(|| Arc::new(DeliveredCell(AtomicI64::new(NONE))))
            .clone()
    }

    /// The last offset delivered to `topic[partition]` through its cell.
    pub(crate) fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        // Read once per store partition and checkpoint: the key is built.
        self.cells
            .lock()
            .get(&(topic.to_owned(), partition))
            .and_then(|c| c.get())
    }

    /// Raises the cell `opaque` points to to `offset`; false if the record
    /// carried no cell (a record produced by name, an output record).
    ///
    /// # Safety
    ///
    /// `opaque` is null or came from [`DeliveredCell::as_opaque`] on a
    /// cell of these cells.
    pub(crate) unsafe fn raise(opaque: *mut c_void, offset: i64) -> bool {
        if opaque.is_null() {
            return false;
        }
        // SAFETY: the caller's promise: a cell these cells keep alive.
        let cell = unsafe { &*opaque.cast_const().cast::<DeliveredCell>() };
        cell.raise(offset);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_keeps_the_highest_offset_raised_through_its_opaque() {
        let cells = DeliveredCells::default();
        let a = cells.cell("t", 0);
        let b = cells.cell("t", 1);
        assert!(Arc::ptr_eq(&a, &cells.cell("t", 0)), "one cell per partition");
        assert_eq!(cells.get("t", 0), None, "nothing delivered yet");
        // SAFETY: opaques of cells `cells` keeps.
        unsafe {
            assert!(DeliveredCells::raise(a.as_opaque(), 5));
            assert!(DeliveredCells::raise(a.as_opaque(), 3));
            assert!(DeliveredCells::raise(b.as_opaque(), 0));
            assert!(!DeliveredCells::raise(std::ptr::null_mut(), 9));
        }
        assert_eq!(cells.get("t", 0), Some(5), "a late report does not move it back");
        assert_eq!(cells.get("t", 1), Some(0));
        assert_eq!(cells.get("u", 0), None);
    }
}
