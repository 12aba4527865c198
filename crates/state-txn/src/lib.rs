//! # state-txn
//!
//! Backend-agnostic transactions over any [`state_core::StorePartition`]:
//!
//! * [`PartitionTransaction`] — read-your-writes cache per column family,
//!   delete markers, the `Started -> Prepared -> Complete | Failed` status
//!   machine, `prepare` emitting one changelog record per change, `flush`
//!   writing all changes and the changelog offset in one atomic batch.
//! * [`WindowedTransaction`] — time windows per key prefix: update, get,
//!   delete, range, expiry that emits each window once, collections.
//! * [`TimestampedTransaction`] — values by event time per prefix: latest
//!   at or before a time, intervals, grace-period retention, duplicates.
//!
//! A backend that passes the `state-core` conformance kit gets all of this
//! without writing any transaction code.

#![warn(missing_docs)]

mod cache;
mod checkpointed;
mod error;
mod few;
mod options;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
mod timestamped;
mod transaction;
mod ttl;
mod windowed;
pub mod write_behind;

pub use checkpointed::StateTransaction;
pub use error::{Result, TxnError};
pub use options::{CollectedValues, ExpireOptions};
pub use timestamped::{TimestampedConfig, TimestampedTransaction, MIN_ELIGIBLE_TIMESTAMPS_KEY};
pub use transaction::{PartitionTransaction, TxnStatus};
pub use ttl::{GetOptions, SetOptions};
pub use windowed::{
    ExpiredWindow, Window, WindowCursor, WindowIndex, WindowIndexStats, WindowedTransaction, DEFAULT_MAX_PREFIXES,
    GLOBAL_COUNTER_KEY,
};
pub use write_behind::{WriteBehindBackend, WriteBehindConfig, WriteBehindPartition, WriteBehindStats};

#[cfg(test)]
mod memory_conformance {
    crate::txn_conformance_tests!(state_core::testkit::MemoryHarness);
}

/// The backend conformance kit and the transaction kit on the in-memory
/// backend behind a write-behind cache, with bounds small enough that
/// flushes, evictions and written-through batches happen throughout.
#[cfg(test)]
mod write_behind_conformance {
    use std::sync::Arc;
    use std::time::Duration;

    use state_core::testkit::Harness;
    use state_core::{Backend, MemoryBackend, StoreLocation};

    use crate::{WriteBehindBackend, WriteBehindConfig};

    #[derive(Clone, Copy)]
    struct Small {
        age: Duration,
    }

    impl Harness for Small {
        fn backend(&self) -> Arc<dyn Backend> {
            WriteBehindBackend::shared(
                MemoryBackend::shared(),
                WriteBehindConfig {
                    max_bytes: 16 << 10,
                    max_dirty_bytes: 4 << 10,
                    max_dirty_age: self.age,
                },
            )
        }

        fn location(&self) -> StoreLocation {
            StoreLocation::new("conformance", "memory+write-behind")
        }
    }

    mod lazy {
        use super::*;
        state_core::conformance_tests!(Small {
            age: Duration::from_secs(3600)
        });
        crate::txn_conformance_tests!(Small {
            age: Duration::from_secs(3600)
        });
    }

    mod eager {
        use super::*;
        state_core::conformance_tests!(Small { age: Duration::ZERO });
        crate::txn_conformance_tests!(Small { age: Duration::ZERO });
    }
}

#[cfg(test)]
mod thread_safety {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn shared_pieces_are_send_and_sync_and_transactions_are_send() {
        send_sync::<crate::WindowIndex>();
        send_sync::<crate::WriteBehindPartition>();
        send_sync::<crate::WriteBehindBackend>();
        send::<crate::WindowedTransaction>();
        send::<crate::PartitionTransaction>();
    }
}
