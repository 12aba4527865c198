//! The demo at a small size: on the mock cluster with exactly-once (exact),
//! and on a real broker with at-least-once when KAFKA_BOOTSTRAP_SERVERS is set.

use std::time::Duration;

use pageviews::{Config, ProcessingGuarantee, Verdict};

/// 20 s of event time with windows and sessions short enough that many
/// close during the run (and some stay open at its end).
fn small() -> Config {
    Config {
        events: 20_000,
        users: 500,
        pages: 50,
        commit_every: 1_500,
        window: Duration::from_secs(1),
        window_grace: Duration::from_secs(8),
        session_gap: Duration::from_secs(2),
        ..Config::default()
    }
}

#[test]
fn exactly_once_through_a_crash_is_exact_on_the_mock_cluster() {
    let cfg = small();
    let report = pageviews::run(&cfg).unwrap();
    println!("{}", report.summary());
    assert_eq!(report.verdict, Verdict::Exact, "{}", report.summary());
    assert_eq!(
        (report.delivered_again, report.skipped_offsets),
        (0, 0),
        "the consumer handed out every record once: {}",
        report.summary()
    );
    assert!(
        report.windows_emitted > 0 && report.sessions_emitted > 0,
        "{}",
        report.summary()
    );
    assert!(report.crashed_after.is_some());
    assert!(
        report.restored > 0,
        "the second processor recovered from the changelogs"
    );
    assert!(report.processed >= cfg.events);
    assert!(report.summary().contains("verified: exact"));
    // The references the figures are printed next to, from the same run.
    assert!(report.bare_pipeline.is_some(), "the bare pipeline ran");
    assert!(report.summary().contains("bare pipeline:"), "{}", report.summary());
    assert!(report.bare_two_stage.is_some(), "the two-stage bare pipeline ran");
    assert!(report.summary().contains("bare two-stage:"), "{}", report.summary());
    assert!(report.bare_read.is_some(), "the bare changelog read ran");
    // Both processors waited for the group (the mock's initial rebalance
    // delay is 3 s, and the crashed member's leave starts a rebalance);
    // processing is what is left of the wall time.
    assert_eq!(report.group_waits.len(), 2, "{}", report.summary());
    assert!(
        report.group_waits.iter().all(|w| *w >= Duration::from_secs(1)),
        "{:?}",
        report.group_waits
    );
    assert!(report.processing() < report.elapsed);
    assert!(report.summary().contains("group waits:"), "{}", report.summary());
    let bare = report.bare_pipeline.unwrap();
    assert!(
        bare.group_wait >= Duration::from_secs(1) && bare.group_wait < bare.took,
        "{bare:?}"
    );
    assert!(report.summary().contains("without group waits"), "{}", report.summary());
}

#[test]
fn write_behind_through_a_crash_is_exact_on_the_mock_cluster() {
    let cfg = Config {
        write_behind: true,
        ..small()
    };
    let report = pageviews::run(&cfg).unwrap();
    println!("{}", report.summary());
    assert_eq!(report.verdict, Verdict::Exact, "{}", report.summary());
    assert!(
        report.windows_emitted > 0 && report.sessions_emitted > 0,
        "{}",
        report.summary()
    );
    assert!(report.crashed_after.is_some());
    assert!(report.restored > 0);
}

#[test]
fn at_least_once_on_a_real_broker_never_undercounts() {
    let Ok(brokers) = std::env::var("KAFKA_BOOTSTRAP_SERVERS") else {
        println!("SKIPPED: set KAFKA_BOOTSTRAP_SERVERS to run against a real broker");
        return;
    };
    let cfg = Config {
        events: 1_500,
        users: 50,
        pages: 20,
        commit_every: 200,
        guarantee: ProcessingGuarantee::AtLeastOnce,
        brokers: Some(brokers),
        ..Config::default()
    };
    let report = pageviews::run(&cfg).unwrap();
    println!("{}", report.summary());
    assert!(
        matches!(report.verdict, Verdict::AtLeast { .. }),
        "{}",
        report.summary()
    );
}

/// With `--snapshots DIR`, the first processor takes snapshots while it
/// runs and the second restores from them (then only the changelogs'
/// tails): still exact.
#[test]
fn snapshots_through_a_crash_are_exact_on_the_mock_cluster() {
    let snapshots = tempfile::tempdir().unwrap();
    let cfg = Config {
        snapshots: Some(snapshots.path().to_owned()),
        ..small()
    };
    let report = pageviews::run(&cfg).unwrap();
    println!("{}", report.summary());
    assert_eq!(report.verdict, Verdict::Exact, "{}", report.summary());
    assert!(report.crashed_after.is_some());
    let from_snapshots = report.from_snapshots.expect("snapshots configured");
    assert!(
        from_snapshots.partitions > 0,
        "restored from snapshots: {}",
        report.summary()
    );
    assert!(from_snapshots.bytes > 0, "{}", report.summary());
    assert!(
        report.summary().contains("restored from snapshots"),
        "{}",
        report.summary()
    );
    assert!(report.summary().contains("verified: exact"));
}
