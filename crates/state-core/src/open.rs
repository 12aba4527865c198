//! Opening a partition whose files another handle may hold: retries with
//! backoff, cancellable, the same for every durable backend.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Why one attempt to open a partition failed.
#[derive(Debug)]
pub enum OpenAttempt {
    /// Another handle (this process or another) holds the partition's
    /// lock: worth retrying.
    Locked,
    /// Anything else; not retried.
    Failed(Error),
}

/// How [`open_with_retries`] retries a locked partition.
#[derive(Clone, Copy, Debug)]
pub struct OpenRetry {
    /// Attempts at most (at least 1).
    pub max_attempts: u32,
    /// First wait between attempts; doubles each time, capped at 5 s.
    pub backoff: Duration,
}

/// Runs `open` until it succeeds, retrying while the partition at `path`
/// is locked, as `retry` says. Gives up with [`Error::PartitionLocked`]
/// after the last attempt, or early with [`Error::OpenCancelled`] when
/// `stop` is raised.
pub fn open_with_retries<T>(
    path: &Path,
    retry: OpenRetry,
    stop: &AtomicBool,
    mut open: impl FnMut() -> std::result::Result<T, OpenAttempt>,
) -> Result<T> {
    let max_attempts = retry.max_attempts.max(1);
    let mut backoff = retry.backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match open() {
            Ok(v) => return Ok(v),
            Err(OpenAttempt::Failed(e)) => return Err(e),
            Err(OpenAttempt::Locked) if attempt >= max_attempts => {
                return Err(Error::PartitionLocked {
                    path: path.to_owned(),
                    attempts: attempt,
                })
            }
            Err(OpenAttempt::Locked) => {
                tracing::warn!(path = %path.display(), attempt, "partition is locked, retrying in {backoff:?}");
                if sleep_unless_stopped(backoff, stop) {
                    return Err(Error::OpenCancelled { path: path.to_owned() });
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Sleeps `total`, waking early (returning true) if `stop` is set.
fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + total;
    loop {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_while_locked_then_gives_up_typed() {
        let mut calls = 0;
        let retry = OpenRetry {
            max_attempts: 3,
            backoff: Duration::from_millis(1),
        };
        let err = open_with_retries::<()>(Path::new("/p"), retry, &AtomicBool::new(false), || {
            calls += 1;
            Err(OpenAttempt::Locked)
        })
        .unwrap_err();
        assert_eq!(calls, 3);
        assert!(matches!(err, Error::PartitionLocked { attempts: 3, .. }), "{err}");
        let stop = AtomicBool::new(true);
        let err = open_with_retries::<()>(Path::new("/p"), retry, &stop, || Err(OpenAttempt::Locked)).unwrap_err();
        assert!(matches!(err, Error::OpenCancelled { .. }), "{err}");
        let mut n = 0;
        let got = open_with_retries(Path::new("/p"), retry, &AtomicBool::new(false), || {
            n += 1;
            if n < 2 {
                Err(OpenAttempt::Locked)
            } else {
                Ok(n)
            }
        })
        .unwrap();
        assert_eq!(got, 2);
    }
}
