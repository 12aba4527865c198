//! The processing abstraction: write the per-record logic once, as a
//! [`Processor`], and let [`App`] run the poll loop — in production, and
//! under `kafka_state::testing`'s test driver in tests.
//!
//! * [`Topology`] — the setup function declares stores, sources and
//!   outputs, and returns the processor holding the store handles.
//! * [`Processor`] / [`processor_fn`] — called once per [`Record`] with a
//!   [`Context`]: the record partition's store transactions and the output
//!   producer, inside the current checkpoint.
//! * [`App`] (`runner`) — poll, process, maintain, checkpoint; [`Shutdown`]
//!   and a clean close.
//! * [`AppError`] — why an app stopped.

mod context;
mod error;
mod processor;
mod record;
mod runner;
mod topology;

pub use context::Context;
pub use error::AppError;
pub use processor::{processor_fn, FnProcessor, ProcessError, Processor};
pub use record::Record;
pub use runner::{App, AppBuilder, Polled, Shutdown};
pub use topology::{Topics, Topology};
