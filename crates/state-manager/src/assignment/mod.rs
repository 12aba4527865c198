//! Assignment: opening the store partitions of assigned source partitions,
//! restoring them from their changelogs on the restorer thread while the
//! poll loop goes on, resuming them once restored, keeping standby replicas,
//! and closing partitions on revocation.
//!
//! The rebalance callback only does bookkeeping (open partitions, pause
//! their source partitions, hand them to the restorer); restore time never
//! counts against `max.poll.interval.ms`.
//!
//! * [`Assignments`] — the role of every assigned source partition, taking
//!   over and letting go, resuming restored partitions.
//! * `standby` — standby replicas ([`StandbyReport`]).
//! * `restorer` — the restorer thread, started on first use.
//! * `consumer` — the consumer calls: committed offsets, pause, seek, resume.
//! * `lookup` — finding a source partition by name and number without
//!   building its key.
//! * `roles` — the role of every assigned source partition, with a version
//!   that moves on every change (for callers that cache readiness).
//! * `reloads` — partitions paused after a full disk until their state is
//!   reloaded from the changelog.
//! * `start_offsets` — absolute start offsets for an assignment, so that
//!   librdkafka has no offset lookup in flight when the manager pauses.

mod consumer;
mod lookup;
mod partitions;
mod reloads;
mod restorer;
mod roles;
mod standby;
mod start_offsets;
#[cfg(test)]
mod test_topic;

pub(crate) use consumer::wake_fetchers;
pub(crate) use lookup::store_key;
pub(crate) use partitions::Assignments;
pub use standby::StandbyReport;
