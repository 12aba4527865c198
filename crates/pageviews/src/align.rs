//! [`Align`]: keeps the input partitions close in event time while they
//! are processed.
//!
//! The page windows are computed after a repartition: the by-page topic
//! holds the views in the order the input partitions were processed. A
//! consumer reads a partition's backlog in fetch-sized chunks (a chunk can
//! be a whole small partition), and after a restart each partition resumes
//! when its own restore ends; either way one input partition can run far
//! ahead of another in event time, and the other's views then reach their
//! page windows after the windows closed (late records, left out).
//! Kafka Streams avoids this by picking records across a task's partitions
//! in timestamp order; here a partition that runs more than `limit` ms of
//! event time ahead of the slowest unfinished one is paused until the
//! slowest catches up to half that.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use state_manager::{StateContext, StateStoreManager};

use crate::{kafka, Result};

/// The alignment state of one processor's input partitions.
///
/// `adjust` runs after every record (a partition that becomes ready while
/// others restore must stop at its first record), so it keeps its state
/// per partition in plain vectors, allocates nothing unless it pauses
/// or resumes, and asks the manager which partitions are ready only when
/// the manager's assignment version moved.
pub(crate) struct Align {
    topic: String,
    limit: i64,
    /// Indexed by partition.
    partitions: Vec<Input>,
    /// The manager's assignment version the `ready` flags were read at:
    /// while it stays, they still hold and are not asked again.
    ready_at: Option<u64>,
}

/// What `Align` knows of one input partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Input {
    /// Where the partition ends (the input is produced before processing
    /// starts).
    end: i64,
    /// The next offset to process, once known.
    next: Option<i64>,
    /// The event time of the last record processed.
    last_ts: Option<i64>,
    /// Its stores are restored: its records may be processed.
    ready: bool,
    paused: bool,
}

impl Input {
    /// Records of it are still to be processed (unknown counts as yes).
    fn unfinished(&self) -> bool {
        self.next.is_none_or(|n| n < self.end)
    }

    /// Event time for the comparison: one without a processed record
    /// counts as the slowest.
    fn ts(&self) -> i64 {
        self.last_ts.unwrap_or(i64::MIN)
    }
}

/// What `decide` asks of the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Pause,
    Resume,
}

/// Whether to pause or resume each partition, given `limit`: a ready,
/// unfinished partition more than `limit` ahead of the slowest unfinished
/// one is paused; a paused one resumes once it is within `limit / 2` of
/// it, or finished. Calls `f` with each partition to change.
fn decide(partitions: &[Input], limit: i64, mut f: impl FnMut(usize, Change)) {
    let floor = partitions
        .iter()
        .filter(|i| i.unfinished())
        .map(Input::ts)
        .min()
        .unwrap_or(i64::MAX);
    for (p, i) in partitions.iter().enumerate() {
        if !i.ready {
            continue;
        }
        let ahead = i.ts().saturating_sub(floor);
        let active = i.unfinished();
        if !i.paused && active && ahead > limit {
            f(p, Change::Pause);
        } else if i.paused && (!active || ahead <= limit / 2) {
            f(p, Change::Resume);
        }
    }
}

impl Align {
    /// Input `topic`, whose partitions end at `ends`, kept within `limit`.
    pub fn new(topic: &str, ends: Vec<i64>, limit: Duration) -> Self {
        Align {
            topic: topic.to_owned(),
            limit: i64::try_from(limit.as_millis()).unwrap_or(i64::MAX).max(1),
            partitions: ends
                .into_iter()
                .map(|end| Input {
                    end,
                    ..Input::default()
                })
                .collect(),
            ready_at: None,
        }
    }

    /// A record of `partition` at `offset` with event time `ts` was processed.
    pub fn processed(&mut self, partition: i32, offset: i64, ts: i64) {
        if let Some(i) = self.input_mut(partition) {
            i.next = Some(offset + 1);
            i.last_ts = Some(ts);
        }
    }

