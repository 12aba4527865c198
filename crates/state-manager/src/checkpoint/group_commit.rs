//! Committing source offsets through the consumer's group, waiting out a
//! cooperative rebalance that refuses them for a while.
//!
//! While a group rebalances, the coordinator refuses offset commits
//! (`REBALANCE_IN_PROGRESS`, or `ILLEGAL_GENERATION` once the generation
//! moved on); librdkafka's mock cluster refuses them for most of a
//! session timeout after a member leaves. Under cooperative assignment
//! the member keeps its partitions and librdkafka rejoins on its own
//! background thread, so waiting a little lets the commit through and
//! nothing is processed again. Under eager assignment, or inside a
//! rebalance callback, the rebalance waits for this thread: no waiting
//! there.

use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;

/// The first pause between two attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// How long a commit refused by a rebalance waited before it succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Waited {
    /// Time from the first refusal to the success.
    pub(super) waited: Duration,
    /// Attempts refused.
    pub(super) refused: u32,
}

/// True if `e` is the group refusing a commit because it is rebalancing.
fn refused_by_rebalance(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::RebalanceInProgress | RDKafkaErrorCode::IllegalGeneration)
    )
}

/// Commits `offsets` through `consumer`'s group (synchronously). If the
/// group refuses them because it is rebalancing, the consumer is
/// cooperative and `wait` is given, tries again with backoff for up to
/// `wait`. Returns how long it waited, if it had to.
pub(super) fn commit_offsets<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    offsets: &TopicPartitionList,
    wait: Option<Duration>,
) -> Result<Option<Waited>, KafkaError> {
    let mut refused = 0u32;
    let mut first_refusal = None;
    let mut backoff = FIRST_BACKOFF;
    loop {
        match consumer.commit(offsets, CommitMode::Sync) {
            Ok(()) => {
                return Ok(first_refusal.map(|t: Instant| Waited {
                    waited: t.elapsed(),
                    refused,
                }))
            }
            Err(e) if refused_by_rebalance(&e) => {
                let started = *first_refusal.get_or_insert_with(Instant::now);
                let can_wait = wait.is_some_and(|limit| started.elapsed() + backoff <= limit)
                    && matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
                if !can_wait {
                    return Err(e);
                }
                refused += 1;
                tracing::debug!(error = %e, refused, "offset commit refused while the group rebalances; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(e),
        }
    }
}
