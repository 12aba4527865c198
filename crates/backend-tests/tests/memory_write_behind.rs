//! `state-txn`'s transaction kit on the in-memory backend behind small
//! write-behind caches (`state-cache` runs the backend kit the same way),
//! flushed lazily and at every write.

use std::time::Duration;

use state_cache::testkit::WriteBehindHarness;
use state_core::testkit::MemoryHarness;

mod lazy {
    use super::*;
    state_txn::txn_conformance_tests!(WriteBehindHarness::small(MemoryHarness, Duration::from_secs(3600)));
}

mod eager {
    use super::*;
    state_txn::txn_conformance_tests!(WriteBehindHarness::small(MemoryHarness, Duration::ZERO));
}
