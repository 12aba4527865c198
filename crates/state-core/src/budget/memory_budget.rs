//! [`MemoryBudget`]: the handle every cache and engine of a process shares.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use super::pool::Pool;
use super::reservation::Reservation;

/// Which share of a [`MemoryBudget`] a user draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BudgetPool {
    /// Storage engines: RocksDB's block cache and the memtables charged to
    /// it, fjall's block cache and write buffers.
    Engine,
    /// In-process caches: write-behind caches, window indexes, value
    /// caches.
    Caches,
}

/// What a [`BudgetPool`] holds, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// The pool's limit, bytes.
    pub limit: usize,
    /// Bytes reserved now.
    pub reserved: usize,
    /// The most ever reserved at once.
    pub peak_reserved: usize,
    /// Live reservations.
    pub holders: usize,
    /// Times growth was refused to a holder below its fair share.
    pub denials: u64,
}

/// What a [`MemoryBudget`] holds, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryBudgetStats {
    /// The budget, bytes.
    pub limit: usize,
    /// The storage engines' share.
    pub engine: PoolStats,
    /// The in-process caches' share.
    pub caches: PoolStats,
}

pub(crate) struct Inner {
    limit: usize,
    engine: Pool,
    caches: Pool,
    /// One object per type, made by the first user that asked for it (an
    /// engine's shared cache): see [`MemoryBudget::shared`].
    shared: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("limit", &self.limit)
            .field("engine", &self.engine.stats())
            .field("caches", &self.caches.stats())
            .finish()
    }
}

impl Inner {
    pub(crate) fn pool(&self, which: BudgetPool) -> &Pool {
        match which {
            BudgetPool::Engine => &self.engine,
            BudgetPool::Caches => &self.caches,
        }
    }
}

/// One memory budget for a process, shared by every backend, cache and
/// index given a clone of it (clones are the same budget).
///
/// It bounds what the library keeps in memory for state: RocksDB's block
/// cache and memtables (one cache and one write buffer manager for every
/// partition on the budget), fjall's caches and write buffers, write-behind
/// caches and window indexes. It does not bound what the budget's module
/// documentation lists (per-partition fixed overhead, librdkafka,
/// transactions in flight); `docs/operations.md` ("Memory") has the
/// formula.
///
/// ```
/// use state_core::{BudgetPool, MemoryBudget};
/// let budget = MemoryBudget::new(512 << 20);
/// assert_eq!(budget.engine_bytes() + budget.cache_bytes(), 512 << 20);
/// let mut cache = budget.reserve(BudgetPool::Caches);
/// assert!(cache.try_grow_to(1 << 20));
/// assert_eq!(budget.stats().caches.reserved, 1 << 20);
/// ```
///
/// # Guarantees
/// * Reservations of each pool never add up to more than its share, and the
///   shares add up to [`limit`](Self::limit).
/// * Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl MemoryBudget {
    /// The storage engines' share of [`MemoryBudget::new`]: percent.
    pub const DEFAULT_ENGINE_PERCENT: usize = 50;

    /// A budget of `limit` bytes, half for the storage engines, half for
    /// the in-process caches.
    pub fn new(limit: usize) -> Self {
        Self::with_engine_share(limit, limit / 100 * Self::DEFAULT_ENGINE_PERCENT)
    }

    /// A budget of `limit` bytes of which `engine_bytes` (at most `limit`)
    /// go to the storage engines and the rest to the in-process caches. A
    /// process without write-behind caches or window indexes can give the
    /// engines nearly everything.
    pub fn with_engine_share(limit: usize, engine_bytes: usize) -> Self {
        let engine = engine_bytes.min(limit);
        MemoryBudget {
            inner: Arc::new(Inner {
                limit,
                engine: Pool::new(engine),
                caches: Pool::new(limit - engine),
                shared: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The budget, bytes.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// The storage engines' share, bytes.
    pub fn engine_bytes(&self) -> usize {
        self.inner.engine.limit()
    }

    /// The in-process caches' share, bytes.
    pub fn cache_bytes(&self) -> usize {
        self.inner.caches.limit()
    }

    /// A new, empty reservation of `pool`, for one owner (a cache, an
    /// index, a partition).
    pub fn reserve(&self, pool: BudgetPool) -> Reservation {
        Reservation::new(self.inner.clone(), pool)
    }

    /// What the pools hold now.
    pub fn stats(&self) -> MemoryBudgetStats {
        MemoryBudgetStats {
            limit: self.inner.limit,
            engine: self.inner.engine.stats(),
            caches: self.inner.caches.stats(),
        }
    }

    /// True if `other` is (a clone of) this budget.
    pub fn same_as(&self, other: &MemoryBudget) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The budget's one object of type `T` (an engine's shared block
    /// cache, say), made by `make` on first use with as much of `want`
    /// bytes of `pool` as is left. Those bytes stay reserved for the
    /// budget's life. Later calls return the same object and reserve
    /// nothing.
    pub fn shared<T: Any + Send + Sync>(&self, pool: BudgetPool, want: usize, make: impl FnOnce(usize) -> T) -> Arc<T> {
        let mut shared = self.inner.shared.lock();
        if let Some(found) = shared.iter().find_map(|s| s.clone().downcast::<T>().ok()) {
            return found;
        }
        let granted = self.inner.pool(pool).take_up_to(want);
        let made = Arc::new(make(granted));
        shared.push(made.clone());
        made
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        let b = MemoryBudget::new(1000);
        assert_eq!((b.engine_bytes(), b.cache_bytes()), (500, 500));
        let b = MemoryBudget::with_engine_share(1000, 5000);
        assert_eq!((b.engine_bytes(), b.cache_bytes()), (1000, 0));
    }

    #[test]
    fn shared_objects_are_made_once_and_reserve_once() {
        let b = MemoryBudget::new(1000);
        let first = b.shared(BudgetPool::Engine, 400, |granted| granted);
        let clone = b.clone();
        let again = clone.shared(BudgetPool::Engine, 400, |_| unreachable!("made once"));
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(*first, 400);
        let other = b.shared(BudgetPool::Engine, 400, |granted| (granted, "other type"));
        assert_eq!(other.0, 100, "what was left");
        assert_eq!(b.stats().engine.reserved, 500);
        assert!(b.same_as(&clone));
        assert!(!b.same_as(&MemoryBudget::new(1000)));
    }

    #[test]
    fn a_budget_is_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<MemoryBudget>();
        send_sync::<Reservation>();
    }
}
