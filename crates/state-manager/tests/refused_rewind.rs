//! Exactly-once with mirrored offsets: a checkpoint whose mirrored offset
//! commit is refused is kept out of local state, and its records must be
//! processed again. The rewind to its first record is a seek, which
//! librdkafka refuses (`Local: Outdated`) when a rebalance's pause of the
//! assignment overtakes it. Seen in the crash harness (`cargo xtask crash
//! --standbys`): the member went on after the checkpoint on state that
//! lacked it, and its changes were lost for good.
//!
//! The seek refusal is injected by a consumer that delegates to a real one
//! on librdkafka's mock cluster; the mirrored commit is refused by the
//! mock broker's error injection, as during a rebalance.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::Client;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerGroupMetadata, DefaultConsumerContext, RebalanceProtocol,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::groups::GroupList;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::metadata::Metadata;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use state_manager::{ManagerConfig, ProcessingGuarantee, StateStoreManager, TopicPartition};

const INPUT: &str = "rewind-input";
const GROUP: &str = "rewind-group";

/// A consumer that refuses its next `refuse` seeks as librdkafka does when
/// a rebalance overtakes them, and otherwise is `inner`.
struct RefusingSeeks {
    inner: BaseConsumer,
    refuse: AtomicU32,
}

impl RefusingSeeks {
    fn refuse_next_seeks(&self, n: u32) {
        self.refuse.store(n, Ordering::SeqCst);
    }

