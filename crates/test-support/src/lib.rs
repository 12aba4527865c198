//! # test-support
//!
//! What the workspace's tests (and the takeover benchmark) share, in one
//! place instead of included files and copies. Not published.
//!
//! Each part sits behind the feature of the layer it needs, so a crate's
//! tests pull nothing from above it:
//!
//! | feature | module | what |
//! |---|---|---|
//! | — | [`store`] | every key of a partition, for comparisons |
//! | `rocksdb` | `rocksdb` | `RocksHarness`: a `state_core::testkit::Harness` on RocksDB |
//! | `fjall` | `fjall` | `FjallHarness`: the same on fjall |
//! | `kafka` | `kafka` | client settings, the in-process mock cluster, keyed input, topics on real brokers |
//! | `kafka` | `tls` | `TlsBroker`: tansu behind stunnel with a throwaway CA |
//! | `manager` | `counting` | a consumer-group member counting records per key on the state manager |
//! | `manager` | `metrics` | `Counters`: a recorder that keeps what one thread counted |
//!
//! Helpers panic on failures a test cannot go on after (a temporary
//! directory that cannot be made, a fixture process that does not start);
//! the counting member returns errors, so the benchmark can report them.

#![warn(missing_docs)]

pub mod store;

#[cfg(feature = "fjall")]
pub mod fjall;
#[cfg(feature = "rocksdb")]
pub mod rocksdb;

#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kafka")]
pub mod tls;

#[cfg(feature = "manager")]
pub mod counting;
#[cfg(feature = "manager")]
pub mod metrics;
