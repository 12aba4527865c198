//! The restore engine: brings store partitions up to the end of their
//! changelogs (restores), keeps replicas of partitions owned elsewhere warm
//! (standbys), and rebuilds partitions on the caller's thread (blocking
//! recovery) — one fetch-and-apply loop for all three, in the spirit of
//! Kafka Streams' `StoreChangelogReader`.
//!
//! * [`task`] — [`task::ChangelogTask`]: one changelog partition and its
//!   states (restoring, standby, held).
//! * [`table`] — the tasks by changelog partition, found per record without
//!   allocating.
//! * [`reader`] — [`reader::ChangelogReader`]: the fetch-and-apply loop
//!   and the tasks' lifecycle.
//! * [`consumer`] — [`consumer::RestoreConsumer`]: the engine's consumer
//!   (assignment, pausing, positions, watermarks, committed offsets);
//!   [`fetched`] takes its queued records many at a time, reading their
//!   headers from the fetched bytes ([`raw_headers`]).
//! * [`apply`] — [`ChangelogApplier`]: validates and stages records, skips
//!   those of uncommitted checkpoints, writes batches with their offset;
//!   [`writer`] writes full batches on a thread of their own.
//! * [`finish`] — [`finish::Finishers`]: restores that reached their end
//!   write their last batch and flush on threads of their own.
//! * [`retry`] — transient failures of watermark requests retried with
//!   backoff.
//! * [`progress`], [`clock`] — progress reports; the clock read every few
//!   hundred records.
//! * [`worker`] — [`Restorer`]: the engine on a thread beside the poll loop.
//! * [`blocking`] — [`RecoveryManager`]: the engine on the caller's thread.
//! * [`config`], [`requests`], [`events`] — tuning, what the restorer is
//!   asked and what it reports.

pub(crate) mod apply;
pub(crate) mod blocking;
pub(crate) mod clock;
pub(crate) mod config;
pub(crate) mod consumer;
pub(crate) mod events;
pub(crate) mod fetched;
pub(crate) mod finish;
pub(crate) mod progress;
pub(crate) mod raw_headers;
pub(crate) mod reader;
pub(crate) mod requests;
pub(crate) mod retry;
pub(crate) mod table;
pub(crate) mod task;
pub(crate) mod worker;
pub(crate) mod writer;

pub use apply::{ApplierConfig, ApplyStats, ChangelogApplier, IncomingRecord};
pub use blocking::{RecoveredPartition, RecoveryManager, RecoveryPartition};
pub use config::RecoveryConfig;
pub use events::{RestoreEvent, StandbyStatus};
pub use progress::RecoveryProgress;
pub use requests::{RestoreRequest, StandbyRequest};
pub use worker::Restorer;
