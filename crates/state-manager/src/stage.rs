//! [`CheckpointStage`]: how far a checkpoint has got. Apart from the
//! checkpoint protocol because errors name stages too.

/// How far a checkpoint ([`crate::StateStoreManager::commit`]) has got. Reported to
/// the observer set with [`crate::StateStoreManager::set_checkpoint_observer`], in
/// this order, each only once the step before it succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointStage {
    /// Every changelog and output record is delivered; nothing is committed.
    Produced,
    /// Source offsets are committed (at-least-once) or the Kafka transaction
    /// is committed (exactly-once); local state is not flushed yet.
    Committed,
    /// Local state is flushed with its changelog offsets: the checkpoint is
    /// complete.
    Flushed,
}
