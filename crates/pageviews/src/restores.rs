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
    /// When the first restore with records to read started, on the
    /// restorer's clock.
    pub started: Option<Instant>,
    /// When the last one of them ended, on the restorer's clock (not when
    /// the poll loop got to see it: that is up to a poll later).
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
    /// Takes in one progress report. Recovery runs from the start of the
    /// first restore with records to read to the end of the last one.
    pub fn record(&mut self, p: &RecoveryProgress) {
        self.partitions.insert(
            (p.changelog.topic().to_owned(), p.changelog.partition()),
            Restore {
                done: p.done,
                total: p.total,
            },
        );
        if p.total == 0 {
            return;
        }
        self.started = Some(self.started.map_or(p.started, |s| s.min(p.started)));
        if p.finished {
            let ended = p.started + p.elapsed;
            self.finished = Some(self.finished.map_or(ended, |f| f.max(ended)));
        }
    }
}
