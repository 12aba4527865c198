//! fjall partitions on one memory budget: one shared block cache, write
//! buffers within the budget's engine share, data intact.

use state_core::{cf, MemoryBudget, StorePartition, WriteBatch};
use state_fjall::{FjallOptions, FjallPartition};

#[test]
fn partitions_share_one_cache_and_their_write_buffers_stay_in_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let budget = MemoryBudget::new(32 << 20);
    let options = FjallOptions {
        memory_budget: Some(budget.clone()),
        ..FjallOptions::default()
    };
    let parts: Vec<FjallPartition> = (0..4)
        .map(|n| FjallPartition::open(dir.path().join(n.to_string()), &options).unwrap())
        .collect();
    let cache = budget.engine_bytes() as u64 / 2;
    for p in &parts {
        assert_eq!(p.cache_capacity(), cache, "the budget's one cache");
    }
    let value = vec![7u8; 512];
    for round in 0..100u32 {
        for (n, p) in parts.iter().enumerate() {
            let mut b = WriteBatch::new();
            for k in 0..100u32 {
                b.put(cf::DEFAULT, format!("{n}-{round}-{k}").as_bytes(), &value);
            }
            b.set_changelog_offset(u64::from(round));
            p.write(&b).unwrap();
        }
        let engine = budget.stats().engine;
        assert!(engine.reserved <= engine.limit, "{engine:?}");
        let reserved: usize = parts.iter().map(|p| p.budget_reserved().unwrap()).sum();
        assert!(reserved as u64 + cache <= budget.engine_bytes() as u64, "{reserved}");
    }
    for (n, p) in parts.iter().enumerate() {
        assert_eq!(
            p.get(cf::DEFAULT, format!("{n}-99-99").as_bytes()).unwrap(),
            Some(value.clone())
        );
        assert_eq!(p.changelog_offset().unwrap(), Some(99));
    }
}

#[test]
fn without_a_budget_each_partition_has_its_own_cache() {
    let dir = tempfile::tempdir().unwrap();
    let options = FjallOptions {
        cache_size: 3 << 20,
        ..FjallOptions::default()
    };
    let p = FjallPartition::open(dir.path().join("0"), &options).unwrap();
    assert_eq!(p.cache_capacity(), 3 << 20);
    assert_eq!(p.budget_reserved(), None);
}
