//! # state-windows
//!
//! Window operators on windowed state: every window kind of quixstreams
//! 3.28.1, typed, on any backend, byte-compatible with quixstreams under
//! the JSON codec.
//!
//! A definition ([`Tumbling`], [`Hopping`], [`Sliding`], [`Session`],
//! [`TumblingCount`], [`HoppingCount`], [`SlidingCount`]) takes named
//! options (grace, [`Closing`], [`Emit`], a store-name prefix) and ends
//! with what the window computes: one [`Aggregator`] (`aggregate`),
//! several named ones and collectors (`agg`), or the records themselves
//! (`collect`). The [`WindowOperator`] it returns is called once per
//! record with the record's partition transaction, and returns the windows
//! that closed (or were updated):
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use state_core::{Codec, MemoryPartition};
//! use state_txn::WindowedTransaction;
//! use state_windows::{Count, Session, Sum};
//!
//! struct Order {
//!     cents: i64,
//! }
//!
//! // Orders and revenue per customer session (30 minutes of inactivity).
//! let sessions = Session::new(Duration::from_secs(30 * 60))
//!     .agg((("orders", Count::new()), ("revenue", Sum::of("cents", |o: &Order| o.cents))))?;
//!
//! let mut txn = WindowedTransaction::new(Arc::new(MemoryPartition::new()), Codec::Json, None);
//! let minute = 60_000;
//! for (t, cents) in [(0, 1_000), (5 * minute, 250), (12 * minute, 99)] {
//!     sessions.process(&mut txn, b"alice", t, &Order { cents })?;
//! }
//! // Two hours later the session is long closed: it is emitted once.
//! let closed = sessions.process(&mut txn, b"alice", 120 * minute, &Order { cents: 5 })?;
//! assert_eq!(closed.len(), 1);
//! assert_eq!((closed[0].start, closed[0].end), (0, 12 * minute + 1));
//! assert_eq!(closed[0].value, (3, 1_349));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Window state lives in the windowed store the transaction belongs to
//! (a manager's `StoreSpec::windowed`), so it gets the store's changelog,
//! recovery, standbys and exactly-once commits; expiry runs in the same
//! transaction as the update. [`WindowOperator::store_name`] gives the
//! store name quixstreams derives, to continue a quixstreams
//! application's window state. `docs/windows.md` is the guide;
//! `docs/formats.md` lists where quixstreams has a bug and we do
//! otherwise.

#![warn(missing_docs)]

pub mod aggregate;
mod define;
mod error;
pub mod kinds;
mod late;
pub mod layout;
pub mod metrics;
mod operator;
mod result;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use aggregate::{
    Aggregator, Collect, Count, Earliest, First, Last, Latest, Max, Mean, Mergeable, Min, Reduce, Sum,
};
pub use define::{Hopping, HoppingCount, Session, Sliding, SlidingCount, Tumbling, TumblingCount};
pub use error::{DefinitionError, Result, WindowError};
pub use kinds::Closing;
pub use late::Late;
pub use layout::Aggregation;
pub use operator::{WindowOperator, MAX_DURATION_MS, MAX_TIMESTAMP_MS};
pub use result::{Emit, WindowResult};

#[cfg(test)]
mod memory_conformance {
    crate::window_conformance_tests!(state_core::testkit::MemoryHarness);
}
