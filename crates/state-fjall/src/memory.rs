//! [`PartitionMemory`]: a fjall partition's share of a process-wide
//! [`MemoryBudget`]: one block cache for every partition on the budget, and
//! write buffers (memtables) that stay within a reservation of the
//! budget's engine pool.
//!
//! fjall 3 has neither a shared cache nor a write buffer limit across
//! databases in its documented API; this module uses three of its hidden
//! ones (`Config::cache`, `Database::write_buffer_size`,
//! `Keyspace::rotate_memtable`), which is safe only because the version is
//! pinned (`=3.1.13`): check them on every upgrade.

use std::sync::Arc;

use fjall::{Config, Database, Keyspace};
use parking_lot::Mutex;
use state_core::{BudgetPool, MemoryBudget, Reservation};

/// The part of a budget's engine share that goes to fjall's shared block
/// cache; the rest is for write buffers.
const CACHE_SHARE_DIVISOR: usize = 2;

/// Smallest cache a budget gives fjall, even when its engine share is gone
/// (to another engine on the same budget).
const MIN_CACHE: u64 = 4 << 20;

/// The one block cache of a budget, held inside a configuration whose
/// cache every partition's configuration takes.
struct SharedCache(Config);

/// A partition's write buffers against its reservation.
struct WriteBuffers {
    reservation: Reservation,
    /// The write buffer size when memtables were last sealed for flushing
    /// (0: none pending).
    sealed_at: u64,
}

/// What a partition draws from its budget, if it has one.
pub(crate) struct PartitionMemory {
    cache: Option<Arc<SharedCache>>,
    write_buffers: Option<Mutex<WriteBuffers>>,
}

impl PartitionMemory {
    /// Nothing shared: fjall's own per-database cache and limits.
    pub(crate) fn unbudgeted() -> Self {
        PartitionMemory {
            cache: None,
            write_buffers: None,
        }
    }

    /// The budget's cache (made by the first partition on it) and an empty
    /// reservation for the partition's write buffers.
    pub(crate) fn of_budget(budget: &MemoryBudget) -> Self {
        let cache = budget.shared(
            BudgetPool::Engine,
            budget.engine_bytes() / CACHE_SHARE_DIVISOR,
            |granted| {
                let capacity = (granted as u64).max(MIN_CACHE);
                // The path is never opened: the configuration only carries the cache.
                SharedCache(Database::builder(".").cache_size(capacity).into_config())
            },
        );
        PartitionMemory {
            cache: Some(cache),
            write_buffers: Some(Mutex::new(WriteBuffers {
                reservation: budget.reserve(BudgetPool::Engine),
                sealed_at: 0,
            })),
        }
    }

    /// `config` with the budget's cache, if any.
    pub(crate) fn configure(&self, mut config: Config) -> Config {
        if let Some(shared) = &self.cache {
            config.cache = shared.0.cache.clone();
        }
        config
    }

    /// After a write: keeps the reservation covering the database's write
    /// buffers; when the budget cannot cover them (or asks holders above
    /// their fair share to give back), seals the memtables so fjall
    /// flushes them. One atomic load and an uncontended lock otherwise.
    pub(crate) fn after_write(&self, db: &Database, keyspaces: impl FnOnce() -> Vec<Keyspace>) {
        let Some(wb) = &self.write_buffers else { return };
        let size = db.write_buffer_size();
        let mut wb = wb.lock();
        let bytes = usize::try_from(size).unwrap_or(usize::MAX);
        if wb.sealed_at > 0 && size < wb.sealed_at / 2 {
            // The sealed memtables were flushed.
            wb.sealed_at = 0;
        }
        let covered = wb.reservation.try_grow_to(bytes);
        let asked = wb.reservation.pressure() && wb.reservation.held() > wb.reservation.fair_share();
        if covered && !asked {
            if wb.reservation.held() > bytes.saturating_mul(2) + state_core::RESERVATION_CHUNK {
                // Flushed since: give back what is no longer used.
                wb.reservation.shrink_to(bytes);
            }
            return;
        }
        // Seal once per doubling, so a flush in progress is not chased by
        // a seal per write (fjall stalls writers at 4 sealed memtables).
        if wb.sealed_at == 0 || size >= wb.sealed_at.saturating_mul(2) {
            wb.sealed_at = size.max(1);
            for ks in keyspaces() {
                if let Err(e) = ks.rotate_memtable() {
                    tracing::warn!(error = %e, "sealing a memtable for the memory budget failed");
                }
            }
        }
    }

    /// Bytes the partition's write buffers hold of the budget (`None`
    /// without a budget).
    pub(crate) fn reserved(&self) -> Option<usize> {
        self.write_buffers.as_ref().map(|wb| wb.lock().reservation.held())
    }
}
