//! One memory budget for a manager's stores, on the mock cluster: the
//! engine, the write-behind caches and the window indexes draw from it,
//! its pools hold, and the counts stay exact.

use state_manager::{
    ManagerConfig, MemoryBudget, ProcessingGuarantee, RocksDbBackend, RocksDbOptions, WriteBehindConfig,
};
use test_support::counting::*;

#[test]
fn one_budget_bounds_the_engine_and_the_caches_and_counts_stay_exact() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let budget = MemoryBudget::new(64 << 20);
    let given = budget.clone();
    let mut m = member_with_spec(
        &bootstrap,
        ProcessingGuarantee::ExactlyOnce,
        "a",
        "cooperative-sticky",
        Fate::Survives,
        tempfile::tempdir().unwrap(),
        move |c| {
            let options = RocksDbOptions {
                memory_budget: Some(given.clone()),
                ..RocksDbOptions::default()
            };
            c.backend = RocksDbBackend::shared(options);
            c.memory_budget = Some(given);
        },
        |s| s.write_behind(WriteBehindConfig::default()),
    );
    own_all(&mut m);
    let truth = produce_input(&cluster);
    finish(&mut m);
    assert_eq!(counts(&m), truth);
    let stats = budget.stats();
    assert_eq!(stats.engine.reserved, budget.engine_bytes(), "RocksDB's one cache");
    assert_eq!(
        stats.caches.holders, PARTITIONS as usize,
        "a write-behind cache per partition"
    );
    assert!(stats.caches.reserved > 0, "{stats:?}");
    assert!(stats.caches.peak_reserved <= budget.cache_bytes(), "{stats:?}");
}

#[test]
fn with_budget_gives_the_default_backend_and_the_caches_one_budget() {
    let budget = MemoryBudget::new(256 << 20);
    let config = ManagerConfig::with_budget("g", "/tmp/unused", budget.clone());
    assert!(config.memory_budget.as_ref().is_some_and(|b| b.same_as(&budget)));
    assert!(config.backend.memory_budget().is_some_and(|b| b.same_as(&budget)));
    assert_eq!(budget.stats().caches.reserved, 0, "nothing cached yet");
}
