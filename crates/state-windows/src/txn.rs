//! The windowed-transaction calls the window kinds make, with every
//! conversion between the transaction's integer types and `i64`
//! milliseconds in this one place.

use serde::de::DeserializeOwned;
use state_core::StorePartition;
use state_txn::{ExpiredWindow, Window, WindowedTransaction};

use state_txn::Result;

/// The partition checkpoint quixstreams writes when no session is open
/// (`_NO_OPEN_SESSIONS`, stored as `2^64 - 1`).
pub(crate) const NO_OPEN_SESSIONS: i64 = i64::MAX;
const NO_OPEN_SESSIONS_STORED: i128 = u64::MAX as i128;

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn checkpoint(v: i128) -> i64 {
    if v > i128::from(i64::MAX) {
        NO_OPEN_SESSIONS
    } else {
        v.max(i128::from(i64::MIN)) as i64
    }
}

/// The newest event time `prefix` has seen (0 if none).
pub(crate) fn latest_timestamp<P: StorePartition + ?Sized>(
    txn: &mut WindowedTransaction<P>,
    prefix: &[u8],
) -> Result<i64> {
    Ok(ms(txn.get_latest_timestamp(prefix)?))
}

/// The expiry index of `prefix` (0 if unset).
pub(crate) fn latest_expired<P: StorePartition + ?Sized>(
    txn: &mut WindowedTransaction<P>,
    prefix: &[u8],
) -> Result<i64> {
    Ok(checkpoint(txn.get_latest_expired(prefix)?))
}

/// The expiry checkpoint of `prefix`, `None` when unset.
pub(crate) fn expiry_checkpoint<P: StorePartition + ?Sized>(
    txn: &mut WindowedTransaction<P>,
    prefix: &[u8],
) -> Result<Option<i64>> {
    Ok(txn.get_expiry_checkpoint(prefix)?.map(checkpoint))
}

/// Stores the expiry checkpoint of `prefix` ([`NO_OPEN_SESSIONS`] as
/// quixstreams stores it).
pub(crate) fn set_expiry_checkpoint<P: StorePartition + ?Sized>(
    txn: &mut WindowedTransaction<P>,
    value: i64,
    prefix: &[u8],
) -> Result<()> {
    let stored = if value == NO_OPEN_SESSIONS {
        NO_OPEN_SESSIONS_STORED
    } else {
        i128::from(value)
    };
    txn.set_expiry_checkpoint(stored, prefix)
}

/// Raises the partition watermark; returns it.
pub(crate) fn advance_partition_timestamp<P: StorePartition + ?Sized>(
    txn: &mut WindowedTransaction<P>,
    timestamp: i64,
) -> Result<i64> {
    Ok(ms(txn.advance_partition_timestamp(timestamp)?))
}

/// A window's bounds in ms.
pub(crate) fn bounds<V>(w: &Window<V>) -> (i64, i64) {
    (ms(w.start), ms(w.end))
}

/// An expired window's bounds in ms.
pub(crate) fn expired_bounds<V, C>(w: &ExpiredWindow<V, C>) -> (i64, i64) {
    (ms(w.start), ms(w.end))
}

/// The windows of `prefix` with `start_from < start <= start_to`.
pub(crate) fn windows<V: DeserializeOwned, P: StorePartition + ?Sized>(
    txn: &WindowedTransaction<P>,
    start_from: i64,
    start_to: i64,
    prefix: &[u8],
    direction: state_core::Direction,
) -> Result<Vec<Window<V>>> {
    txn.get_windows(start_from, start_to, prefix, direction)
}
