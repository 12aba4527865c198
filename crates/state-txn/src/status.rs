//! [`TxnStatus`]: where a transaction is in its life cycle.

use std::fmt;

/// The life cycle of a transaction.
///
/// `Started -> Prepared -> Complete`; any error on the way -> `Failed`.
/// Failed and complete transactions refuse all further use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnStatus {
    /// Accepts reads and writes.
    Started,
    /// Changes were sent to the changelog; only `flush` is allowed.
    Prepared,
    /// Changes were written to the partition.
    Complete,
    /// An operation failed; the transaction wrote nothing locally.
    Failed,
}

impl fmt::Display for TxnStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TxnStatus::Started => "started",
            TxnStatus::Prepared => "prepared",
            TxnStatus::Complete => "complete",
            TxnStatus::Failed => "failed",
        })
    }
}
