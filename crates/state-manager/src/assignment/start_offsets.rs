//! Where newly assigned partitions start: absolute offsets, filled into
//! the assignment before librdkafka starts fetching it.
//!
//! librdkafka places a partition assigned without an offset by asking the
//! group for its committed offset and, when there is none, the broker for
//! `auto.offset.reset`'s logical offset (a ListOffsets request). A pause,
//! resume or seek of the partition while that request is in flight makes
//! its reply outdated, and librdkafka (2.12.1, and every version before
//! it we looked at) answers an outdated reply by arming a 500 ms timer
//! that queries the logical offset again and moves the partition there,
//! whatever was consumed since (`rd_kafka_toppar_handle_Offset` →
//! `rd_kafka_toppar_offset_retry`; the timer is not stopped when a newer
//! reply places the partition). Under `earliest` the records consumed in
//! that half second are handed out a second time; under `latest` records
//! are skipped. The manager pauses a partition whose stores restore right
//! after its assignment, which is inside that window: in the pageviews
//! demo, on a fresh group, one run in about a dozen under load processed
//! ~12,000 input records twice (librdkafka's debug log shows the timer
//! firing in state `active`).
//!
//! So the assignment carries absolute offsets: the committed offset, else
//! the watermark the consumer's own `auto.offset.reset` names. librdkafka
//! then starts fetching at once, with no lookup to race.
//!
//! The committed offsets read here are kept ([`PlacedOffsets`]) for the
//! assignment that follows in the same rebalance callback, which restores
//! the partitions' stores against them: the stores and the consumer then
//! agree on one reading of the group's offsets even if a previous owner's
//! late commit moves them in between, and the group coordinator is asked
//! once per assignment instead of twice.

use std::collections::BTreeMap;
use std::ffi::{c_char, CStr};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use state_core::TopicPartition;

use crate::error::Result;

/// Where `auto.offset.reset` sends a partition without a committed offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reset {
    Earliest,
    Latest,
}

impl Reset {
    /// librdkafka's names of the policy (`error` and unknown: `None`).
    fn parse(value: &str) -> Option<Reset> {
        match value {
            "smallest" | "earliest" | "beginning" => Some(Reset::Earliest),
            "largest" | "latest" | "end" => Some(Reset::Latest),
            _ => None,
        }
    }
}

/// The `auto.offset.reset` `consumer` was created with, read from the live
/// client (the application builds the consumer, so the manager's own
/// settings may not be what it uses).
fn reset_policy<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Option<Reset> {
    const NAME: &CStr = c"auto.offset.reset";
    let mut buf = [0 as c_char; 64];
    let mut size = buf.len();
    // SAFETY: the client handle is alive for the borrow of `consumer`;
    // `rd_kafka_conf` returns its configuration (owned by the handle) and
    // `rd_kafka_conf_get` writes at most `size` bytes, NUL-terminated, into
    // `buf`, updating `size`.
    let res = unsafe {
        let conf = rdkafka::bindings::rd_kafka_conf(consumer.client().native_ptr());
        rdkafka::bindings::rd_kafka_conf_get(conf, NAME.as_ptr(), buf.as_mut_ptr(), &mut size)
    };
    if res != rdkafka::bindings::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK {
        return None;
    }
    // SAFETY: on success `buf` holds a NUL-terminated string.
    let value = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Reset::parse(value.to_str().ok()?)
}

/// The group's committed offsets [`place`] read, by partition (`None`:
/// the partition has none), for the assignment that follows.
#[derive(Debug, Default)]
pub(crate) struct PlacedOffsets(BTreeMap<TopicPartition, Option<i64>>);

impl PlacedOffsets {
    /// The committed offsets of `partitions` (those that have one): as
    /// placed, and read from the group for partitions not placed. Taken by
    /// value: one placement serves one assignment.
    pub(crate) fn or_read<C: ConsumerContext, K: Consumer<C>>(
        self,
        consumer: &K,
        partitions: &[TopicPartition],
        timeout: Duration,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut committed = BTreeMap::new();
        let mut unknown = Vec::new();
        for tp in partitions {
            match self.0.get(tp) {
                Some(Some(offset)) => {
                    committed.insert(tp.clone(), *offset);
                }
                Some(None) => {}
                None => unknown.push(tp.clone()),
            }
        }
        if !unknown.is_empty() {
            committed.extend(super::consumer::committed_offsets(consumer, &unknown, timeout)?);
        }
        Ok(committed)
    }
}

