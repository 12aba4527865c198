//! Progress of a restore: [`RecoveryProgress`] reports and the
//! [`ProgressMeter`] each restoring partition keeps.

use std::time::{Duration, Instant};

use state_core::TopicPartition;

/// How often a restore logs its progress at `info`.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Progress of one changelog partition's restore.
#[derive(Clone, Debug, PartialEq)]
pub struct RecoveryProgress {
    /// The changelog partition.
    pub changelog: TopicPartition,
    /// Offsets consumed so far.
    pub done: u64,
    /// Offsets to consume in total (end - start).
    pub total: u64,
    /// Offsets consumed per second so far.
    pub rate: f64,
    /// Time left at that rate (`None` before there is a rate, and once
    /// finished).
    pub eta: Option<Duration>,
    /// True once the partition reached its end.
    pub finished: bool,
    /// When the restore started, on the restorer's clock (which lags the
    /// real time by at most a few hundred records).
    pub started: Instant,
    /// How long the restore had run at this report (the whole restore in
    /// the `finished` one): `started + elapsed` is when it reached this
    /// point, whenever the report is drained.
    pub elapsed: Duration,
}

impl RecoveryProgress {
    fn new(
        changelog: &TopicPartition,
        done: u64,
        total: u64,
        started: Instant,
        elapsed: Duration,
        finished: bool,
    ) -> Self {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        // A wait too long for a `Duration` (a bogus high watermark) has no
        // estimate rather than a panic.
        let eta = (rate > 0.0 && !finished)
            .then(|| Duration::try_from_secs_f64(total.saturating_sub(done) as f64 / rate).ok())
            .flatten();
        RecoveryProgress {
            changelog: changelog.clone(),
            done,
            total,
            rate,
            eta,
            finished,
            started,
            elapsed,
        }
    }
}

/// Where a restore started and ends, and when it last reported.
#[derive(Debug)]
pub(crate) struct ProgressMeter {
    started: Instant,
    start: i64,
    end: i64,
    /// The last report (`None`: none yet, so the first record applied
    /// reports at once; a listener that acts on restores sees every one,
    /// however short).
    last_report: Option<Instant>,
    last_log: Instant,
}

impl ProgressMeter {
    /// A restore from offset `start` to `end` (exclusive), starting `now`.
    pub(crate) fn new(start: i64, end: i64, now: Instant) -> Self {
        ProgressMeter {
            started: now,
            start,
            end,
            last_report: None,
            last_log: now,
        }
    }

    /// The offset the restore ends before.
    #[inline]
    pub(crate) fn end(&self) -> i64 {
        self.end
    }

    /// When the restore started.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    fn total(&self) -> u64 {
        (self.end - self.start).max(0) as u64
    }

    /// A report with the restore at `next` if one is due at `now`: the
    /// first at once, then at most one per `interval`. Logs at `info` every
    /// few seconds.
    pub(crate) fn due(
        &mut self,
        changelog: &TopicPartition,
        next: i64,
        now: Instant,
        interval: Duration,
    ) -> Option<RecoveryProgress> {
        if self
            .last_report
            .is_some_and(|at| now.saturating_duration_since(at) < interval)
        {
            return None;
        }
        self.last_report = Some(now);
        let done = (next - self.start).max(0) as u64;
        let p = RecoveryProgress::new(
            changelog,
            done,
            self.total(),
            self.started,
            now.saturating_duration_since(self.started),
            false,
        );
        if now.saturating_duration_since(self.last_log) >= LOG_EVERY {
            self.last_log = now;
            tracing::info!(
                topic = changelog.topic(),
                partition = changelog.partition(),
                done,
                total = p.total,
                rate = p.rate as u64,
                eta = ?p.eta,
                "restoring"
            );
        }
        Some(p)
    }

    /// The last report: everything done, after `elapsed`.
    pub(crate) fn finished(&self, changelog: &TopicPartition, elapsed: Duration) -> RecoveryProgress {
        let total = self.total();
        RecoveryProgress::new(changelog, total, total, self.started, elapsed, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_report_is_due_at_once_then_one_per_interval() {
        let t0 = Instant::now();
        let cl = TopicPartition::new("cl", 0);
        let mut m = ProgressMeter::new(10, 110, t0);
        let interval = Duration::from_secs(60);
        // A clock read before the restore started (the coarse clock lags).
        let earlier = t0.checked_sub(Duration::from_millis(5)).unwrap_or(t0);
        let first = m
            .due(&cl, 11, earlier, interval)
            .expect("the first report comes at once");
        assert_eq!((first.done, first.total, first.finished), (1, 100, false));
        assert!(m.due(&cl, 12, t0 + Duration::from_secs(1), interval).is_none());
        let later = m
            .due(&cl, 60, t0 + Duration::from_secs(61), interval)
            .expect("due again");
        assert_eq!(later.done, 50);
        assert!(later.eta.is_some());
        let last = m.finished(&cl, Duration::from_secs(2));
        assert_eq!((last.done, last.total, last.finished, last.eta), (100, 100, true, None));
        assert_eq!((last.started, last.elapsed), (t0, Duration::from_secs(2)));
    }

    #[test]
    fn a_wait_too_long_to_express_has_no_estimate() {
        let t0 = Instant::now();
        let cl = TopicPartition::new("cl", 0);
        // One record in ten seconds with ~2^64 to go (a bogus high
        // watermark): the wait does not fit in a `Duration`.
        let p = RecoveryProgress::new(&cl, 1, u64::MAX, t0, Duration::from_secs(10), false);
        assert_eq!((p.done, p.eta), (1, None));
        let p = RecoveryProgress::new(&cl, 1, 101, t0, Duration::from_secs(10), false);
        assert_eq!(p.eta, Some(Duration::from_secs(1000)));
    }
}
