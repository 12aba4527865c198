//! # state-txn
//!
//! Backend-agnostic transactions over any [`state_core::StorePartition`]:
//!
//! * [`PartitionTransaction`] — read-your-writes cache per column family,
//!   delete markers, the `Started -> Prepared -> Complete | Failed` status
//!   machine, `prepare` emitting one changelog record per change, `flush`
//!   writing all changes and the changelog offset in one atomic batch;
//!   quixstreams' per-write TTL ([`PartitionTransaction::with_ttl`],
//!   [`SetOptions`], [`GetOptions`], [`TtlOptions`]).
//! * [`WindowedTransaction`] — time windows per key prefix: update, get,
//!   delete, range, expiry that emits each window once, collections.
//! * [`TimestampedTransaction`] — values by event time per prefix: latest
//!   at or before a time, intervals, grace-period retention, duplicates.
//!
//! Every transaction hands out the state of one message key,
//! `txn.key(msg_key)` ([`KeyView`], [`WindowedKeyView`],
//! [`TimestampedKeyView`]): the everyday API, whose methods cannot mix up
//! the message key and the state key. Times are `i64` milliseconds, as
//! Kafka's timestamps, everywhere.
//!
//! A backend that passes the `state-core` conformance kit gets all of this
//! without writing any transaction code.

#![warn(missing_docs)]

mod cache;
mod checkpointed;
mod error;
mod few;
mod key_view;
mod options;
mod status;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
mod timestamped;
mod transaction;
mod ttl;
mod windowed;

pub use checkpointed::StateTransaction;
pub use error::{Result, TxnError};
pub use key_view::{KeyView, TimestampedKeyView, WindowedKeyView};
pub use options::{CollectedValues, ExpireOptions};
/// Per-write TTL settings and state, re-exported so one import path
/// (`state_txn::` or `kafka_state::`) gives everything TTL needs.
pub use state_core::ttl::{SweepTombstones, TtlOptions, TtlState};
pub use status::TxnStatus;
pub use timestamped::{TimestampedConfig, TimestampedTransaction, MIN_ELIGIBLE_TIMESTAMPS_KEY};
pub use transaction::PartitionTransaction;
pub use ttl::{GetOptions, SetOptions};
pub use windowed::{
    ExpiredWindow, Window, WindowCursor, WindowIndex, WindowIndexStats, WindowedTransaction, CHECKPOINT_NEVER,
    DEFAULT_MAX_PREFIXES, GLOBAL_COUNTER_KEY, PREFIX_OVERHEAD,
};

#[cfg(test)]
mod memory_conformance {
    crate::txn_conformance_tests!(state_core::testkit::MemoryHarness);
}

#[cfg(test)]
mod thread_safety {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn shared_pieces_are_send_and_sync_and_transactions_are_send() {
        send_sync::<crate::WindowIndex>();
        send::<crate::WindowedTransaction>();
        send::<crate::PartitionTransaction>();
    }
}
