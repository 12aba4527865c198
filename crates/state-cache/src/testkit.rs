//! [`WriteBehindHarness`]: any backend's conformance harness with a
//! write-behind cache in front of every partition, so the backend kit
//! (`state_core::conformance_tests!`) and the transaction kit
//! (`state_txn::txn_conformance_tests!`) run through the cache.

use std::sync::Arc;
use std::time::Duration;

use state_core::testkit::Harness;
use state_core::{Backend, StoreLocation};

use crate::config::WriteBehindConfig;
use crate::write_behind::WriteBehindBackend;

/// The partitions of `inner`'s backend behind write-behind caches with
/// `config`.
///
/// Reported as not durable: dropping a partition drops its cache, so the
/// kits' reopen cases (which expect a dropped partition's writes back) do
/// not apply.
#[derive(Debug)]
pub struct WriteBehindHarness<H> {
    inner: H,
    config: WriteBehindConfig,
}

impl<H: Harness> WriteBehindHarness<H> {
    /// `inner` behind caches with `config`.
    pub fn new(inner: H, config: WriteBehindConfig) -> Self {
        WriteBehindHarness { inner, config }
    }

    /// `inner` behind caches of 16 KiB flushed at 4 KiB or `max_dirty_age`:
    /// small enough that flushes, evictions and written-through batches
    /// happen throughout the kits. Every batch is applied behind its
    /// `write` ([`WriteBehindConfig::apply_behind_ops`] 1), so the kits
    /// check that path too; [`new`](Self::new) with the default config
    /// checks the other.
    pub fn small(inner: H, max_dirty_age: Duration) -> Self {
        Self::new(
            inner,
            WriteBehindConfig {
                max_bytes: 16 << 10,
                max_dirty_bytes: 4 << 10,
                max_dirty_age,
                apply_behind_ops: 1,
            },
        )
    }
}

impl<H: Harness> Harness for WriteBehindHarness<H> {
    fn backend(&self) -> Arc<dyn Backend> {
        WriteBehindBackend::shared(self.inner.backend(), self.config)
    }

    fn location(&self) -> StoreLocation {
        self.inner.location()
    }

    fn durable(&self) -> bool {
        false
    }
}
