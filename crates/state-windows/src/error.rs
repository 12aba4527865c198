//! Errors: [`DefinitionError`] when a window is defined,
//! [`WindowError`] when it processes a record.

use std::time::Duration;

use state_txn::TxnError;

/// A window definition that cannot work, refused when the operator is
/// built (quixstreams raises the same cases as `ValueError`/`TypeError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DefinitionError {
    /// A size, step, gap or grace that is not a whole number of
    /// milliseconds in range.
    #[error("the window {what} must be a whole number of milliseconds, at least {min} ms; got {value:?}")]
    Duration {
        /// Which setting (`size`, `step`, `gap`, `grace`).
        what: &'static str,
        /// The value given.
        value: Duration,
        /// The smallest value allowed, ms.
        min: u64,
    },
    /// A size, step, gap or grace longer than
    /// [`MAX_DURATION_MS`](crate::MAX_DURATION_MS).
    #[error("the window {what} must be at most {max_ms} ms (~36 million years); got {value:?}")]
    DurationTooLong {
        /// Which setting (`size`, `step`, `gap`, `grace`).
        what: &'static str,
        /// The value given.
        value: Duration,
        /// The largest value allowed, ms.
        max_ms: i64,
    },
    /// A hopping window whose step is not below its size.
    #[error("a hopping window's step ({step} ms) must be smaller than its size ({size} ms); use a tumbling window for step = size")]
    StepNotBelowSize {
        /// Size, ms.
        size: i64,
        /// Step, ms.
        step: i64,
    },
    /// A count window of fewer than two records.
    #[error("a count window must hold at least 2 records; got {0}")]
    CountTooSmall(u64),
    /// A hopping count window with step 0.
    #[error("a hopping count window's step must be at least 1 record")]
    CountStepZero,
    /// Two parts of one [`agg`](crate::Tumbling::agg) share a result name.
    #[error("two aggregations or collectors are named {0:?}; give each its own result name")]
    DuplicateName(String),
    /// `start` or `end` as a result name (quixstreams reserves them for
    /// the window bounds).
    #[error("{0:?} cannot name an aggregation: `start` and `end` are the window bounds")]
    ReservedName(String),
    /// Two column collectors of one window read the same column name.
    #[error("column {0:?} is collected twice in one window; collect it once and use the result twice")]
    DuplicateColumn(String),
    /// Emitting on every update from a window that collects values:
    /// collected values are read only when a window closes.
    #[error("a window that collects values emits only when it closes: use Emit::OnClose, or aggregate instead of collecting")]
    CollectOnUpdate,
}

/// What can go wrong while a window operator processes a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WindowError {
    /// The windowed transaction failed (the store, the codec, or a
    /// transaction that is no longer open). A failed transaction refuses
    /// further use: abort the checkpoint and process its records again.
    #[error("the window state transaction failed: {0}")]
    Txn(#[from] TxnError),
    /// A time window got a record with a negative timestamp.
    #[error("window {window}: record timestamp {timestamp} ms is negative; time windows need event times >= 0")]
    NegativeTimestamp {
        /// The window's store name.
        window: String,
        /// The timestamp given.
        timestamp: i64,
    },
    /// A window got a record whose timestamp is past
    /// [`MAX_TIMESTAMP_MS`](crate::MAX_TIMESTAMP_MS), where its bounds
    /// would overflow; nothing was written.
    #[error("window {window}: record timestamp {timestamp} ms is past the largest a window takes ({max} ms, ~73 million years); check the records' event times (milliseconds since 1970, not micro- or nanoseconds)")]
    TimestampTooLarge {
        /// The window's store name.
        window: String,
        /// The timestamp given.
        timestamp: i64,
        /// The largest timestamp taken, ms.
        max: i64,
    },
    /// A sliding window got a record at timestamp 0, whose window `[0, 0]`
    /// cannot be stored (quixstreams raises `ValueError` here too).
    #[error("window {window}: a sliding window cannot take a record at timestamp 0 (its window [0, 0] is empty); give records event times > 0")]
    SlidingAtZero {
        /// The window's store name.
        window: String,
    },
}

/// A `Result` whose error is [`WindowError`].
pub type Result<T, E = WindowError> = std::result::Result<T, E>;
