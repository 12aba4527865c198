//! `state-txn`'s transaction kit on every persistent backend: RocksDB with
//! its default options and with a small value cache, and fjall.

mod rocksdb_default {
    use test_support::rocksdb::RocksHarness;
    state_txn::txn_conformance_tests!(RocksHarness::new(0));
}

mod rocksdb_value_cache {
    use test_support::rocksdb::RocksHarness;
    state_txn::txn_conformance_tests!(RocksHarness::new(64 << 10));
}

mod fjall_default {
    use test_support::fjall::FjallHarness;
    state_txn::txn_conformance_tests!(FjallHarness::new());
}
