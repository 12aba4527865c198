//! The references the demo's figures are printed next to, measured on the
//! same cluster in the same run: [`bare_pipeline`] for its events/s,
//! [`bare_read`] for its recovery rate.

mod pipeline;
mod read;

pub use pipeline::BareRun;
pub(crate) use pipeline::{bare_pipeline, Stages};
pub(crate) use read::bare_read;
