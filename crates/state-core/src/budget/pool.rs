//! [`Pool`]: the bytes of one share of a budget, reserved against its limit
//! by any number of holders through one atomic counter.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::memory_budget::PoolStats;

/// One share of a budget. Every method is lock-free.
#[derive(Debug)]
pub(crate) struct Pool {
    limit: usize,
    reserved: AtomicUsize,
    peak: AtomicUsize,
    /// Live reservations (for the fair share).
    holders: AtomicUsize,
    /// Growth refused to a holder below its fair share: the signal for
    /// holders above theirs to give memory back.
    denials: AtomicU64,
}

impl Pool {
    pub(crate) fn new(limit: usize) -> Self {
        Pool {
            limit,
            reserved: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            holders: AtomicUsize::new(0),
            denials: AtomicU64::new(0),
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Takes `bytes` if they fit under the limit; all or nothing.
    #[cfg(test)]
    pub(crate) fn try_take(&self, bytes: usize) -> bool {
        self.try_take_below(bytes, self.limit)
    }

    /// Takes `bytes` if the pool then holds at most `ceiling` (at most the
    /// limit); all or nothing.
    pub(crate) fn try_take_below(&self, bytes: usize, ceiling: usize) -> bool {
        let ceiling = ceiling.min(self.limit);
        let mut current = self.reserved.load(Ordering::Relaxed);
        loop {
            let Some(next) = current.checked_add(bytes).filter(|&n| n <= ceiling) else {
                return false;
            };
            match self
                .reserved
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.peak.fetch_max(next, Ordering::Relaxed);
                    return true;
                }
                Err(seen) => current = seen,
            }
        }
    }

    /// Takes as much of `bytes` as fits; returns how much it took.
    pub(crate) fn take_up_to(&self, bytes: usize) -> usize {
        let mut current = self.reserved.load(Ordering::Relaxed);
        loop {
            let granted = bytes.min(self.limit.saturating_sub(current));
            if granted == 0 {
                return 0;
            }
            match self
                .reserved
                .compare_exchange_weak(current, current + granted, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.peak.fetch_max(current + granted, Ordering::Relaxed);
                    return granted;
                }
                Err(seen) => current = seen,
            }
        }
    }

    /// Gives back `bytes` taken before.
    pub(crate) fn give_back(&self, bytes: usize) {
        if bytes > 0 {
            self.reserved.fetch_sub(bytes, Ordering::AcqRel);
        }
    }

    pub(crate) fn add_holder(&self) {
        self.holders.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn remove_holder(&self) {
        self.holders.fetch_sub(1, Ordering::Relaxed);
    }

    /// The limit divided among the live holders.
    pub(crate) fn fair_share(&self) -> usize {
        self.limit / self.holders.load(Ordering::Relaxed).max(1)
    }

    pub(crate) fn deny(&self) {
        self.denials.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn denials(&self) -> u64 {
        self.denials.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> PoolStats {
        PoolStats {
            limit: self.limit,
            reserved: self.reserved.load(Ordering::Relaxed),
            peak_reserved: self.peak.load(Ordering::Relaxed),
            holders: self.holders.load(Ordering::Relaxed),
            denials: self.denials(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_never_pass_the_limit() {
        let pool = Pool::new(100);
        assert!(pool.try_take(60));
        assert!(!pool.try_take(41), "all or nothing");
        assert_eq!(pool.take_up_to(50), 40);
        assert_eq!(pool.take_up_to(1), 0);
        pool.give_back(30);
        assert!(pool.try_take(30));
        let s = pool.stats();
        assert_eq!((s.reserved, s.peak_reserved, s.limit), (100, 100, 100));
    }

    #[test]
    fn threads_share_the_limit_exactly() {
        let pool = std::sync::Arc::new(Pool::new(10_000));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || (0..10_000).filter(|_| pool.try_take(1)).count())
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(taken, 10_000);
        assert_eq!(pool.stats().reserved, 10_000);
    }
}
