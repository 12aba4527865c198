//! [`ChangelogTask`]: one changelog partition being restored or tailed, and
//! the states it goes through.
//!
//! ```text
//!            register(restore)               register(standby)
//!                  |                                |
//!                  v          promote               v
//!   done <--- Restoring <------------------- Standby <--> Held
//!                  ^                                     |
//!                  +------------- promote ---------------+
//! ```
//!
//! * **Restoring** reads to the end its changelog had when the restore
//!   started (or the standby was promoted), judging records by fixed
//!   committed source offsets: records of checkpoints not committed are
//!   skipped (their offset still counts). It is done when it reaches the
//!   end.
//! * **Standby** applies records as they arrive, but only those of
//!   checkpoints its owner committed.
//! * **Held**: a standby stopped before a record of a checkpoint its owner
//!   has not committed yet. The record stays the next one to apply (the
//!   consumer's position is already past it and must not move `next`); the
//!   task waits until the owner's committed offsets move.
//!
//! A task leaves the engine when it is done, fails, or is released; the
//! engine then drops it from the consumer's assignment.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use state_core::{StorePartition, TopicPartition};

use crate::error::ChangelogError;
use crate::restore::apply::{ChangelogApplier, IncomingRecord};
use crate::restore::progress::{ProgressMeter, RecoveryProgress};

/// The state of a [`ChangelogTask`].
#[derive(Debug)]
pub(crate) enum TaskState {
    /// Restoring to a fixed end.
    Restoring(ProgressMeter),
    /// A standby replica applying committed records as they arrive.
    Standby {
        /// The source partition whose committed offset decides what is
        /// committed.
        source: TopicPartition,
    },
    /// A standby stopped before the record at `next`, whose checkpoint is
    /// not committed yet.
    Held {
        /// As in [`TaskState::Standby`].
        source: TopicPartition,
    },
}

/// What offering a record did.
#[derive(Debug)]
pub(crate) enum Step {
    /// The record was staged (or skipped as uncommitted, in a restore).
    Applied,
    /// A standby stopped before the record: it is not committed yet.
    Held,
    /// The record or the write before it failed; the task must be dropped.
    Failed(ChangelogError),
}

/// One changelog partition being restored or tailed into a store
/// partition.
pub(crate) struct ChangelogTask {
    pub(crate) changelog: TopicPartition,
    pub(crate) partition: Arc<dyn StorePartition>,
    pub(crate) applier: ChangelogApplier,
    pub(crate) state: TaskState,
    /// The next offset to apply: one past the last record staged, or the
    /// record a held standby holds. Where the consumer is (re)positioned.
    pub(crate) next: i64,
    /// The changelog's high watermark when last looked at.
    pub(crate) high_watermark: i64,
    /// Where the partition lives (for messages).
    pub(crate) location: String,
    /// When the task last applied a record or started.
    pub(crate) last_activity: Instant,
}

impl ChangelogTask {
    /// True if the record at `offset` is for this task to apply: at or past
    /// `next` (older ones were fetched before a repositioning), before the
    /// end of a restore, and the task is not holding a record.
    #[inline]
    pub(crate) fn wants(&self, offset: i64) -> bool {
        offset >= self.next
            && match &self.state {
                TaskState::Restoring(meter) => offset < meter.end(),
                TaskState::Standby { .. } => true,
                TaskState::Held { .. } => false,
            }
    }

    /// Applies `record` (one the task [`wants`](Self::wants)).
    #[inline]
    pub(crate) fn offer(&mut self, record: IncomingRecord<'_>, now: Instant) -> Step {
        let offset = record.offset;
        let applied = match &self.state {
            TaskState::Restoring(_) => self.applier.apply(record),
            TaskState::Standby { source } => match self.applier.apply_committed(record) {
                Ok(true) => Ok(()),
                Ok(false) => {
                    let source = source.clone();
                    return self.hold(source);
                }
                Err(e) => Err(e),
            },
            TaskState::Held { .. } => return Step::Held,
        };
        match applied {
            Ok(()) => {
                self.next = offset + 1;
                self.last_activity = now;
                Step::Applied
            }
            Err(e) => Step::Failed(e),
        }
    }

    /// A standby reached a record not committed yet: write what is staged
    /// (whole records: data and offset stay in step) and hold.
    fn hold(&mut self, source: TopicPartition) -> Step {
        self.state = TaskState::Held { source };
        match self.applier.flush() {
            Ok(()) => Step::Held,
            Err(e) => Step::Failed(e),
        }
    }

    /// The consumer's position: it moves past transaction markers and
    /// compacted gaps, which no record reports, so `next` follows it.
    /// Except while held: the consumer delivered the held record, so its
    /// position is past it, and following it would skip that record for
    /// good (and a promotion would then lose its change).
    pub(crate) fn follow_position(&mut self, position: i64) {
        if position > self.next && !self.is_held() {
            self.next = position;
        }
    }

    /// True for a restore that reached its end.
    #[inline]
    pub(crate) fn reached_end(&self) -> bool {
        matches!(&self.state, TaskState::Restoring(meter) if self.next >= meter.end())
    }

    /// True while a standby holds a record.
    #[inline]
    pub(crate) fn is_held(&self) -> bool {
        matches!(self.state, TaskState::Held { .. })
    }

