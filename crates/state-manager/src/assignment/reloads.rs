//! [`Reloads`]: assigned source partitions whose local state fell behind
//! what was committed because the disk was full (a checkpoint committed to
//! Kafka but not written locally, or a restore that could not write).
//!
//! Local state is a cache of the changelog up to the offset stored with
//! it, so such a partition is repaired by closing its store partitions
//! (which also clears RocksDB's read-only mode after a background write
//! error: rust-rocksdb exposes no `DB::Resume`) and restoring them from
//! their changelogs as on assignment, judged by the offset committed for
//! them. Until that succeeds the partition stays paused, so nothing is
//! processed or committed on the stale state; reopening is retried at most
//! once per [`RETRY_INTERVAL`], for a disk stays full until someone frees
//! space.

use std::collections::BTreeSet;
use std::time::Instant;

use state_core::TopicPartition;

use crate::disk_full::RETRY_INTERVAL;

/// See the [module docs](self).
#[derive(Default)]
pub(super) struct Reloads {
    /// Paused partitions whose stores are closed, waiting to reopen.
    waiting: BTreeSet<TopicPartition>,
    last_try: Option<Instant>,
}

impl Reloads {
    /// `tp` waits to be reopened (its stores are closed, it is paused).
    pub(super) fn wait(&mut self, tp: TopicPartition) {
        self.waiting.insert(tp);
    }

    /// `tp` was revoked: it no longer waits.
    pub(super) fn forget(&mut self, tp: &TopicPartition) {
        self.waiting.remove(tp);
    }

    /// True if `tp` waits to be reopened.
    pub(super) fn contains(&self, tp: &TopicPartition) -> bool {
        self.waiting.contains(tp)
    }

    /// The waiting partitions, ascending.
    pub(super) fn partitions(&self) -> Vec<TopicPartition> {
        self.waiting.iter().cloned().collect()
    }

    /// How many partitions wait.
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// The waiting partitions, taken out, if it is time to try again (or
    /// `now`); put back with [`wait`](Self::wait) those that fail again.
    pub(super) fn due(&mut self, now: bool) -> Vec<TopicPartition> {
        if self.waiting.is_empty() {
            return Vec::new();
        }
        if !now && self.last_try.is_some_and(|t| t.elapsed() < RETRY_INTERVAL) {
            return Vec::new();
        }
        self.last_try = Some(Instant::now());
        std::mem::take(&mut self.waiting).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_partitions_are_retried_at_most_once_per_interval() {
        let mut r = Reloads::default();
        assert!(r.due(false).is_empty());
        let tp = TopicPartition::new("input", 1);
        r.wait(tp.clone());
        assert!(r.contains(&tp) && r.len() == 1);
        assert_eq!(r.due(false), vec![tp.clone()]);
        r.wait(tp.clone());
        assert!(r.due(false).is_empty(), "retried too soon");
        assert_eq!(r.due(true), vec![tp.clone()], "a forced retry");
        r.wait(tp.clone());
        r.forget(&tp);
        assert_eq!(r.len(), 0);
    }
}
