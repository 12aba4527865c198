//! quixstreams 3.28.1's window types (`dataframe/windows/*.py`) written on
//! our windowed transaction primitives, making the same transaction calls in
//! the same order: tumbling and hopping ([`FixedWindow`]), [`SlidingWindow`],
//! [`CountWindow`] and [`SessionWindow`]. They are small, unoptimised and
//! exist to prove the primitives carry every window type (the conformance
//! kit checks each against a naive model on every backend, and
//! `state-rocksdb`'s quixstreams tests check sessions and sliding windows
//! byte for byte against quixstreams itself).
//!
//! Values are JSON values; aggregations are quixstreams' `Count()` and
//! `Sum()`, and `Collect()`; results are the dictionaries quixstreams emits.

mod aggregations;
mod count;
mod fixed;
mod kind;
mod session;
mod sliding;

pub use aggregations::{Aggregations, Aggregator};
pub use count::CountWindow;
pub use fixed::FixedWindow;
pub use kind::{Closing, Message, MessageKey, Processed, WindowKind};
pub use session::SessionWindow;
pub use sliding::SlidingWindow;