    /// True for a standby, held or not.
    pub(crate) fn is_standby(&self) -> bool {
        matches!(self.state, TaskState::Standby { .. } | TaskState::Held { .. })
    }

    /// True for a restore.
    pub(crate) fn is_restoring(&self) -> bool {
        matches!(self.state, TaskState::Restoring(_))
    }

    /// The source partition a standby judges records by.
    pub(crate) fn standby_source(&self) -> Option<&TopicPartition> {
        match &self.state {
            TaskState::Standby { source } | TaskState::Held { source } => Some(source),
            TaskState::Restoring(_) => None,
        }
    }

    /// A progress report, if one is due (restores only).
    #[inline]
    pub(crate) fn progress_due(&mut self, now: Instant, interval: std::time::Duration) -> Option<RecoveryProgress> {
        match &mut self.state {
            TaskState::Restoring(meter) => meter.due(&self.changelog, self.next, now, interval),
            _ => None,
        }
    }

    /// A standby's owner committed `committed`: judge records by them from
    /// now on. True if that lifts a hold (the held record is offered
    /// again; it may be held again if still not committed).
    pub(crate) fn refresh_committed(&mut self, committed: BTreeMap<String, i64>) -> bool {
        if committed == *self.applier.committed() {
            return false;
        }
        self.applier.set_committed(committed);
        match &self.state {
            TaskState::Held { source } => {
                self.state = TaskState::Standby { source: source.clone() };
                true
            }
            _ => false,
        }
    }

    /// Turns a standby into a restore to `end`, judging records by the
    /// newer of `assignment` (what the new owner read on assignment) and
    /// what the standby judged by: the standby applied what was committed
    /// when it last looked, and a previous owner's commit can land after
    /// the assignment read its offsets; judging by the older offsets would
    /// have the records it already applied processed again. True if the
    /// task was held (its partition must be resumed at `next`).
    pub(crate) fn promote(&mut self, assignment: BTreeMap<String, i64>, end: i64, now: Instant) -> bool {
        let mut judged = self.applier.committed().clone();
        for (topic, offset) in assignment {
            let e = judged.entry(topic).or_insert(offset);
            *e = (*e).max(offset);
        }
        self.applier.set_committed(judged);
        let was_held = self.is_held();
        self.state = TaskState::Restoring(ProgressMeter::new(self.next, end, now));
        self.high_watermark = end;
        self.last_activity = now;
        was_held
    }
}

#[cfg(test)]
mod tests {
    use state_core::{MemoryPartition, ProcessedOffsets};

    use super::*;
    use crate::restore::apply::ApplierConfig;

    fn standby(committed: i64) -> ChangelogTask {
        let p: Arc<dyn StorePartition> = Arc::new(MemoryPartition::new());
        let now = Instant::now();
        ChangelogTask {
            changelog: TopicPartition::new("cl", 0),
            applier: ChangelogApplier::new(
                p.clone(),
                "cl",
                0,
                BTreeMap::from([("in".to_owned(), committed)]),
                ApplierConfig::default(),
            ),
            partition: p,
            state: TaskState::Standby {
                source: TopicPartition::new("in", 0),
            },
            next: 0,
            high_watermark: 10,
            location: String::new(),
            last_activity: now,
        }
    }

    fn record(offset: i64, header: &[u8]) -> IncomingRecord<'_> {
        IncomingRecord {
            offset,
            key: Some(b"k"),
            value: Some(b"v"),
            column_family: Some(b"default"),
            processed_offsets: Some(header),
            ttl_stamped: None,
            value_codec: None,
        }
    }

    #[test]
    fn a_held_standby_keeps_its_record_whatever_the_position_says() {
        let header = ProcessedOffsets::new().with("in", 5).to_header();
        let mut t = standby(5);
        assert!(matches!(t.offer(record(0, &header), Instant::now()), Step::Held));
        assert!(t.is_held() && !t.wants(0) && !t.wants(1));
        t.follow_position(1);
        assert_eq!(t.next, 0, "the position is past the held record");
        assert!(
            !t.refresh_committed(BTreeMap::from([("in".to_owned(), 5)])),
            "unchanged offsets"
        );
        assert!(
            t.refresh_committed(BTreeMap::from([("in".to_owned(), 6)])),
            "the hold is lifted"
        );
        assert!(t.wants(0));
        assert!(matches!(t.offer(record(0, &header), Instant::now()), Step::Applied));
        assert_eq!(t.next, 1);
        t.follow_position(3);
        assert_eq!(t.next, 3, "past markers and gaps");
    }

    #[test]
    fn a_promotion_judges_by_the_newer_committed_offsets_and_restores_to_its_end() {
        let mut t = standby(7);
        let was_held = t.promote(
            BTreeMap::from([("in".to_owned(), 4), ("other".to_owned(), 1)]),
            3,
            Instant::now(),
        );
        assert!(!was_held);
        assert_eq!(
            t.applier.committed(),
            &BTreeMap::from([("in".to_owned(), 7), ("other".to_owned(), 1)])
        );
        assert!(t.is_restoring() && t.wants(2) && !t.wants(3));
        assert!(!t.reached_end());
        t.follow_position(3);
        assert!(t.reached_end());
    }
}
