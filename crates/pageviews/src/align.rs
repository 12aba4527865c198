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

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use state_manager::{StateContext, StateStoreManager};

use crate::{kafka, Result};

/// The alignment state of one processor's input partitions.
pub(crate) struct Align {
    topic: String,
    limit: i64,
    /// Where each partition's input ends (the input is produced before
    /// processing starts).
    ends: Vec<i64>,
    /// The next offset to process, once known.
    next: BTreeMap<i32, i64>,
    /// The event time of the last record processed.
    last_ts: BTreeMap<i32, i64>,
    paused: BTreeSet<i32>,
}

fn tpl(topic: &str, partitions: impl IntoIterator<Item = i32>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(topic, p);
    }
    tpl
}

impl Align {
    /// Input `topic`, whose partitions end at `ends`, kept within `limit`.
    pub fn new(topic: &str, ends: Vec<i64>, limit: Duration) -> Self {
        Align {
            topic: topic.to_owned(),
            limit: i64::try_from(limit.as_millis()).unwrap_or(i64::MAX).max(1),
            ends,
            next: BTreeMap::new(),
            last_ts: BTreeMap::new(),
            paused: BTreeSet::new(),
        }
    }

    /// A record of `partition` at `offset` with event time `ts` was processed.
    pub fn processed(&mut self, partition: i32, offset: i64, ts: i64) {
        self.next.insert(partition, offset + 1);
        self.last_ts.insert(partition, ts);
    }

    /// Pauses the partitions that ran ahead, resumes those that may go on.
    /// Partitions still restoring count as the slowest.
    pub fn adjust(&mut self, consumer: &BaseConsumer<StateContext>, manager: &StateStoreManager) -> Result<()> {
        let partitions = 0..self.ends.len() as i32;
        let ready: BTreeSet<i32> = partitions
            .clone()
            .filter(|&p| manager.is_ready(&self.topic, p as u32))
            .collect();
        // Where a ready partition without a processed record starts.
        let unknown: Vec<i32> = ready.iter().copied().filter(|p| !self.next.contains_key(p)).collect();
        if !unknown.is_empty() {
            let committed = kafka(
                "reading committed input offsets",
                consumer.committed_offsets(tpl(&self.topic, unknown.iter().copied()), Duration::from_secs(10)),
            )?;
            for e in committed.elements() {
                let start = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                };
                self.next.insert(e.partition(), start);
            }
        }
        let unfinished: Vec<i32> = partitions
            .filter(|p| self.next.get(p).is_none_or(|n| *n < self.ends[*p as usize]))
            .collect();
        let ts = |p: &i32| self.last_ts.get(p).copied().unwrap_or(i64::MIN);
        let floor = unfinished.iter().map(ts).min().unwrap_or(i64::MAX);
        let mut pause = Vec::new();
        let mut resume = Vec::new();
        for p in &ready {
            let t = ts(p);
            let active = unfinished.contains(p);
            if !self.paused.contains(p) && active && t.saturating_sub(floor) > self.limit {
                pause.push(*p);
            } else if self.paused.contains(p) && (!active || t.saturating_sub(floor) <= self.limit / 2) {
                resume.push(*p);
            }
        }
        if !pause.is_empty() {
            kafka(
                "pausing input partitions ahead in event time",
                consumer.pause(&tpl(&self.topic, pause.iter().copied())),
            )?;
            self.paused.extend(pause);
        }
        if !resume.is_empty() {
            kafka(
                "resuming input partitions",
                consumer.resume(&tpl(&self.topic, resume.iter().copied())),
            )?;
            for p in resume {
                self.paused.remove(&p);
            }
        }
        Ok(())
    }
}
