//! Moving a rebalance callback's work off a tokio executor thread (feature
//! `tokio`): [`crate::StateContext`] calls [`off_executor`], which needs
//! nothing else of the crate, so the context and the async front
//! ([`crate::AsyncStateManager`]) do not import each other.

/// Runs `f`, moving it off the executor first when called on a tokio
/// multi-thread runtime's worker (the rebalance callbacks).
pub(crate) fn off_executor<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => {
            tracing::warn!(
                "a rebalance callback ran on a current-thread tokio runtime: it blocks the executor; \
                 use a multi-thread runtime"
            );
            f()
        }
        Err(_) => f(),
    }
}
