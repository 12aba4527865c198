//! The consumer calls of assignment: reading committed offsets, pausing
//! partitions that restore, moving restored ones to where their restore
//! judged records by, and resuming them.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use state_core::TopicPartition;

use crate::error::{ManagerError, Result};

fn tpl_of(partitions: &[TopicPartition]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for tp in partitions {
        tpl.add_partition(tp.topic(), tp.partition());
    }
    tpl
}

/// The group's committed offsets of `partitions` (those that have one).
pub(super) fn committed_offsets<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    partitions: &[TopicPartition],
    timeout: Duration,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let committed = consumer
        .committed_offsets(tpl_of(partitions), timeout)
        .map_err(|source| ManagerError::Kafka {
            operation: "reading committed offsets on assignment",
            source,
        })?;
    let mut map = BTreeMap::new();
    for e in committed.elements() {
        if let Offset::Offset(o) = e.offset() {
            map.insert(TopicPartition::new(e.topic(), e.partition()), o);
        }
    }
    Ok(map)
}

/// Pauses `partitions` (their stores are restoring).
pub(super) fn pause<C: ConsumerContext, K: Consumer<C>>(consumer: &K, partitions: &[TopicPartition]) -> Result<()> {
    consumer
        .pause(&tpl_of(partitions))
        .map_err(|source| ManagerError::Kafka {
            operation: "pausing partitions that are restoring",
            source,
        })
}

/// Moves restored partitions to the offsets their restores judged records
/// by (`at`; partitions without one keep the consumer's position) and
/// resumes `partitions`.
pub(super) fn resume<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    partitions: &[TopicPartition],
    at: &BTreeMap<TopicPartition, i64>,
    timeout: Duration,
) -> Result<()> {
    // Resume where the restore judged records by: the stores hold exactly
    // the checkpoints committed up to that offset. The consumer's own
    // position came from its own offset fetch, which a previous owner's
    // late commit can put elsewhere.
    let mut positions = TopicPartitionList::new();
    for (tp, o) in at {
        positions
            .add_partition_offset(tp.topic(), tp.partition(), Offset::Offset(*o))
            .map_err(|source| ManagerError::Kafka {
                operation: "building the positions of restored partitions",
                source,
            })?;
    }
    if positions.count() > 0 {
        let sought = consumer
            .seek_partitions(positions, timeout)
            .map_err(|source| ManagerError::Kafka {
                operation: "moving restored partitions to their committed offsets",
                source,
            })?;
        for e in sought.elements() {
            if let Err(source) = e.error() {
                return Err(ManagerError::Kafka {
                    operation: "moving a restored partition to its committed offset",
                    source,
                });
            }
        }
    }
    consumer
        .resume(&tpl_of(partitions))
        .map_err(|source| ManagerError::Kafka {
            operation: "resuming restored partitions",
            source,
        })?;
    wake_fetchers(consumer, partitions);
    Ok(())
}

/// Makes the consumer fetch resumed partitions now: asks their leaders
/// where the partitions end (a ListOffsets request) and does not wait for
/// the answer.
///
/// librdkafka (2.12.1) does not wake a broker's thread when a partition
/// resumes: a thread with nothing to fetch, all its partitions paused for
/// their restores, sleeps up to a second on its socket and sees the resume
/// only then (the pageviews demo waited 0.5-0.8 s after its restores for
/// the first records). A request queued for the broker wakes its thread,
/// which then finds the resumed partitions fetchable. The request goes
/// through the admin API so that it carries librdkafka's normal request
/// timeout (a watermark query with a zero timeout also wakes the thread,
/// but librdkafka gives the request that zero timeout too, and a request
/// its timeout scan finds in flight disconnects the broker with the
/// default `socket.max.fails=1`). The answer goes to a queue dropped at
/// once: librdkafka discards replies to a dropped queue. The partitions'
/// fetch state is not touched. (Before, a second seek to the resumed
/// offset did the waking; a seek to offset 0 changes no fetch state and
/// woke nothing, and partitions without a committed offset, every one of
/// a fresh group, got no seek at all.)
pub(crate) fn wake_fetchers<'a, C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    partitions: impl IntoIterator<Item = &'a TopicPartition>,
) {
    let mut ends = TopicPartitionList::new();
    for tp in partitions {
        // `End` is librdkafka's `RD_KAFKA_OFFSET_SPEC_LATEST` (-1).
        if let Err(e) = ends.add_partition_offset(tp.topic(), tp.partition(), Offset::End) {
            tracing::debug!(error = %e, "listing resumed partitions to wake their fetchers failed; they fetch within a second");
            return;
        }
    }
    if ends.count() == 0 {
        return;
    }
    let rk = consumer.client().native_ptr();
    // SAFETY: the client handle is alive for the borrow of `consumer`.
    // `rd_kafka_ListOffsets` copies the partition list and takes its own
    // reference to the reply queue; null options are its defaults. The
    // queue is then destroyed as its owner, which disables it: the reply
    // that later arrives is destroyed by librdkafka instead of enqueued.
    unsafe {
        let replies = rdkafka::bindings::rd_kafka_queue_new(rk);
        rdkafka::bindings::rd_kafka_ListOffsets(rk, ends.ptr(), std::ptr::null(), replies);
        rdkafka::bindings::rd_kafka_queue_destroy(replies);
    }
}

