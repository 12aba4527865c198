//! [`TestCluster`]: an in-process Kafka cluster (librdkafka's mock) for
//! tests, creating topics the admin API cannot create there.

use std::sync::Arc;
use std::time::Duration;

use state_changelog::rdkafka::config::ClientConfig;
use state_changelog::rdkafka::error::{KafkaError, RDKafkaErrorCode};
use state_changelog::rdkafka::mocking::MockCluster;
use state_changelog::rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};
use state_changelog::MockClusterRegistration;
use state_manager::{ManagerConfig, StateStoreManager, Topics};

use super::error::TestError;

/// How long the mock's group coordinator waits for more members before a
/// new group's first rebalance (librdkafka's mock: 3 s, as
/// `group.initial.rebalance.delay.ms`). Tests start groups all the time.
const INITIAL_REBALANCE_DELAY_MS: i32 = 50;

/// How long metadata lookups of the test cluster wait.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// An in-process Kafka cluster for tests: librdkafka's mock cluster with
/// one broker, on a loopback port of its own, living as long as this
/// value. Idempotent and transactional producers, consumer groups and
/// offset commits work as on Kafka, with known differences (below).
///
/// * Topics are created through the mock's own API: [`create_topic`](Self::create_topic),
///   [`create_topics_for`](Self::create_topics_for) (an application's
///   sources, outputs and changelogs), [`create_changelog_topics`](Self::create_changelog_topics)
///   (a manager's). The cluster also registers itself
///   ([`state_changelog::register_mock_cluster`]), so
///   `StateStoreManager::ensure_changelog_topics` creates changelog topics
///   here as on a real cluster.
/// * [`configure`](Self::configure) sets what the manager needs on this
///   cluster: `mirror_transactional_offsets` (the mock does not store
///   offsets sent in a transaction).
/// * A new group's first rebalance starts after 50 ms (3 s by default on
///   the mock).
///
/// What the mock does not do: it keeps records of aborted transactions
/// visible and reports no transaction markers, so read-committed
/// consumers also see aborted records (restores skip them by their
/// processed-offset headers; the test driver's output topics hide them);
/// it keeps at most ~100,000 batches per partition.
pub struct TestCluster {
    // Dropped first: the creator holds the owner too.
    registration: MockClusterRegistration,
    owner: Arc<BaseProducer>,
    bootstrap: String,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("bootstrap", &self.bootstrap)
            .field("registration", &self.registration)
            .finish_non_exhaustive()
    }
}

/// The mock cluster a client created with `test.mock.num.brokers` owns.
fn mock_of(owner: &BaseProducer) -> Result<MockCluster<'_, DefaultProducerContext>, KafkaError> {
    owner
        .client()
        .mock_cluster()
        .ok_or(KafkaError::MockCluster(RDKafkaErrorCode::Fail))
}

impl TestCluster {
    /// Starts a one-broker mock cluster.
    pub fn new() -> Result<Self, TestError> {
        let kafka = |operation| move |source| TestError::Kafka { operation, source };
        // A client that owns its mock cluster, rather than rdkafka's
        // MockCluster::new: it is Send + Sync (the topic creator below
        // is called from any thread), and it produces the test input.
        let owner: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .set("linger.ms", "1")
            .create()
            .map_err(kafka("starting the mock cluster"))?;
        let owner = Arc::new(owner);
        let bootstrap = mock_of(&owner)
            .map_err(kafka("looking up the mock cluster"))?
            .bootstrap_servers();
        set_initial_rebalance_delay(&owner, INITIAL_REBALANCE_DELAY_MS);
        let creator = owner.clone();
        let registration = state_changelog::register_mock_cluster(
            bootstrap.clone(),
            Arc::new(move |topic: &str, partitions: usize| {
                mock_of(&creator)?.create_topic(topic, partitions as i32, 1)
            }),
        );
        Ok(TestCluster {
            registration,
            owner,
            bootstrap,
        })
    }

    /// Its `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Client settings with its `bootstrap.servers`.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }

