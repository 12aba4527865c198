//! The partition-wide watermark and the expiry checkpoints quixstreams
//! 3.28.1's session windows keep (`windowed/transaction.py`
//! `get_partition_timestamp` .. `set_expiry_checkpoint`).
//!
//! Both live in the slots of the ordinary per-prefix indexes: the watermark
//! is the latest timestamp of the *empty* prefix (`__latest_timestamp__` in
//! `__latest-timestamps__`), the partition checkpoint is the expiry index of
//! the empty prefix (`__expired_start_gt__` in `__expiration-index__`). A
//! message key that encodes to no bytes shares them, as in quixstreams.
//!
//! Every value is `i64` milliseconds; the stored range is wider
//! (`[-2^63, 2^64 - 1]`), and its top meets `i64` at [`CHECKPOINT_NEVER`].

use state_core::StorePartition;

use super::layout::Index;
use super::transaction::WindowedTransaction;
use crate::error::Result;

/// An expiry checkpoint no watermark reaches: quixstreams' session windows
/// write it for "no open session" (`_NO_OPEN_SESSIONS`). Stored as
/// `2^64 - 1`, quixstreams' bytes; any stored value above `i64::MAX` reads
/// back as this (`docs/formats.md`, "Timestamps in the API").
pub const CHECKPOINT_NEVER: i64 = i64::MAX;

impl<P: StorePartition + ?Sized> WindowedTransaction<P> {
    /// The highest event time the partition has seen through
    /// [`advance_partition_timestamp`](Self::advance_partition_timestamp)
    /// (0 if none).
    pub fn get_partition_timestamp(&self) -> Result<i64> {
        self.get_latest_timestamp(b"")
    }

    /// Raises the partition watermark to `timestamp` and returns the
    /// watermark after the call. A timestamp at or below the watermark
    /// writes nothing.
    pub fn advance_partition_timestamp(&mut self, timestamp: i64) -> Result<i64> {
        self.base.require_started("advance_partition_timestamp")?;
        self.guarded(|t| {
            let current = t.get_latest_timestamp(b"")?;
            if timestamp <= current {
                return Ok(current);
            }
            t.set_index(Index::Timestamp, b"", timestamp)?;
            Ok(timestamp)
        })
    }

    /// The expiry checkpoint of `prefix`, or of the partition for the empty
    /// prefix. `None` when never set, which is not the same as `Some(0)`.
    ///
    /// For a message-key prefix it is the start of the last window expired
    /// (the cursor [`expire_windows`](Self::expire_windows) keeps, which
    /// session windows lower to `start - 1`, possibly `-1`); for the empty
    /// prefix it is the watermark at which some session of the partition
    /// may close next ([`CHECKPOINT_NEVER`]: none open).
    ///
    /// quixstreams' argument order; [`key`](Self::key)`(msg_key).get_expiry_checkpoint()`
    /// is the everyday form for a message key.
    pub fn get_expiry_checkpoint(&self, prefix: &[u8]) -> Result<Option<i64>> {
        self.get_index(Index::Expired, prefix)
    }

    /// Stores the expiry checkpoint of `prefix` (the empty prefix: of the
    /// partition). [`CHECKPOINT_NEVER`] is stored as `2^64 - 1`, as
    /// quixstreams stores "no open session".
    pub fn set_expiry_checkpoint(&mut self, value: i64, prefix: &[u8]) -> Result<()> {
        self.base.require_started("set_expiry_checkpoint")?;
        self.guarded(|t| t.set_index(Index::Expired, prefix, value))
    }

    /// quixstreams' `get_latest_expired`: the expiry checkpoint of `prefix`,
    /// 0 when unset.
    pub fn get_latest_expired(&self, prefix: &[u8]) -> Result<i64> {
        Ok(self.get_index(Index::Expired, prefix)?.unwrap_or(0))
    }
}
