//! Applying large batches behind `write`
//! ([`WriteBehindConfig::apply_behind_ops`](crate::WriteBehindConfig::apply_behind_ops)).
//!
//! Applying a checkpoint's batch to the cache is one hash lookup per
//! operation, each a cache miss on a table of hundreds of thousands of
//! entries: a fifth of the window benchmarks' time, spent on the writer's
//! thread while the machine's other cores idle. So `write` makes room for
//! the batch as before (that may flush, and its errors are the writer's),
//! then keeps a copy of it as the cache's pending batch and hands the
//! cache to one helper thread the process shares, which applies the
//! batch in parts, taking the cache's lock for each part.
//!
//! Nothing can observe the difference: every use of the cache (reads,
//! writes, flushes, snapshots) takes the lock through
//! `WriteBehindPartition::locked`, which first applies whatever the
//! helper has not, on the caller's thread. So the cache is used in exactly
//! the order of the calls, as if `write` had applied the batch itself, and
//! a caller never waits longer than it would have then. Applying is
//! infallible and touches only memory, so a failure cannot surface late.
//! Two calls that owners make between checkpoints do not count as a use
//! that needs the batch: `flush_if_due` leaves it to the helper unless a
//! flush is due (the batch's changes are as old as its write), and
//! `cache_stats` finishes it without counting a catch-up.
//! If the helper cannot be started (or has died), `write` applies the
//! batch itself.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use state_core::WriteBatch;

use super::state::State;

/// Operations the helper applies per turn of the lock: a caller that
/// needs the cache waits at most that long (~0.1 ms) for the helper to
/// let go.
const PART_OPS: usize = 1024;

/// After a caller had to finish a batch itself, the batches `write`
/// applies itself before it tries applying behind again, doubling from
/// the first to the last with every catch-up in a row: a store whose next
/// checkpoint reads the cache at once (a key-value store reading every key
/// it updates) gains nothing from the helper and would pay for the copy,
/// the handover and the cache lines the helper leaves on its core.
const INLINE_AFTER_CATCH_UP: (u32, u32) = (16, 1024);

/// A batch `write` accepted and the cache has not fully applied.
#[derive(Debug)]
pub(super) struct Pending {
    batch: WriteBatch,
    /// The first operation not applied yet.
    next: usize,
}

impl State {
    /// True if `write` should hand a batch of `ops` operations to the
    /// helper, given the threshold `from`; counts down the batches applied
    /// inline since a caller last had to catch up.
    pub(super) fn apply_behind(&mut self, ops: usize, from: usize) -> bool {
        if ops < from.max(1) {
            return false;
        }
        if self.inline_for > 0 {
            self.inline_for -= 1;
            return false;
        }
        true
    }

    /// Keeps a copy of `batch` (in the spare buffers) to apply later.
    /// Room was made for it; nothing may use the cache before
    /// [`finish_pending`](Self::finish_pending) or the helper has run.
    pub(super) fn defer(&mut self, batch: &WriteBatch) {
        self.finish_pending();
        let mut copy = std::mem::take(&mut self.spare);
        copy.clone_from(batch);
        self.pending = Some(Pending { batch: copy, next: 0 });
        self.applied_behind += 1;
        // Its changes are as old as the write, for the age bound.
        self.mark_dirty_time();
    }

    /// Applies up to `max_ops` more operations of the pending batch;
    /// true if some remain.
    fn apply_pending(&mut self, max_ops: usize) -> bool {
        let Some(mut p) = self.pending.take() else {
            return false;
        };
        p.next += self.apply_part(&p.batch, p.next, max_ops);
        if p.next < p.batch.len() {
            self.pending = Some(p);
            return true;
        }
        self.spare = p.batch;
        false
    }

    /// The helper's turn: applies a part of the pending batch; true if
    /// some remains.
    fn help(&mut self) -> bool {
        if self.pending.is_none() {
            return false;
        }
        let more = self.apply_pending(PART_OPS);
        if !more {
            // The helper finished it: applying behind pays here.
            self.inline_run = 0;
        }
        more
    }

    /// Applies the rest of the pending batch, if any.
    pub(super) fn finish_pending(&mut self) {
        self.raise_helper_panic();
        while self.apply_pending(usize::MAX) {}
    }

    /// Panics if the helper panicked applying this cache's batch: the rest
    /// of that batch is lost, so the cache must not be used, and the panic
    /// reaches the next caller as it reached the writer when `write`
    /// applied every batch itself.
    pub(super) fn raise_helper_panic(&mut self) {
        if let Some(what) = self.helper_panic.take() {
            panic!("the write-behind cache's helper thread panicked applying a batch, which is lost: {what}");
        }
    }

    /// [`finish_pending`](Self::finish_pending), for a caller about to use
    /// the cache: counted when it finds work the helper had not done.
    pub(super) fn settle(&mut self) {
        self.raise_helper_panic();
        if self.pending.is_some() {
            self.finished_by_caller += 1;
            let (first, last) = INLINE_AFTER_CATCH_UP;
            self.inline_run = if self.inline_run == 0 {
                first
            } else {
                (self.inline_run * 2).min(last)
            };
            self.inline_for = self.inline_run;
            self.finish_pending();
        }
    }
}

/// The helper's queue: caches with a pending batch.
type Queue = Sender<Weak<Mutex<State>>>;

static HELPER: OnceLock<Option<Queue>> = OnceLock::new();

/// Asks the helper to apply `state`'s pending batch; false if there is no
/// helper (the caller applies it).
pub(super) fn hand_over(state: &Arc<Mutex<State>>) -> bool {
    match HELPER.get_or_init(start) {
        Some(queue) => queue.send(Arc::downgrade(state)).is_ok(),
        None => false,
    }
}

