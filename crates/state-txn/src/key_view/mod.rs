//! The state of one message key: views over a transaction that fix the
//! message key (quixstreams' `prefix`), so every method takes only what
//! differs per call (a state key, window bounds, a timestamp) and the two
//! keys cannot be swapped.
//!
//! Each view wraps `&mut` of its transaction (from `key`, every method) or
//! `&` (from `key_ref`, the reads), and forwards to the transaction's
//! quixstreams-order methods: no copy, no cost.
//!
//! One view per transaction kind: [`KeyView`] (key-value),
//! [`WindowedKeyView`], [`TimestampedKeyView`].

mod key_value;
mod timestamped;
mod windowed;

pub use key_value::KeyView;
pub use timestamped::TimestampedKeyView;
pub use windowed::WindowedKeyView;
