//! [`WriteBehindPartition`]: the cache in front of one partition, as a
//! [`StorePartition`].

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, MutexGuard};
use state_core::{
    BudgetPool, Direction, KvIter, MemoryBudget, PartitionStats, ReadView, Reservation, Result, StorePartition,
    WriteBatch,
};

use super::behind;
use super::merge::{Merge, WriteBehindView};
use super::state::{is_offset_key, offset_bytes, State};
use crate::config::{WriteBehindConfig, WriteBehindStats};

/// A [`StorePartition`] that defers and coalesces writes to the partition
/// below (see the [module documentation](super)).
///
/// # Guarantees
/// * Reads (`get`, `exists`, `iter_range`, `changelog_offset`) see every
///   batch whose `write` returned `Ok`, in order, and nothing of a batch
///   whose `write` failed.
/// * The partition below only ever receives whole flushes: each is one
///   atomic batch holding every change written through the wrapper up to
///   some batch, with that batch's changelog offset. After a crash it holds
///   a prefix of the writes whose data and offset agree.
/// * [`stats`](Self::cache_stats)`.resident_bytes` never exceeds
///   [`WriteBehindConfig::max_bytes`], nor, with a
///   [`MemoryBudget`], what the budget reserved for the cache.
/// * `write_bulk` (recovery) goes straight to the partition below, after
///   flushing the cache, and drops the cached entries of its keys.
/// * `persist` flushes, then persists the partition below.
/// * A batch of [`WriteBehindConfig::apply_behind_ops`] operations or more
///   may be applied to the cache by a helper thread after `write`
///   returns; the next call finishes whatever the helper has not, so no
///   call can tell.
///
/// Every write to the partition below must go through the wrapper once it
/// exists, or the cache goes stale. Dropping the wrapper discards what it
/// has not flushed (recovery replays it from the changelog): call
/// [`flush`](Self::flush) first on a clean shutdown.
pub struct WriteBehindPartition {
    inner: Arc<dyn StorePartition>,
    config: WriteBehindConfig,
    /// Shared with the helper that applies large batches (`behind`).
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for WriteBehindPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBehindPartition")
            .field("config", &self.config)
            .field("stats", &self.cache_stats())
            .finish()
    }
}

impl WriteBehindPartition {
    /// Wraps `inner` with an empty cache. Reads `inner`'s changelog offset
    /// (an error if it is corrupt). `max_dirty_bytes` is capped at
    /// `max_bytes`.
    pub fn new(inner: Arc<dyn StorePartition>, config: WriteBehindConfig) -> Result<Self> {
        Self::with_reservation(inner, config, Reservation::unlimited())
    }

    /// [`new`](Self::new), drawing the cache's bytes from `budget`'s
    /// [`BudgetPool::Caches`] as well: when the budget has no room, the
    /// cache evicts and flushes earlier (and writes a batch through when
    /// even an empty cache would not fit it). Under
    /// [pressure](state_core::Reservation::pressure) it gives back what it
    /// holds beyond its fair share at its next flush.
    pub fn with_budget(
        inner: Arc<dyn StorePartition>,
        config: WriteBehindConfig,
        budget: &MemoryBudget,
    ) -> Result<Self> {
        Self::with_reservation(inner, config, budget.reserve(BudgetPool::Caches))
    }

    fn with_reservation(
        inner: Arc<dyn StorePartition>,
        config: WriteBehindConfig,
        reservation: Reservation,
    ) -> Result<Self> {
        let offset = inner.changelog_offset()?;
        let config = WriteBehindConfig {
            max_dirty_bytes: config.max_dirty_bytes.min(config.max_bytes),
            ..config
        };
        Ok(WriteBehindPartition {
            inner,
            config,
            state: Arc::new(Mutex::new(State::new(offset, reservation))),
        })
    }

    /// The cache, locked, with any batch still being applied behind
    /// `write` applied first: every use of the cache goes through here
    /// (`flush_if_due` and `cache_stats` see to the batch themselves).
    fn locked(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.lock();
        st.settle();
        st
    }

    /// The partition below.
    pub fn inner(&self) -> &Arc<dyn StorePartition> {
        &self.inner
    }

    /// The bounds in force.
    pub fn config(&self) -> WriteBehindConfig {
        self.config
    }

    /// Writes every unflushed change to the partition below as one atomic
    /// batch with the newest changelog offset written through the wrapper.
    /// Nothing to write: nothing happens. On error the changes stay cached
    /// (reads still see them) and the next flush retries.
    pub fn flush(&self) -> Result<()> {
        self.locked().flush(&*self.inner)
    }

