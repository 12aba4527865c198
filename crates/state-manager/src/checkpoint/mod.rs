//! Checkpoints: the source offsets of the current processing interval, the
//! producer and its Kafka transaction, and the order in which a checkpoint
//! commits the open transactions under each guarantee.
//!
//! * [`Checkpointer`] — commits, aborts, and reports each stage.
//! * `group_commit` — offset commits through the consumer's group, waiting
//!   out a cooperative rebalance.
//! * `offsets` — the first and last source offsets processed per partition.
//! * `producer` — the changelog (and output) producer and, under
//!   exactly-once, its transaction.
//! * `rewinds` — partitions moved back after a refused mirrored offset
//!   commit, paused until the move is done.
//! * `in_flight` — a pipelined checkpoint whose local write has not landed
//!   (at-least-once: nor its delivery and offset commit).
//! * `staged` — store partitions that set a pipelined checkpoint's local
//!   write aside and read through the one in flight.
//! * `parallel` — a checkpoint's local flushes run side by side.
//! * `writer` — a pipelined exactly-once checkpoint's local write, behind
//!   the poll loop.
//! * `unflushed` — the source partitions of a checkpoint committed to
//!   Kafka but not written locally (a full disk), for their reload.

mod checkpointer;
mod group_commit;
mod in_flight;
mod offsets;
mod parallel;
mod producer;
mod rewinds;
mod staged;
mod unflushed;
mod writer;

pub(crate) use checkpointer::{Checkpointer, CommitCaller};
