//! [`Progress`]: how long uploads, downloads and verifications report
//! their advance (statectl draws progress bars from it), and how their
//! caller cancels a download, restore or verification.

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

    /// True once the caller wants the operation to stop (a process
    /// shutting down). Downloads, restores and verifications ask before
    /// each file and between the chunks of a file (up to 1 MiB from a
    /// local store, as the network delivers them from a remote one), and
    /// stop with [`SnapshotError::Cancelled`](crate::SnapshotError::Cancelled):
    /// a download deletes what it wrote, and a restore installs nothing.
    /// Uploads do not ask. A read that waits for bytes that do not come is
    /// not interrupted: the answer is seen once it returns. The default:
    /// never.
    fn cancelled(&self) -> bool {
        false
    }
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Reports nothing of `0`'s advance but its cancellation: for reads a
/// caller does not count (the checksum check of a file that is then
/// hard-linked rather than copied).
pub(crate) struct CancelOnly<'a>(pub(crate) &'a dyn Progress);

impl Progress for CancelOnly<'_> {
    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}
