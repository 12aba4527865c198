//! How long the calling thread ran on a core and how long it waited for
//! one, from Linux's `/proc/thread-self/schedstat`: tells a poll loop that
//! is busy (its work per record) from one that waits for a core (the
//! machine's other threads), which wall-clock splits cannot.

use std::time::Duration;

/// The calling thread's scheduler times so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadTime {
    /// Time it ran on a core.
    pub on_cpu: Duration,
    /// Time it was ready to run but waited for a core.
    pub waiting: Duration,
}

impl ThreadTime {
    /// The calling thread's times; `None` where the kernel does not
    /// report them (not Linux, or schedstats unavailable).
    pub fn now() -> Option<ThreadTime> {
        let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        parse(&text)
    }

    /// The times from `earlier` to `self` (zero where a count went back).
    pub fn since(self, earlier: ThreadTime) -> ThreadTime {
        ThreadTime {
            on_cpu: self.on_cpu.saturating_sub(earlier.on_cpu),
            waiting: self.waiting.saturating_sub(earlier.waiting),
        }
    }
}

impl std::ops::AddAssign for ThreadTime {
    fn add_assign(&mut self, other: ThreadTime) {
        self.on_cpu += other.on_cpu;
        self.waiting += other.waiting;
    }
}

/// `schedstat`'s line: nanoseconds on a core, nanoseconds waiting on the
/// run queue, time slices.
fn parse(text: &str) -> Option<ThreadTime> {
    let mut fields = text.split_ascii_whitespace().map(str::parse::<u64>);
    let on_cpu = fields.next()?.ok()?;
    let waiting = fields.next()?.ok()?;
    Some(ThreadTime {
        on_cpu: Duration::from_nanos(on_cpu),
        waiting: Duration::from_nanos(waiting),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedstat_line_gives_time_on_a_core_then_time_waiting() {
        assert_eq!(
            parse("695877 1200 1\n"),
            Some(ThreadTime {
                on_cpu: Duration::from_nanos(695_877),
                waiting: Duration::from_nanos(1200),
            })
        );
        assert_eq!(parse(""), None);
        assert_eq!(parse("12 x 1"), None);
    }

    #[test]
    fn a_busy_thread_gains_time_on_a_core() {
        let Some(before) = ThreadTime::now() else { return };
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(started.elapsed());
        }
        let spent = ThreadTime::now().map(|after| after.since(before));
        assert!(
            spent.is_some_and(|t| t.on_cpu + t.waiting >= Duration::from_millis(20)),
            "{spent:?}"
        );
    }
}
