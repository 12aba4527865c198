//! [`Progress`]: how long uploads, downloads and verifications report
//! their advance (statectl draws progress bars from it).

/// Receives the advance of a long operation. Every method has a no-op
/// default; calls come from the thread that called the operation.
pub trait Progress {
    /// A phase (`hashing`, `uploading`, `downloading`, `verifying`) of
    /// `total_bytes` bytes begins.
    fn begin(&self, phase: &'static str, total_bytes: u64) {
        let _ = (phase, total_bytes);
    }

    /// `bytes` more bytes of the current phase are done.
    fn advance(&self, bytes: u64) {
        let _ = bytes;
    }

    /// The current phase ended.
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
