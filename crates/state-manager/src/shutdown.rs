//! A clean shutdown: [`StateStoreManager::close`] finishes the current
//! checkpoint, leaves the group and closes every partition, so a member
//! that leaves hands its partitions over without anything being
//! processed twice.

use std::time::{Duration, Instant};

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
    /// 3. unsubscribes and polls until the group revoked its partitions
    ///    (its [`StateContext`] closes their store partitions; at most
    ///    10 s), then closes `consumer`: the member leaves the group at
    ///    once, so the others take over without waiting for
    ///    `session.timeout.ms`. Revoking before the close works around a
    ///    librdkafka hang of revocations served during a close;
    /// 4. stops standby replicas and the restorer thread, cancels a
    ///    running snapshot download (it stops between two chunks, deletes
    ///    what it wrote and installs nothing: the partition restores again
    ///    at its next start), and releases any partition still open.
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
        close_with(manager, consumer, leave_group)
    }

    /// Lets go of everything still open once the consumer is closed:
    /// assigned partitions (a consumer outside a group gets no revocation
    /// callback), standby replicas, the restorer thread, the snapshot
    /// download thread and any open Kafka transaction.
    fn release_all(&mut self) -> Result<()> {
        let revoked = self.revoke_all();
        let standbys = self.stop_standbys();
        self.stop_restorer();
        self.stop_bootstraps();
        let aborted = self.abort();
        revoked.and(standbys).and(aborted)
    }
}

/// How long [`leave_group`] serves the revocation before it lets the
/// consumer's close do it.
const LEAVE_WAIT: Duration = Duration::from_secs(10);

/// [`StateStoreManager::close`] for any consumer whose context drives
/// `manager`: `leave` (if it can) has the group revoke the partitions
/// while the consumer is still open; dropping `consumer` then closes it
/// (rdkafka serves any revocation left and leaves the group on drop).
pub(crate) fn close_with<K: Consumer<StateContext>>(
    manager: &Mutex<StateStoreManager>,
    consumer: K,
    leave: impl FnOnce(&K),
) -> Result<()> {
    let committed = {
        let mut m = manager.lock();
        m.commit(&consumer).and_then(|()| m.finish_checkpoint(&consumer))
    };
    let flushed = manager.lock().flush_caches();
    // The revocation callback locks the manager: it must not be held here.
    leave(&consumer);
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

/// Leaves the consumer group before `consumer` is closed: unsubscribes
/// and polls until the revocation callback gave every partition back (or
/// [`LEAVE_WAIT`] passed). A revocation served during the close itself
/// can hang forever in librdkafka (`rd_kafka_rebalance_protocol` called
/// from a rebalance event after close began gets no answer:
/// confluentinc/librdkafka#4041, seen here as an `App::close` that never
/// returned), so the close should find nothing left to revoke. Records
/// the polls return are dropped unprocessed: the checkpoint was committed
/// before, so whoever takes their partition over processes them. A
/// consumer with no subscription (partitions assigned by hand) is left
/// as it is.
fn leave_group(consumer: &BaseConsumer<StateContext>) {
    let subscribed = consumer.subscription().map(|s| s.count() > 0).unwrap_or(false);
    if !subscribed {
        return;
    }
    consumer.unsubscribe();
    let deadline = Instant::now() + LEAVE_WAIT;
    while Instant::now() < deadline {
        match consumer.assignment() {
            Ok(assigned) if assigned.count() > 0 => {}
            _ => return,
        }
        // A record or an error here changes nothing: see above.
        let _ = consumer.poll(Duration::from_millis(50));
    }
    tracing::warn!(
        wait_s = LEAVE_WAIT.as_secs(),
        "closing: the group did not revoke this member's partitions in time; the consumer's close revokes them"
    );
}
