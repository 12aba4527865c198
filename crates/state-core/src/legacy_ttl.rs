//! [`LegacyTtl`]: the states of quixstreams' TTL migration machinery that
//! are refused on open or on replay, each with the way out.
//!
//! A leaf module (it imports nothing from this crate): [`crate::Error`]
//! carries it, and every module that reads a partition depends on the error
//! module, so the type cannot live in the `ttl` module (which reads
//! partitions) without a module circle; `ttl` re-exports it.

use std::fmt;

/// A state of quixstreams' TTL migration machinery that we do not take over
/// (quixstreams 3.28.1 backfills, adopts, rolls back or repairs it). Each is
/// refused with a message naming the situation and the way out; nothing is
/// written.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LegacyTtl {
    /// A live backfill of a populated store was interrupted
    /// (`__ttl_backfill_in_progress__`, or a `__ttl_backfill_stamped__` ledger
    /// without the migration-done marker).
    InterruptedBackfill,
    /// A cold, provisional adoption of quixstreams v3.24.0 stamps waits for
    /// confirmation (`__ttl_adopt_pending__` or `__ttl_adopt_backup__`).
    ProvisionalAdoption,
    /// A replay ended with unstamped values in a partition in TTL mode
    /// (`__ttl_backfill_pending__` is not empty and no migration-done marker):
    /// quixstreams would stamp them and produce them to the changelog.
    /// Reported by [`crate::ReplayCheck::complete`]; on open the same state is
    /// [`crate::PartitionFormat::replay_pending`], since a replay interrupted
    /// part-way looks alike until it finishes.
    PendingRecoveryCompletion {
        /// How many values are waiting.
        keys: u64,
    },
    /// TTL bookkeeping without the `__ttl_enabled__` flag, which quixstreams
    /// repairs at open by deciding the mode from the values.
    UnflaggedTtlArtifacts {
        /// Which artifact was found first.
        found: &'static str,
    },
    /// A stamped-value layout other than version 2.
    UnsupportedFormatVersion {
        /// The recorded version, as hex bytes when it does not decode.
        recorded: String,
    },
    /// A replayed changelog without TTL headers whose values look stamped
    /// (a quixstreams v3.24.0 store), which quixstreams adopts provisionally.
    UnheaderedStamps,
}

impl fmt::Display for LegacyTtl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LegacyTtl::InterruptedBackfill => f.write_str(
                "quixstreams was switching this populated store into per-write TTL mode and stopped \
                 part-way (__ttl_backfill_in_progress__ or a __ttl_backfill_stamped__ ledger without the \
                 migration-done marker): some values are stamped and some are not. Run the quixstreams \
                 3.28.1 application on this partition once so it finishes the switch, then open it here",
            ),
            LegacyTtl::ProvisionalAdoption => f.write_str(
                "quixstreams holds a provisional adoption of v3.24.0 TTL stamps (__ttl_adopt_pending__ or \
                 __ttl_adopt_backup__) that its next ttl= write confirms or QUIXSTREAMS_STATE_TTL_ROLLBACK=1 \
                 rolls back. Settle it with the quixstreams 3.28.1 application first, then open it here",
            ),
            LegacyTtl::PendingRecoveryCompletion { keys } => write!(
                f,
                "the replayed changelog mixes TTL-stamped records with {keys} unstamped ones left by an \
                 interrupted switch into per-write TTL mode (__ttl_backfill_pending__); quixstreams would \
                 stamp them and produce them to the changelog, which recovery here does not do. Recover \
                 the partition once with quixstreams 3.28.1 (it completes the switch on the changelog), \
                 then delete this directory and recover again here"
            ),
            LegacyTtl::UnflaggedTtlArtifacts { found } => write!(
                f,
                "the partition holds TTL bookkeeping ({found}) but no __ttl_enabled__ flag; quixstreams \
                 decides the mode of such a store at open from a sample of its values. Open it once with \
                 quixstreams 3.28.1 (QUIXSTREAMS_STATE_TTL_FORCE_FLIP=1 forces TTL mode), or delete the \
                 directory and recover it from the changelog"
            ),
            LegacyTtl::UnsupportedFormatVersion { recorded } => write!(
                f,
                "the partition records TTL value format version {recorded}; only version 2 (quixstreams \
                 3.28.1) is read here. Open it once with quixstreams 3.28.1, which upgrades version 1 in \
                 place, or delete the directory and recover it from the changelog"
            ),
            LegacyTtl::UnheaderedStamps => f.write_str(
                "the replayed changelog has no __ttl_stamped__ headers but its values look TTL-stamped (a \
                 quixstreams v3.24.0 store), which quixstreams adopts provisionally; recover the partition \
                 with quixstreams 3.28.1 first, then recover again here",
            ),
        }
    }
}
