//! # state-cache
//!
//! Caches in front of any [`state_core::StorePartition`]:
//!
//! * [`WriteBehindPartition`] / [`WriteBehindBackend`] — defer and
//!   coalesce local writes across checkpoints, bounded in bytes and time,
//!   for stores whose every committed write is also in a changelog.
//! * [`WriteThroughCache`] — committed values of hot keys in front of a
//!   backend's point reads (RocksDB's `value_cache_bytes`).
//!
//! Both keep their entries in the same slots (a
//! [`state_core::mem::ByteMap`] keyed by column family and key, inline keys
//! and values, second-chance eviction of clean entries) and charge them the
//! same [`ENTRY_OVERHEAD`].
//!
//! Depends on `state-core` only: it works over every backend.

#![warn(missing_docs)]

mod config;
mod slots;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod write_behind;
mod write_through;

pub use config::{WriteBehindConfig, WriteBehindStats, ENTRY_OVERHEAD};
pub use write_behind::{WriteBehindBackend, WriteBehindPartition};
pub use write_through::{Lookup, WriteThroughCache};

/// The backend conformance kit on the in-memory backend behind small
/// write-behind caches, flushed lazily and at every write.
#[cfg(test)]
mod write_behind_conformance {
    use std::time::Duration;

    use state_core::testkit::MemoryHarness;

    use crate::testkit::WriteBehindHarness;

    mod lazy {
        use super::*;
        state_core::conformance_tests!(WriteBehindHarness::small(MemoryHarness, Duration::from_secs(3600)));
    }

    mod eager {
        use super::*;
        state_core::conformance_tests!(WriteBehindHarness::small(MemoryHarness, Duration::ZERO));
    }
}

#[cfg(test)]
mod thread_safety {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn caches_are_send_and_sync() {
        send_sync::<crate::WriteBehindPartition>();
        send_sync::<crate::WriteBehindBackend>();
    }
}
