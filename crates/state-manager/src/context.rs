//! [`StateContext`]: an rdkafka consumer context that keeps the manager in
//! step with the group's rebalances.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};
use state_core::TopicPartition;

use crate::StateStoreManager;

/// A rebalance callback taking longer than this is logged as a warning: it
/// holds the consumer's poll (and its heartbeats to the group).
const SLOW_CALLBACK: Duration = Duration::from_secs(1);

/// Use as the context of the application's consumer.
///
/// * On assignment (eager or cooperative) it opens the store partitions,
///   pauses their source partitions and hands them to the manager's
///   restorer thread: bookkeeping only, no restore inside the callback.
///   [`StateStoreManager::maintain`] resumes them once restored.
/// * Before revocation it commits the current checkpoint (so processed work
///   is not lost), then closes the partitions (or keeps standbys).
/// * In both, the partitions that stay assigned are kept at the
///   application's position: librdkafka resumes them from a position saved
///   when the rebalance paused them, which can miss the last record handed
///   out, and that record would be processed twice.
///
/// Errors are kept for [`StateStoreManager::maintain`] (or
/// [`StateStoreManager::take_error`]).
pub struct StateContext {
    manager: Arc<Mutex<StateStoreManager>>,
    longest_callback_us: AtomicU64,
    callbacks: AtomicU64,
}

impl StateContext {
    /// A context driving `manager`.
    pub fn new(manager: Arc<Mutex<StateStoreManager>>) -> Self {
        StateContext {
            manager,
            longest_callback_us: AtomicU64::new(0),
            callbacks: AtomicU64::new(0),
        }
    }

    /// The longest time one rebalance callback of this context took (the
    /// time the consumer's poll was held by the manager's bookkeeping).
    pub fn longest_rebalance_callback(&self) -> Duration {
        Duration::from_micros(self.longest_callback_us.load(Ordering::Relaxed))
    }

    /// How many assignment and revocation callbacks this context served.
    pub fn rebalances(&self) -> u64 {
        self.callbacks.load(Ordering::Relaxed)
    }

    fn timed(&self, what: &'static str, f: impl FnOnce()) {
        self.callbacks.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        #[cfg(feature = "tokio")]
        crate::executor::off_executor(f);
        #[cfg(not(feature = "tokio"))]
        f();
        let took = started.elapsed();
        self.longest_callback_us
            .fetch_max(took.as_micros() as u64, Ordering::Relaxed);
        if took >= SLOW_CALLBACK {
            tracing::warn!(?took, what, "slow rebalance callback");
        } else {
            tracing::debug!(?took, what, "rebalance callback");
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

impl ClientContext for StateContext {}

impl ConsumerContext for StateContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.timed("revoke", || {
                let mut m = self.manager.lock();
                if let Err(e) = m.commit_in_rebalance(consumer) {
                    m.set_error(e);
                }
                let revoked = partitions(tpl);
                if let Err(e) = m.on_revoke(&revoked) {
                    m.set_error(e);
                }
                m.hold_positions(consumer, &revoked);
            });
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.timed("assign", || {
                let mut m = self.manager.lock();
                let assigned = partitions(tpl);
                if let Err(e) = m.on_assign(consumer, &assigned) {
                    m.set_error(e);
                }
                m.hold_positions(consumer, &assigned);
            });
        }
    }
}