    /// Pauses the partitions that ran ahead, resumes those that may go on.
    /// Partitions still restoring count as the slowest.
    pub fn adjust(&mut self, consumer: &BaseConsumer<StateContext>, manager: &StateStoreManager) -> Result<()> {
        let version = manager.assignment_version();
        let refresh = self.ready_at != Some(version);
        self.ready_at = Some(version);
        let mut unknown: Option<TopicPartitionList> = None;
        for (p, i) in self.partitions.iter_mut().enumerate() {
            if refresh {
                i.ready = manager.is_ready(&self.topic, p as u32);
            }
            if i.ready && i.next.is_none() {
                unknown
                    .get_or_insert_with(TopicPartitionList::new)
                    .add_partition(&self.topic, p as i32);
            }
        }
        // Where a ready partition without a processed record starts.
        if let Some(unknown) = unknown {
            let committed = kafka(
                "reading committed input offsets",
                consumer.committed_offsets(unknown, Duration::from_secs(10)),
            )?;
            for e in committed.elements() {
                let start = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                };
                if let Some(i) = self.input_mut(e.partition()) {
                    i.next = Some(start);
                }
            }
        }
        let (mut pause, mut resume) = (None, None);
        decide(&self.partitions, self.limit, |p, change| {
            let list = match change {
                Change::Pause => &mut pause,
                Change::Resume => &mut resume,
            };
            list.get_or_insert_with(TopicPartitionList::new)
                .add_partition(&self.topic, p as i32);
        });
        if let Some(pause) = pause {
            kafka("pausing input partitions ahead in event time", consumer.pause(&pause))?;
            self.mark(&pause, true);
        }
        if let Some(resume) = resume {
            kafka("resuming input partitions", consumer.resume(&resume))?;
            self.mark(&resume, false);
        }
        Ok(())
    }

    /// The partition's record (`None` for a partition the input does not have).
    fn input_mut(&mut self, partition: i32) -> Option<&mut Input> {
        usize::try_from(partition).ok().and_then(|p| self.partitions.get_mut(p))
    }

    fn mark(&mut self, list: &TopicPartitionList, paused: bool) {
        for e in list.elements() {
            if let Some(i) = self.input_mut(e.partition()) {
                i.paused = paused;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(ts: Option<i64>, ready: bool, paused: bool) -> Input {
        Input {
            end: 100,
            next: ts.map(|_| 10),
            last_ts: ts,
            ready,
            paused,
        }
    }

    fn changes(partitions: &[Input]) -> Vec<(usize, Change)> {
        let mut out = Vec::new();
        decide(partitions, 1000, |p, c| out.push((p, c)));
        out
    }

    #[test]
    fn a_ready_partition_stops_at_its_first_record_while_another_restores() {
        let parts = [input(Some(5_000), true, false), input(None, false, false)];
        assert_eq!(changes(&parts), vec![(0, Change::Pause)]);
    }

    #[test]
    fn a_partition_within_the_limit_goes_on() {
        let parts = [input(Some(2_000), true, false), input(Some(1_000), true, false)];
        assert!(changes(&parts).is_empty());
    }

    #[test]
    fn a_paused_partition_resumes_within_half_the_limit_not_before() {
        let parts = [input(Some(2_000), true, true), input(Some(1_400), true, false)];
        assert!(changes(&parts).is_empty());
        let parts = [input(Some(2_000), true, true), input(Some(1_500), true, false)];
        assert_eq!(changes(&parts), vec![(0, Change::Resume)]);
    }

    #[test]
    fn a_finished_partition_is_not_the_floor_and_a_paused_one_resumes_when_finished() {
        let mut done = input(Some(0), true, false);
        done.next = Some(done.end);
        let parts = [done, input(Some(9_000), true, false)];
        assert!(changes(&parts).is_empty());
        let mut paused_done = input(Some(9_000), true, true);
        paused_done.next = Some(paused_done.end);
        let parts = [paused_done, input(Some(0), true, false)];
        assert_eq!(changes(&parts), vec![(0, Change::Resume)]);
    }

    #[test]
    fn partitions_not_ready_are_left_alone() {
        let parts = [input(Some(9_000), false, true), input(Some(0), true, false)];
        assert!(changes(&parts).is_empty());
    }
}
