//! For async applications on rdkafka's `StreamConsumer` (feature `tokio`):
//! every call that blocks — producer flush, transaction commit, local
//! flush, opening partitions, the restorer's bookkeeping — runs on tokio's
//! blocking pool, never on an executor thread.
//!
//! * [`AsyncStateManager`] wraps the shared manager: `maintain` and
//!   `commit` go through `spawn_blocking`; [`AsyncStateManager::with`]
//!   runs short per-record work (reads and writes of the checkpoint's
//!   transactions, which touch memory and the backend's caches) inline.
//! * [`crate::StateContext`]'s rebalance callbacks run inside the consumer's
//!   poll, which `StreamConsumer::recv` drives on an executor thread: when
//!   called on a multi-thread runtime they use `block_in_place`, which
//!   hands the worker's other tasks to another thread while the callback
//!   commits or opens partitions. A current-thread runtime cannot do that:
//!   use a multi-thread one.

use std::sync::Arc;

use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};

use crate::error::{ManagerError, Result};
use crate::{Mutex, StateContext, StateStoreManager};

/// The shared manager, for async code. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AsyncStateManager {
    inner: Arc<Mutex<StateStoreManager>>,
}

/// The result of the blocking task that ran `operation`.
fn joined<T>(operation: &'static str, r: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    r.unwrap_or_else(|source| Err(ManagerError::BlockingTask { operation, source }))
}

impl AsyncStateManager {
    /// Wraps the manager shared with the consumer's [`crate::StateContext`].
    pub fn new(manager: Arc<Mutex<StateStoreManager>>) -> Self {
        AsyncStateManager { inner: manager }
    }

    /// The shared manager.
    pub fn shared(&self) -> &Arc<Mutex<StateStoreManager>> {
        &self.inner
    }

    /// Runs `f` on the manager inline: for short per-record work (the
    /// checkpoint's transactions, `processed`). Never call `commit` or
    /// `maintain` through it from async code; use the methods below.
    pub fn with<R>(&self, f: impl FnOnce(&mut StateStoreManager) -> R) -> R {
        f(&mut self.inner.lock())
    }

    /// [`StateStoreManager::maintain`] on the blocking pool.
    pub async fn maintain<C, K>(&self, consumer: Arc<K>) -> Result<()>
    where
        C: ConsumerContext + 'static,
        K: Consumer<C> + Send + Sync + 'static,
    {
        let inner = self.inner.clone();
        joined(
            "maintain",
            tokio::task::spawn_blocking(move || inner.lock().maintain(consumer.as_ref())).await,
        )
    }

    /// [`StateStoreManager::commit`] on the blocking pool.
    pub async fn commit<C, K>(&self, consumer: Arc<K>) -> Result<()>
    where
        C: ConsumerContext + 'static,
        K: Consumer<C> + Send + Sync + 'static,
    {
        let inner = self.inner.clone();
        joined(
            "commit",
            tokio::task::spawn_blocking(move || inner.lock().commit(consumer.as_ref())).await,
        )
    }
}

impl AsyncStateManager {
    /// [`StateStoreManager::close`] on the blocking pool: commits the
    /// current checkpoint, writes the write-behind caches, closes
    /// `consumer` (its partitions are revoked and it leaves the group at
    /// once) and releases everything else.
    ///
    /// `consumer` must be the last reference to the consumer (stop every
    /// task that holds a clone first): the group is left when it is
    /// dropped. Otherwise nothing is done and the error is
    /// [`ManagerError::ConsumerShared`].
    pub async fn close<R>(&self, consumer: Arc<StreamConsumer<StateContext, R>>) -> Result<()>
    where
        R: Send + Sync + 'static,
        StreamConsumer<StateContext, R>: Consumer<StateContext> + Send + 'static,
    {
        let consumer = Arc::try_unwrap(consumer).map_err(|shared| ManagerError::ConsumerShared {
            references: Arc::strong_count(&shared),
        })?;
        let inner = self.inner.clone();
        joined(
            "close",
            // A StreamConsumer's events are served by its stream, not here:
            // its close revokes the partitions.
            tokio::task::spawn_blocking(move || crate::shutdown::close_with(&inner, consumer, |_| {})).await,
        )
    }
}
