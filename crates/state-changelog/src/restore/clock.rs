//! [`CoarseClock`]: the time as of the last read, read every
//! [`CLOCK_EVERY`] records and at the end of each fetch.
//!
//! Reading the clock costs as much as applying a small record on some
//! virtual machines (two reads per record were 7.5% of w4's samples, in
//! `__vdso_clock_gettime`); progress reports, stall timeouts and standby
//! housekeeping need no more precision than this.

use std::time::Instant;

/// Records between two reads of the clock.
pub(crate) const CLOCK_EVERY: u32 = 256;

/// The time as of the last read.
#[derive(Debug)]
pub(crate) struct CoarseClock {
    now: Instant,
    since_read: u32,
}

impl CoarseClock {
    /// A clock read now.
    pub(crate) fn new() -> Self {
        CoarseClock {
            now: Instant::now(),
            since_read: 0,
        }
    }

    /// Counts one record and reads the clock if [`CLOCK_EVERY`] records
    /// went by since the last read. True if it read the clock.
    #[inline]
    pub(crate) fn tick(&mut self) -> bool {
        self.since_read += 1;
        if self.since_read < CLOCK_EVERY {
            return false;
        }
        self.read();
        true
    }

    /// Reads the clock now.
    pub(crate) fn read(&mut self) -> Instant {
        self.since_read = 0;
        self.now = Instant::now();
        self.now
    }

    /// The time as of the last read.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_is_read_every_clock_every_records() {
        let mut clock = CoarseClock::new();
        let reads = (0..CLOCK_EVERY * 3).filter(|_| clock.tick()).count();
        assert_eq!(reads, 3);
        let before = clock.now();
        assert!(clock.read() >= before);
    }
}
