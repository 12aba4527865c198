//! [`StateContext`]: an rdkafka consumer context that keeps the manager in
//! step with the group's rebalances.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};
use state_core::TopicPartition;

use crate::error::ManagerError;
use crate::StateStoreManager;

/// A rebalance callback taking longer than this is logged as a warning: it
/// holds the consumer's poll (and its heartbeats to the group).
const SLOW_CALLBACK: Duration = Duration::from_secs(1);

/// Use as the context of the application's consumer.
///
/// * Before an assignment is applied it gives each partition without an
///   offset an absolute one: its committed offset, else the watermark the
///   consumer's `auto.offset.reset` names. Left to librdkafka, that offset
///   is looked up after the assignment, and pausing a partition while the
///   lookup is in flight makes librdkafka move it back to the reset offset
///   half a second later, handing out its records twice (see
///   `docs/guarantees.md`).
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

    /// Runs one assignment or revocation callback's work, counted and timed.
    fn timed(&self, what: &'static str, f: impl FnOnce()) {
        self.callbacks.fetch_add(1, Ordering::Relaxed);
        self.measured(what, f);
    }

    /// Runs part of a rebalance callback's work (off the executor under
    /// tokio), timed but not counted as a callback.
    fn measured(&self, what: &'static str, f: impl FnOnce()) {
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
    /// rdkafka's rebalance (pre-rebalance hook, apply the change with the
    /// group's protocol, post-rebalance hook), with one step more: an
    /// assignment gets absolute start offsets before it is applied, so that
    /// the pause of restoring partitions in `post_rebalance` never meets an
    /// offset lookup of librdkafka's in flight (which makes librdkafka move
    /// the partition back later and hand out its records twice; see
    /// `assignment::start_offsets`).
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let assign = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        if assign {
            self.measured("place the assignment", || {
                self.manager.lock().place_assignment(consumer, tpl)
            });
        }
        let rebalance = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(tpl),
            _ => Rebalance::Error(KafkaError::Rebalance(err.into())),
        };
        self.pre_rebalance(consumer, &rebalance);
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        // Anything but an assignment (a revocation, or an error) gives the
        // partitions up, as rdkafka's default does.
        let applied = match (assign, cooperative) {
            (true, true) => consumer.incremental_assign(tpl),
            (true, false) => consumer.assign(tpl),
            (false, true) => consumer.incremental_unassign(tpl),
            (false, false) => consumer.unassign(),
        };
        match applied {
            Ok(()) => {}
            // Partitions the manager takes over but the consumer never
            // fetches: the application must hear of it.
            Err(source) if assign => self.manager.lock().set_error(ManagerError::Kafka {
                operation: "applying an assignment",
                source,
            }),
            // As rdkafka's default, which ignores it: the group takes the
            // partitions back either way (a consumer closing, say).
            Err(error) => tracing::warn!(%error, "giving up revoked partitions failed"),
        }
        self.post_rebalance(consumer, &rebalance);
    }

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
