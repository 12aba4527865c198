//! The state-core conformance kit, run against fjall (`state-txn`'s
//! transaction kit runs on fjall in `crates/backend-tests`).

use test_support::fjall::FjallHarness;

state_core::conformance_tests!(FjallHarness::new());
