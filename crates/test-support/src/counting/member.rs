//! [`Member`]: one counting member of a consumer group.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::Offset;
use state_manager::{
    Codec, KeyValueStore, ManagerConfig, ManagerError, Mutex, PartitionTransaction, ProcessingGuarantee, StateContext,
    StateStoreManager, StoreHandle, StoreSpec,
};

use crate::kafka::client;

/// What a member failed at.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// The state manager refused an operation.
    #[error("state manager: {0}")]
    Manager(#[from] ManagerError),
    /// The consumer failed (creating it, polling, reading offsets or
    /// watermarks).
    #[error("consumer: {0}")]
    Kafka(#[from] KafkaError),
    /// A temporary state directory could not be made.
    #[error("state directory: {0}")]
    Io(#[from] std::io::Error),
}

/// What a test does with a member, which sets its `max.poll.interval.ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// It is "crashed" (forgotten: no commit, no close, its background
    /// threads live on), so the group only notices when it has not polled
    /// for a short while: 3 s.
    Dies,
    /// It lives to the end of the test. Recovery runs in the rebalance
    /// handler, which rust-rdkafka calls after librdkafka's poll has
    /// returned, so recovery time counts against the interval; on a loaded
    /// 2-core CI machine a survivor's takeover took more than 3 s. 60 s.
    Survives,
    /// It lives to the end and must keep its place in the group on a
    /// 6 s poll interval however long its restores take (restores run
    /// beside the poll loop).
    PollsOften,
}

impl Fate {
    fn max_poll_interval_ms(self) -> &'static str {
        match self {
            Fate::Dies => "3000",
            Fate::Survives => "60000",
            Fate::PollsOften => "6000",
        }
    }
}

/// Who a member is and how it polls and commits.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// Bootstrap servers.
    pub bootstrap: String,
    /// Consumer group, and the manager's group id.
    pub group: String,
    /// The topic counted, stream of the `counts` store.
    pub input: String,
    /// The manager's instance id.
    pub name: String,
    /// Checkpoint guarantee.
    pub guarantee: ProcessingGuarantee,
    /// `partition.assignment.strategy`.
    pub strategy: String,
    /// What the test does with it (sets the poll interval).
    pub fate: Fate,
    /// How long one poll waits for a record.
    pub poll_timeout: Duration,
    /// [`Member::step`] commits after this many records.
    pub commit_every: usize,
    /// More consumer properties, set last.
    pub consumer_properties: Vec<(String, String)>,
}

impl MemberConfig {
    /// Member `name` of `group` counting topic `input`: at least once,
    /// cooperative-sticky, surviving, polling 50 ms at a time and committing
    /// every 10 records.
    pub fn new(bootstrap: &str, group: &str, input: &str, name: &str) -> Self {
        MemberConfig {
            bootstrap: bootstrap.to_owned(),
            group: group.to_owned(),
            input: input.to_owned(),
            name: name.to_owned(),
            guarantee: ProcessingGuarantee::AtLeastOnce,
            strategy: "cooperative-sticky".to_owned(),
            fate: Fate::Survives,
            poll_timeout: Duration::from_millis(50),
            commit_every: 10,
            consumer_properties: Vec::new(),
        }
    }
}

/// One member: a consumer whose rebalances drive its own state manager,
/// with one key-value store `counts` of the input (MessagePack values,
/// unless the spec says otherwise), holding key -> count under `count`.
pub struct Member {
    /// Its consumer (subscribed to the input).
    pub consumer: BaseConsumer<StateContext>,
    /// Its manager.
    pub manager: Arc<Mutex<StateStoreManager>>,
    /// The counts store.
    pub counts: StoreHandle<KeyValueStore>,
    /// Its state directory.
    pub dir: tempfile::TempDir,
    /// Records processed.
    pub processed: usize,
    /// Records processed since the last commit.
    pub since_commit: usize,
    input: String,
    poll_timeout: Duration,
    commit_every: usize,
}

