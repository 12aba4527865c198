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

#![warn(missing_docs)]

mod apply;
mod error;
mod topic;

pub use apply::{ApplierConfig, ApplyStats, ChangelogApplier, IncomingRecord};
pub use error::{ChangelogError, Result};
pub use topic::changelog_topic_name;
