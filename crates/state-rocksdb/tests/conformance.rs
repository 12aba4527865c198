//! The state-core conformance kit on the RocksDB backend with its default
//! options (`state-txn`'s transaction kit runs on RocksDB in
//! `crates/backend-tests`).

use test_support::rocksdb::RocksHarness;

state_core::conformance_tests!(RocksHarness::new(0));
