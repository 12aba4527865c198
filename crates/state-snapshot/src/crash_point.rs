//! Named crash points on the snapshot paths: a test facility for the crash
//! harness (`cargo xtask crash --snapshots`), inert in normal use.
//!
//! A process started with `KAFKA_STATE_CRASH_POINT=<name>:<n>` aborts
//! (`std::process::abort`: no destructors, no flushes, as a SIGKILL would
//! leave it) the `n`-th time it reaches the point called `<name>`, after
//! writing `kafka-state crash point <name> reached: aborting` to stderr, so
//! the harness counts only kills that really happened there. Without the
//! variable (or with one that does not parse) every point is a no-op: one
//! `OnceLock` read.
//!
//! The points and what a kill there proves are listed in
//! docs/guarantees.md ("Snapshots") and docs/testing.md (the crash harness).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms one point: `<name>:<n>`.
pub const ENV_VAR: &str = "KAFKA_STATE_CRASH_POINT";

/// During an upload: after one of the snapshot's missing files was
/// uploaded, before the next (some files in the store, no manifest).
pub const UPLOAD_FILE: &str = "snapshot.upload.file";
/// Every file of the snapshot is in the store; its manifest is not
/// written yet.
pub const UPLOAD_BEFORE_MANIFEST: &str = "snapshot.upload.before_manifest";
/// During a restore's download: after one file was downloaded and checked,
/// before the next (a half-written download directory).
pub const DOWNLOAD_FILE: &str = "snapshot.download.file";
/// During the changelog tail replayed after a snapshot was restored: after
/// at least one tail record was applied, before the tail's end.
pub const TAIL_REPLAY: &str = "snapshot.restore.tail";

/// Every point, for the harness to pick from.
pub const ALL: [&str; 4] = [UPLOAD_FILE, UPLOAD_BEFORE_MANIFEST, DOWNLOAD_FILE, TAIL_REPLAY];

/// One armed point: its name and the hits left before the abort.
#[derive(Debug)]
struct Armed {
    name: String,
    remaining: AtomicU64,
}

impl Armed {
    /// Parses `<name>:<n>` (`n` at least 1).
    fn parse(spec: &str) -> Option<Armed> {
        let (name, n) = spec.rsplit_once(':')?;
        let n: u64 = n.trim().parse().ok().filter(|n| *n >= 1)?;
        (!name.is_empty()).then(|| Armed {
            name: name.to_owned(),
            remaining: AtomicU64::new(n),
        })
    }

    /// Counts a hit of `name`; true on the hit that must abort.
    fn hit(&self, name: &str) -> bool {
        self.name == name
            && self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1))
                == Ok(1)
    }
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(ENV_VAR).ok().and_then(|s| Armed::parse(&s)))
        .as_ref()
}

/// Marks that the process reached the point `name` (one of this module's
/// constants). Aborts the process if [`ENV_VAR`] armed this point and this
/// is its `n`-th hit; otherwise does nothing.
pub fn reached(name: &str) {
    if let Some(armed) = armed() {
        if armed.hit(name) {
            eprintln!("kafka-state crash point {name} reached: aborting");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_inert_without_the_variable() {
        // The test process is not started with the variable (the harness
        // sets it only for its children).
        assert!(std::env::var(ENV_VAR).is_err());
        for _ in 0..3 {
            for name in ALL {
                reached(name);
            }
        }
    }

    #[test]
    fn an_armed_point_fires_on_its_nth_hit_only() {
        let armed = Armed::parse("snapshot.upload.file:3").unwrap();
        assert!(!armed.hit(DOWNLOAD_FILE), "another point never counts");
        assert!(!armed.hit(UPLOAD_FILE));
        assert!(!armed.hit(UPLOAD_FILE));
        assert!(armed.hit(UPLOAD_FILE));
        assert!(!armed.hit(UPLOAD_FILE), "once only");
    }

    #[test]
    fn bad_specs_arm_nothing() {
        for bad in ["", "x", "x:", ":1", "x:0", "x:-1", "x:y"] {
            assert!(Armed::parse(bad).is_none(), "{bad:?} armed a point");
        }
        assert_eq!(Armed::parse("a.b:2").map(|a| a.name), Some("a.b".to_owned()));
    }

    #[test]
    fn point_names_are_distinct() {
        let set: std::collections::BTreeSet<_> = ALL.iter().collect();
        assert_eq!(set.len(), ALL.len());
    }
}