    fn refused(&self) -> bool {
        self.refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl Consumer for RefusingSeeks {
    fn client(&self) -> &Client<DefaultConsumerContext> {
        self.inner.client()
    }
    fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        self.inner.group_metadata()
    }
    fn subscribe(&self, topics: &[&str]) -> KafkaResult<()> {
        self.inner.subscribe(topics)
    }
    fn unsubscribe(&self) {
        self.inner.unsubscribe()
    }
    fn assign(&self, assignment: &TopicPartitionList) -> KafkaResult<()> {
        self.inner.assign(assignment)
    }
    fn unassign(&self) -> KafkaResult<()> {
        self.inner.unassign()
    }
    fn incremental_assign(&self, assignment: &TopicPartitionList) -> KafkaResult<()> {
        self.inner.incremental_assign(assignment)
    }
    fn incremental_unassign(&self, assignment: &TopicPartitionList) -> KafkaResult<()> {
        self.inner.incremental_unassign(assignment)
    }
    fn seek<T: Into<Timeout>>(&self, topic: &str, partition: i32, offset: Offset, timeout: T) -> KafkaResult<()> {
        if self.refused() {
            return Err(KafkaError::Seek(RDKafkaErrorCode::Outdated.to_string()));
        }
        self.inner.seek(topic, partition, offset, timeout)
    }
    fn seek_partitions<T: Into<Timeout>>(
        &self,
        topic_partition_list: TopicPartitionList,
        timeout: T,
    ) -> KafkaResult<TopicPartitionList> {
        self.inner.seek_partitions(topic_partition_list, timeout)
    }
    fn commit(&self, topic_partition_list: &TopicPartitionList, mode: CommitMode) -> KafkaResult<()> {
        self.inner.commit(topic_partition_list, mode)
    }
    fn commit_consumer_state(&self, mode: CommitMode) -> KafkaResult<()> {
        self.inner.commit_consumer_state(mode)
    }
    fn commit_message(&self, message: &BorrowedMessage<'_>, mode: CommitMode) -> KafkaResult<()> {
        self.inner.commit_message(message, mode)
    }
    fn store_offset(&self, topic: &str, partition: i32, offset: i64) -> KafkaResult<()> {
        self.inner.store_offset(topic, partition, offset)
    }
    fn store_offset_from_message(&self, message: &BorrowedMessage<'_>) -> KafkaResult<()> {
        self.inner.store_offset_from_message(message)
    }
    fn store_offsets(&self, tpl: &TopicPartitionList) -> KafkaResult<()> {
        self.inner.store_offsets(tpl)
    }
    fn subscription(&self) -> KafkaResult<TopicPartitionList> {
        self.inner.subscription()
    }
    fn assignment(&self) -> KafkaResult<TopicPartitionList> {
        self.inner.assignment()
    }
    fn assignment_lost(&self) -> bool {
        self.inner.assignment_lost()
    }
    fn committed<T: Into<Timeout>>(&self, timeout: T) -> KafkaResult<TopicPartitionList> {
        self.inner.committed(timeout)
    }
    fn committed_offsets<T: Into<Timeout>>(
        &self,
        tpl: TopicPartitionList,
        timeout: T,
    ) -> KafkaResult<TopicPartitionList> {
        self.inner.committed_offsets(tpl, timeout)
    }
    fn offsets_for_timestamp<T: Into<Timeout>>(&self, timestamp: i64, timeout: T) -> KafkaResult<TopicPartitionList> {
        self.inner.offsets_for_timestamp(timestamp, timeout)
    }
    fn offsets_for_times<T: Into<Timeout>>(
        &self,
        timestamps: TopicPartitionList,
        timeout: T,
    ) -> KafkaResult<TopicPartitionList> {
        self.inner.offsets_for_times(timestamps, timeout)
    }
    fn position(&self) -> KafkaResult<TopicPartitionList> {
        self.inner.position()
    }
    fn fetch_metadata<T: Into<Timeout>>(&self, topic: Option<&str>, timeout: T) -> KafkaResult<Metadata> {
        self.inner.fetch_metadata(topic, timeout)
    }
    fn fetch_watermarks<T: Into<Timeout>>(&self, topic: &str, partition: i32, timeout: T) -> KafkaResult<(i64, i64)> {
        self.inner.fetch_watermarks(topic, partition, timeout)
    }
    fn fetch_group_list<T: Into<Timeout>>(&self, group: Option<&str>, timeout: T) -> KafkaResult<GroupList> {
        self.inner.fetch_group_list(group, timeout)
    }
    fn pause(&self, partitions: &TopicPartitionList) -> KafkaResult<()> {
        self.inner.pause(partitions)
    }
    fn resume(&self, partitions: &TopicPartitionList) -> KafkaResult<()> {
        self.inner.resume(partitions)
    }
    fn rebalance_protocol(&self) -> RebalanceProtocol {
        self.inner.rebalance_protocol()
    }
}

/// A mock cluster with `records` records in the one partition of the
/// input, an exactly-once manager that mirrors its offset commits, and a
/// consumer of the group that owns that partition (ready: no stores).
fn setup(
    records: i64,
) -> (
    MockCluster<'static, DefaultProducerContext>,
    StateStoreManager,
    RefusingSeeks,
    tempfile::TempDir,
) {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(INPUT, 1, 1).unwrap();
    let mut kafka = ClientConfig::new();
    kafka.set("bootstrap.servers", cluster.bootstrap_servers());
    let producer: BaseProducer = kafka.create().unwrap();
    for i in 0..records {
        producer
            .send(
                BaseRecord::<str, str>::to(INPUT)
                    .partition(0)
                    .key("k")
                    .payload(&i.to_string()),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = ManagerConfig::with_backend(GROUP, dir.path(), state_core::MemoryBackend::shared());
    config.guarantee = ProcessingGuarantee::ExactlyOnce;
    config.mirror_transactional_offsets = true;
    config.kafka_timeout = Duration::from_secs(10);
    // Only the explicit commits below.
    config.commit_interval = Duration::from_secs(3600);
    let manager = StateStoreManager::new(config, kafka.clone()).unwrap();
    let inner: BaseConsumer = kafka
        .clone()
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(INPUT, 0, Offset::Beginning).unwrap();
    inner.assign(&tpl).unwrap();
    let consumer = RefusingSeeks {
        inner,
        refuse: AtomicU32::new(0),
    };
    (cluster, manager, consumer, dir)
}

/// The offset of the next record the consumer delivers, if one comes
/// within `wait`.
fn next_offset(consumer: &RefusingSeeks, wait: Duration) -> Option<i64> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Some(m) = consumer.inner.poll(Duration::from_millis(100)) {
            return Some(m.unwrap().offset());
        }
    }
    None
}

/// Processes (records as processed) the next `n` records; returns their
/// offsets.
fn process(manager: &mut StateStoreManager, consumer: &RefusingSeeks, n: usize) -> Vec<i64> {
    let mut offsets = Vec::new();
    for _ in 0..n {
        let o = next_offset(consumer, Duration::from_secs(10)).expect("a record");
        manager.processed(INPUT, 0, o).unwrap();
        offsets.push(o);
    }
    offsets
}

/// Commits the checkpoint with the mirrored offset commit refused (as
/// during a rebalance) and the next `refused_seeks` seeks refused.
fn commit_refused(
    cluster: &MockCluster<'static, DefaultProducerContext>,
    manager: &mut StateStoreManager,
    consumer: &RefusingSeeks,
    refused_seeks: u32,
) {
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS],
    );
    consumer.refuse_next_seeks(refused_seeks);
    manager
        .commit(consumer)
        .expect("a refused mirrored commit is not an error");
}