    /// Flushes if the oldest unflushed change is at least
    /// [`WriteBehindConfig::max_dirty_age`] old; returns whether it did.
    /// For the owner's maintenance loop, so an idle partition still
    /// reaches the partition below within the bound (and, under a memory
    /// budget that asks for it, gives back clean entries beyond its fair
    /// share).
    pub fn flush_if_due(&self) -> Result<bool> {
        // Called between checkpoints, often right after one: a batch still
        // being applied behind its write is left to the helper unless a
        // flush is due.
        let mut st = self.state.lock();
        st.raise_helper_panic();
        let due = st.due(&self.config, Instant::now());
        if st.pending.is_some() {
            if !due {
                return Ok(false);
            }
            st.settle();
        }
        if due {
            st.flush(&*self.inner)?;
            Ok(true)
        } else {
            // An idle cache gives back too when the budget asks.
            st.give_back_if_asked();
            Ok(false)
        }
    }

    /// True if there are changes not yet written below.
    pub fn is_dirty(&self) -> bool {
        self.locked().is_dirty()
    }

    /// True if a batch is still being applied behind its `write`.
    #[cfg(test)]
    pub(super) fn has_pending(&self) -> bool {
        self.state.lock().pending.is_some()
    }

    /// Sizes and counters of the cache (a batch still being applied
    /// behind its write is finished first, without counting as a
    /// caller's catch-up: metrics must not change what they measure).
    pub fn cache_stats(&self) -> WriteBehindStats {
        let mut st = self.state.lock();
        st.finish_pending();
        st.stats()
    }
}

impl StorePartition for WriteBehindPartition {
    fn get(&self, cf_name: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut st = self.locked();
        if is_offset_key(cf_name, key) {
            return Ok(offset_bytes(st.offset));
        }
        if let Some(known) = st.lookup(cf_name, key, self.config.max_bytes, &*self.inner)? {
            return Ok(known);
        }
        let value = self.inner.get(cf_name, key)?;
        st.slots
            .cache_read(cf_name, key, value.as_deref(), self.config.max_bytes);
        Ok(value)
    }

    fn iter_range<'a>(
        &'a self,
        cf_name: &str,
        lower: &[u8],
        upper: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'a>> {
        let mut st = self.locked();
        let dirty = st.dirty_view(cf_name, lower, upper, direction, &self.config, &*self.inner)?;
        // Both views are taken under the lock: a flush cannot fall between.
        let inner = self.inner.iter_range(cf_name, lower, upper, direction)?;
        drop(st);
        Ok(Merge::over(inner, dirty, direction))
    }

    fn write(&self, batch: &WriteBatch) -> Result<()> {
        let mut st = self.locked();
        let need = st.estimate(batch);
        if need <= self.config.max_bytes {
            if st.must_flush_before(need, &self.config) {
                st.flush(&*self.inner)?;
            }
            if st.ensure_room(need, self.config.max_bytes, &*self.inner)? {
                if st.apply_behind(batch.len(), self.config.apply_behind_ops) {
                    st.defer(batch);
                    if !behind::hand_over(&self.state) {
                        st.finish_pending();
                    }
                } else {
                    st.apply(batch);
                }
                return Ok(());
            }
        }
        // Larger than the whole cache (or than what the memory budget
        // lets it hold): write it through, after everything older.
        st.forget_keys(batch, &*self.inner)?;
        self.inner.write(batch)?;
        st.written_through(batch);
        Ok(())
    }

    fn write_bulk(&self, batch: &WriteBatch) -> Result<()> {
        let mut st = self.locked();
        st.forget_keys(batch, &*self.inner)?;
        self.inner.write_bulk(batch)?;
        st.written_through(batch);
        Ok(())
    }

    fn load_bulk(&self, batch: &WriteBatch) -> Result<()> {
        let mut st = self.locked();
        st.forget_keys(batch, &*self.inner)?;
        self.inner.load_bulk(batch)?;
        st.written_through(batch);
        Ok(())
    }

    fn persist(&self) -> Result<()> {
        self.flush()?;
        self.inner.persist()
    }

    fn changelog_offset(&self) -> Result<Option<u64>> {
        Ok(self.locked().offset)
    }

    /// Flushes, then snapshots the partition below while holding the
    /// cache's lock: the snapshot holds every batch written through the
    /// wrapper before the call.
    fn snapshot(&self, dir: &std::path::Path) -> Result<Option<state_core::LocalSnapshot>> {
        let mut st = self.locked();
        st.flush(&*self.inner)?;
        self.inner.snapshot(dir)
    }

    /// Writes go into a hash table; the flush sorts what it writes below.
    fn prefers_sorted_batches(&self) -> bool {
        false
    }

    fn column_families(&self) -> Result<Vec<String>> {
        let mut names = self.inner.column_families()?;
        let st = self.locked();
        names.extend(st.written_cfs().map(str::to_owned));
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn stats(&self) -> PartitionStats {
        self.inner.stats()
    }

    /// Holds the cache's lock for the view's life (no flush can fall
    /// between the cache and the partition below; writers wait, so keep
    /// views short) and reads the cache over a view of the partition below
    /// taken under the same lock. Reads through the view cache nothing.
    fn read_view(&self) -> Result<Box<dyn ReadView + '_>> {
        let state = self.locked();
        let inner = self.inner.read_view()?;
        Ok(Box::new(WriteBehindView { state, inner }))
    }
}
