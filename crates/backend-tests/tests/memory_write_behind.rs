//! `state-txn`'s transaction kit on the in-memory backend behind a
//! write-behind cache (`state-cache`, which runs the backend kit itself),
//! with bounds small enough that flushes, evictions and written-through
//! batches happen throughout.

use std::sync::Arc;
use std::time::Duration;

use state_cache::{WriteBehindBackend, WriteBehindConfig};
use state_core::testkit::Harness;
use state_core::{Backend, MemoryBackend, StoreLocation};

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
    state_txn::txn_conformance_tests!(Small {
        age: Duration::from_secs(3600)
    });
}

mod eager {
    use super::*;
    state_txn::txn_conformance_tests!(Small { age: Duration::ZERO });
}
