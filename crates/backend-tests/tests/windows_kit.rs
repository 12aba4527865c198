//! `state-windows`' conformance kit (every window kind against a naive
//! model, restarts between records) on every persistent backend, where a
//! restart reopens the partition from disk, and behind a write-behind cache.

mod rocksdb_default {
    use test_support::rocksdb::RocksHarness;
    state_windows::window_conformance_tests!(RocksHarness::new(0));
}

mod fjall_default {
    use test_support::fjall::FjallHarness;
    state_windows::window_conformance_tests!(FjallHarness::new());
}

mod memory_write_behind {
    use std::time::Duration;

    use state_cache::testkit::WriteBehindHarness;
    use state_core::testkit::MemoryHarness;
    state_windows::window_conformance_tests!(WriteBehindHarness::small(MemoryHarness, Duration::ZERO));
}
