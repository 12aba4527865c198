//! Ctrl-C and SIGTERM as a stop flag for the long commands (`restore`,
//! `verify`): the first signal asks the replay to stop, so a restore ends
//! between batches (data and changelog offset agreeing) and a verify's
//! scratch copy is removed; a second one ends the process at once.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use state_changelog::ChangelogError;

use crate::error::CliError;

/// Exit status of a command stopped by a signal (128 + SIGINT, the shell's
/// convention).
pub const INTERRUPTED_EXIT: u8 = 130;

/// A flag that Ctrl-C (SIGINT) and SIGTERM set, for
/// [`crate::ReplaySource::stop`]. Where a handler cannot be installed the
/// signal keeps its default action (the process ends); that is logged.
pub fn stop_on_signals() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so it sees the flag as the signal before set
        // it: a second signal exits, the first only sets the flag.
        let installed =
            signal_hook::flag::register_conditional_shutdown(signal, i32::from(INTERRUPTED_EXIT), stop.clone())
                .and_then(|_| signal_hook::flag::register(signal, stop.clone()));
        if let Err(error) = installed {
            tracing::warn!(signal, %error, "cannot handle the signal; it ends the command without cleaning up");
        }
    }
    stop
}

impl CliError {
    /// A replay the stop flag ended, as [`CliError::Interrupted`]: the
    /// `command` on the partition at `path`, with what it left (`outcome`).
    /// Other errors pass unchanged.
    pub(crate) fn stopped_as(self, command: &'static str, path: &Path, outcome: &'static str) -> CliError {
        match self {
            CliError::Changelog(ChangelogError::Stopped) => CliError::Interrupted {
                command,
                path: path.to_owned(),
                outcome,
            },
            e => e,
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn the_first_sigterm_sets_the_flag_and_leaves_the_process_running() {
        let stop = stop_on_signals();
        assert!(!stop.load(Ordering::SeqCst));
        // `raise` runs the handlers on this thread before it returns.
        signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
        assert!(stop.load(Ordering::SeqCst), "the first signal only sets the flag");
    }
}
