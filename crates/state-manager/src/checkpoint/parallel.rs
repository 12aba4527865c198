//! Running one step of a checkpoint for every open transaction on several
//! threads.
//!
//! A transaction's local flush writes only its own store partition (one
//! atomic batch), so the flushes of a checkpoint are independent of each
//! other: run side by side they take about the longest one's time instead
//! of the sum. In the pageviews demo the local write was a quarter of the
//! checkpoint's time, on the poll loop's thread while every other thread
//! idled (12 store partitions, ~28,000 changes a checkpoint).

use std::sync::{Mutex, OnceLock};

/// Runs `step` on every job on up to `threads` threads (the calling thread
/// is one of them) and returns the outcomes in the order of `jobs`. With
/// one thread, or one job, it runs them all on the calling thread.
pub(super) fn run_all<J: Send, R: Send>(jobs: Vec<J>, threads: usize, step: impl Fn(J) -> R + Sync) -> Vec<R> {
    let count = jobs.len();
    let threads = threads.min(count);
    if threads <= 1 {
        return jobs.into_iter().map(step).collect();
    }
    let queue = Mutex::new(jobs.into_iter().enumerate());
    let done = Mutex::new(Vec::with_capacity(count));
    let work = || loop {
        // The queue's lock is held only to take the next job.
        let next = queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).next();
        let Some((i, job)) = next else { return };
        let outcome = step(job);
        done.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((i, outcome));
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(work);
        }
        work();
    });
    let mut done = done.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, outcome)| outcome).collect()
}

/// How many threads a checkpoint's flushes use: the machine's cores,
/// asked once per process (std reads the cgroup's CPU quota from files on
/// every call, which every checkpoint need not repeat).
pub(super) fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex as StdMutex;

    use super::*;

    #[test]
    fn outcomes_come_back_in_the_order_of_the_jobs() {
        let jobs: Vec<u64> = (0..100).collect();
        let out = run_all(jobs, 4, |j| {
            // Uneven work, so jobs finish out of order.
            std::thread::sleep(std::time::Duration::from_micros((j % 7) * 50));
            j * 2
        });
        assert_eq!(out, (0..100).map(|j| j * 2).collect::<Vec<_>>());
    }

    #[test]
    fn every_job_runs_once_on_up_to_the_threads_asked() {
        let seen = StdMutex::new(Vec::new());
        let threads = StdMutex::new(HashSet::new());
        run_all((0..50).collect::<Vec<u32>>(), 3, |j| {
            seen.lock().unwrap().push(j);
            threads.lock().unwrap().insert(std::thread::current().id());
            std::thread::sleep(std::time::Duration::from_micros(200));
        });
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        let used = threads.into_inner().unwrap().len();
        assert!((1..=3).contains(&used), "{used} threads");
    }

    #[test]
    fn one_thread_runs_everything_here() {
        let here = std::thread::current().id();
        let out = run_all(vec![1, 2, 3], 1, |j| (j, std::thread::current().id() == here));
        assert_eq!(out, vec![(1, true), (2, true), (3, true)]);
    }
}
