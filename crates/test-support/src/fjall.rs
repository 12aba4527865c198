//! [`FjallHarness`]: the conformance kits on fjall.

use std::sync::Arc;

use state_core::testkit::Harness;
use state_core::{Backend, StoreLocation};
use state_fjall::{FjallBackend, FjallOptions};

/// A fjall backend with default options over a fresh temporary directory
/// (removed on drop).
pub struct FjallHarness {
    dir: tempfile::TempDir,
    backend: Arc<dyn Backend>,
}

impl FjallHarness {
    /// A harness over a fresh temporary directory.
    pub fn new() -> Self {
        FjallHarness {
            dir: tempfile::tempdir().expect("a temporary directory"),
            backend: FjallBackend::shared(FjallOptions::default()),
        }
    }
}

impl Default for FjallHarness {
    fn default() -> Self {
        Self::new()
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
