//! librdkafka's in-process mock cluster: recognising it (it does not
//! create topics through the admin API), and the topic creators test
//! clusters register so [`crate::create_topic`] (and with it
//! [`crate::ensure_changelog_topic`]) works on them.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::error::KafkaError;

/// The start of the cluster id librdkafka's mock cluster reports
/// (`rd_kafka_mock_cluster_new`: `mockCluster<address>`).
const MOCK_CLUSTER_ID_PREFIX: &str = "mockCluster";

/// Creates topic `topic` with `partitions` partitions on a mock cluster.
pub type MockTopicCreator = Arc<dyn Fn(&str, usize) -> Result<(), KafkaError> + Send + Sync>;

/// The registered creators, by bootstrap servers.
static CREATORS: Mutex<Vec<(String, MockTopicCreator)>> = Mutex::new(Vec::new());

/// Lets [`crate::create_topic`] create topics on the mock cluster at
/// `bootstrap` (its `bootstrap.servers`) with `create`, for as long as the
/// returned registration lives. A test cluster (such as
/// `kafka_state::testing::TestCluster`) registers itself, so code that
/// creates its changelog topics through the admin API (the manager's
/// `ensure_changelog_topics`) runs on it unchanged. Other mock clusters
/// make topic creation fail at once with
/// [`crate::ChangelogError::MockClusterTopic`], which says what to do.
pub fn register_mock_cluster(bootstrap: impl Into<String>, create: MockTopicCreator) -> MockClusterRegistration {
    let bootstrap = bootstrap.into();
    CREATORS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((bootstrap.clone(), create));
    MockClusterRegistration { bootstrap }
}

/// Keeps a mock cluster's topic creator registered; dropping it removes
/// the creator.
#[derive(Debug)]
#[must_use = "the creator is unregistered when this is dropped"]
pub struct MockClusterRegistration {
    bootstrap: String,
}

impl Drop for MockClusterRegistration {
    fn drop(&mut self) {
        let mut creators = CREATORS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = creators.iter().rposition(|(b, _)| *b == self.bootstrap) {
            creators.remove(i);
        }
    }
}

/// The creator registered for `bootstrap`, if any.
pub(crate) fn creator_for(bootstrap: &str) -> Option<MockTopicCreator> {
    CREATORS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .rev()
        .find(|(b, _)| b == bootstrap)
        .map(|(_, c)| c.clone())
}

/// True if `client` is connected to librdkafka's mock cluster (by the
/// cluster id it reports; `false` if none arrives within `timeout`).
pub(crate) fn is_mock_cluster<C: ClientContext>(client: &Client<C>, timeout: Duration) -> bool {
    client
        .fetch_cluster_id(timeout)
        .is_some_and(|id| id.starts_with(MOCK_CLUSTER_ID_PREFIX))
}
