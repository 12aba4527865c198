//! A bounded cache of committed values in front of RocksDB point reads, like
//! Kafka Streams' record cache: hot keys are read from memory.
//!
//! It is write-through: entries change only after a batch was written
//! successfully, so the cache never holds a value RocksDB does not have, and
//! it holds nothing durable — a crash loses the cache and nothing else.
//! Absent keys are cached too (as `None`), so a miss on a new key costs one
//! RocksDB read, not one per access.
//!
//! Eviction is generational (an O(1) approximation of LRU): lookups hit the
//! young generation, or the old one and are promoted; when the young
//! generation exceeds half the budget it becomes the old one and the old one
//! is dropped.
//!
//! Promotion copies the entry and leaves the old generation untouched:
//! removing from a hash table leaves tombstones, and a table of tombstones
//! makes every miss probe the whole table (seen as a third of the w1
//! benchmark's time before this was changed).

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

/// Bytes charged per entry on top of key and value (map and allocation overhead).
const ENTRY_OVERHEAD: usize = 64;

type Gen = FxHashMap<Vec<u8>, Option<Vec<u8>>>;

#[derive(Default)]
struct CfCache {
    young: Gen,
    old: Gen,
    young_bytes: usize,
}

fn cost(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
}

impl CfCache {
    fn insert(&mut self, key: Vec<u8>, value: Option<Vec<u8>>, half_budget: usize) {
        let c = cost(&key, &value);
        if let Some(prev) = self.young.insert(key, value) {
            self.young_bytes = self.young_bytes.saturating_sub(prev.as_ref().map_or(0, Vec::len));
            self.young_bytes += c - ENTRY_OVERHEAD;
        } else {
            self.young_bytes += c;
        }
        if self.young_bytes > half_budget {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
    }
}

/// See the [module docs](self).
pub(crate) struct ValueCache {
    half_budget: usize,
    cfs: Mutex<Vec<(String, CfCache)>>,
}

/// What the cache knows about a key.
pub(crate) enum Lookup {
    /// Not cached: read RocksDB.
    Miss,
    /// Cached: the committed value (or `None` if the key has no value).
    Hit(Option<Vec<u8>>),
}

impl ValueCache {
    pub(crate) fn new(budget_bytes: usize) -> Option<Self> {
        (budget_bytes > 0).then(|| ValueCache {
            half_budget: budget_bytes / 2,
            cfs: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn get(&self, cf: &str, key: &[u8]) -> Lookup {
        let mut cfs = self.cfs.lock();
        let Some((_, c)) = cfs.iter_mut().find(|(n, _)| n == cf) else {
            return Lookup::Miss;
        };
        if let Some(v) = c.young.get(key) {
            return Lookup::Hit(v.clone());
        }
        match c.old.get(key) {
            Some(v) => {
                let out = v.clone();
                c.insert(key.to_vec(), out.clone(), self.half_budget);
                Lookup::Hit(out)
            }
            None => Lookup::Miss,
        }
    }

    /// Records what a read from RocksDB returned.
    pub(crate) fn fill(&self, cf: &str, key: &[u8], value: Option<Vec<u8>>) {
        self.put(cf, key.to_vec(), value);
    }

    /// Records a committed write (after the batch succeeded).
    pub(crate) fn put(&self, cf: &str, key: Vec<u8>, value: Option<Vec<u8>>) {
        let mut cfs = self.cfs.lock();
        let idx = match cfs.iter().position(|(n, _)| n == cf) {
            Some(i) => i,
            None => {
                cfs.push((cf.to_owned(), CfCache::default()));
                cfs.len() - 1
            }
        };
        cfs[idx].1.insert(key, value, self.half_budget);
    }

    /// Forgets everything (before writes that bypass the cache).
    pub(crate) fn clear(&self) {
        self.cfs.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_misses_and_negative_entries() {
        let c = ValueCache::new(1 << 20).unwrap();
        assert!(matches!(c.get("default", b"k"), Lookup::Miss));
        c.fill("default", b"k", None);
        assert!(matches!(c.get("default", b"k"), Lookup::Hit(None)));
        c.put("default", b"k".to_vec(), Some(b"v".to_vec()));
        assert!(matches!(c.get("default", b"k"), Lookup::Hit(Some(v)) if v == b"v"));
        assert!(
            matches!(c.get("other", b"k"), Lookup::Miss),
            "column families are separate"
        );
        assert!(ValueCache::new(0).is_none());
    }

    #[test]
    fn stays_within_budget_and_keeps_recent_keys() {
        let c = ValueCache::new(100 * (ENTRY_OVERHEAD + 16)).unwrap();
        for i in 0..10_000u32 {
            c.put("default", format!("key{i:04}").into_bytes(), Some(vec![0; 8]));
            // Keep touching key 0: it must survive generations.
            assert!(matches!(c.get("default", b"key0000"), Lookup::Hit(_)), "at {i}");
        }
        let cfs = c.cfs.lock();
        let total = cfs[0].1.young.len() + cfs[0].1.old.len();
        assert!(total <= 110, "bounded: {total} entries");
    }
}
