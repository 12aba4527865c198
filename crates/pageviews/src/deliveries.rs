//! [`Deliveries`]: checks that the consumer hands out each partition's
//! records in order and once.
//!
//! Exactly-once rests on it: a record handed out again after a later one
//! of its partition was processed is counted twice, and a record the
//! consumer skips is never counted. Within one processor the only
//! legitimate move back is a checkpoint the manager rewinds (reported as
//! `ManagerEvent::CheckpointRewound`); the caller says so with
//! [`Deliveries::rewound`]. Forward jumps are checked in the input topic
//! only: its producer is not transactional, so its offsets have no gaps,
//! while a transactional topic has a commit marker after every transaction.

/// Where each partition of the two topics a processor reads is.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    /// One past the highest offset handed out, per input partition.
    input: Vec<Option<i64>>,
    /// The same per by-page partition.
    by_page: Vec<Option<i64>>,
    /// Records handed out at or before a record already handed out.
    again: u64,
    /// Input offsets jumped over.
    skipped: u64,
}

/// How many anomalies are logged one by one; the counts go on.
const LOGGED: u64 = 10;

impl Deliveries {
    /// Notes that `poll` handed out `offset` of `partition` of the input
    /// topic (`input`) or the by-page topic.
    pub fn handed_out(&mut self, input: bool, partition: i32, offset: i64) {
        let Ok(p) = usize::try_from(partition) else { return };
        let next = if input { &mut self.input } else { &mut self.by_page };
        if next.len() <= p {
            next.resize(p + 1, None);
        }
        let topic = if input { "input" } else { "by-page" };
        if let Some(want) = next[p] {
            if offset < want {
                self.again += 1;
                if self.again + self.skipped <= LOGGED {
                    tracing::warn!(topic, partition, offset, expected = want,
                        "the consumer handed out a record before the last one it handed out, with no rewind: it is processed twice");
                }
                // The partition's mark stays: everything up to it is a
                // second delivery.
                return;
            }
            if input && offset > want {
                self.skipped += (offset - want) as u64;
                if self.again + self.skipped <= LOGGED {
                    tracing::warn!(
                        topic,
                        partition,
                        offset,
                        expected = want,
                        "the consumer skipped input records: they are never processed"
                    );
                }
            }
        }
        next[p] = Some(offset + 1);
    }

    /// The manager moved partitions back (a rewound checkpoint): what
    /// comes next starts the count again.
    pub fn rewound(&mut self) {
        self.input.clear();
        self.by_page.clear();
    }

    /// Records handed out again with no rewind.
    pub fn again(&self) -> u64 {
        self.again
    }

    /// Input offsets the consumer jumped over.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_in_order_are_no_anomaly() {
        let mut d = Deliveries::default();
        for o in 0..5 {
            d.handed_out(true, 1, o);
            d.handed_out(false, 0, o * 2);
        }
        assert_eq!((d.again(), d.skipped()), (0, 0));
    }

    #[test]
    fn a_record_handed_out_again_is_counted() {
        let mut d = Deliveries::default();
        for o in [10, 11, 12, 11, 12, 13] {
            d.handed_out(true, 0, o);
        }
        assert_eq!((d.again(), d.skipped()), (2, 0), "11 and 12 came twice");
    }

    #[test]
    fn a_gap_counts_in_the_input_only() {
        let mut d = Deliveries::default();
        for o in [0, 1, 4] {
            d.handed_out(true, 2, o);
            d.handed_out(false, 2, o);
        }
        assert_eq!(
            (d.again(), d.skipped()),
            (0, 2),
            "commit markers leave gaps in the by-page topic"
        );
    }

    #[test]
    fn a_rewind_starts_the_count_again() {
        let mut d = Deliveries::default();
        d.handed_out(true, 0, 7);
        d.rewound();
        d.handed_out(true, 0, 3);
        assert_eq!((d.again(), d.skipped()), (0, 0));
    }

    #[test]
    fn the_first_record_of_a_partition_sets_where_it_is() {
        let mut d = Deliveries::default();
        d.handed_out(true, 3, 1000);
        d.handed_out(true, 3, 1001);
        assert_eq!((d.again(), d.skipped()), (0, 0));
    }
}
