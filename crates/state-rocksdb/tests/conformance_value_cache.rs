//! The conformance kit again, with the opt-in value cache on and small
//! enough to evict during the cases: the cache must never change what a
//! reader sees.

use test_support::rocksdb::RocksHarness;

state_core::conformance_tests!(RocksHarness::new(64 << 10));