/// Fills in an absolute start offset for every partition of `assignment`
/// that has none: its committed offset, else the low or high watermark as
/// the consumer's `auto.offset.reset` says. A partition it cannot place
/// (the policy is `error`, or a call fails: logged) is left to librdkafka.
/// Call from the rebalance callback, before the assignment is applied.
/// Returns the committed offsets it read (none if the read failed).
pub(crate) fn place<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    assignment: &mut TopicPartitionList,
    timeout: Duration,
) -> PlacedOffsets {
    let unplaced: Vec<TopicPartition> = assignment
        .elements()
        .iter()
        .filter(|e| e.offset() == Offset::Invalid)
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect();
    if unplaced.is_empty() {
        return PlacedOffsets::default();
    }
    let committed = match super::consumer::committed_offsets(consumer, &unplaced, timeout) {
        Ok(c) => c,
        Err(error) => {
            tracing::warn!(%error, "reading committed offsets on assignment failed; librdkafka places the partitions \
                 (a pause right after may make it hand out records twice)");
            return PlacedOffsets::default();
        }
    };
    let read = PlacedOffsets(
        unplaced
            .iter()
            .map(|tp| (tp.clone(), committed.get(tp).copied()))
            .collect(),
    );
    let policy = reset_policy(consumer);
    for tp in unplaced {
        let at = match (committed.get(&tp), policy) {
            (Some(o), _) => Some(*o),
            (None, Some(reset)) => match consumer.fetch_watermarks(tp.topic(), tp.partition(), timeout) {
                Ok((low, high)) => Some(if reset == Reset::Earliest { low } else { high }),
                Err(error) => {
                    tracing::warn!(topic = tp.topic(), partition = tp.partition(), %error,
                        "reading watermarks on assignment failed; librdkafka places the partition");
                    None
                }
            },
            (None, None) => None,
        };
        let Some(at) = at else { continue };
        if let Err(error) = assignment.set_partition_offset(tp.topic(), tp.partition(), Offset::Offset(at)) {
            tracing::warn!(topic = tp.topic(), partition = tp.partition(), %error,
                "placing an assigned partition failed; librdkafka places it");
        }
    }
    read
}

#[cfg(test)]
mod tests {
    use rdkafka::producer::BaseProducer;

    use super::super::test_topic::{mock_of, requests_of, topic_in, track_requests, LIST_OFFSETS, OFFSET_FETCH};
    use super::*;

    #[test]
    fn librdkafka_names_of_the_policy_are_understood() {
        for name in ["smallest", "earliest", "beginning"] {
            assert_eq!(Reset::parse(name), Some(Reset::Earliest), "{name}");
        }
        for name in ["largest", "latest", "end"] {
            assert_eq!(Reset::parse(name), Some(Reset::Latest), "{name}");
        }
        assert_eq!(Reset::parse("error"), None);
    }

