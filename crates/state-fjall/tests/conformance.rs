//! The state-core and state-txn conformance kits, run against fjall.

use std::sync::Arc;

use state_core::testkit::Harness;
use state_core::{Backend, StoreLocation};
use state_fjall::{FjallBackend, FjallOptions};

/// A backend over a fresh temporary directory.
struct TempHarness {
    dir: tempfile::TempDir,
    backend: Arc<dyn Backend>,
}

impl TempHarness {
    fn fjall() -> Self {
        TempHarness {
            dir: tempfile::tempdir().expect("temp dir"),
            backend: FjallBackend::shared(FjallOptions::default()),
        }
    }
}

impl Harness for TempHarness {
    fn backend(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }

    fn location(&self) -> StoreLocation {
        StoreLocation::new("conformance", self.dir.path().join("store"))
    }
}

state_core::conformance_tests!(TempHarness::fjall());
state_txn::txn_conformance_tests!(TempHarness::fjall());
