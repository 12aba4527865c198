//! [`StateTransaction`]: what every transaction kind offers a checkpoint.

use state_core::ProcessedOffsets;

use crate::error::Result;
use crate::status::TxnStatus;
use crate::timestamped::TimestampedTransaction;
use crate::transaction::PartitionTransaction;
use crate::windowed::WindowedTransaction;

/// The two-phase commit every transaction kind offers, so a checkpoint (the
/// state manager's, or an application's own) commits key-value, windowed and
/// timestamped transactions alike.
///
/// `prepare` sends the changes to the changelog (with the processed source
/// offsets); `flush` writes them locally in one atomic batch with the
/// changelog offset they are included up to. See
/// [`PartitionTransaction::prepare`] and [`PartitionTransaction::flush`].
pub trait StateTransaction: Send {
    /// Emits the changelog records and moves to `Prepared`.
    fn prepare(&mut self, processed_offsets: Option<&ProcessedOffsets>) -> Result<()>;
    /// Writes every change and `changelog_offset` atomically; moves to `Complete`.
    fn flush(&mut self, changelog_offset: Option<u64>) -> Result<()>;
    /// The transaction's status.
    fn status(&self) -> TxnStatus;
}

macro_rules! delegate {
    ($t:ident) => {
        impl<P: state_core::StorePartition + ?Sized> StateTransaction for $t<P> {
            fn prepare(&mut self, processed_offsets: Option<&ProcessedOffsets>) -> Result<()> {
                $t::prepare(self, processed_offsets)
            }
            fn flush(&mut self, changelog_offset: Option<u64>) -> Result<()> {
                $t::flush(self, changelog_offset)
            }
            fn status(&self) -> TxnStatus {
                $t::status(self)
            }
        }
    };
}

delegate!(PartitionTransaction);
delegate!(WindowedTransaction);
delegate!(TimestampedTransaction);