/// Moves every partition assigned to `consumer`, except `except`, to the
/// application's position in it: one past the last record `poll` handed
/// out (partitions without one, just assigned or just sought, keep theirs).
///
/// librdkafka pauses the assignment while it hands a rebalance to the
/// application, saving the application's position as where to fetch from
/// on resuming. A record the application takes from the queue as that
/// pause lands moves the position only after it was saved, so the record
/// is fetched and delivered again after the rebalance and, already
/// processed, would be counted twice (seen in the crash harness: the same
/// offset processed on both sides of an assignment callback). Call from
/// the rebalance callback; a failed move is logged and leaves librdkafka's
/// position.
pub(super) fn hold_positions<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    except: &[TopicPartition],
    timeout: Duration,
) {
    let positions = match consumer.position() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "reading positions in a rebalance failed; a record may be delivered twice");
            return;
        }
    };
    let mut held = TopicPartitionList::new();
    for e in positions.elements() {
        let Offset::Offset(offset) = e.offset() else {
            continue;
        };
        if except
            .iter()
            .any(|tp| tp.topic() == e.topic() && tp.partition() == e.partition())
        {
            continue;
        }
        if held
            .add_partition_offset(e.topic(), e.partition(), Offset::Offset(offset))
            .is_err()
        {
            continue;
        }
    }
    if held.count() == 0 {
        return;
    }
    match consumer.seek_partitions(held, timeout) {
        Ok(sought) => {
            for e in sought.elements() {
                if let Err(error) = e.error() {
                    tracing::warn!(topic = e.topic(), partition = e.partition(), %error,
                        "holding a partition at its position in a rebalance failed; a record may be delivered twice");
                }
            }
        }
        Err(error) => tracing::warn!(%error,
            "holding partitions at their positions in a rebalance failed; a record may be delivered twice"),
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::producer::BaseProducer;
    use rdkafka::Message;

    use super::*;

    /// The next record of `partition` the consumer hands out (others are
    /// dropped).
    fn next_of(consumer: &BaseConsumer, partition: i32) -> i64 {
        loop {
            let m = consumer
                .poll(Duration::from_secs(10))
                .expect("a record within 10 s")
                .expect("no consumer error");
            if m.partition() == partition {
                return m.offset();
            }
        }
    }

    /// A consumer assigned every partition of a fresh topic `in` of
    /// `partitions` partitions with 6 records each, from the beginning
    /// (the cluster lives as long as the producer returned).
    fn assigned(partitions: i32) -> (BaseProducer, BaseConsumer) {
        let (cluster, mut kafka) = super::super::test_topic::topic_in(partitions, 6);
        let consumer: BaseConsumer = kafka
            .set("group.id", "g")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset("in", p, Offset::Beginning).unwrap();
        }
        consumer.assign(&tpl).unwrap();
        (cluster, consumer)
    }

    #[test]
    fn held_partitions_go_on_right_after_the_last_record_handed_out() {
        let (_cluster, consumer) = assigned(2);
        for want in 0..3 {
            assert_eq!(next_of(&consumer, 0), want);
        }
        // Partition 1 is left alone (as one the rebalance moves would be).
        hold_positions(&consumer, &[TopicPartition::new("in", 1)], Duration::from_secs(10));
        assert_eq!(next_of(&consumer, 0), 3, "nothing handed out again, nothing skipped");
    }

    #[test]
    fn a_resumed_partition_goes_on_from_where_its_restore_judged_records_by() {
        let (_cluster, consumer) = assigned(1);
        let tp = TopicPartition::new("in", 0);
        pause(&consumer, std::slice::from_ref(&tp)).unwrap();
        assert!(consumer.poll(Duration::from_millis(200)).is_none(), "paused");
        let at = BTreeMap::from([(tp.clone(), 4)]);
        resume(&consumer, std::slice::from_ref(&tp), &at, Duration::from_secs(10)).unwrap();
        assert_eq!(next_of(&consumer, 0), 4);
        assert_eq!(next_of(&consumer, 0), 5);
    }

    #[test]
    fn a_resumed_partition_wakes_its_fetcher_with_a_request_to_its_leader() {
        use super::super::test_topic::{requests_of, track_requests, LIST_OFFSETS};
        let (cluster, consumer) = assigned(1);
        assert_eq!(next_of(&consumer, 0), 0);
        let tp = TopicPartition::new("in", 0);
        pause(&consumer, std::slice::from_ref(&tp)).unwrap();
        assert!(consumer.poll(Duration::from_millis(200)).is_none(), "paused");
        track_requests(&cluster);
        // Nothing committed, as in a fresh group: no seek, the wake only.
        resume(
            &consumer,
            std::slice::from_ref(&tp),
            &BTreeMap::new(),
            Duration::from_secs(10),
        )
        .unwrap();
        let asked = std::time::Instant::now();
        while requests_of(&cluster, LIST_OFFSETS) == 0 {
            assert!(
                asked.elapsed() < Duration::from_secs(10),
                "no ListOffsets request reached the leader"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(next_of(&consumer, 0), 1, "the wake moves nothing");
        assert_eq!(next_of(&consumer, 0), 2);
    }

    #[test]
    fn waking_the_fetchers_of_a_partition_nobody_leads_is_harmless() {
        let (_cluster, kafka) = super::super::test_topic::topic_in(1, 1);
        let consumer: BaseConsumer = kafka.create().unwrap();
        // Neither an error nor a wait for the missing leader.
        wake_fetchers(&consumer, [&TopicPartition::new("no-such-topic", 3)]);
    }
}