fn start() -> Option<Queue> {
    let (queue, jobs) = mpsc::channel();
    std::thread::Builder::new()
        .name("write-behind-apply".to_owned())
        .spawn(move || run(jobs))
        .ok()
        .map(|_| queue)
}

fn run(jobs: Receiver<Weak<Mutex<State>>>) {
    for job in jobs {
        // A cache dropped meanwhile needs nothing.
        let Some(state) = job.upgrade() else { continue };
        loop {
            // A panic (a broken invariant) is handed to the cache's next
            // caller; the helper goes on serving the other caches.
            match catch_unwind(AssertUnwindSafe(|| state.lock().help())) {
                Ok(true) => {}
                Ok(false) => break,
                Err(payload) => {
                    state.lock().helper_panic = Some(panic_message(&*payload));
                    break;
                }
            }
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_owned(),
        (_, Some(s)) => s.clone(),
        _ => "(no message)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use state_core::{cf, Reservation};

    use super::*;

    fn batch(ops: u32) -> WriteBatch {
        let mut b = WriteBatch::new();
        for i in 0..ops {
            b.put(cf::DEFAULT, &i.to_be_bytes(), b"v");
        }
        b
    }

    #[test]
    #[should_panic(expected = "helper thread panicked applying a batch, which is lost: boom")]
    fn the_next_caller_panics_with_what_the_helper_panicked_with() {
        let mut st = State::new(None, Reservation::unlimited());
        st.helper_panic = Some(panic_message(&"boom"));
        st.settle();
    }

    #[test]
    fn the_spare_buffers_go_when_the_budget_asks_for_memory_back() {
        let budget = state_core::MemoryBudget::with_engine_share(8 * state_core::RESERVATION_CHUNK, 0);
        let mut held = budget.reserve(state_core::BudgetPool::Caches);
        assert!(held.try_grow_to(8 * state_core::RESERVATION_CHUNK));
        let mut st = State::new(None, held);
        st.defer(&batch(1_000));
        st.finish_pending();
        assert!(st.spare.data_size() > 0, "kept for the next batch");
        st.give_back_if_asked();
        assert!(st.spare.data_size() > 0, "nobody asked");
        // A newcomer below its fair share is refused: the budget asks.
        let mut newcomer = budget.reserve(state_core::BudgetPool::Caches);
        assert!(!newcomer.try_grow_to(state_core::RESERVATION_CHUNK));
        st.give_back_if_asked();
        assert_eq!(st.spare.data_size(), 0, "given back");
    }

    #[test]
    fn only_batches_at_the_threshold_go_behind() {
        let mut st = State::new(None, Reservation::unlimited());
        assert!(!st.apply_behind(99, 100));
        assert!(st.apply_behind(100, 100));
        assert!(!st.apply_behind(0, 0), "an empty batch never goes behind");
        assert!(!st.apply_behind(5, usize::MAX));
    }

    #[test]
    fn a_caller_that_catches_up_keeps_the_next_batches_inline_for_a_while() {
        let mut st = State::new(None, Reservation::unlimited());
        st.defer(&batch(10));
        st.settle();
        assert_eq!((st.applied_behind, st.finished_by_caller), (1, 1));
        assert_eq!(st.slots.len(), 10, "settle applied the batch");
        let (first, last) = INLINE_AFTER_CATCH_UP;
        let inline_run = |st: &mut State| (0..).take_while(|_| !st.apply_behind(10, 1)).count() as u32;
        assert_eq!(inline_run(&mut st), first, "then it tries the helper again");
        // Settling with nothing pending is not a catch-up.
        st.settle();
        assert_eq!(st.finished_by_caller, 1);
        assert!(st.apply_behind(10, 1));
        // Catch-ups in a row double the run, up to a bound.
        for expect in [first * 2, first * 4] {
            st.defer(&batch(10));
            st.settle();
            assert_eq!(inline_run(&mut st), expect);
        }
        for _ in 0..10 {
            st.defer(&batch(10));
            st.settle();
        }
        assert_eq!(inline_run(&mut st), last);
        // A batch the helper finishes resets it.
        st.defer(&batch(10));
        while st.help() {}
        st.defer(&batch(10));
        st.settle();
        assert_eq!(inline_run(&mut st), first);
    }

    #[test]
    fn a_pending_batch_is_applied_in_parts_with_its_offset_last() {
        let mut st = State::new(None, Reservation::unlimited());
        let mut b = batch(10);
        b.set_changelog_offset(7);
        st.defer(&b);
        assert!(st.apply_pending(4));
        assert_eq!((st.slots.len(), st.offset), (4, None));
        assert!(st.apply_pending(4));
        assert!(!st.apply_pending(4));
        assert_eq!((st.slots.len(), st.offset), (10, Some(7)));
        assert!(st.pending.is_none());
        // A batch deferred while one is pending applies the older first.
        st.defer(&batch(3));
        let mut later = WriteBatch::new();
        later.delete(cf::DEFAULT, &0u32.to_be_bytes());
        st.defer(&later);
        st.finish_pending();
        let cf = st.slots.cf_index(cf::DEFAULT).unwrap();
        assert_eq!(
            st.slots.lookup(cf, &0u32.to_be_bytes()),
            Some(None),
            "the delete applied after the puts"
        );
        assert_eq!(st.slots.lookup(cf, &1u32.to_be_bytes()), Some(Some(b"v".to_vec())));
    }
}
