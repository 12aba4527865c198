//! [`with_retries`]: the restore consumer's metadata calls (watermarks)
//! retried with backoff while they fail transiently.
//!
//! A broker that is slow for a moment (a leader election, a long GC pause,
//! an overloaded mock cluster) makes a watermark request time out
//! (`OperationTimedOut`); failing the restore for that stops the
//! application, though the next request would have been answered. Kafka
//! Streams retries such errors for `task.timeout.ms`; the restore engine
//! retries them for [`RecoveryConfig::retry_timeout`] and fails only
//! errors that waiting does not fix (authorization, unknown topic, bad
//! settings) at once.
//!
//! [`RecoveryConfig::retry_timeout`]: crate::RecoveryConfig::retry_timeout

use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The first wait after a transient failure; each further one doubles, up
/// to [`MAX_BACKOFF`].
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The longest wait between two attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Calls `call` until it succeeds, fails with an error that is not
/// transient ([`is_retriable`]), or `timeout` has passed since the first
/// attempt (then its last error is returned). Between attempts `sleep` is
/// called with the backoff: [`FIRST_BACKOFF`], doubling up to
/// [`MAX_BACKOFF`], never past the deadline. `what` names the call in the
/// log.
pub(crate) fn with_retries<T>(
    what: &str,
    timeout: Duration,
    mut sleep: impl FnMut(Duration),
    mut call: impl FnMut() -> Result<T, KafkaError>,
) -> Result<T, KafkaError> {
    let deadline = Instant::now() + timeout;
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1u32;
    loop {
        let error = match call() {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if !is_retriable(&error) || left.is_zero() {
            return Err(error);
        }
        let wait = backoff.min(left);
        tracing::warn!(error = %error, attempt, retry_in = ?wait, "{what} failed transiently; retrying");
        sleep(wait);
        backoff = (backoff * 2).min(MAX_BACKOFF);
        attempt += 1;
    }
}

/// True for failures that a later attempt may not meet: timeouts, lost
/// connections, leadership moving. Not for refusals (authorization, an
/// unknown topic or partition) or local misuse, which fail at once.
pub(crate) fn is_retriable(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::TimedOutQueue
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::ReplicaNotAvailable
                | RDKafkaErrorCode::PreferredLeaderNotAvailable
                | RDKafkaErrorCode::FencedLeaderEpoch
                | RDKafkaErrorCode::UnknownLeaderEpoch
                | RDKafkaErrorCode::OffsetNotAvailable
                | RDKafkaErrorCode::KafkaStorageError
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed_out() -> KafkaError {
        KafkaError::MetadataFetch(RDKafkaErrorCode::OperationTimedOut)
    }

    #[test]
    fn transient_failures_are_retried_with_growing_backoff() {
        let mut waits = Vec::new();
        let mut failures = 3;
        let got = with_retries(
            "test",
            Duration::from_secs(60),
            |d| waits.push(d),
            || {
                if failures > 0 {
                    failures -= 1;
                    Err(timed_out())
                } else {
                    Ok(7)
                }
            },
        );
        assert_eq!(got.unwrap(), 7);
        assert_eq!(
            waits,
            [50, 100, 200].map(Duration::from_millis),
            "backoff doubles from FIRST_BACKOFF"
        );
    }

    #[test]
    fn backoff_stops_growing_at_its_maximum() {
        let mut waits = Vec::new();
        let mut failures = 8;
        with_retries(
            "test",
            Duration::from_secs(60),
            |d| waits.push(d),
            || {
                if failures > 0 {
                    failures -= 1;
                    Err(timed_out())
                } else {
                    Ok(())
                }
            },
        )
        .unwrap();
        assert_eq!(waits.len(), 8);
        assert!(waits.iter().all(|w| *w <= MAX_BACKOFF));
        assert_eq!(waits.last(), Some(&MAX_BACKOFF));
    }

    #[test]
    fn other_failures_are_returned_at_once() {
        let mut calls = 0;
        let err = with_retries(
            "test",
            Duration::from_secs(60),
            |_| panic!("no wait"),
            || -> Result<(), _> {
                calls += 1;
                Err(KafkaError::MetadataFetch(RDKafkaErrorCode::TopicAuthorizationFailed))
            },
        )
        .unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(
            err.rdkafka_error_code(),
            Some(RDKafkaErrorCode::TopicAuthorizationFailed)
        );
    }

    #[test]
    fn the_last_error_is_returned_once_the_time_is_up() {
        let mut calls = 0;
        let started = Instant::now();
        let err = with_retries(
            "test",
            Duration::from_millis(200),
            std::thread::sleep,
            || -> Result<(), _> {
                calls += 1;
                Err(timed_out())
            },
        )
        .unwrap_err();
        assert_eq!(err.rdkafka_error_code(), Some(RDKafkaErrorCode::OperationTimedOut));
        // 50 + 100 ms, then the last 50 ms up to the deadline.
        assert!((3..=5).contains(&calls), "{calls} attempts");
        assert!(started.elapsed() < Duration::from_secs(2));
        let mut calls = 0;
        with_retries(
            "test",
            Duration::ZERO,
            |_| panic!("no wait"),
            || -> Result<(), _> {
                calls += 1;
                Err(timed_out())
            },
        )
        .unwrap_err();
        assert_eq!(calls, 1, "no time to retry: one attempt");
    }
}
