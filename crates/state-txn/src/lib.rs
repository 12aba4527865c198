//! # state-txn
//!
//! Backend-agnostic transactions over any [`state_core::StorePartition`]:
//!
//! * [`PartitionTransaction`] — read-your-writes cache per column family,
//!   delete markers, the `Started -> Prepared -> Complete | Failed` status
//!   machine, `prepare` emitting one changelog record per change, `flush`
//!   writing all changes and the changelog offset in one atomic batch.
//!
//! A backend that passes the `state-core` conformance kit gets all of this
//! without writing any transaction code.

#![warn(missing_docs)]

mod cache;
mod error;
mod transaction;

pub use error::{Result, TxnError};
pub use transaction::{PartitionTransaction, TxnStatus};
