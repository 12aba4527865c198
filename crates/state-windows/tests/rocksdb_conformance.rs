//! The window conformance kit on RocksDB: restarts reopen the partition
//! from disk.

use test_support::rocksdb::RocksHarness;

state_windows::window_conformance_tests!(RocksHarness::new(0));
