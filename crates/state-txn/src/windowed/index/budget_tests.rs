//! Window indexes of several partitions and stores on one memory budget:
//! their bytes stay within it and every answer stays right.

use std::sync::Arc;

use state_core::{BudgetPool, Codec, MemoryBudget, MemoryPartition, RESERVATION_CHUNK};

use super::{PrefixEntry, WindowIndex, PREFIX_OVERHEAD};
use crate::{ExpireOptions, ExpiredWindow, WindowedTransaction};

#[test]
fn the_charge_per_prefix_covers_its_slot() {
    // Slot: hash, inline key, entry, two flags; plus the hash index.
    let slot = 8 + 32 + std::mem::size_of::<PrefixEntry>() + 8;
    assert!(slot + 16 <= PREFIX_OVERHEAD, "{slot}");
}

/// Runs `rounds` checkpoints of window updates over `prefixes` keys on each
/// (partition, index) pair, checking every answer against a transaction
/// without an index, and the budget after every checkpoint.
fn drive(parts: &[(Arc<MemoryPartition>, Arc<WindowIndex>)], prefixes: u32, rounds: u32, budget: &MemoryBudget) {
    for round in 0..rounds {
        for (n, (p, index)) in parts.iter().enumerate() {
            let mut t = WindowedTransaction::with_index(p.clone(), Codec::MsgPack, None, index.clone());
            let plain = WindowedTransaction::new(p.clone(), Codec::MsgPack, None);
            for k in 0..prefixes {
                // A different slice of the keys each round, so prefixes
                // come and go.
                let prefix = format!("p{n}-{}", (k * 7 + round * 13) % (prefixes * 3)).into_bytes();
                let ts = i64::from(round) * 1000;
                let start = ts - ts % 2000;
                let got: Option<u64> = t.get_window(start, start + 2000, &prefix).unwrap();
                let want: Option<u64> = plain.get_window(start, start + 2000, &prefix).unwrap();
                assert_eq!(got, want, "round {round} {prefix:?}");
                t.update_window(start, start + 2000, &(got.unwrap_or(0) + 1), ts, &prefix)
                    .unwrap();
                let expired: Vec<ExpiredWindow<u64, ()>> =
                    t.expire_windows(ts - 4000, &prefix, ExpireOptions::delete()).unwrap();
                let _ = expired;
            }
            t.commit().unwrap();
            let bytes: usize = parts.iter().map(|(_, i)| i.stats().bytes).sum();
            let reserved = budget.stats().caches.reserved;
            assert!(bytes <= reserved, "{bytes} charged, {reserved} reserved");
            assert!(reserved <= budget.cache_bytes());
        }
    }
}

#[test]
fn indexes_of_many_partitions_stay_within_one_budget() {
    // Room for about 4 x 340 prefixes across 12 indexes that want 12 x 600.
    let budget = MemoryBudget::with_engine_share(4 * RESERVATION_CHUNK, 0);
    let parts: Vec<_> = (0..12)
        .map(|_| {
            (
                Arc::new(MemoryPartition::new()),
                Arc::new(WindowIndex::with_budget(100_000, &budget)),
            )
        })
        .collect();
    drive(&parts, 200, 6, &budget);
    let evictions: u64 = parts.iter().map(|(_, i)| i.stats().evictions).sum();
    assert!(evictions > 0, "the budget made them evict");
    assert!(
        parts.iter().all(|(_, i)| i.stats().prefixes > 0),
        "every index holds some"
    );
    drop(parts);
    assert_eq!(budget.stats().caches.reserved, 0);
}

#[test]
fn an_index_without_room_holds_nothing_and_answers_right() {
    let budget = MemoryBudget::with_engine_share(1 << 20, 1 << 20);
    let parts = vec![(
        Arc::new(MemoryPartition::new()),
        Arc::new(WindowIndex::with_budget(100_000, &budget)),
    )];
    drive(&parts, 50, 4, &budget);
    assert_eq!(parts[0].1.stats().prefixes, 0);
    assert_eq!(parts[0].1.stats().bytes, 0);
}

#[test]
fn a_full_index_gives_back_when_another_is_refused() {
    let budget = MemoryBudget::with_engine_share(2 * RESERVATION_CHUNK, 0);
    let first = vec![(
        Arc::new(MemoryPartition::new()),
        Arc::new(WindowIndex::with_budget(100_000, &budget)),
    )];
    drive(&first, 1000, 2, &budget);
    let held = first[0].1.stats().bytes;
    assert!(held > RESERVATION_CHUNK, "{held}");
    // A newcomer is refused, which asks the first to give back at its next
    // commit.
    let mut newcomer = budget.reserve(BudgetPool::Caches);
    assert!(!newcomer.try_grow_to(RESERVATION_CHUNK));
    drive(&first, 1, 1, &budget);
    assert!(
        first[0].1.stats().bytes <= RESERVATION_CHUNK,
        "{:?}",
        first[0].1.stats()
    );
    assert!(newcomer.try_grow_to(RESERVATION_CHUNK / 2));
}
