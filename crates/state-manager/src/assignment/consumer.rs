//! The consumer calls of assignment: reading committed offsets, pausing
//! partitions that restore, moving restored ones to where their restore
//! judged records by, and resuming them.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use state_core::TopicPartition;

use crate::error::{ManagerError, Result};

fn tpl_of(partitions: &[TopicPartition]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for tp in partitions {
        tpl.add_partition(tp.topic(), tp.partition());
    }
    tpl
}

/// The group's committed offsets of `partitions` (those that have one).
pub(super) fn committed_offsets<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    partitions: &[TopicPartition],
    timeout: Duration,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let committed = consumer
        .committed_offsets(tpl_of(partitions), timeout)
        .map_err(|source| ManagerError::Kafka {
            operation: "reading committed offsets on assignment",
            source,
        })?;
    let mut map = BTreeMap::new();
    for e in committed.elements() {
        if let Offset::Offset(o) = e.offset() {
            map.insert(TopicPartition::new(e.topic(), e.partition()), o);
        }
    }
    Ok(map)
}

/// Pauses `partitions` (their stores are restoring).
pub(super) fn pause<C: ConsumerContext, K: Consumer<C>>(consumer: &K, partitions: &[TopicPartition]) -> Result<()> {
    consumer
        .pause(&tpl_of(partitions))
        .map_err(|source| ManagerError::Kafka {
            operation: "pausing partitions that are restoring",
            source,
        })
}

/// Moves restored partitions to the offsets their restores judged records
/// by (`at`; partitions without one keep the consumer's position) and
/// resumes `partitions`.
pub(super) fn resume<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    partitions: &[TopicPartition],
    at: &BTreeMap<TopicPartition, i64>,
    timeout: Duration,
) -> Result<()> {
    // Resume where the restore judged records by: the stores hold exactly
    // the checkpoints committed up to that offset. The consumer's own
    // position came from its own offset fetch, which a previous owner's
    // late commit can put elsewhere.
    let mut positions = TopicPartitionList::new();
    for (tp, o) in at {
        positions
            .add_partition_offset(tp.topic(), tp.partition(), Offset::Offset(*o))
            .map_err(|source| ManagerError::Kafka {
                operation: "building the positions of restored partitions",
                source,
            })?;
    }
    if positions.count() > 0 {
        let sought = consumer
            .seek_partitions(positions, timeout)
            .map_err(|source| ManagerError::Kafka {
                operation: "moving restored partitions to their committed offsets",
                source,
            })?;
        for e in sought.elements() {
            if let Err(source) = e.error() {
                return Err(ManagerError::Kafka {
                    operation: "moving a restored partition to its committed offset",
                    source,
                });
            }
        }
    }
    consumer
        .resume(&tpl_of(partitions))
        .map_err(|source| ManagerError::Kafka {
            operation: "resuming restored partitions",
            source,
        })
}
