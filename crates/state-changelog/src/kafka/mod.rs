//! Kafka client plumbing: every librdkafka client this crate creates is
//! configured, created and diagnosed here.
//!
//! * [`settings`] — [`KafkaSettings`]: client properties from the command
//!   line, properties files or code, secrets redacted.
//! * [`client`] — [`KafkaClientContext`]: librdkafka's log to `tracing`,
//!   broker failures named in errors.
//! * [`consumer`] — [`ConsumerSettings`]: the one consumer-settings
//!   builder, used for every consumer of the workspace.
//! * [`producer`] — [`DeliveryTracker`] and the defaults of every producer.
//! * [`delivered`] — the per-partition cells delivery reports raise.
//! * [`admin`] — changelog topic creation and inspection.
//! * [`mock`] — recognising librdkafka's mock cluster, and the topic
//!   creators test clusters register.
//! * [`block_on`] — the minimal executor for the admin client's futures.

pub(crate) mod admin;
pub(crate) mod block_on;
pub(crate) mod client;
pub(crate) mod consumer;
pub(crate) mod delivered;
pub(crate) mod mock;
pub(crate) mod producer;
pub(crate) mod settings;

pub use admin::{create_topic, describe_topic_config, ensure_changelog_topic, topic_partitions, ChangelogTopicConfig};
pub use client::KafkaClientContext;
pub use consumer::{ConsumerSettings, OffsetReset};
pub use mock::{register_mock_cluster, MockClusterRegistration, MockTopicCreator};
pub use producer::{DeliveryTracker, KafkaProducer};
pub use settings::{is_secret_key, KafkaSettings, REDACTED};
