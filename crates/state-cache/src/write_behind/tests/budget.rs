//! Write-behind caches of several partitions and stores drawing from one
//! memory budget: the accounting holds, data stays right, and a cache
//! that takes the budget gives it back when another one is refused.

use std::sync::Arc;
use std::time::Duration;

use state_core::{cf, BudgetPool, MemoryBudget, MemoryPartition, StorePartition, RESERVATION_CHUNK};

use super::{batch, config};
use crate::{WriteBehindConfig, WriteBehindPartition, WriteThroughCache};

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

/// Caches of 3 stores x 4 partitions, each allowed 1 MiB on its own, in a
/// budget of 256 KiB: the caches together never pass the budget, and every
/// value reads back.
#[test]
fn caches_of_many_partitions_stay_within_one_budget() {
    let budget = MemoryBudget::with_engine_share(4 * RESERVATION_CHUNK + (1 << 20), 1 << 20);
    assert_eq!(budget.cache_bytes(), 4 * RESERVATION_CHUNK);
    let caches: Vec<(Arc<MemoryPartition>, WriteBehindPartition)> = (0..12)
        .map(|_| {
            let below = Arc::new(MemoryPartition::new());
            let wb = WriteBehindPartition::with_budget(below.clone(), config(1 << 20), &budget).unwrap();
            (below, wb)
        })
        .collect();
    for i in 0..3000u32 {
        for (n, (_, wb)) in caches.iter().enumerate() {
            let value = format!("{n}-{i}");
            wb.write(&batch(&[(&key(i), Some(value.as_bytes()))], Some(u64::from(i))))
                .unwrap();
        }
        let resident: usize = caches.iter().map(|(_, wb)| wb.cache_stats().resident_bytes).sum();
        let reserved = budget.stats().caches.reserved;
        assert!(resident <= reserved, "{resident} resident, {reserved} reserved, at {i}");
        assert!(reserved <= budget.cache_bytes(), "{reserved} at {i}");
    }
    for (n, (below, wb)) in caches.iter().enumerate() {
        for i in (0..3000u32).step_by(7) {
            let want = format!("{n}-{i}").into_bytes();
            assert_eq!(wb.get(cf::DEFAULT, &key(i)).unwrap(), Some(want));
        }
        wb.flush().unwrap();
        assert_eq!(below.changelog_offset().unwrap(), Some(2999));
        assert_eq!(
            below.get(cf::DEFAULT, &key(2999)).unwrap(),
            Some(format!("{n}-2999").into_bytes())
        );
    }
    let peak = budget.stats().caches.peak_reserved;
    assert!(peak <= budget.cache_bytes(), "{peak}");
    drop(caches);
    assert_eq!(budget.stats().caches.reserved, 0, "dropped caches give everything back");
}

/// A budget with no room for caches: every batch is written through, and
/// reads are still right.
#[test]
fn without_room_every_batch_is_written_through() {
    let budget = MemoryBudget::with_engine_share(1 << 20, 1 << 20);
    let below = Arc::new(MemoryPartition::new());
    let wb = WriteBehindPartition::with_budget(below.clone(), config(1 << 20), &budget).unwrap();
    for i in 0..50u32 {
        wb.write(&batch(&[(&key(i), Some(b"v"))], Some(u64::from(i)))).unwrap();
        assert_eq!(below.changelog_offset().unwrap(), Some(u64::from(i)), "through at once");
    }
    assert_eq!(wb.cache_stats().resident_bytes, 0);
    assert_eq!(wb.get(cf::DEFAULT, &key(7)).unwrap(), Some(b"v".to_vec()));
}

/// One cache takes the whole budget; a second one is refused, which asks
/// the first to give back down to its fair share at its next flush.
#[test]
fn a_refused_cache_makes_the_greedy_one_give_back() {
    let share = 8 * RESERVATION_CHUNK;
    let budget = MemoryBudget::with_engine_share(share, 0);
    let lazy = WriteBehindConfig {
        max_dirty_age: Duration::from_secs(3600),
        ..config(1 << 30)
    };
    let greedy = WriteBehindPartition::with_budget(Arc::new(MemoryPartition::new()), lazy, &budget).unwrap();
    let mut i = 0u32;
    while budget.stats().caches.reserved < share {
        greedy.write(&batch(&[(&key(i), Some(&[7; 64]))], None)).unwrap();
        i += 1;
    }
    greedy.flush().unwrap();
    let before = greedy.cache_stats().resident_bytes;
    assert!(before > share / 2, "{before}");
    let newcomer = WriteBehindPartition::with_budget(Arc::new(MemoryPartition::new()), lazy, &budget).unwrap();
    newcomer.write(&batch(&[(b"x", Some(b"1"))], None)).unwrap();
    assert_eq!(newcomer.cache_stats().resident_bytes, 0, "refused: written through");
    assert!(budget.stats().caches.denials > 0);
    // The greedy cache's next flush (or maintenance) gives back.
    assert!(!greedy.flush_if_due().unwrap());
    let after = greedy.cache_stats().resident_bytes;
    assert!(after <= share / 2, "{after} > fair share");
    newcomer.write(&batch(&[(b"y", Some(b"1"))], None)).unwrap();
    assert!(newcomer.cache_stats().resident_bytes > 0, "room now");
    assert_eq!(newcomer.get(cf::DEFAULT, b"x").unwrap(), Some(b"1".to_vec()));
}

/// Value caches (RocksDB's `value_cache_bytes`) draw from the same pool.
#[test]
fn value_caches_share_the_pool_with_write_behind_caches() {
    let budget = MemoryBudget::with_engine_share(2 * RESERVATION_CHUNK, 0);
    let values = WriteThroughCache::with_budget(1 << 30, &budget).unwrap();
    let wb = WriteBehindPartition::with_budget(Arc::new(MemoryPartition::new()), config(1 << 30), &budget).unwrap();
    for i in 0..5000u32 {
        values.fill(cf::DEFAULT, &key(i), Some(&[1; 32]));
        wb.write(&batch(&[(&key(i), Some(&[2; 32]))], None)).unwrap();
        let both = values.resident_bytes() + wb.cache_stats().resident_bytes;
        assert!(both <= budget.cache_bytes(), "{both} at {i}");
    }
    assert!(values.resident_bytes() > 0 && wb.cache_stats().resident_bytes > 0);
    assert_eq!(budget.stats().caches.holders, 2);
    let _engine = budget.reserve(BudgetPool::Engine);
    assert_eq!(budget.stats().caches.holders, 2, "pools count their own holders");
}
