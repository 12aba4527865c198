//! [`StateContext`]: an rdkafka consumer context that keeps the manager in
//! step with the group's rebalances.

use std::sync::Arc;

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};

use crate::StateStoreManager;

/// Use as the context of the application's consumer. On assignment (eager
/// or cooperative) it opens and recovers the store partitions before `poll`
/// returns any record of them; before revocation it commits the current
/// checkpoint (so processed work is not lost) and closes the partitions.
/// Errors are kept for [`StateStoreManager::take_error`].
pub struct StateContext {
    manager: Arc<Mutex<StateStoreManager>>,
}

impl StateContext {
    /// A context driving `manager`.
    pub fn new(manager: Arc<Mutex<StateStoreManager>>) -> Self {
        StateContext { manager }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, u32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition().max(0) as u32))
        .collect()
}

impl ClientContext for StateContext {}

impl ConsumerContext for StateContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut m = self.manager.lock();
            if let Err(e) = m.commit(consumer) {
                m.set_error(e);
            }
            if let Err(e) = m.on_revoke(&partitions(tpl)) {
                m.set_error(e);
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let mut m = self.manager.lock();
            if let Err(e) = m.on_assign_from(consumer, &partitions(tpl)) {
                m.set_error(e);
            }
        }
    }
}
