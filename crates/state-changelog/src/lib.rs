//! # state-changelog
//!
//! Changelogs for store partitions: every committed change is also a record
//! in a compacted Kafka topic, and recovery replays it.
//!
//! This crate depends on `state-core` only, so any backend recovers.
//!
//! * [`changelog_topic_name`] — `changelog__<group>--<stream>--<store>`.
//! * [`ChangelogApplier`] — the recovery core: validates records, skips
//!   those of uncommitted checkpoints, applies batches atomically with their
//!   offset.
//! * [`ChangelogProducer`] — one producer for all partitions, delivery
//!   tracked per changelog partition.
//! * [`ensure_changelog_topic`] — compacted topics with the source's
//!   partition count.
//! * [`RecoveryManager`] — reads changelog partitions to their high
//!   watermark (read-committed) and applies them through any backend, on
//!   the caller's thread (tools, tests).
//! * [`Restorer`] — the same on a thread of its own, beside the
//!   application's poll loop, plus standby replicas that tail changelogs of
//!   partitions the instance does not own.
//! * [`KafkaSettings`] — librdkafka properties from `--brokers`, `-X
//!   key=value` and `--kafka-config FILE` (TLS, SASL, anything librdkafka
//!   takes), applied to an rdkafka `ClientConfig`; secrets never shown.
//! * [`KafkaClientContext`] — the context of every client created here:
//!   librdkafka's log goes to `tracing`, and errors name the broker and
//!   the cause of a failed connection (TLS, authentication).

#![warn(missing_docs)]

mod error;
mod kafka;
pub mod metrics;
mod producer;
mod restore;
mod topic;

pub use error::{ChangelogError, Result};
pub use kafka::{
    create_topic, describe_topic_config, ensure_changelog_topic, is_secret_key, topic_partitions, BrokerFailure,
    ChangelogTopicConfig, ConsumerSettings, DeliveryTracker, FailureKind, KafkaClientContext, KafkaProducer,
    KafkaSettings, SettingsError, REDACTED,
};
pub use producer::ChangelogProducer;
pub use restore::{
    ApplierConfig, ApplyStats, ChangelogApplier, ChangelogPartition, IncomingRecord, RecoveredPartition,
    RecoveryConfig, RecoveryManager, RecoveryPartition, RecoveryProgress, RestoreEvent, RestoreRequest, Restorer,
    StandbyRequest, StandbyStatus,
};
pub use topic::changelog_topic_name;

/// The rdkafka version this crate is built against, re-exported so users
/// configure clients with the same types.
pub use rdkafka;
