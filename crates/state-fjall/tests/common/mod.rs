//! The conformance harness shared by the fjall conformance runs (also
//! used by `crates/backend-tests`).

use std::sync::Arc;

use state_core::testkit::Harness;
use state_core::{Backend, StoreLocation};
use state_fjall::{FjallBackend, FjallOptions};

/// A fjall backend over a fresh temporary directory.
pub struct FjallHarness {
    dir: tempfile::TempDir,
    backend: Arc<dyn Backend>,
}

impl FjallHarness {
    pub fn new() -> Self {
        FjallHarness {
            dir: tempfile::tempdir().expect("temp dir"),
            backend: FjallBackend::shared(FjallOptions::default()),
        }
    }
}

impl Harness for FjallHarness {
    fn backend(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }

    fn location(&self) -> StoreLocation {
        StoreLocation::new("conformance", self.dir.path().join("store"))
    }
}