    /// A cluster with topic `in` (2 partitions, 5 records each), and a
    /// consumer of group `g` with `reset`, which committed offset 3 of
    /// partition 0.
    fn setup(reset: &str) -> (BaseProducer, BaseConsumer) {
        let (cluster, mut kafka) = topic_in(2, 5);
        let consumer: BaseConsumer = kafka
            .set("group.id", "g")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", reset)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("in", 0, Offset::Offset(3)).unwrap();
        consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync).unwrap();
        (cluster, consumer)
    }

    fn placed(consumer: &BaseConsumer) -> Vec<Offset> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("in", 0);
        tpl.add_partition("in", 1);
        place(consumer, &mut tpl, Duration::from_secs(10));
        tpl.elements().iter().map(|e| e.offset()).collect()
    }

    #[test]
    fn a_committed_partition_starts_at_its_committed_offset_the_others_where_the_policy_says() {
        let (_cluster, consumer) = setup("earliest");
        assert_eq!(placed(&consumer), [Offset::Offset(3), Offset::Offset(0)]);
        let (_cluster, consumer) = setup("latest");
        assert_eq!(placed(&consumer), [Offset::Offset(3), Offset::Offset(5)]);
    }

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition::new("in", partition)
    }

    #[test]
    fn the_assignment_after_a_placement_uses_the_committed_offsets_it_read_without_asking_again() {
        let (cluster, consumer) = setup("earliest");
        track_requests(&cluster);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("in", 0);
        tpl.add_partition("in", 1);
        let read = place(&consumer, &mut tpl, Duration::from_secs(10));
        assert_eq!(
            requests_of(&cluster, OFFSET_FETCH),
            1,
            "the placement reads the group's offsets"
        );
        let committed = read
            .or_read(&consumer, &[tp(0), tp(1)], Duration::from_secs(10))
            .unwrap();
        assert_eq!(committed, BTreeMap::from([(tp(0), 3)]), "as placed: 1 has none");
        assert_eq!(requests_of(&cluster, OFFSET_FETCH), 1, "not asked again");
        // One placement serves one assignment: the next one, with nothing
        // placed, asks.
        let committed = PlacedOffsets::default()
            .or_read(&consumer, &[tp(0)], Duration::from_secs(10))
            .unwrap();
        assert_eq!(committed, BTreeMap::from([(tp(0), 3)]));
        assert_eq!(requests_of(&cluster, OFFSET_FETCH), 2);
    }

    #[test]
    fn a_partition_the_placement_did_not_read_is_read_from_the_group() {
        let (cluster, consumer) = setup("earliest");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("in", 1);
        tpl.add_partition_offset("in", 0, Offset::Offset(1)).unwrap();
        let read = place(&consumer, &mut tpl, Duration::from_secs(10));
        track_requests(&cluster);
        // 0 came with an offset, so the placement did not read it.
        let committed = read
            .or_read(&consumer, &[tp(0), tp(1)], Duration::from_secs(10))
            .unwrap();
        assert_eq!(committed, BTreeMap::from([(tp(0), 3)]));
        assert_eq!(requests_of(&cluster, OFFSET_FETCH), 1);
    }

    #[test]
    fn under_the_error_policy_an_uncommitted_partition_is_left_to_librdkafka() {
        let (_cluster, consumer) = setup("error");
        assert_eq!(placed(&consumer), [Offset::Offset(3), Offset::Invalid]);
    }

    /// A client owning a mock cluster whose topic `in` holds `records`
    /// records in one partition, and a consumer of it (group `fresh`, no
    /// committed offsets, `earliest`).
    fn fresh_group(records: usize) -> (BaseProducer, BaseConsumer) {
        let (owner, mut kafka) = topic_in(1, records);
        let consumer: BaseConsumer = kafka
            .set("group.id", "fresh")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        (owner, consumer)
    }

    /// Makes the cluster `owner` owns answer its next ListOffsets request
    /// after `delay`.
    fn delay_next_offset_lookup(owner: &BaseProducer, delay: Duration) {
        let mock = mock_of(owner);
        // SAFETY: `mock` lives as long as `owner`; the variadic arguments
        // are one (error code, round trip in ms) pair, as `cnt` = 1 says,
        // both C ints.
        unsafe {
            rdkafka::bindings::rd_kafka_mock_broker_push_request_error_rtts(
                mock,
                1,
                LIST_OFFSETS,
                1,
                rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR as std::ffi::c_int,
                delay.as_millis() as std::ffi::c_int,
            );
        }
    }

    /// Assigns `in` [0] at `offset`, pauses it 50 ms later (inside the
    /// broker's delayed offset lookup, when there is one) and resumes it
    /// 100 ms after that, as the manager does with a partition whose
    /// stores restore quickly; once 10 records are handed out, pauses and
    /// resumes it once more, as an application's flow control may.
    /// Returns the offsets handed out in 2.5 s.
    fn assign_pause_resume(consumer: &BaseConsumer, offset: Offset) -> Vec<i64> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("in", 0, offset).unwrap();
        consumer.assign(&tpl).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        consumer.pause(&tpl).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        consumer.resume(&tpl).unwrap();
        let mut seen = Vec::new();
        let until = std::time::Instant::now() + Duration::from_millis(2500);
        while std::time::Instant::now() < until {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                seen.push(rdkafka::Message::offset(&m));
                if seen.len() == 10 {
                    consumer.pause(&tpl).unwrap();
                    consumer.resume(&tpl).unwrap();
                }
            }
        }
        seen
    }

    #[test]
    fn a_placed_partition_paused_while_it_starts_hands_out_each_record_once() {
        let (owner, consumer) = fresh_group(2000);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("in", 0);
        place(&consumer, &mut tpl, Duration::from_secs(10));
        let start = tpl.elements()[0].offset();
        assert_eq!(start, Offset::Offset(0));
        // What makes librdkafka move an unplaced partition back (see
        // `librdkafka_alone_moves_a_partition_paused_during_its_lookup_back`):
        // a slow offset lookup. A placed partition asks none.
        delay_next_offset_lookup(&owner, Duration::from_millis(600));
        let seen = assign_pause_resume(&consumer, start);
        assert_eq!(seen, (0..2000).collect::<Vec<i64>>());
    }

    /// The librdkafka behaviour `place` avoids: a partition assigned
    /// without an offset, paused and resumed while its offset lookup is in
    /// flight, then paused and resumed once more, is moved back to the
    /// reset offset half a second after the lookup, and its records are
    /// handed out again. A reproduction to run by hand after a librdkafka
    /// upgrade (if it stops failing, the workaround may go); ignored
    /// because it depends on timing: about 3 runs in 4 reproduce it on an
    /// idle 2-core machine.
    #[test]
    #[ignore = "timing-dependent reproduction of a librdkafka bug; run by hand with --ignored"]
    fn librdkafka_alone_moves_a_partition_paused_during_its_lookup_back() {
        let (owner, consumer) = fresh_group(2000);
        delay_next_offset_lookup(&owner, Duration::from_millis(600));
        let seen = assign_pause_resume(&consumer, Offset::Invalid);
        let again = seen.windows(2).filter(|w| w[1] <= w[0]).count();
        assert!(
            again > 0,
            "librdkafka no longer moves the partition back ({} records, in order): \
             assignment::start_offsets may be unnecessary now",
            seen.len()
        );
    }

    #[test]
    fn an_offset_the_assignment_carries_is_kept() {
        let (_cluster, consumer) = setup("earliest");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("in", 1, Offset::Offset(4)).unwrap();
        place(&consumer, &mut tpl, Duration::from_secs(10));
        assert_eq!(tpl.elements()[0].offset(), Offset::Offset(4));
    }
}
