//! # state-changelog
//!
//! Changelogs for store partitions: every committed change is also a record
//! in a compacted Kafka topic, and recovery replays it.
//!
//! This crate depends on `state-core` only, so any backend recovers.
//!
//! * [`changelog_topic_name`] — `changelog__<group>--<stream>--<store>`.
//! * [`ChangelogProducer`] — one producer for all partitions, delivery
//!   tracked per changelog partition; [`SentBytes`] totals the bytes a
//!   store partition's sinks handed it; [`OutputTopic`] sends the
//!   application's output records through a topic handle.
//! * [`ensure_changelog_topic`] — compacted topics with the source's
//!   partition count.
//! * The restore engine (`src/restore/`): one changelog reader, one
//!   fetch-and-apply loop, for
//!   * [`Restorer`] — restores on a thread of their own, beside the
//!     application's poll loop, and standby replicas that tail changelogs
//!     of partitions the instance does not own;
//!   * [`RecoveryManager`] — the same engine on the caller's thread (tools,
//!     tests): reads changelog partitions to their high watermark
//!     (read-committed) and applies them through any backend;
//!   * [`ChangelogApplier`] — the apply step: validates records, skips
//!     those of uncommitted checkpoints, applies batches atomically with
//!     their offset.
//! * Kafka client plumbing (`src/kafka/`):
//!   * [`KafkaSettings`] — librdkafka properties from `--brokers`, `-X
//!     key=value` and `--kafka-config FILE` (TLS, SASL, anything librdkafka
//!     takes), applied to an rdkafka `ClientConfig`; secrets never shown;
//!   * [`ConsumerSettings`] — the consumer properties of every consumer
//!     that reads state or its source (group, no auto-commit,
//!     read-committed, offset reset, fetch backoff), written once;
//!   * [`KafkaClientContext`] — the context of every client created here:
//!     librdkafka's log goes to `tracing`, and errors name the broker and
//!     the cause of a failed connection (TLS, authentication).

#![warn(missing_docs)]

mod error;
mod kafka;
pub mod metrics;
mod output;
mod producer;
mod restore;
mod sent_bytes;
mod sink;
mod topic;
mod topic_handle;

pub use error::{BrokerFailure, ChangelogError, FailureKind, Result, SettingsError};
pub use kafka::{
    create_topic, describe_topic_config, ensure_changelog_topic, is_secret_key, register_mock_cluster,
    topic_partitions, ChangelogTopicConfig, ConsumerSettings, DeliveryTracker, KafkaClientContext, KafkaProducer,
    KafkaSettings, MockClusterRegistration, MockTopicCreator, OffsetReset, REDACTED,
};
pub use output::{OutputRecord, OutputTopic};
pub use producer::ChangelogProducer;
pub use restore::{
    ApplierConfig, ApplyStats, ChangelogApplier, IncomingRecord, RecoveredPartition, RecoveryConfig, RecoveryManager,
    RecoveryPartition, RecoveryProgress, RestoreEvent, RestoreRequest, Restorer, StandbyRequest, StandbyStatus,
};
pub use sent_bytes::SentBytes;
pub use topic::changelog_topic_name;

/// The rdkafka version this crate is built against, re-exported so users
/// configure clients with the same types.
pub use rdkafka;