    /// Sets what the manager needs on this cluster:
    /// [`ManagerConfig::mirror_transactional_offsets`] (the mock does not
    /// store offsets sent in a transaction; the consumer commits them a
    /// second time).
    pub fn configure(&self, config: &mut ManagerConfig) {
        config.mirror_transactional_offsets = true;
    }

    /// The mock cluster, for fault injection (`request_errors`,
    /// `broker_down`, ...).
    pub fn mock(&self) -> MockCluster<'_, DefaultProducerContext> {
        // The owner was created with a mock cluster and keeps it while it
        // lives; the lookup cannot fail after `new` succeeded.
        match self.owner.client().mock_cluster() {
            Some(mock) => mock,
            None => unreachable!("the owner of a mock cluster has one"),
        }
    }

    /// The partitions of `topic`, or `None` if it does not exist.
    pub fn partitions(&self, topic: &str) -> Result<Option<u32>, TestError> {
        Ok(state_changelog::topic_partitions(&self.client_config(), topic, METADATA_TIMEOUT)?.map(|n| n as u32))
    }

    /// Creates `topic` with `partitions` partitions, unless it exists with
    /// as many ([`TestError::PartitionCount`] if with another count).
    pub fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), TestError> {
        match self.partitions(topic)? {
            Some(actual) if actual == partitions => Ok(()),
            Some(actual) => Err(TestError::PartitionCount {
                topic: topic.to_owned(),
                expected: partitions,
                actual,
            }),
            None => {
                self.mock()
                    .create_topic(topic, partitions as i32, 1)
                    .map_err(|source| TestError::Kafka {
                        operation: "creating a topic on the mock cluster",
                        source,
                    })?;
                self.await_topic(topic, partitions)
            }
        }
    }

    /// Creates the topics of an application: each source and output with
    /// `partitions` partitions (unless it exists), then each changelog
    /// with its source's partitions.
    pub fn create_topics_for(&self, topics: &Topics, partitions: u32) -> Result<(), TestError> {
        for topic in topics.sources.iter().chain(&topics.outputs) {
            if self.partitions(topic)?.is_none() {
                self.create_topic(topic, partitions)?;
            }
        }
        self.create_changelogs(&topics.changelogs)
    }

    /// Creates the changelog topics of `manager`'s stores, each with its
    /// source topic's partitions (the sources must exist).
    pub fn create_changelog_topics(&self, manager: &StateStoreManager) -> Result<(), TestError> {
        self.create_changelogs(&manager.changelog_topics())
    }

    fn create_changelogs(&self, changelogs: &[(String, String)]) -> Result<(), TestError> {
        for (source, changelog) in changelogs {
            let partitions = self.partitions(source)?.ok_or_else(|| TestError::UnknownTopic {
                topic: source.clone(),
                problem: "a store's stream must exist on the cluster before its changelog is created",
            })?;
            self.create_topic(changelog, partitions)?;
        }
        Ok(())
    }

    /// Waits until the cluster's metadata shows `topic` with `partitions`.
    fn await_topic(&self, topic: &str, partitions: u32) -> Result<(), TestError> {
        let started = std::time::Instant::now();
        while self.partitions(topic)? != Some(partitions) {
            if started.elapsed() > METADATA_TIMEOUT {
                return Err(TestError::Timeout {
                    what: format!("topic {topic} to appear with {partitions} partitions"),
                    waited: started.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// The client that owns the mock cluster; it produces the test driver's
    /// input.
    pub(crate) fn owner(&self) -> &Arc<BaseProducer> {
        &self.owner
    }
}

/// Sets how long a new group's first rebalance waits for more members.
fn set_initial_rebalance_delay(owner: &BaseProducer, delay_ms: i32) {
    let client = owner.client().native_ptr();
    // SAFETY: `client` is a live librdkafka handle (`owner` is borrowed for
    // this call) created with `test.mock.num.brokers`, so it owns a mock
    // cluster for its whole life; the setter only takes the cluster's lock
    // and writes one integer. A null cluster is checked for.
    unsafe {
        let mock = state_changelog::rdkafka::bindings::rd_kafka_handle_mock_cluster(client);
        if !mock.is_null() {
            state_changelog::rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(mock, delay_ms);
        }
    }
}
