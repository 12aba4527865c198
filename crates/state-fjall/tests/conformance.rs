//! The state-core conformance kit, run against fjall (`state-txn`'s
//! transaction kit runs on fjall in `crates/backend-tests`).

mod common;
use common::FjallHarness;

state_core::conformance_tests!(FjallHarness::new());
