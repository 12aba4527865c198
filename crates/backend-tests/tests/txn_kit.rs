//! `state-txn`'s transaction kit on every persistent backend: RocksDB with
//! its default options and with a small value cache, and fjall.

#[path = "../../state-rocksdb/tests/common/mod.rs"]
mod rocks;

#[path = "../../state-fjall/tests/common/mod.rs"]
mod fjall;

mod rocksdb_default {
    use super::rocks::RocksHarness;
    state_txn::txn_conformance_tests!(RocksHarness::new(0));
}

mod rocksdb_value_cache {
    use super::rocks::RocksHarness;
    state_txn::txn_conformance_tests!(RocksHarness::new(64 << 10));
}

mod fjall_default {
    use super::fjall::FjallHarness;
    state_txn::txn_conformance_tests!(FjallHarness::new());
}
