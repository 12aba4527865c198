//! The crash harness at CI size: 10 kills under exactly-once on a mock
//! cluster in its own process. `cargo xtask crash` runs 50 (or more) on demand.

use std::process::Command;

fn harness(guarantee: &str, kills: &str, seed: &str, extra: &[&str]) {
    harness_output(guarantee, kills, seed, extra);
}

/// Runs the harness, checks it ended with `kills` kills and no mismatch,
/// and returns its report.
fn harness_output(guarantee: &str, kills: &str, seed: &str, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_devtools"))
        .args(["crash", "--kills", kills, "--seed", seed, "--guarantee", guarantee])
        .args(extra)
        .output()
        .expect("devtools runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("mismatches: 0"), "{stdout}");
    assert!(stdout.contains(&format!("kills: {kills}")), "{stdout}");
    stdout.into_owned()
}

#[test]
fn ten_kills_under_exactly_once_lose_and_duplicate_nothing() {
    harness("exactly-once", "10", "2026", &[]);
}

#[test]
fn five_kills_under_at_least_once_lose_nothing() {
    harness("at-least-once", "5", "11", &[]);
}

#[test]
fn six_kills_beside_a_second_member_with_standbys_are_exact() {
    // Partitions move between the two members (restores beside the poll
    // loop, standby promotions, revocations mid-restore) while one is killed.
    harness("exactly-once", "6", "7", &["--standbys"]);
}

#[test]
fn kills_behind_write_behind_caches_lose_and_duplicate_nothing() {
    harness("exactly-once", "6", "77", &["--write-behind"]);
    harness("at-least-once", "4", "78", &["--write-behind"]);
}

#[test]
fn kills_at_the_snapshot_crash_points_lose_and_duplicate_nothing() {
    // Members restore from a shared local snapshot store; half the runs
    // abort at a snapshot crash point and some newest snapshots are
    // damaged. The report must count the kills per point.
    let stdout = harness_output("exactly-once", "8", "2027", &["--snapshots"]);
    assert!(stdout.contains("kills at snapshot crash points:"), "{stdout}");
    assert!(stdout.contains("snapshot.restore.tail:"), "{stdout}");
}
