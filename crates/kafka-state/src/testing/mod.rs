//! Test utilities (feature `testing`): run a processor against an
//! in-process Kafka cluster in a unit test, as Kafka Streams'
//! `TopologyTestDriver` runs a topology.
//!
//! * [`TestCluster`] — librdkafka's mock cluster, in process, creating the
//!   topics of an application (sources, outputs, changelogs) with the
//!   settings the manager needs there.
//! * [`TestDriver`] — one member running your [`Processor`](crate::Processor)
//!   (the same setup function and processor as production's
//!   [`App`](crate::App)): pipe input with [`TestInputTopic`], run until
//!   idle, read output with [`TestOutputTopic`], inspect state, move event
//!   time, restart cleanly or crash, with or without local state.
//! * [`TestError`] — what failed, in words.
//!
//! Nothing here sleeps for a fixed time: every wait polls for its
//! condition and fails after a deadline. Add the feature to your
//! dev-dependencies only:
//!
//! ```toml
//! [dev-dependencies]
//! kafka-state = { version = "0.1", features = ["testing"] }
//! ```

mod cluster;
mod driver;
mod error;
mod input;
mod output;

pub use cluster::TestCluster;
pub use driver::{Restart, TestDriver, TestDriverBuilder, DEFAULT_START_TIME};
pub use error::TestError;
pub use input::{TestInputTopic, TestRecord};
pub use output::{OutputRecord, TestOutputTopic};