impl Member {
    /// Starts a member with its state in `dir`: the manager on RocksDB
    /// (`ManagerConfig::new`) committing only when asked, adjusted by
    /// `adjust`, the counts store's spec adjusted by `spec`; the consumer
    /// reads committed records from the earliest offset, commits nothing on
    /// its own, and is subscribed to the input.
    pub fn join(
        config: &MemberConfig,
        dir: tempfile::TempDir,
        adjust: impl FnOnce(&mut ManagerConfig),
        spec: impl FnOnce(StoreSpec<KeyValueStore>) -> StoreSpec<KeyValueStore>,
    ) -> Result<Member, MemberError> {
        let mut cfg = ManagerConfig::new(config.group.as_str(), dir.path());
        cfg.guarantee = config.guarantee;
        cfg.instance_id = Some(config.name.clone());
        // The mock broker does not store offsets sent in a transaction.
        cfg.mirror_transactional_offsets = true;
        // Members commit when they mean to; maintain() never commits on its own.
        cfg.commit_interval = Duration::from_secs(3600);
        adjust(&mut cfg);
        let mut manager = StateStoreManager::new(cfg, client(&config.bootstrap))?;
        let counts = manager.register_store(spec(StoreSpec::key_value(config.input.as_str(), "counts")))?;
        let manager = Arc::new(Mutex::new(manager));
        let mut c = state_changelog::ConsumerSettings::new(config.group.as_str())
            .from_earliest()
            .client_config(&client(&config.bootstrap));
        c.set("session.timeout.ms", "3000")
            .set("heartbeat.interval.ms", "300")
            .set("max.poll.interval.ms", config.fate.max_poll_interval_ms())
            .set("partition.assignment.strategy", &config.strategy);
        for (key, value) in &config.consumer_properties {
            c.set(key, value);
        }
        let consumer: BaseConsumer<StateContext> = c.create_with_context(StateContext::new(manager.clone()))?;
        consumer.subscribe(&[config.input.as_str()])?;
        Ok(Member {
            consumer,
            manager,
            counts,
            dir,
            processed: 0,
            since_commit: 0,
            input: config.input.clone(),
            poll_timeout: config.poll_timeout,
            commit_every: config.commit_every.max(1),
        })
    }

    /// Polls up to `max` times (stopping at the first poll without a
    /// record), maintaining the manager after each poll and counting each
    /// record; commits every `commit_every` records. Returns the partitions
    /// of the records counted, in order.
    pub fn step(&mut self, max: usize) -> Result<Vec<i32>, MemberError> {
        let mut seen = Vec::new();
        for _ in 0..max {
            let polled = self.consumer.poll(self.poll_timeout);
            let mut mgr = self.manager.lock();
            mgr.maintain(&self.consumer)?;
            match polled {
                Some(Ok(msg)) => {
                    if !mgr.is_ready(&self.input, msg.partition() as u32) {
                        // Polled before the maintain above paused its
                        // partition for a rebuild: delivered again once
                        // resumed.
                        continue;
                    }
                    if let Err(e) = count(&mut mgr, &self.counts, &self.input, &msg) {
                        // A read found the partition damaged: the next
                        // maintain rebuilds it and moves back to this
                        // record (`StateStoreManager::damage_found`).
                        if mgr.damage_found() {
                            continue;
                        }
                        return Err(e.into());
                    }
                    seen.push(msg.partition());
                    self.processed += 1;
                    self.since_commit += 1;
                    if self.since_commit >= self.commit_every {
                        mgr.commit(&self.consumer)?;
                        self.since_commit = 0;
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => break,
            }
        }
        Ok(seen)
    }

    /// Commits the current checkpoint.
    pub fn commit(&mut self) -> Result<(), MemberError> {
        self.manager.lock().commit(&self.consumer)?;
        self.since_commit = 0;
        Ok(())
    }

    /// The input partitions assigned to this member whose state is
    /// restored (processing them is allowed).
    pub fn ready_partitions(&self) -> BTreeSet<i32> {
        let mgr = self.manager.lock();
        self.consumer
            .assignment()
            .map(|a| {
                a.elements()
                    .iter()
                    .filter(|e| mgr.is_ready(e.topic(), e.partition() as u32))
                    .map(|e| e.partition())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True when the committed offset of every assigned partition that has
    /// records reached its high watermark.
    pub fn caught_up(&self) -> Result<bool, MemberError> {
        let assignment = self.consumer.assignment()?;
        let committed = self.consumer.committed_offsets(assignment, Duration::from_secs(5))?;
        for e in committed.elements() {
            let (_, high) = self
                .consumer
                .fetch_watermarks(&self.input, e.partition(), Duration::from_secs(5))?;
            if high > 0 && !matches!(e.offset(), Offset::Offset(o) if o >= high) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The count of `key`, read from partition `partition` of the counts
    /// store (which must be assigned here).
    pub fn count_of(&self, key: &str, partition: u32) -> Result<u64, MemberError> {
        let part = self.manager.lock().partition(&self.counts, partition)?;
        let t = PartitionTransaction::new(part, Codec::MsgPack, None);
        let n = t
            .get::<_, u64>("count", key.as_bytes())
            .map_err(|e| MemberError::Manager(e.into()))?;
        Ok(n.unwrap_or(0))
    }
}

/// The processor: one more for the record's key (empty if it has none) in
/// the current checkpoint, and the record's offset marked processed.
pub fn count(
    mgr: &mut StateStoreManager,
    counts: &StoreHandle<KeyValueStore>,
    input: &str,
    msg: &BorrowedMessage<'_>,
) -> Result<(), ManagerError> {
    let p = msg.partition() as u32;
    let key = msg.key().unwrap_or_default().to_vec();
    let mut state = mgr.txn(counts, p)?.key(&key);
    let n: u64 = state.get("count")?.unwrap_or(0);
    state.set("count", &(n + 1))?;
    mgr.processed(input, p, msg.offset())
}
