//! Errors of the transaction layer.

use crate::status::TxnStatus;

/// A `Result` whose error is [`TxnError`].
pub type Result<T, E = TxnError> = std::result::Result<T, E>;

/// What can go wrong in a partition transaction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TxnError {
    /// The transaction is not in a state that allows the operation. Failed
    /// and complete transactions refuse all use; prepared ones only flush.
    #[error(
        "cannot {operation}: the transaction is {status} (allowed: {allowed}); \
         start a new transaction"
    )]
    InvalidStatus {
        /// The refused operation.
        operation: &'static str,
        /// The transaction's status.
        status: TxnStatus,
        /// The statuses that allow it.
        allowed: &'static str,
    },

    /// `flush` was given a changelog offset below the stored one, which
    /// would move the partition backwards in its changelog.
    #[error(
        "changelog offset {requested} is lower than the stored offset {stored}; \
         the changelog topic was probably recreated or another producer wrote \
         to it: clear this partition's local state and recover it"
    )]
    ChangelogOffsetRegression {
        /// The offset the partition has.
        stored: u64,
        /// The offset that was refused.
        requested: u64,
    },

    /// A window whose end is not after its start.
    #[error("invalid window [{start}, {end}): the end must be greater than the start")]
    InvalidWindow {
        /// Window start (ms).
        start: i64,
        /// Window end (ms).
        end: i64,
    },

    /// A negative timestamp where event times must be >= 0.
    #[error("invalid {what} {value}: timestamps must be >= 0 milliseconds")]
    NegativeTimestamp {
        /// Which argument.
        what: &'static str,
        /// The value given.
        value: i64,
    },

    /// A write asked for a TTL where there is no per-write TTL.
    #[error("cannot write with a TTL: {reason}")]
    TtlUnsupported {
        /// Why, and what to do.
        reason: &'static str,
    },

    /// A TTL write with a TTL or timestamp that cannot make an expiry. The
    /// transaction failed before anything of the write was staged.
    #[error("invalid ttl write: {reason}")]
    InvalidTtl {
        /// What is wrong.
        reason: String,
    },

    /// The first TTL write into a populated store would stamp more existing
    /// values than one transaction may hold. Nothing was written.
    #[error(
        "switching this store into per-write TTL mode would stamp its {records} existing values \
         inside one transaction, more than the limit of {limit} (TtlOptions::max_backfill_records); \
         quixstreams stamps them in chunks committed one by one, which is not done here. Raise the \
         limit if one checkpoint can hold that many writes, or make the switch with quixstreams \
         3.28.1 first"
    )]
    TtlBackfillTooLarge {
        /// Values the store holds.
        records: usize,
        /// The limit.
        limit: usize,
    },

    /// A time read from the store (a window bound, a minimum eligible
    /// timestamp) above `i64::MAX` milliseconds, which the API cannot
    /// return. Neither this library nor quixstreams writes one from a
    /// Kafka timestamp: the partition holds data written by something else.
    #[error(
        "the stored {what} {value} is above i64::MAX milliseconds, which no Kafka timestamp reaches; \
         the partition holds data not written by this library or quixstreams: inspect it with \
         `statectl dump`, then delete the key or the partition's directory and recover it from the changelog"
    )]
    StoredTimestampOutOfRange {
        /// Which time.
        what: &'static str,
        /// The stored value.
        value: u64,
    },

    /// An index value (expiry checkpoint, timestamp slot) outside the
    /// integers quixstreams can store, `[-2^63, 2^64 - 1]`.
    #[error("{what} {value} is outside [-2^63, 2^64-1], the integers an index slot holds")]
    IndexValueOutOfRange {
        /// Which value.
        what: &'static str,
        /// The value given.
        value: i128,
    },

    /// An error from the codec, the key layout or the storage backend.
    #[error(transparent)]
    Core(#[from] state_core::Error),
}
