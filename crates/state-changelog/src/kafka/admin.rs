//! Changelog topic creation and validation.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::error::{ChangelogError, Result};
use crate::kafka::block_on::block_on;
use crate::kafka::client::KafkaClientContext;
use crate::kafka::consumer::serve_events;
use crate::kafka::mock::{creator_for, is_mock_cluster};

fn admin_client(client: &ClientConfig) -> Result<AdminClient<KafkaClientContext>> {
    client
        .create_with_context(KafkaClientContext::new(client))
        .map_err(|source| ChangelogError::from_kafka("creating an admin client", source, Some(client), None))
}

/// How a changelog topic is created.
#[derive(Clone, Debug)]
pub struct ChangelogTopicConfig {
    /// Replication factor (`-1`: the broker's default).
    pub replication_factor: i32,
    /// Extra topic configs besides `cleanup.policy=compact`.
    pub extra: Vec<(String, String)>,
    /// Timeout for metadata and admin calls.
    pub timeout: Duration,
}

impl Default for ChangelogTopicConfig {
    fn default() -> Self {
        ChangelogTopicConfig {
            replication_factor: -1,
            extra: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Number of partitions of `topic`, or `None` if it does not exist.
pub fn topic_partitions(client: &ClientConfig, topic: &str, timeout: Duration) -> Result<Option<usize>> {
    let consumer: BaseConsumer<KafkaClientContext> = client
        .create_with_context(KafkaClientContext::new(client))
        .map_err(|source| ChangelogError::from_kafka("creating a metadata client", source, Some(client), None))?;
    let md = consumer.fetch_metadata(Some(topic), timeout).map_err(|source| {
        serve_events(&consumer);
        ChangelogError::from_kafka(
            "fetching topic metadata",
            source,
            Some(client),
            Some(consumer.context()),
        )
    })?;
    Ok(md.topics().iter().find(|t| t.name() == topic).and_then(|t| {
        if t.error().is_some() || t.partitions().is_empty() {
            None
        } else {
            Some(t.partitions().len())
        }
    }))
}

/// Makes sure changelog topic `changelog` exists, compacted, with as many
/// partitions as `source` has. Creates it if missing; an existing topic
/// with another partition count is [`ChangelogError::PartitionCountMismatch`].
pub fn ensure_changelog_topic(
    client: &ClientConfig,
    source: &str,
    changelog: &str,
    config: &ChangelogTopicConfig,
) -> Result<usize> {
    let expected = topic_partitions(client, source, config.timeout)?.ok_or_else(|| ChangelogError::Kafka {
        operation: "looking up the source topic",
        source: rdkafka::error::KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition),
    })?;
    if let Some(actual) = topic_partitions(client, changelog, config.timeout)? {
        if actual != expected {
            return Err(ChangelogError::PartitionCountMismatch {
                topic: changelog.to_owned(),
                expected,
                actual,
            });
        }
        return Ok(actual);
    }
    let mut configs = vec![("cleanup.policy", "compact")];
    configs.extend(config.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if create_topic(
        client,
        changelog,
        expected,
        config.replication_factor,
        &configs,
        config.timeout,
    )? {
        tracing::info!(topic = changelog, partitions = expected, "created changelog topic");
    }
    Ok(expected)
}

/// Creates `topic` with `partitions` partitions and the given topic configs
/// through the admin API. Returns `false` if it already existed (its
/// settings are not checked here).
///
/// librdkafka's in-process mock cluster does not create topics through
/// the admin API: on one, the topic is created by the creator a test
/// cluster registered ([`crate::register_mock_cluster`]; topic configs
/// do not apply there), or the call fails at once with
/// [`ChangelogError::MockClusterTopic`].
pub fn create_topic(
    client: &ClientConfig,
    topic: &str,
    partitions: usize,
    replication_factor: i32,
    configs: &[(&str, &str)],
    timeout: Duration,
) -> Result<bool> {
    let admin = admin_client(client)?;
    if is_mock_cluster(admin.inner(), timeout) {
        return create_on_mock(client, topic, partitions, timeout);
    }
    let mut new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(replication_factor));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(timeout));
    let results = block_on(admin.create_topics([&new], &opts)).map_err(|source| {
        ChangelogError::from_kafka("creating a topic", source, Some(client), Some(admin.inner().context()))
    })?;
    let mut created = false;
    for r in results {
        match r {
            Ok(_) => created = true,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                tracing::error!(topic = name, ?code, "topic creation failed");
                return Err(ChangelogError::Kafka {
                    operation: "creating a topic",
                    source: rdkafka::error::KafkaError::AdminOp(code),
                });
            }
        }
    }
    Ok(created)
}

/// Creates `topic` on the mock cluster `client` names, through the creator
/// its test cluster registered.
fn create_on_mock(client: &ClientConfig, topic: &str, partitions: usize, timeout: Duration) -> Result<bool> {
    let bootstrap = client.get("bootstrap.servers").unwrap_or_default();
    let Some(create) = creator_for(bootstrap) else {
        return Err(ChangelogError::MockClusterTopic {
            topic: topic.to_owned(),
            partitions,
        });
    };
    if topic_partitions(client, topic, timeout)?.is_some() {
        return Ok(false);
    }
    create(topic, partitions).map_err(|source| ChangelogError::Kafka {
        operation: "creating a topic on the mock cluster",
        source,
    })?;
    Ok(true)
}

/// The configuration entries of `topic` as the broker reports them.
pub fn describe_topic_config(
    client: &ClientConfig,
    topic: &str,
    timeout: Duration,
) -> Result<std::collections::BTreeMap<String, String>> {
    use rdkafka::admin::{AdminOptions, ResourceSpecifier};
    let admin = admin_client(client)?;
    let opts = AdminOptions::new().request_timeout(Some(timeout));
    let results = block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &opts)).map_err(|source| {
        ChangelogError::from_kafka(
            "describing topic configs",
            source,
            Some(client),
            Some(admin.inner().context()),
        )
    })?;
    let mut out = std::collections::BTreeMap::new();
    for r in results {
        let resource = r.map_err(|code| ChangelogError::Kafka {
            operation: "describing topic configs",
            source: rdkafka::error::KafkaError::AdminOp(code),
        })?;
        for entry in resource.entries {
            if let Some(v) = entry.value {
                out.insert(entry.name, v);
            }
        }
    }
    Ok(out)
}
