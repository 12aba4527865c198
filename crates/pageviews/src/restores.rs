//! [`RecoveryStats`]: what a processor's restores reported. The processor
//! fills it from the manager's progress listener; the run reads how long
//! recovery took, and the HTTP handlers name a restoring partition's
//! progress in their 503 answers.

use std::collections::BTreeMap;
use std::time::Instant;

use state_changelog::RecoveryProgress;

/// What the processor's recovery reported.
#[derive(Default)]
pub(crate) struct RecoveryStats {
    pub started: Option<Instant>,
    pub finished: Option<Instant>,
    /// Per changelog partition.
    pub partitions: BTreeMap<(String, i32), Restore>,
}

/// One changelog partition's restore.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Restore {
    /// Records applied.
    pub done: u64,
    /// Records to apply in all.
    pub total: u64,
}

impl RecoveryStats {
    /// Takes in one progress report: the first starts the clock, a
    /// finished one stops it.
    pub fn record(&mut self, p: &RecoveryProgress) {
        self.started.get_or_insert_with(Instant::now);
        self.partitions.insert(
            (p.changelog.topic().to_owned(), p.changelog.partition()),
            Restore {
                done: p.done,
                total: p.total,
            },
        );
        if p.finished {
            self.finished = Some(Instant::now());
        }
    }
}
