//! [`Reservation`]: the bytes one cache (or engine) holds of a budget pool.

use std::sync::Arc;

use super::memory_budget::{BudgetPool, Inner};
use super::pool::Pool;

/// A reservation grows by at least this much at a time, so its owner
/// touches the pool's counter once per chunk, not once per entry.
pub const RESERVATION_CHUNK: usize = 64 << 10;

/// How full (numerator, denominator) a holder may fill the pool when it
/// grows beyond its fair share.
const GREEDY_CEILING: (usize, usize) = (3, 4);

/// The bytes one owner (a write-behind cache, a window index, a fjall
/// partition's write buffers) holds of a [`BudgetPool`] of a
/// [`MemoryBudget`](super::MemoryBudget).
///
/// The owner keeps its own count of what it uses and asks the reservation
/// to cover it ([`try_grow_to`](Self::try_grow_to)) before it uses more;
/// when the pool cannot cover it, the owner evicts or flushes instead.
/// Dropping the reservation gives everything back.
///
/// # Guarantees
/// * The sum of every reservation of a pool never exceeds the pool's
///   limit.
/// * [`try_grow_to`](Self::try_grow_to) of a size already covered is one
///   comparison; growing costs one atomic compare-and-swap per
///   [`RESERVATION_CHUNK`] (or per call, near the limit).
/// * A reservation made without a budget ([`unlimited`](Self::unlimited))
///   covers everything and touches no counter.
#[derive(Debug)]
pub struct Reservation {
    pool: Option<(Arc<Inner>, BudgetPool)>,
    held: usize,
    seen_denials: u64,
}

impl Reservation {
    /// A reservation that covers any size: for caches without a budget.
    pub fn unlimited() -> Self {
        Reservation {
            pool: None,
            held: usize::MAX,
            seen_denials: 0,
        }
    }

    /// An empty reservation of `pool` of `budget`.
    pub(super) fn new(budget: Arc<Inner>, pool: BudgetPool) -> Self {
        let p = budget.pool(pool);
        p.add_holder();
        let seen_denials = p.denials();
        Reservation {
            pool: Some((budget, pool)),
            held: 0,
            seen_denials,
        }
    }

    fn pool(&self) -> Option<&Pool> {
        self.pool.as_ref().map(|(inner, which)| inner.pool(*which))
    }

    /// True if this reservation draws from a budget.
    pub fn is_limited(&self) -> bool {
        self.pool.is_some()
    }

    /// Bytes held (`usize::MAX` when unlimited).
    pub fn held(&self) -> usize {
        self.held
    }

    /// Makes the reservation cover `bytes`; false if the pool cannot (the
    /// reservation is unchanged then). Grows by whole chunks where the pool
    /// has room, else by exactly what is missing. Beyond the
    /// [fair share](Self::fair_share), only while the pool stays three
    /// quarters full at most.
    #[inline]
    pub fn try_grow_to(&mut self, bytes: usize) -> bool {
        bytes <= self.held || self.grow(bytes)
    }

    #[cold]
    fn grow(&mut self, bytes: usize) -> bool {
        let Some(pool) = self.pool() else { return true };
        let missing = bytes - self.held;
        let chunked = missing.div_ceil(RESERVATION_CHUNK).saturating_mul(RESERVATION_CHUNK);
        // Beyond its fair share a holder may only fill the pool to
        // `GREEDY_CEILING`: the rest stays for holders below theirs, so a
        // full pool does not make everyone give back and take again.
        let ceiling = if bytes > pool.fair_share() {
            pool.limit() / GREEDY_CEILING.1 * GREEDY_CEILING.0
        } else {
            pool.limit()
        };
        let granted = if pool.try_take_below(chunked, ceiling) {
            chunked
        } else if pool.try_take_below(missing, ceiling) {
            missing
        } else {
            // Only a holder below its fair share may ask others to give
            // memory back; one above it is the one that should.
            if self.held < pool.fair_share() {
                pool.deny();
            }
            return false;
        };
        self.held += granted;
        true
    }