#[test]
fn a_refused_rewind_is_done_before_the_partition_fetches_again() {
    let (cluster, mut manager, consumer, _dir) = setup(6);
    manager.on_assign(&consumer, &[TopicPartition::new(INPUT, 0)]).unwrap();
    assert_eq!(process(&mut manager, &consumer, 3), [0, 1, 2]);
    commit_refused(&cluster, &mut manager, &consumer, 1);
    // The poll loop's turn: the manager settles the rewind.
    manager.maintain(&consumer).unwrap();
    assert_eq!(
        next_offset(&consumer, Duration::from_secs(10)),
        Some(0),
        "the uncommitted checkpoint's records come again, not the ones after it"
    );
}

#[test]
fn a_rewind_refused_again_keeps_the_partition_paused_until_it_is_done() {
    let (cluster, mut manager, consumer, _dir) = setup(6);
    manager.on_assign(&consumer, &[TopicPartition::new(INPUT, 0)]).unwrap();
    assert_eq!(process(&mut manager, &consumer, 3), [0, 1, 2]);
    // Refused in the commit and again in the next turn of the poll loop.
    commit_refused(&cluster, &mut manager, &consumer, 2);
    manager.maintain(&consumer).unwrap();
    assert_eq!(
        next_offset(&consumer, Duration::from_secs(1)),
        None,
        "nothing after the checkpoint is delivered while the rewind is pending"
    );
    manager.maintain(&consumer).unwrap();
    assert_eq!(next_offset(&consumer, Duration::from_secs(10)), Some(0));
}

#[test]
fn a_partition_revoked_with_a_rewind_pending_is_not_left_paused() {
    let (cluster, mut manager, consumer, _dir) = setup(6);
    let tp = TopicPartition::new(INPUT, 0);
    manager.on_assign(&consumer, std::slice::from_ref(&tp)).unwrap();
    assert_eq!(process(&mut manager, &consumer, 3), [0, 1, 2]);
    commit_refused(&cluster, &mut manager, &consumer, 1);
    // Revoked and assigned here again (no stores: ready at once), from the
    // group's committed offset (none: the beginning).
    manager.on_revoke(std::slice::from_ref(&tp)).unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(INPUT, 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    manager.on_assign(&consumer, std::slice::from_ref(&tp)).unwrap();
    manager.maintain(&consumer).unwrap();
    assert!(
        next_offset(&consumer, Duration::from_secs(10)).is_some(),
        "the partition fetches again"
    );
}

#[test]
fn an_accepted_rewind_needs_no_settling() {
    let (cluster, mut manager, consumer, _dir) = setup(6);
    manager.on_assign(&consumer, &[TopicPartition::new(INPUT, 0)]).unwrap();
    assert_eq!(process(&mut manager, &consumer, 3), [0, 1, 2]);
    commit_refused(&cluster, &mut manager, &consumer, 0);
    assert_eq!(next_offset(&consumer, Duration::from_secs(10)), Some(0));
}

/// Why `maintain` must not run between `poll` and the processing of the
/// record it returned (the crash harness's child did, and counted a record
/// twice): its checkpoint, due, is refused its mirrored offset commit and
/// rewinds the consumer, so the record in hand, processed on state without
/// that checkpoint, comes again after it.
#[test]
fn a_record_polled_before_a_rewinding_checkpoint_is_delivered_again() {
    let (cluster, _, consumer, dir) = setup(6);
    let mut config = ManagerConfig::with_backend(GROUP, dir.path(), state_core::MemoryBackend::shared());
    config.guarantee = ProcessingGuarantee::ExactlyOnce;
    config.mirror_transactional_offsets = true;
    config.kafka_timeout = Duration::from_secs(10);
    config.commit_interval = Duration::from_millis(200);
    let mut kafka = ClientConfig::new();
    kafka.set("bootstrap.servers", cluster.bootstrap_servers());
    let mut manager = StateStoreManager::new(config, kafka).unwrap();
    manager.on_assign(&consumer, &[TopicPartition::new(INPUT, 0)]).unwrap();
    assert_eq!(process(&mut manager, &consumer, 3), [0, 1, 2]);
    assert_eq!(next_offset(&consumer, Duration::from_secs(10)), Some(3), "in hand");
    std::thread::sleep(Duration::from_millis(300));
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS],
    );
    // The commit is due: `maintain` checkpoints records 0..=2 and rewinds.
    manager.maintain(&consumer).unwrap();
    let again: Vec<i64> = (0..4)
        .filter_map(|_| next_offset(&consumer, Duration::from_secs(5)))
        .collect();
    assert_eq!(again, [0, 1, 2, 3], "record 3 comes again after the rewound checkpoint");
}
