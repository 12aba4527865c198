//! [`WriteThroughCache`]: committed values of hot keys in front of a
//! backend's point reads.

use parking_lot::Mutex;
use state_core::{cf, keys, BudgetPool, MemoryBudget, Reservation, WriteBatch};

use crate::slots::Slots;

/// What a [`WriteThroughCache`] knows about a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Not cached: read the backend.
    Miss,
    /// Cached: the committed value (`None`: the key has no value).
    Hit(Option<Vec<u8>>),
}

/// A bounded cache of committed values in front of a
/// backend's point reads, like Kafka Streams' record cache: hot keys are
/// read from memory. A backend holds one and calls it around its own reads
/// and writes (RocksDB does, behind `RocksDbOptions::value_cache_bytes`).
///
/// It is write-through: entries change only after a batch was written
/// successfully, so the cache never holds a value the backend does not
/// have, and it holds nothing durable — a crash loses the cache and nothing
/// else. Absent keys are cached too, so a miss on a new key costs one read,
/// not one per access. Entries live in the same slots as the write-behind
/// cache's and are evicted the same way (second chance), all of them clean.
///
/// # Guarantees
/// * Its resident bytes (keys, values and
///   [`ENTRY_OVERHEAD`](crate::ENTRY_OVERHEAD) per entry) never exceed
///   the size it was made with (nor what a [`MemoryBudget`] reserved for
///   it); a value larger than a quarter of the size is not cached.
/// * [`get`](Self::get) answers [`Lookup::Hit`] only with what the last
///   [`fill`](Self::fill) or [`written`](Self::written) of the key said,
///   and nothing after [`clear`](Self::clear).
#[derive(Debug)]
pub struct WriteThroughCache {
    max_bytes: usize,
    slots: Mutex<Slots>,
}

impl WriteThroughCache {
    /// A cache of at most `max_bytes`; `None` for 0 (no cache).
    pub fn new(max_bytes: usize) -> Option<Self> {
        Self::with_reservation(max_bytes, Reservation::unlimited())
    }

    /// [`new`](Self::new), drawing its bytes from `budget`'s
    /// [`BudgetPool::Caches`] as well (it caches less when the budget has
    /// no room, and gives back beyond its fair share when asked).
    pub fn with_budget(max_bytes: usize, budget: &MemoryBudget) -> Option<Self> {
        Self::with_reservation(max_bytes, budget.reserve(BudgetPool::Caches))
    }

    fn with_reservation(max_bytes: usize, reservation: Reservation) -> Option<Self> {
        (max_bytes > 0).then(|| WriteThroughCache {
            max_bytes,
            slots: Mutex::new(Slots::new(reservation)),
        })
    }

    /// What the cache knows about `key` in column family `cf_name`.
    pub fn get(&self, cf_name: &str, key: &[u8]) -> Lookup {
        let mut slots = self.slots.lock();
        let Some(cf) = slots.cf_index(cf_name) else {
            return Lookup::Miss;
        };
        match slots.lookup(cf, key) {
            Some(value) => Lookup::Hit(value),
            None => Lookup::Miss,
        }
    }

    /// Records what a read of the backend returned for `key`.
    pub fn fill(&self, cf_name: &str, key: &[u8], value: Option<&[u8]>) {
        self.slots.lock().cache_read(cf_name, key, value, self.max_bytes);
    }

    /// Records a batch the backend has written (call it only after the
    /// write succeeded): its values, and its changelog offset as the key
    /// it is stored under.
    pub fn written(&self, batch: &WriteBatch) {
        let mut slots = self.slots.lock();
        slots.give_back_if_asked();
        for op in batch.iter() {
            replace(&mut slots, op.cf, op.key, op.value, self.max_bytes);
        }
        if let Some(offset) = batch.changelog_offset() {
            let value = keys::encode_u64(offset);
            replace(
                &mut slots,
                cf::METADATA,
                cf::CHANGELOG_OFFSET_KEY,
                Some(&value),
                self.max_bytes,
            );
        }
    }

    /// Forgets everything (before writes that bypass the cache).
    pub fn clear(&self) {
        self.slots.lock().clear();
    }

    /// Bytes held, as charged against the budget.
    pub fn resident_bytes(&self) -> usize {
        self.slots.lock().resident
    }
}

/// Replaces the cached value of `key` by `value`; a value too large to
/// cache drops the old one.
fn replace(slots: &mut Slots, cf_name: &str, key: &[u8], value: Option<&[u8]>, max: usize) {
    if let Some(idx) = slots.cf_index(cf_name).and_then(|cf| slots.find(cf, key)) {
        slots.remove(idx);
    }
    slots.cache_read(cf_name, key, value, max);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ENTRY_OVERHEAD;

    #[test]
    fn hits_misses_and_negative_entries() {
        let c = WriteThroughCache::new(1 << 20).unwrap();
        assert_eq!(c.get("default", b"k"), Lookup::Miss);
        c.fill("default", b"k", None);
        assert_eq!(c.get("default", b"k"), Lookup::Hit(None));
        let mut b = WriteBatch::new();
        b.put("default", b"k", b"v");
        b.set_changelog_offset(9);
        c.written(&b);
        assert_eq!(c.get("default", b"k"), Lookup::Hit(Some(b"v".to_vec())));
        assert_eq!(
            c.get(cf::METADATA, cf::CHANGELOG_OFFSET_KEY),
            Lookup::Hit(Some(9u64.to_be_bytes().to_vec()))
        );
        assert_eq!(c.get("other", b"k"), Lookup::Miss, "column families are separate");
        let mut d = WriteBatch::new();
        d.delete("default", b"k");
        c.written(&d);
        assert_eq!(c.get("default", b"k"), Lookup::Hit(None));
        c.clear();
        assert_eq!(c.get("default", b"k"), Lookup::Miss);
        assert!(WriteThroughCache::new(0).is_none());
    }

    #[test]
    fn a_value_too_large_to_cache_drops_the_old_one() {
        let c = WriteThroughCache::new(4 * (ENTRY_OVERHEAD + 8)).unwrap();
        c.fill("default", b"k", Some(b"small"));
        let mut b = WriteBatch::new();
        b.put("default", b"k", &[7; 64]);
        c.written(&b);
        assert_eq!(c.get("default", b"k"), Lookup::Miss);
    }

    #[test]
    fn stays_within_budget_and_keeps_recent_keys() {
        let max = 100 * (ENTRY_OVERHEAD + 16);
        let c = WriteThroughCache::new(max).unwrap();
        for i in 0..10_000u32 {
            let mut b = WriteBatch::new();
            b.put("default", format!("key{i:04}").as_bytes(), &[0; 8]);
            c.written(&b);
            // Keep touching key 0: it must survive the sweeps.
            assert!(matches!(c.get("default", b"key0000"), Lookup::Hit(_)), "at {i}");
            assert!(c.resident_bytes() <= max, "bounded at {i}");
        }
    }
}