    /// Gives back what is held beyond `bytes`.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes >= self.held {
            return;
        }
        if let Some(pool) = self.pool() {
            pool.give_back(self.held - bytes);
            self.held = bytes;
        }
    }

    /// True (once per refusal) if the pool refused memory to a holder
    /// below its fair share since the last call: an owner holding more
    /// than [`fair_share`](Self::fair_share) should shrink to it. Always
    /// false when unlimited.
    pub fn pressure(&mut self) -> bool {
        let Some(pool) = self.pool() else { return false };
        let denials = pool.denials();
        if denials == self.seen_denials {
            return false;
        }
        self.seen_denials = denials;
        true
    }

    /// The pool's limit divided among its live reservations (`usize::MAX`
    /// when unlimited).
    pub fn fair_share(&self) -> usize {
        self.pool().map_or(usize::MAX, Pool::fair_share)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(pool) = self.pool() {
            pool.give_back(self.held);
            pool.remove_holder();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::budget::{BudgetPool, MemoryBudget, RESERVATION_CHUNK};

    #[test]
    fn grows_in_chunks_and_gives_back_on_drop() {
        let budget = MemoryBudget::with_engine_share(10 * RESERVATION_CHUNK, 0);
        let mut r = budget.reserve(BudgetPool::Caches);
        assert!(r.try_grow_to(100));
        assert_eq!(r.held(), RESERVATION_CHUNK, "a whole chunk");
        assert!(r.try_grow_to(RESERVATION_CHUNK), "covered: no growth");
        assert_eq!(budget.stats().caches.reserved, RESERVATION_CHUNK);
        drop(r);
        assert_eq!(budget.stats().caches.reserved, 0);
        assert_eq!(budget.stats().caches.holders, 0);
    }

    #[test]
    fn near_the_limit_grows_by_what_is_missing_then_refuses() {
        let budget = MemoryBudget::with_engine_share(RESERVATION_CHUNK + 10, 0);
        let mut a = budget.reserve(BudgetPool::Caches);
        assert!(a.try_grow_to(RESERVATION_CHUNK));
        let mut b = budget.reserve(BudgetPool::Caches);
        assert!(b.try_grow_to(10), "exactly what is left");
        assert_eq!(b.held(), 10);
        assert!(!b.try_grow_to(11));
        assert_eq!(b.held(), 10, "unchanged when refused");
    }

    #[test]
    fn a_refusal_below_the_fair_share_is_pressure_for_the_others() {
        let budget = MemoryBudget::with_engine_share(4 * RESERVATION_CHUNK, 0);
        let mut big = budget.reserve(BudgetPool::Caches);
        assert!(big.try_grow_to(4 * RESERVATION_CHUNK));
        let mut small = budget.reserve(BudgetPool::Caches);
        assert!(!big.pressure());
        assert!(!small.try_grow_to(1));
        assert!(big.pressure(), "the refusal is seen");
        assert!(!big.pressure(), "once");
        assert_eq!(big.fair_share(), 2 * RESERVATION_CHUNK);
        big.shrink_to(big.fair_share());
        assert!(small.try_grow_to(2 * RESERVATION_CHUNK));
        // Greedy: `big` is at its share, asking for more is no pressure.
        let before = budget.stats().caches.denials;
        assert!(!big.try_grow_to(3 * RESERVATION_CHUNK));
        assert_eq!(budget.stats().caches.denials, before);
    }

    #[test]
    fn beyond_its_fair_share_a_holder_leaves_a_quarter_of_the_pool() {
        let budget = MemoryBudget::with_engine_share(16 * RESERVATION_CHUNK, 0);
        let mut greedy = budget.reserve(BudgetPool::Caches);
        let mut idle = budget.reserve(BudgetPool::Caches);
        assert!(greedy.try_grow_to(12 * RESERVATION_CHUNK), "up to three quarters");
        assert!(!greedy.try_grow_to(12 * RESERVATION_CHUNK + 1));
        assert_eq!(budget.stats().caches.denials, 0, "greed is no pressure");
        assert!(
            idle.try_grow_to(4 * RESERVATION_CHUNK),
            "the last quarter is there for the others"
        );
        assert!(!idle.pressure() && !greedy.pressure());
    }

    #[test]
    fn unlimited_covers_everything() {
        let mut r = super::Reservation::unlimited();
        assert!(!r.is_limited());
        assert!(r.try_grow_to(usize::MAX));
        assert!(!r.pressure());
        r.shrink_to(0);
        assert_eq!(r.held(), usize::MAX);
    }
}
