//! The window operators' conformance kit (feature `testkit`): each window
//! kind against a naive in-memory model of its definition ([`models`]),
//! on random records — out of order, late, bridging sessions — with
//! commits and restarts (the partition reopened from disk on durable
//! backends) between any two records, with and without a window index,
//! under the JSON and MessagePack codecs, and with retried checkpoints
//! (prepared, so their records are in the changelog, then dropped and
//! processed again, as at-least-once does after a delivered checkpoint
//! whose offsets never committed). After every commit the changelog so
//! far, retried checkpoints' records included, replayed into an empty
//! partition must give what the partition holds: that is what a restore
//! gives once later commits pass a retried checkpoint's offsets.
//!
//! A backend runs all of it with one macro call:
//!
//! ```text
//! state_windows::window_conformance_tests!(MyHarness::new());
//! ```

mod drive;
pub mod models;

use state_core::testkit::Harness;
use std::time::Duration;

pub use drive::{drive, events, in_order, key_of, Step};
use models::{CountModel, FixedModel, SessionModel, SlidingModel};

use crate::kinds::Closing;
use crate::{Collect, Count, Hopping, HoppingCount, Session, Sliding, Sum, Tumbling, TumblingCount};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Count, sum and collected values: what every case checks.
macro_rules! parts {
    () => {
        (("count", Count::new()), ("sum", Sum::new()), ("items", Collect::new()))
    };
}

/// Tumbling windows (size 10, grace 5) closed by key.
pub fn tumbling_by_key<H: Harness>(h: &mut H) {
    let op = Tumbling::new(ms(10)).grace(ms(5)).agg(parts!()).expect("definition");
    drive(h, "tumbling by key", events(150), op, &|| {
        Box::new(FixedModel::new(10, 10, 5, false))
    });
}

/// Hopping windows (size 10, step 5, grace 3; and size 10, step 3) closed
/// by key.
pub fn hopping_by_key<H: Harness>(h: &mut H) {
    for (step, grace) in [(5, 3), (3, 0)] {
        let op = Hopping::new(ms(10), ms(step))
            .grace(ms(grace))
            .agg(parts!())
            .expect("definition");
        drive(h, "hopping by key", events(150), op, &move || {
            Box::new(FixedModel::new(10, step as i64, grace as i64, false))
        });
    }
}

/// Tumbling and hopping windows (even and uneven steps) closed by
/// partition.
pub fn fixed_by_partition<H: Harness>(h: &mut H) {
    for (step, grace) in [(10, 0), (10, 6), (5, 4), (3, 2)] {
        let definition = if step == 10 {
            Tumbling::new(ms(10))
                .grace(ms(grace))
                .closing(Closing::Partition)
                .agg(parts!())
        } else {
            Hopping::new(ms(10), ms(step))
                .grace(ms(grace))
                .closing(Closing::Partition)
                .agg(parts!())
        };
        let op = definition.expect("definition");
        drive(h, "fixed windows by partition", events(200), op, &move || {
            Box::new(FixedModel::new(10, step as i64, grace as i64, true))
        });
    }
}

/// Sliding windows (size 10, grace 3), records in order per key.
pub fn sliding<H: Harness>(h: &mut H) {
    let op = Sliding::new(ms(10)).grace(ms(3)).agg(parts!()).expect("definition");
    drive(h, "sliding", in_order(8), op, &|| Box::new(SlidingModel::new(10, 3)));
}

/// Session windows (gap 10, grace 4) closed by key and by partition:
/// records out of order, so sessions extend both ways and merge.
pub fn sessions<H: Harness>(h: &mut H) {
    for closing in [Closing::Key, Closing::Partition] {
        let op = Session::new(ms(10))
            .grace(ms(4))
            .closing(closing)
            .agg(parts!())
            .expect("definition");
        drive(h, "sessions", events(250), op, &move || {
            Box::new(SessionModel::new(10, 4, closing == Closing::Partition))
        });
    }
}

/// Count windows: tumbling (3 records), hopping (4 every 2, and 2 every 3).
pub fn count_windows<H: Harness>(h: &mut H) {
    let op = TumblingCount::new(3).agg(parts!()).expect("definition");
    drive(h, "tumbling count", events(100), op, &|| {
        Box::new(CountModel::new(3, None))
    });
    for (count, step) in [(4, 2), (2, 3)] {
        let op = HoppingCount::new(count, step).agg(parts!()).expect("definition");
        drive(h, "hopping count", events(100), op, &move || {
            Box::new(CountModel::new(count as usize, Some(step as usize)))
        });
    }
}

/// A case of the kit: its name and function.
pub type Case<H> = (&'static str, fn(&mut H));

/// Every case, by name.
pub fn cases<H: Harness>() -> Vec<Case<H>> {
    vec![
        ("tumbling_by_key", tumbling_by_key::<H>),
        ("hopping_by_key", hopping_by_key::<H>),
        ("fixed_by_partition", fixed_by_partition::<H>),
        ("sliding", sliding::<H>),
        ("sessions", sessions::<H>),
        ("count_windows", count_windows::<H>),
    ]
}

/// Runs every case of the kit as a test against the harness `$make`
/// builds.
#[macro_export]
macro_rules! window_conformance_tests {
    ($make:expr) => {
        mod window_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::window_conformance_tests!(@cases $make;
                tumbling_by_key, hopping_by_key, fixed_by_partition, sliding, sessions, count_windows);
        }
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                let mut h = $make;
                $crate::testkit::$case(&mut h);
            }
        )*
    };
}
