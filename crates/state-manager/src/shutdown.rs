//! A clean shutdown: [`StateStoreManager::close`] finishes the current
//! checkpoint, leaves the group and closes every partition, so a member
//! that leaves hands its partitions over without anything being
//! processed twice.

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::context::StateContext;
use crate::error::Result;
use crate::manager::StateStoreManager;
use crate::Mutex;

impl StateStoreManager {
    /// Shuts this instance down cleanly when the poll loop ends, so its
    /// partitions move to the group's other members without reprocessing:
    ///
    /// 1. commits the current checkpoint (a member taking a partition over
    ///    starts after its records);
    /// 2. writes every write-behind cache to its backend (a restart here
    ///    replays nothing already committed);
    /// 3. closes `consumer`: the group revokes its partitions (its
    ///    [`StateContext`] closes their store partitions) and the member
    ///    leaves the group at once, so the others take over without waiting
    ///    for `session.timeout.ms`;
    /// 4. stops standby replicas and the restorer thread, and releases any
    ///    partition still open.
    ///
    /// `manager` is the shared manager the consumer's [`StateContext`]
    /// drives; it must not be locked by the caller. Every step runs even
    /// if an earlier one failed; the first error is returned (a failed
    /// commit was aborted: its records are processed again by whoever takes
    /// the partitions over). Afterwards the manager owns no partition.
    ///
    /// With feature `tokio`, `AsyncStateManager::close` does the same for
    /// a `StreamConsumer` on the blocking pool.
    ///
    /// A process that dies without `close` loses its current checkpoint
    /// (processed again elsewhere, counts stay exact under exactly-once);
    /// the group notices after `session.timeout.ms`, or after
    /// `max.poll.interval.ms` if the process hangs without polling.
    /// Dropping the consumer without `close` also leaves the group and
    /// commits in the revocation callback, but an error there is only
    /// logged.
    pub fn close(manager: &Mutex<StateStoreManager>, consumer: BaseConsumer<StateContext>) -> Result<()> {
        close_with(manager, consumer)
    }

    /// Lets go of everything still open once the consumer is closed:
    /// assigned partitions (a consumer outside a group gets no revocation
    /// callback), standby replicas, the restorer thread and any open Kafka
    /// transaction.
    fn release_all(&mut self) -> Result<()> {
        let revoked = self.revoke_all();
        let standbys = self.stop_standbys();
        self.stop_restorer();
        let aborted = self.abort();
        revoked.and(standbys).and(aborted)
    }
}

/// [`StateStoreManager::close`] for any consumer whose context drives
/// `manager`: dropping `consumer` closes it (rdkafka serves the
/// revocation callback and leaves the group on drop).
pub(crate) fn close_with<K: Consumer<StateContext>>(manager: &Mutex<StateStoreManager>, consumer: K) -> Result<()> {
    let committed = {
        let mut m = manager.lock();
        m.commit(&consumer).and_then(|()| m.finish_checkpoint(&consumer))
    };
    let flushed = manager.lock().flush_caches();
    // The revocation callback locks the manager: it must not be held here.
    drop(consumer);
    let mut m = manager.lock();
    let revoked = m.take_error().map_or(Ok(()), Err);
    let released = m.release_all();
    for e in [&committed, &flushed, &revoked, &released]
        .into_iter()
        .filter_map(|r| r.as_ref().err())
        .skip(1)
    {
        tracing::warn!(error = %e, "closing the state manager: a further step failed");
    }
    committed.and(flushed).and(revoked).and(released)
}
