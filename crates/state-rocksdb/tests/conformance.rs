//! The state-core and state-txn conformance kits on the RocksDB backend
//! with its default options.

mod common;
use common::RocksHarness;

state_core::conformance_tests!(RocksHarness::new(0));

state_txn::txn_conformance_tests!(RocksHarness::new(0));
