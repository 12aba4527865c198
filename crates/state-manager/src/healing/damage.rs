//! Which errors mean a store partition is damaged, so that rebuilding it
//! from its changelog (after moving it aside) is the repair.

use std::error::Error as StdError;

use state_changelog::ChangelogError;
use state_core::Error;

use crate::error::ManagerError;

/// Why a partition is rebuilt: the `reason` label of
/// [`crate::metrics::PARTITIONS_REBUILT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Damage {
    /// Its files are corrupt or missing (`PartitionCorrupt`, a stored
    /// offset of the wrong size).
    Corrupt,
    /// Its stored changelog offset is past the changelog's end
    /// (`InvalidStoredOffset`: the topic was recreated or restored).
    OffsetPastEnd,
}

impl Damage {
    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Damage::Corrupt => "corrupt",
            Damage::OffsetPastEnd => "offset_past_end",
        }
    }
}

/// The damage a backend error reports, if any.
pub(crate) fn of_state(e: &Error) -> Option<Damage> {
    match e {
        Error::PartitionCorrupt { .. } | Error::CorruptChangelogOffset { .. } => Some(Damage::Corrupt),
        _ => None,
    }
}

/// The damage a failed open reports, with the backend error saying so.
pub(crate) fn of_open(e: &ManagerError) -> Option<(Damage, &Error)> {
    match e {
        ManagerError::State(inner) => of_state(inner).map(|d| (d, inner)),
        _ => None,
    }
}

/// The damage a failed restore reports: an invalid stored offset, or a
/// corrupt partition anywhere in its chain of causes.
pub(crate) fn of_restore(e: &ChangelogError) -> Option<Damage> {
    match e {
        ChangelogError::InvalidStoredOffset { .. } => return Some(Damage::OffsetPastEnd),
        // Transparent: its source() is the inner error's source, so the
        // walk below would skip the inner error itself.
        ChangelogError::State(inner) => {
            if let Some(d) = of_state(inner) {
                return Some(d);
            }
        }
        _ => {}
    }
    let mut cause: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(d) = c.downcast_ref::<Error>().and_then(of_state) {
            return Some(d);
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_partitions_and_offsets_past_the_end_are_damage() {
        let corrupt = Error::PartitionCorrupt {
            backend: "rocksdb",
            path: "/s/g/counts/input/0".into(),
            reason: "Corruption: bad block".into(),
        };
        assert_eq!(of_state(&corrupt), Some(Damage::Corrupt));
        assert_eq!(of_restore(&ChangelogError::State(corrupt)), Some(Damage::Corrupt));
        let past = ChangelogError::InvalidStoredOffset {
            topic: "changelog".into(),
            partition: 0,
            stored: 10,
            high_watermark: 3,
            path: "/s/g/counts/input/0".into(),
        };
        assert_eq!(of_restore(&past), Some(Damage::OffsetPastEnd));
        assert_eq!(of_restore(&ChangelogError::Stopped), None);
        let locked = ManagerError::State(Error::PartitionLocked {
            path: "/x".into(),
            attempts: 3,
        });
        assert!(of_open(&locked).is_none(), "a held lock is not damage");
    }
}
